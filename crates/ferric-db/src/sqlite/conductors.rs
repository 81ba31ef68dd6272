//! The conductors table: who is serving, heard from when.

use chrono::{DateTime, Utc};
use ferric_core::ConductorRecord;
use rusqlite::{params, Connection, OptionalExtension, Row};

use super::{check_sort_column, push_page, ts, Cols, Sql, SqliteStore};
use crate::error::{DbError, DbResult};
use crate::query::{Page, CONDUCTOR_SORT_COLUMNS};

const SELECT: &str =
    "SELECT k.id, k.hostname, k.conductor_group, k.drivers, k.online, k.created_at, k.updated_at FROM conductors k";

fn conductor_from_row(row: &Row<'_>) -> DbResult<ConductorRecord> {
    let mut c = Cols::new(row);
    let id = c.int()?;
    let hostname = c.text()?;
    let conductor_group = c.text()?;
    let drivers = c.text()?;
    Ok(ConductorRecord {
        id,
        hostname,
        conductor_group,
        drivers: serde_json::from_str(&drivers).map_err(|e| DbError::Corrupt {
            what: "conductor drivers",
            detail: e.to_string(),
        })?,
        online: c.flag()?,
        created_at: c.time("conductor created_at")?,
        updated_at: c.opt_time("conductor updated_at")?,
    })
}

fn not_found(hostname: &str) -> DbError {
    DbError::NotFound {
        kind: "Conductor",
        ident: hostname.to_owned(),
    }
}

fn select(conn: &Connection, hostname: &str) -> DbResult<ConductorRecord> {
    conn.prepare_cached(&format!("{SELECT} WHERE k.hostname = ?"))?
        .query_row([hostname], |row| Ok(conductor_from_row(row)))
        .optional()?
        .unwrap_or_else(|| Err(not_found(hostname)))
}

impl SqliteStore {
    pub(super) async fn conductor_register(
        &self,
        hostname: String,
        group: String,
        drivers: Vec<String>,
        now: DateTime<Utc>,
    ) -> DbResult<ConductorRecord> {
        self.write(move |tx| {
            let drivers = serde_json::to_string(&drivers).map_err(|e| DbError::Corrupt {
                what: "conductor drivers",
                detail: e.to_string(),
            })?;
            tx.execute(
                "INSERT INTO conductors (hostname, conductor_group, drivers, online, created_at, updated_at) \
                 VALUES (?1, ?2, ?3, 1, ?4, ?4) \
                 ON CONFLICT (hostname) DO UPDATE SET conductor_group = excluded.conductor_group, \
                 drivers = excluded.drivers, online = 1, updated_at = excluded.updated_at",
                params![hostname, group, drivers, ts(&now)],
            )?;
            select(tx, &hostname)
        })
        .await
    }

    pub(super) async fn conductor_touch(
        &self,
        hostname: String,
        now: DateTime<Utc>,
    ) -> DbResult<()> {
        self.write(move |tx| {
            let changed = tx.execute(
                "UPDATE conductors SET updated_at = ?, online = 1 WHERE hostname = ?",
                params![ts(&now), hostname],
            )?;
            if changed == 0 {
                return Err(not_found(&hostname));
            }
            Ok(())
        })
        .await
    }

    pub(super) async fn conductor_unregister(&self, hostname: String) -> DbResult<()> {
        self.write(move |tx| {
            tx.execute(
                "UPDATE conductors SET online = 0 WHERE hostname = ?",
                [hostname],
            )?;
            Ok(())
        })
        .await
    }

    pub(super) async fn conductor_get(&self, hostname: String) -> DbResult<ConductorRecord> {
        self.read(move |conn| select(conn, &hostname)).await
    }

    pub(super) async fn conductor_list(&self, page: &Page) -> DbResult<Vec<ConductorRecord>> {
        check_sort_column(&page.sort_key, CONDUCTOR_SORT_COLUMNS)?;
        let mut sql = Sql::new(SELECT);
        push_page(&mut sql, "k", "conductors", &page.sort_key, page, false);
        self.read(move |conn| sql.query(conn, conductor_from_row))
            .await
    }
}
