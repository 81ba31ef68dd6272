//! Chassis.

use ferric_core::{Chassis, ChassisUuid};
use rusqlite::{params, Connection, OptionalExtension, Row};

use super::{
    check_sort_column, map_unique, opt_ts, push_page, to_json, ts, Cols, Sql, SqliteStore,
};
use crate::error::{DbError, DbResult};
use crate::query::{Page, CHASSIS_SORT_COLUMNS};

const SELECT: &str =
    "SELECT c.id, c.uuid, c.description, c.extra, c.created_at, c.updated_at FROM chassis c";

fn chassis_from_row(row: &Row<'_>) -> DbResult<Chassis> {
    let mut c = Cols::new(row);
    Ok(Chassis {
        id: c.int()?,
        uuid: c.parsed("chassis uuid")?,
        description: c.opt_text()?,
        extra: c.json("chassis extra")?,
        created_at: c.time("chassis created_at")?,
        updated_at: c.opt_time("chassis updated_at")?,
    })
}

fn not_found(uuid: ChassisUuid) -> DbError {
    DbError::NotFound {
        kind: "Chassis",
        ident: uuid.to_string(),
    }
}

fn select(conn: &Connection, uuid: ChassisUuid) -> DbResult<Chassis> {
    conn.prepare_cached(&format!("{SELECT} WHERE c.uuid = ?"))?
        .query_row([uuid.to_string()], |row| Ok(chassis_from_row(row)))
        .optional()?
        .unwrap_or(Err(not_found(uuid)))
}

impl SqliteStore {
    pub(super) async fn chassis_create(&self, c: Chassis) -> DbResult<Chassis> {
        self.write(move |tx| {
            tx.execute(
                "INSERT INTO chassis (uuid, description, extra, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
                params![c.uuid.to_string(), c.description, to_json(&c.extra), ts(&c.created_at), opt_ts(&c.updated_at)],
            )
            .map_err(|e| map_unique(e, "chassis", |_| c.uuid.to_string()))?;
            select(tx, c.uuid)
        })
        .await
    }

    pub(super) async fn chassis_get(&self, uuid: ChassisUuid) -> DbResult<Chassis> {
        self.read(move |conn| select(conn, uuid)).await
    }

    pub(super) async fn chassis_list(&self, page: &Page) -> DbResult<Vec<Chassis>> {
        check_sort_column(&page.sort_key, CHASSIS_SORT_COLUMNS)?;
        let mut sql = Sql::new(SELECT);
        push_page(&mut sql, "c", "chassis", &page.sort_key, page, false);
        self.read(move |conn| sql.query(conn, chassis_from_row))
            .await
    }

    pub(super) async fn chassis_save(&self, c: Chassis) -> DbResult<Chassis> {
        self.write(move |tx| {
            let changed = tx.execute(
                "UPDATE chassis SET description = ?, extra = ?, updated_at = ? WHERE id = ?",
                params![
                    c.description,
                    to_json(&c.extra),
                    ts(&chrono::Utc::now()),
                    c.id
                ],
            )?;
            if changed == 0 {
                return Err(not_found(c.uuid));
            }
            select(tx, c.uuid)
        })
        .await
    }

    pub(super) async fn chassis_delete(&self, uuid: ChassisUuid) -> DbResult<()> {
        self.write(move |tx| {
            let nodes: i64 = tx.query_row(
                "SELECT count(*) FROM nodes WHERE chassis_id = (SELECT id FROM chassis WHERE uuid = ?)",
                [uuid.to_string()],
                |r| r.get(0),
            )?;
            if nodes > 0 {
                return Err(DbError::Reference(format!("Chassis {uuid} contains nodes.")));
            }
            if tx.execute("DELETE FROM chassis WHERE uuid = ?", [uuid.to_string()])? == 0 {
                return Err(not_found(uuid));
            }
            Ok(())
        })
        .await
    }
}
