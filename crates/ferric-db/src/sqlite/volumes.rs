//! Volume connectors and targets.

use ferric_core::volume::{VolumeConnectorUuid, VolumeTargetUuid};
use ferric_core::{NodeUuid, VolumeConnector, VolumeTarget};
use rusqlite::{params, Connection, Row};

use super::history::node_id;
use super::{
    check_sort_column, constraint_message, opt_ts, push_page, to_json, ts, Cols, Sql, SqliteStore,
    Where,
};
use crate::error::{DbError, DbResult};
use crate::query::{Page, VOLUME_CONNECTOR_SORT_COLUMNS, VOLUME_TARGET_SORT_COLUMNS};

const CONNECTOR: &str = "Volume connector";
const TARGET: &str = "Volume target";

const SELECT_CONNECTOR: &str = "SELECT c.id, c.uuid, n.uuid, c.type, c.connector_id, c.extra, \
     c.created_at, c.updated_at FROM volume_connectors c JOIN nodes n ON n.id = c.node_id";

const SELECT_TARGET: &str = "SELECT t.id, t.uuid, n.uuid, t.volume_type, t.volume_id, t.boot_index, \
     t.properties, t.extra, t.created_at, t.updated_at FROM volume_targets t JOIN nodes n ON n.id = t.node_id";

fn connector_from_row(row: &Row<'_>) -> DbResult<VolumeConnector> {
    let mut c = Cols::new(row);
    Ok(VolumeConnector {
        id: c.int()?,
        uuid: c.parsed("volume connector uuid")?,
        node_uuid: c.parsed("volume connector node")?,
        kind: c.text()?,
        connector_id: c.text()?,
        extra: c.json("volume connector extra")?,
        created_at: c.time("volume connector created_at")?,
        updated_at: c.opt_time("volume connector updated_at")?,
    })
}

fn target_from_row(row: &Row<'_>) -> DbResult<VolumeTarget> {
    let mut c = Cols::new(row);
    Ok(VolumeTarget {
        id: c.int()?,
        uuid: c.parsed("volume target uuid")?,
        node_uuid: c.parsed("volume target node")?,
        volume_type: c.text()?,
        volume_id: c.text()?,
        boot_index: c.int()?,
        properties: c.json("volume target properties")?.into(),
        extra: c.json("volume target extra")?,
        created_at: c.time("volume target created_at")?,
        updated_at: c.opt_time("volume target updated_at")?,
    })
}

/// The one row of `select` (aliased `alias`) with this UUID.
fn select_by_uuid<T>(
    conn: &Connection,
    select: &str,
    alias: &str,
    uuid: String,
    kind: &'static str,
    map: impl Fn(&Row<'_>) -> DbResult<T>,
) -> DbResult<T> {
    let mut sql = Sql::new(select);
    sql.push(&format!(" WHERE {alias}.uuid = "))
        .bind(uuid.clone());
    sql.query(conn, map)?
        .into_iter()
        .next()
        .ok_or_else(|| not_found(kind, uuid))
}

fn select_connector(conn: &Connection, uuid: VolumeConnectorUuid) -> DbResult<VolumeConnector> {
    let uuid = uuid.to_string();
    select_by_uuid(
        conn,
        SELECT_CONNECTOR,
        "c",
        uuid,
        CONNECTOR,
        connector_from_row,
    )
}

fn select_target(conn: &Connection, uuid: VolumeTargetUuid) -> DbResult<VolumeTarget> {
    let uuid = uuid.to_string();
    select_by_uuid(conn, SELECT_TARGET, "t", uuid, TARGET, target_from_row)
}

/// Deletes the row of `table` with this UUID, or says it is not there.
fn delete_by_uuid(
    conn: &Connection,
    table: &str,
    kind: &'static str,
    uuid: String,
) -> DbResult<()> {
    if conn.execute(&format!("DELETE FROM {table} WHERE uuid = ?"), [&uuid])? == 0 {
        return Err(not_found(kind, uuid));
    }
    Ok(())
}

fn not_found(kind: &'static str, uuid: String) -> DbError {
    DbError::NotFound { kind, ident: uuid }
}

/// Ironic's duplicate errors: the (type, connector ID) pair is named in
/// one phrase, so it travels as the value of the `type` field.
fn duplicate_connector(e: rusqlite::Error, c: &VolumeConnector) -> DbError {
    match constraint_message(&e) {
        Some(m) if m.contains("volume_connectors.connector_id") => DbError::Duplicate {
            kind: "volume connector",
            field: "type".into(),
            value: format!("{} and connector ID {}", c.kind, c.connector_id),
        },
        Some(m) if m.contains("volume_connectors.uuid") => DbError::Duplicate {
            kind: "volume connector",
            field: "uuid".into(),
            value: c.uuid.to_string(),
        },
        _ => DbError::from(e),
    }
}

/// As [`duplicate_connector`]: "boot index '0' for the same node".
fn duplicate_target(e: rusqlite::Error, t: &VolumeTarget) -> DbError {
    match constraint_message(&e) {
        Some(m) if m.contains("volume_targets.boot_index") => DbError::Duplicate {
            kind: "volume target",
            field: "boot index".into(),
            value: format!("'{}' for the same node", t.boot_index),
        },
        Some(m) if m.contains("volume_targets.uuid") => DbError::Duplicate {
            kind: "volume target",
            field: "uuid".into(),
            value: t.uuid.to_string(),
        },
        _ => DbError::from(e),
    }
}

/// The query of a listing of `select` (rows of `table`, aliased `alias`),
/// of one node or all, in the page's order.
fn list_sql(
    select: &str,
    alias: &str,
    table: &str,
    sortable: &[&str],
    node: Option<NodeUuid>,
    page: &Page,
) -> DbResult<Sql> {
    check_sort_column(&page.sort_key, sortable)?;
    let mut sql = Sql::new(select);
    let mut w = Where {
        sql: &mut sql,
        any: false,
    };
    if let Some(node) = node {
        w.next().push("n.uuid = ").bind(node.to_string());
    }
    let has_where = w.any;
    push_page(&mut sql, alias, table, &page.sort_key, page, has_where);
    Ok(sql)
}

impl SqliteStore {
    pub(super) async fn volume_connector_create(
        &self,
        c: VolumeConnector,
    ) -> DbResult<VolumeConnector> {
        self.write(move |tx| {
            let node = node_id(tx, c.node_uuid)?;
            tx.execute(
                "INSERT INTO volume_connectors (uuid, node_id, type, connector_id, extra, created_at, updated_at) \
                 VALUES (?, ?, ?, ?, ?, ?, ?)",
                params![
                    c.uuid.to_string(),
                    node,
                    c.kind,
                    c.connector_id,
                    to_json(&c.extra),
                    ts(&c.created_at),
                    opt_ts(&c.updated_at)
                ],
            )
            .map_err(|e| duplicate_connector(e, &c))?;
            select_connector(tx, c.uuid)
        })
        .await
    }

    pub(super) async fn volume_connector_get(
        &self,
        uuid: VolumeConnectorUuid,
    ) -> DbResult<VolumeConnector> {
        self.read(move |conn| select_connector(conn, uuid)).await
    }

    pub(super) async fn volume_connector_list(
        &self,
        node: Option<NodeUuid>,
        page: &Page,
    ) -> DbResult<Vec<VolumeConnector>> {
        let sql = list_sql(
            SELECT_CONNECTOR,
            "c",
            "volume_connectors",
            VOLUME_CONNECTOR_SORT_COLUMNS,
            node,
            page,
        )?;
        self.read(move |conn| sql.query(conn, connector_from_row))
            .await
    }

    pub(super) async fn volume_connector_save(
        &self,
        c: VolumeConnector,
    ) -> DbResult<VolumeConnector> {
        self.write(move |tx| {
            let node = node_id(tx, c.node_uuid)?;
            let changed = tx
                .execute(
                    "UPDATE volume_connectors SET node_id = ?, type = ?, connector_id = ?, extra = ?, \
                     updated_at = ? WHERE uuid = ?",
                    params![
                        node,
                        c.kind,
                        c.connector_id,
                        to_json(&c.extra),
                        ts(&chrono::Utc::now()),
                        c.uuid.to_string()
                    ],
                )
                .map_err(|e| duplicate_connector(e, &c))?;
            if changed == 0 {
                return Err(not_found(CONNECTOR, c.uuid.to_string()));
            }
            select_connector(tx, c.uuid)
        })
        .await
    }

    pub(super) async fn volume_connector_delete(&self, uuid: VolumeConnectorUuid) -> DbResult<()> {
        self.write(move |tx| delete_by_uuid(tx, "volume_connectors", CONNECTOR, uuid.to_string()))
            .await
    }

    pub(super) async fn volume_target_create(&self, t: VolumeTarget) -> DbResult<VolumeTarget> {
        self.write(move |tx| {
            let node = node_id(tx, t.node_uuid)?;
            tx.execute(
                "INSERT INTO volume_targets (uuid, node_id, volume_type, volume_id, boot_index, properties, extra, \
                 created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                params![
                    t.uuid.to_string(),
                    node,
                    t.volume_type,
                    t.volume_id,
                    t.boot_index,
                    to_json(&t.properties),
                    to_json(&t.extra),
                    ts(&t.created_at),
                    opt_ts(&t.updated_at)
                ],
            )
            .map_err(|e| duplicate_target(e, &t))?;
            select_target(tx, t.uuid)
        })
        .await
    }

    pub(super) async fn volume_target_get(&self, uuid: VolumeTargetUuid) -> DbResult<VolumeTarget> {
        self.read(move |conn| select_target(conn, uuid)).await
    }

    pub(super) async fn volume_target_list(
        &self,
        node: Option<NodeUuid>,
        page: &Page,
    ) -> DbResult<Vec<VolumeTarget>> {
        let sql = list_sql(
            SELECT_TARGET,
            "t",
            "volume_targets",
            VOLUME_TARGET_SORT_COLUMNS,
            node,
            page,
        )?;
        self.read(move |conn| sql.query(conn, target_from_row))
            .await
    }

    pub(super) async fn volume_target_save(&self, t: VolumeTarget) -> DbResult<VolumeTarget> {
        self.write(move |tx| {
            let node = node_id(tx, t.node_uuid)?;
            let changed = tx
                .execute(
                    "UPDATE volume_targets SET node_id = ?, volume_type = ?, volume_id = ?, boot_index = ?, \
                     properties = ?, extra = ?, updated_at = ? WHERE uuid = ?",
                    params![
                        node,
                        t.volume_type,
                        t.volume_id,
                        t.boot_index,
                        to_json(&t.properties),
                        to_json(&t.extra),
                        ts(&chrono::Utc::now()),
                        t.uuid.to_string()
                    ],
                )
                .map_err(|e| duplicate_target(e, &t))?;
            if changed == 0 {
                return Err(not_found(TARGET, t.uuid.to_string()));
            }
            select_target(tx, t.uuid)
        })
        .await
    }

    pub(super) async fn volume_target_delete(&self, uuid: VolumeTargetUuid) -> DbResult<()> {
        self.write(move |tx| delete_by_uuid(tx, "volume_targets", TARGET, uuid.to_string()))
            .await
    }
}
