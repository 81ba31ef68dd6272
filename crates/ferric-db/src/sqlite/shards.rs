//! Node shards: how many nodes each shard holds.

use super::SqliteStore;
use crate::error::DbResult;

impl SqliteStore {
    /// `(shard, nodes)`, most nodes first; ties in shard order, nodes
    /// without a shard (`None`) before the rest.
    pub(super) async fn shards_count(&self) -> DbResult<Vec<(Option<String>, u64)>> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT shard, count(id) FROM nodes GROUP BY shard ORDER BY shard",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok((r.get::<_, Option<String>>(0)?, r.get::<_, i64>(1)?))
            })?;
            let mut counts = Vec::new();
            for row in rows {
                let (shard, n) = row?;
                counts.push((shard, u64::try_from(n).unwrap_or(0)));
            }
            counts.sort_by_key(|c| std::cmp::Reverse(c.1));
            Ok(counts)
        })
        .await
    }
}
