//! Node history and node inventory: rows that belong to a node and go with
//! it.

use ferric_core::{HistoryEvent, JsonObject, NodeInventory, NodeUuid, Severity};
use rusqlite::{params, Connection, OptionalExtension, Row};

use super::{push_page, to_json, ts, Cols, Sql, SqliteStore};
use crate::error::{DbError, DbResult};
use crate::query::Page;

const SELECT: &str =
    "SELECT h.id, h.uuid, n.uuid, h.created_at, h.severity, h.event_type, h.event, \
     h.conductor, h.user, h.project, h.state, h.target_provision_state, h.duration_seconds \
     FROM node_history h JOIN nodes n ON n.id = h.node_id";

fn event_from_row(row: &Row<'_>) -> DbResult<HistoryEvent> {
    let mut c = Cols::new(row);
    Ok(HistoryEvent {
        id: c.int()?,
        uuid: c.parsed("history uuid")?,
        node_uuid: c.parsed("history node uuid")?,
        created_at: c.time("history created_at")?,
        severity: match c.text()?.as_str() {
            "ERROR" => Severity::Error,
            _ => Severity::Info,
        },
        event_type: c.text()?,
        event: c.text()?,
        conductor: c.opt_text()?,
        user: c.opt_text()?,
        project: c.opt_text()?,
        state: c.opt_text()?,
        target_provision_state: c.opt_text()?,
        duration_seconds: c.take()?,
    })
}

pub(super) fn node_id(conn: &Connection, node: NodeUuid) -> DbResult<i64> {
    conn.prepare_cached("SELECT id FROM nodes WHERE uuid = ?")?
        .query_row([node.to_string()], |r| r.get(0))
        .optional()?
        .ok_or_else(|| DbError::NotFound {
            kind: "Node",
            ident: node.to_string(),
        })
}

impl SqliteStore {
    pub(super) async fn history_add(&self, event: HistoryEvent, keep: usize) -> DbResult<()> {
        self.write(move |tx| {
            let node = node_id(tx, event.node_uuid)?;
            tx.execute(
                "INSERT INTO node_history (uuid, node_id, created_at, severity, event_type, event, conductor, \
                 user, project, state, target_provision_state, duration_seconds) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                params![
                    event.uuid.to_string(),
                    node,
                    ts(&event.created_at),
                    event.severity.as_str(),
                    event.event_type,
                    event.event,
                    event.conductor,
                    event.user,
                    event.project,
                    event.state,
                    event.target_provision_state,
                    event.duration_seconds,
                ],
            )?;
            if keep > 0 {
                tx.execute(
                    "DELETE FROM node_history WHERE node_id = ?1 AND id NOT IN \
                     (SELECT id FROM node_history WHERE node_id = ?1 ORDER BY id DESC LIMIT ?2)",
                    params![node, i64::try_from(keep).unwrap_or(i64::MAX)],
                )?;
            }
            Ok(())
        })
        .await
    }

    pub(super) async fn history_list(
        &self,
        node: NodeUuid,
        page: Page,
    ) -> DbResult<Vec<HistoryEvent>> {
        self.read(move |conn| {
            let id = node_id(conn, node)?;
            let mut sql = Sql::new(SELECT);
            sql.push(" WHERE h.node_id = ").bind(id);
            let page = Page {
                sort_key: "id".into(),
                ..page
            };
            push_page(&mut sql, "h", "node_history", "id", &page, true);
            sql.query(conn, event_from_row)
        })
        .await
    }

    pub(super) async fn history_get(
        &self,
        node: NodeUuid,
        event: uuid::Uuid,
    ) -> DbResult<HistoryEvent> {
        self.read(move |conn| {
            conn.prepare_cached(&format!("{SELECT} WHERE n.uuid = ? AND h.uuid = ?"))?
                .query_row(params![node.to_string(), event.to_string()], |row| {
                    Ok(event_from_row(row))
                })
                .optional()?
                .unwrap_or_else(|| {
                    Err(DbError::NotFound {
                        kind: "Node history record",
                        ident: event.to_string(),
                    })
                })
        })
        .await
    }

    pub(super) async fn inventory_save(&self, inventory: NodeInventory) -> DbResult<()> {
        self.write(move |tx| {
            let node = node_id(tx, inventory.node_uuid)?;
            tx.execute(
                "INSERT INTO node_inventory (node_id, inventory, plugin_data, created_at) VALUES (?, ?, ?, ?) \
                 ON CONFLICT (node_id) DO UPDATE SET inventory = excluded.inventory, \
                 plugin_data = excluded.plugin_data, created_at = excluded.created_at",
                params![
                    node,
                    to_json(&inventory.inventory),
                    to_json(&inventory.plugin_data),
                    ts(&inventory.created_at)
                ],
            )?;
            Ok(())
        })
        .await
    }

    pub(super) async fn inventory_get(&self, node: NodeUuid) -> DbResult<NodeInventory> {
        self.read(move |conn| {
            let id = node_id(conn, node)?;
            conn.prepare_cached(
                "SELECT inventory, plugin_data, created_at FROM node_inventory WHERE node_id = ?",
            )?
            .query_row([id], |row| {
                let mut c = Cols::new(row);
                Ok((|| {
                    let inventory: JsonObject = c.json("inventory")?;
                    let plugin_data: JsonObject = c.json("plugin_data")?;
                    Ok(NodeInventory {
                        node_uuid: node,
                        inventory,
                        plugin_data,
                        created_at: c.time("inventory created_at")?,
                    })
                })())
            })
            .optional()?
            .unwrap_or_else(|| {
                Err(DbError::NotFound {
                    kind: "Node inventory",
                    ident: node.to_string(),
                })
            })
        })
        .await
    }
}
