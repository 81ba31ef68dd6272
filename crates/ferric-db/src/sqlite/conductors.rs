//! The conductors table: who is serving, heard from when.

use chrono::{DateTime, Utc};
use ferric_core::ConductorRecord;
use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Row, Sqlite};

use super::{check_sort_column, push_page, SqliteStore};
use crate::error::{DbError, DbResult};
use crate::query::{Page, CONDUCTOR_SORT_COLUMNS};

fn conductor_from_row(row: &SqliteRow) -> DbResult<ConductorRecord> {
    let drivers: String = row.try_get("drivers")?;
    Ok(ConductorRecord {
        id: row.try_get("id")?,
        hostname: row.try_get("hostname")?,
        conductor_group: row.try_get("conductor_group")?,
        drivers: serde_json::from_str(&drivers).map_err(|e| DbError::Corrupt {
            what: "conductor drivers",
            detail: e.to_string(),
        })?,
        online: row.try_get("online")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn not_found(hostname: &str) -> DbError {
    DbError::NotFound {
        kind: "Conductor",
        ident: hostname.to_owned(),
    }
}

impl SqliteStore {
    pub(super) async fn conductor_register(
        &self,
        hostname: &str,
        group: &str,
        drivers: &[String],
        now: DateTime<Utc>,
    ) -> DbResult<ConductorRecord> {
        let drivers = serde_json::to_string(drivers).map_err(|e| DbError::Corrupt {
            what: "conductor drivers",
            detail: e.to_string(),
        })?;
        let row = sqlx::query(
            "INSERT INTO conductors (hostname, conductor_group, drivers, online, created_at, updated_at) \
             VALUES (?, ?, ?, 1, ?, ?) \
             ON CONFLICT (hostname) DO UPDATE SET conductor_group = excluded.conductor_group, \
             drivers = excluded.drivers, online = 1, updated_at = excluded.updated_at \
             RETURNING *",
        )
        .bind(hostname)
        .bind(group)
        .bind(drivers)
        .bind(now)
        .bind(now)
        .fetch_one(&self.writer)
        .await?;
        conductor_from_row(&row)
    }

    pub(super) async fn conductor_touch(&self, hostname: &str, now: DateTime<Utc>) -> DbResult<()> {
        let done =
            sqlx::query("UPDATE conductors SET updated_at = ?, online = 1 WHERE hostname = ?")
                .bind(now)
                .bind(hostname)
                .execute(&self.writer)
                .await?;
        if done.rows_affected() == 0 {
            return Err(not_found(hostname));
        }
        Ok(())
    }

    pub(super) async fn conductor_unregister(&self, hostname: &str) -> DbResult<()> {
        sqlx::query("UPDATE conductors SET online = 0 WHERE hostname = ?")
            .bind(hostname)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    pub(super) async fn conductor_get(&self, hostname: &str) -> DbResult<ConductorRecord> {
        let row = sqlx::query("SELECT * FROM conductors WHERE hostname = ?")
            .bind(hostname)
            .fetch_optional(&self.readers)
            .await?;
        row.map(|r| conductor_from_row(&r))
            .unwrap_or(Err(not_found(hostname)))
    }

    pub(super) async fn conductor_list(&self, page: &Page) -> DbResult<Vec<ConductorRecord>> {
        check_sort_column(&page.sort_key, CONDUCTOR_SORT_COLUMNS)?;
        let mut qb = QueryBuilder::<Sqlite>::new("SELECT k.* FROM conductors k");
        push_page(&mut qb, "k", &page.sort_key, page, false);
        let rows = qb.build().fetch_all(&self.readers).await?;
        rows.iter().map(conductor_from_row).collect()
    }
}
