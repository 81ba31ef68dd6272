//! Chassis.

use ferric_core::{Chassis, ChassisUuid};
use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Row, Sqlite};

use super::{
    check_sort_column, json_column, map_unique, now, parsed_column, push_page, to_json, SqliteStore,
};
use crate::error::{DbError, DbResult};
use crate::query::{Page, CHASSIS_SORT_COLUMNS};

fn chassis_from_row(row: &SqliteRow) -> DbResult<Chassis> {
    Ok(Chassis {
        id: row.try_get("id")?,
        uuid: parsed_column(row, "uuid")?,
        description: row.try_get("description")?,
        extra: json_column(row, "extra")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn not_found(uuid: ChassisUuid) -> DbError {
    DbError::NotFound {
        kind: "Chassis",
        ident: uuid.to_string(),
    }
}

impl SqliteStore {
    pub(super) async fn chassis_create(&self, c: &Chassis) -> DbResult<Chassis> {
        let row = sqlx::query(
            "INSERT INTO chassis (uuid, description, extra, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?) RETURNING *",
        )
        .bind(c.uuid.to_string())
        .bind(c.description.as_deref())
        .bind(to_json(&c.extra))
        .bind(c.created_at)
        .bind(c.updated_at)
        .fetch_one(&self.writer)
        .await
        .map_err(|e| map_unique(e, "chassis", |_| c.uuid.to_string()))?;
        chassis_from_row(&row)
    }

    pub(super) async fn chassis_get(&self, uuid: ChassisUuid) -> DbResult<Chassis> {
        let row = sqlx::query("SELECT * FROM chassis WHERE uuid = ?")
            .bind(uuid.to_string())
            .fetch_optional(&self.readers)
            .await?;
        row.map(|r| chassis_from_row(&r))
            .unwrap_or(Err(not_found(uuid)))
    }

    pub(super) async fn chassis_list(&self, page: &Page) -> DbResult<Vec<Chassis>> {
        check_sort_column(&page.sort_key, CHASSIS_SORT_COLUMNS)?;
        let mut qb = QueryBuilder::<Sqlite>::new("SELECT c.* FROM chassis c");
        push_page(&mut qb, "c", &page.sort_key, page, false);
        let rows = qb.build().fetch_all(&self.readers).await?;
        rows.iter().map(chassis_from_row).collect()
    }

    pub(super) async fn chassis_save(&self, c: &Chassis) -> DbResult<Chassis> {
        let row = sqlx::query(
            "UPDATE chassis SET description = ?, extra = ?, updated_at = ? WHERE id = ? RETURNING *",
        )
        .bind(c.description.as_deref())
        .bind(to_json(&c.extra))
        .bind(now())
        .bind(c.id)
        .fetch_optional(&self.writer)
        .await?;
        row.map(|r| chassis_from_row(&r))
            .unwrap_or(Err(not_found(c.uuid)))
    }

    pub(super) async fn chassis_delete(&self, uuid: ChassisUuid) -> DbResult<()> {
        let mut tx = self.writer.begin().await?;
        let nodes: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM nodes WHERE chassis_id = (SELECT id FROM chassis WHERE uuid = ?)",
        )
        .bind(uuid.to_string())
        .fetch_one(&mut *tx)
        .await?;
        if nodes > 0 {
            return Err(DbError::Reference(format!(
                "Chassis {uuid} contains nodes."
            )));
        }
        let done = sqlx::query("DELETE FROM chassis WHERE uuid = ?")
            .bind(uuid.to_string())
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(not_found(uuid));
        }
        tx.commit().await?;
        Ok(())
    }
}
