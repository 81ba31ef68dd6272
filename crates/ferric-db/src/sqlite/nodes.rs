//! Nodes, their traits and their locks.

use std::sync::LazyLock;

use ferric_core::{Ident, InterfaceKind, Interfaces, Node, NodeIdent, NodeUuid};
use rusqlite::types::Value as SqlValue;
use rusqlite::{params, Connection, OptionalExtension, Row};

use super::{
    check_sort_column, map_unique, opt_ts, push_page, to_json, ts, Cols, Sql, SqliteStore, Where,
};
use crate::error::{DbError, DbResult};
use crate::query::{NodeFilter, Page, NODE_SORT_COLUMNS};
use crate::{AfterSave, BriefNode, PowerSyncRecord};

/// The columns a save writes, in bind order (see [`node_values`]).
const WRITABLE_COLUMNS: &[&str] = &[
    "uuid",
    "name",
    "description",
    "driver",
    "bios_interface",
    "boot_interface",
    "console_interface",
    "deploy_interface",
    "firmware_interface",
    "inspect_interface",
    "management_interface",
    "network_interface",
    "power_interface",
    "raid_interface",
    "rescue_interface",
    "storage_interface",
    "vendor_interface",
    "driver_info",
    "driver_internal_info",
    "properties",
    "instance_info",
    "instance_uuid",
    "instance_name",
    "extra",
    "chassis_id",
    "provision_state",
    "target_provision_state",
    "provision_updated_at",
    "power_state",
    "target_power_state",
    "maintenance",
    "maintenance_reason",
    "fault",
    "last_error",
    "conductor_group",
    "resource_class",
    "owner",
    "lessee",
    "automated_clean",
    "protected",
    "protected_reason",
    "retired",
    "retired_reason",
    "console_enabled",
    "boot_mode",
    "secure_boot",
    "clean_step",
    "deploy_step",
    "service_step",
    "raid_config",
    "target_raid_config",
    "network_data",
    "shard",
    "parent_node",
    "allocation_uuid",
    "inspection_started_at",
    "inspection_finished_at",
    "health",
    "disable_power_off",
    "updated_at",
];

/// The SELECT of a whole node; [`node_from_row`] reads in this order.
static SELECT_NODE: LazyLock<String> = LazyLock::new(|| {
    let columns: Vec<String> = WRITABLE_COLUMNS
        .iter()
        .filter(|c| **c != "chassis_id")
        .map(|c| format!("n.{c}"))
        .collect();
    format!(
        "SELECT n.id, n.reservation, n.created_at, c.uuid, \
         (SELECT json_group_array(trait) FROM \
            (SELECT trait FROM node_traits t WHERE t.node_id = n.id ORDER BY trait)), {} \
         FROM nodes n LEFT JOIN chassis c ON c.id = n.chassis_id",
        columns.join(", ")
    )
});

/// Columns a [`BriefNode`] leaves out, read as empty values instead.
const HEAVY_COLUMNS: &[(&str, &str)] = &[
    ("description", "NULL"),
    ("driver_internal_info", "'{}'"),
    ("properties", "'{}'"),
    ("instance_info", "'{}'"),
    ("extra", "'{}'"),
    ("clean_step", "'{}'"),
    ("deploy_step", "'{}'"),
    ("service_step", "'{}'"),
    ("raid_config", "'{}'"),
    ("target_raid_config", "'{}'"),
    ("network_data", "'{}'"),
];

/// The SELECT of a brief node: [`node_from_row`]'s order, the large
/// columns replaced by empty literals, no traits and no chassis join.
static SELECT_NODE_BRIEF: LazyLock<String> = LazyLock::new(|| {
    let columns: Vec<String> = WRITABLE_COLUMNS
        .iter()
        .filter(|c| **c != "chassis_id")
        .map(|c| match HEAVY_COLUMNS.iter().find(|(h, _)| h == c) {
            Some((_, empty)) => (*empty).to_owned(),
            None => format!("n.{c}"),
        })
        .collect();
    format!(
        "SELECT n.id, n.reservation, n.created_at, NULL, '[]', {} FROM nodes n",
        columns.join(", ")
    )
});

static INSERT_NODE: LazyLock<String> = LazyLock::new(|| {
    let values: Vec<&str> = WRITABLE_COLUMNS.iter().map(|c| placeholder(c)).collect();
    format!(
        "INSERT INTO nodes ({}, created_at) VALUES ({}, ?)",
        WRITABLE_COLUMNS.join(", "),
        values.join(", ")
    )
});

static UPDATE_NODE: LazyLock<String> = LazyLock::new(|| update_sql(false));
static UPDATE_NODE_RELEASE: LazyLock<String> = LazyLock::new(|| update_sql(true));

/// Nodes refer to chassis by id, but a `Node` knows its chassis by UUID.
fn placeholder(column: &str) -> &'static str {
    if column == "chassis_id" {
        "(SELECT id FROM chassis WHERE uuid = ?)"
    } else {
        "?"
    }
}

fn update_sql(release: bool) -> String {
    let sets: Vec<String> = WRITABLE_COLUMNS
        .iter()
        .map(|c| format!("{c} = {}", placeholder(c)))
        .collect();
    let release = if release { ", reservation = NULL" } else { "" };
    format!(
        "UPDATE nodes SET {}{release} WHERE id = ? AND reservation = ?",
        sets.join(", ")
    )
}

fn text(s: &Option<String>) -> SqlValue {
    s.clone().map_or(SqlValue::Null, SqlValue::Text)
}

fn flag(b: Option<bool>) -> SqlValue {
    b.map_or(SqlValue::Null, |b| SqlValue::Integer(i64::from(b)))
}

/// A node's writable fields in [`WRITABLE_COLUMNS`] order.
fn node_values(n: &Node, updated_at: Option<chrono::DateTime<chrono::Utc>>) -> Vec<SqlValue> {
    let mut v: Vec<SqlValue> = vec![
        SqlValue::Text(n.uuid.to_string()),
        text(&n.name),
        text(&n.description),
        SqlValue::Text(n.driver.clone()),
    ];
    v.extend(
        InterfaceKind::ALL
            .iter()
            .map(|k| SqlValue::Text(n.interfaces.get(*k).to_owned())),
    );
    v.extend([
        SqlValue::Text(to_json(&n.driver_info)),
        SqlValue::Text(to_json(&n.driver_internal_info)),
        SqlValue::Text(to_json(&n.properties)),
        SqlValue::Text(to_json(&n.instance_info)),
        text(&n.instance_uuid),
        text(&n.instance_name),
        SqlValue::Text(to_json(&n.extra)),
        text(&n.chassis_uuid),
        SqlValue::Text(n.provision_state.as_str().to_owned()),
        text(&n.target_provision_state.map(|s| s.as_str().to_owned())),
        text(&opt_ts(&n.provision_updated_at)),
        text(&n.power_state.map(|s| s.as_str().to_owned())),
        text(&n.target_power_state.map(|s| s.as_str().to_owned())),
        flag(Some(n.maintenance)),
        text(&n.maintenance_reason),
        text(&n.fault),
        text(&n.last_error),
        SqlValue::Text(n.conductor_group.clone()),
        text(&n.resource_class),
        text(&n.owner),
        text(&n.lessee),
        flag(n.automated_clean),
        flag(Some(n.protected)),
        text(&n.protected_reason),
        flag(Some(n.retired)),
        text(&n.retired_reason),
        flag(Some(n.console_enabled)),
        text(&n.boot_mode),
        flag(n.secure_boot),
        SqlValue::Text(to_json(&n.clean_step)),
        SqlValue::Text(to_json(&n.deploy_step)),
        SqlValue::Text(to_json(&n.service_step)),
        SqlValue::Text(to_json(&n.raid_config)),
        SqlValue::Text(to_json(&n.target_raid_config)),
        SqlValue::Text(to_json(&n.network_data)),
        text(&n.shard),
        text(&n.parent_node),
        text(&n.allocation_uuid),
        text(&opt_ts(&n.inspection_started_at)),
        text(&opt_ts(&n.inspection_finished_at)),
        text(&n.health),
        flag(Some(n.disable_power_off)),
        text(&opt_ts(&updated_at)),
    ]);
    v
}

fn node_from_row(row: &Row<'_>) -> DbResult<Node> {
    let mut c = Cols::new(row);
    let id = c.int()?;
    let reservation = c.opt_text()?;
    let created_at = c.time("created_at")?;
    let chassis_uuid = c.opt_text()?;
    let traits_json = c.text()?;
    let traits: Vec<String> = serde_json::from_str(&traits_json).map_err(|e| DbError::Corrupt {
        what: "traits",
        detail: e.to_string(),
    })?;
    let uuid = c.parsed("uuid")?;
    let name = c.opt_text()?;
    let description = c.opt_text()?;
    let driver = c.text()?;
    let mut interfaces = Interfaces::default();
    for kind in InterfaceKind::ALL {
        interfaces.set(*kind, c.text()?);
    }
    Ok(Node {
        id,
        uuid,
        name,
        description,
        driver,
        interfaces,
        driver_info: c.json("driver_info")?.into(),
        driver_internal_info: c.json("driver_internal_info")?.into(),
        properties: c.json("properties")?,
        instance_info: c.json("instance_info")?.into(),
        instance_uuid: c.opt_text()?,
        instance_name: c.opt_text()?,
        extra: c.json("extra")?,
        chassis_uuid,
        provision_state: c.parsed("provision_state")?,
        target_provision_state: c.opt_parsed("target_provision_state")?,
        provision_updated_at: c.opt_time("provision_updated_at")?,
        power_state: c.opt_parsed("power_state")?,
        target_power_state: c.opt_parsed("target_power_state")?,
        maintenance: c.flag()?,
        maintenance_reason: c.opt_text()?,
        fault: c.opt_text()?,
        last_error: c.opt_text()?,
        reservation,
        conductor_group: c.text()?,
        resource_class: c.opt_text()?,
        traits,
        owner: c.opt_text()?,
        lessee: c.opt_text()?,
        automated_clean: c.opt_flag()?,
        protected: c.flag()?,
        protected_reason: c.opt_text()?,
        retired: c.flag()?,
        retired_reason: c.opt_text()?,
        console_enabled: c.flag()?,
        boot_mode: c.opt_text()?,
        secure_boot: c.opt_flag()?,
        clean_step: c.json("clean_step")?.into(),
        deploy_step: c.json("deploy_step")?.into(),
        service_step: c.json("service_step")?.into(),
        raid_config: c.json("raid_config")?,
        target_raid_config: c.json("target_raid_config")?,
        network_data: c.json("network_data")?,
        shard: c.opt_text()?,
        parent_node: c.opt_text()?,
        allocation_uuid: c.opt_text()?,
        inspection_started_at: c.opt_time("inspection_started_at")?,
        inspection_finished_at: c.opt_time("inspection_finished_at")?,
        health: c.opt_text()?,
        disable_power_off: c.flag()?,
        updated_at: c.opt_time("updated_at")?,
        created_at,
    })
}

fn brief_from_row(row: &Row<'_>) -> DbResult<BriefNode> {
    node_from_row(row).map(BriefNode)
}

/// Why a reservation of the node whose `column` is `value` took no row.
fn locked_or_missing(conn: &Connection, column: &str, value: &str) -> DbError {
    let current: Result<Option<(String, Option<String>)>, _> = conn
        .query_row(
            &format!("SELECT uuid, reservation FROM nodes WHERE {column} = ?"),
            [value],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional();
    match current {
        Ok(None) => not_found(value),
        Ok(Some((node, holder))) => DbError::NodeLocked {
            node,
            holder: holder.unwrap_or_default(),
        },
        Err(e) => e.into(),
    }
}

fn duplicate_node(e: rusqlite::Error, node: &Node) -> DbError {
    map_unique(e, "node", |field| match field {
        "name" => node.name.clone().unwrap_or_default(),
        "instance_uuid" => node.instance_uuid.clone().unwrap_or_default(),
        _ => node.uuid.to_string(),
    })
}

fn not_found(ident: &str) -> DbError {
    DbError::NotFound {
        kind: "Node",
        ident: ident.to_owned(),
    }
}

fn ident_condition(ident: &NodeIdent) -> (&'static str, String) {
    match ident {
        Ident::Uuid(u) => ("uuid", u.to_string()),
        Ident::Name(n) => ("name", n.clone()),
    }
}

fn select_where(conn: &Connection, column: &str, value: SqlValue, shown: &str) -> DbResult<Node> {
    let mut sql = Sql::new(&SELECT_NODE);
    sql.push(&format!(" WHERE n.{column} = ")).bind(value);
    sql.query(conn, node_from_row)?
        .into_iter()
        .next()
        .ok_or_else(|| not_found(shown))
}

fn select_by_id(conn: &Connection, id: i64) -> DbResult<Node> {
    select_where(conn, "id", SqlValue::Integer(id), &id.to_string())
}

fn insert_traits(conn: &Connection, node_id: i64, traits: &[String]) -> DbResult<()> {
    let mut stmt =
        conn.prepare_cached("INSERT OR IGNORE INTO node_traits (node_id, trait) VALUES (?, ?)")?;
    for t in traits {
        stmt.execute(params![node_id, t])?;
    }
    Ok(())
}

/// Why a write guarded by `reservation = holder` matched no row.
fn lock_lost_or_missing(conn: &Connection, uuid: &str, holder: &str) -> DbError {
    let exists = conn
        .query_row("SELECT 1 FROM nodes WHERE uuid = ?", [uuid], |_| Ok(()))
        .optional();
    match exists {
        Ok(Some(())) => DbError::LockLost {
            node: uuid.to_owned(),
            holder: holder.to_owned(),
        },
        Ok(None) => not_found(uuid),
        Err(e) => e.into(),
    }
}

/// The node's id if `holder` holds it.
fn held_id(conn: &Connection, uuid: &str, holder: &str) -> DbResult<i64> {
    conn.query_row(
        "SELECT id FROM nodes WHERE uuid = ? AND reservation = ?",
        [uuid, holder],
        |r| r.get(0),
    )
    .optional()?
    .ok_or_else(|| lock_lost_or_missing(conn, uuid, holder))
}

impl SqliteStore {
    pub(super) async fn node_create(&self, node: Node) -> DbResult<Node> {
        self.write(move |tx| {
            let mut values = node_values(&node, node.updated_at);
            values.push(SqlValue::Text(ts(&node.created_at)));
            tx.prepare_cached(&INSERT_NODE)?
                .execute(rusqlite::params_from_iter(values.iter()))
                .map_err(|e| duplicate_node(e, &node))?;
            let id = tx.last_insert_rowid();
            insert_traits(tx, id, &node.traits)?;
            select_by_id(tx, id)
        })
        .await
    }

    pub(super) async fn node_get(&self, ident: NodeIdent) -> DbResult<Node> {
        self.read(move |conn| {
            let (column, value) = ident_condition(&ident);
            select_where(conn, column, SqlValue::Text(value.clone()), &value)
        })
        .await
    }

    pub(super) async fn node_list(&self, filter: &NodeFilter, page: &Page) -> DbResult<Vec<Node>> {
        check_sort_column(&page.sort_key, NODE_SORT_COLUMNS)?;
        let mut sql = Sql::new(&SELECT_NODE);
        let has_where = push_node_filter(&mut sql, filter);
        push_page(&mut sql, "n", "nodes", &page.sort_key, page, has_where);
        self.read(move |conn| sql.query(conn, node_from_row)).await
    }

    pub(super) async fn node_list_brief(
        &self,
        filter: &NodeFilter,
        page: &Page,
    ) -> DbResult<Vec<BriefNode>> {
        check_sort_column(&page.sort_key, NODE_SORT_COLUMNS)?;
        let mut sql = Sql::new(&SELECT_NODE_BRIEF);
        let has_where = push_node_filter(&mut sql, filter);
        push_page(&mut sql, "n", "nodes", &page.sort_key, page, has_where);
        self.read(move |conn| sql.query(conn, brief_from_row)).await
    }

    pub(super) async fn node_reserve_brief(
        &self,
        uuid: NodeUuid,
        holder: String,
    ) -> DbResult<BriefNode> {
        self.write(move |tx| {
            let uuid = uuid.to_string();
            let id: Option<i64> = tx
                .query_row(
                    "UPDATE nodes SET reservation = ? WHERE uuid = ? AND reservation IS NULL RETURNING id",
                    [&holder, &uuid],
                    |r| r.get(0),
                )
                .optional()?;
            let Some(id) = id else {
                return Err(locked_or_missing(tx, "uuid", &uuid));
            };
            let mut sql = Sql::new(&SELECT_NODE_BRIEF);
            sql.push(" WHERE n.id = ").bind(SqlValue::Integer(id));
            sql.query(tx, brief_from_row)?
                .into_iter()
                .next()
                .ok_or_else(|| not_found(&uuid))
        })
        .await
    }

    pub(super) async fn node_save_power_sync(
        &self,
        uuid: NodeUuid,
        holder: String,
        record: PowerSyncRecord,
    ) -> DbResult<()> {
        self.write(move |tx| {
            let uuid = uuid.to_string();
            let changed = tx.execute(
                "UPDATE nodes SET power_state = ?, maintenance = ?, maintenance_reason = ?, fault = ?, \
                 last_error = ?, updated_at = ?, reservation = NULL WHERE uuid = ? AND reservation = ?",
                params![
                    record.power_state.map(|p| p.to_string()),
                    record.maintenance,
                    record.maintenance_reason,
                    record.fault,
                    record.last_error,
                    ts(&chrono::Utc::now()),
                    uuid,
                    holder
                ],
            )?;
            if changed == 0 {
                return Err(lock_lost_or_missing(tx, &uuid, &holder));
            }
            Ok(())
        })
        .await
    }

    pub(super) async fn node_save(
        &self,
        node: Node,
        holder: String,
        after: AfterSave,
    ) -> DbResult<Node> {
        self.write(move |tx| {
            let sql: &str = match after {
                AfterSave::KeepLock => &UPDATE_NODE,
                AfterSave::Release => &UPDATE_NODE_RELEASE,
            };
            let mut values = node_values(&node, Some(chrono::Utc::now()));
            values.push(SqlValue::Integer(node.id));
            values.push(SqlValue::Text(holder.clone()));
            let changed = tx
                .prepare_cached(sql)?
                .execute(rusqlite::params_from_iter(values.iter()))
                .map_err(|e| duplicate_node(e, &node))?;
            if changed == 0 {
                return Err(lock_lost_or_missing(tx, &node.uuid.to_string(), &holder));
            }
            select_by_id(tx, node.id)
        })
        .await
    }

    pub(super) async fn node_set_traits(
        &self,
        uuid: NodeUuid,
        traits: Vec<String>,
        holder: String,
    ) -> DbResult<Node> {
        self.write(move |tx| {
            let id = held_id(tx, &uuid.to_string(), &holder)?;
            tx.execute(
                "UPDATE nodes SET updated_at = ? WHERE id = ?",
                params![ts(&chrono::Utc::now()), id],
            )?;
            tx.execute("DELETE FROM node_traits WHERE node_id = ?", [id])?;
            insert_traits(tx, id, &traits)?;
            select_by_id(tx, id)
        })
        .await
    }

    pub(super) async fn node_delete(&self, uuid: NodeUuid, holder: String) -> DbResult<()> {
        self.write(move |tx| {
            let id = held_id(tx, &uuid.to_string(), &holder)?;
            for sql in [
                "DELETE FROM ports WHERE node_id = ?",
                "DELETE FROM portgroups WHERE node_id = ?",
                "DELETE FROM node_traits WHERE node_id = ?",
                "DELETE FROM node_history WHERE node_id = ?",
                "DELETE FROM node_inventory WHERE node_id = ?",
                "DELETE FROM nodes WHERE id = ?",
            ] {
                tx.execute(sql, [id])?;
            }
            Ok(())
        })
        .await
    }

    pub(super) async fn node_reserve(&self, ident: NodeIdent, holder: String) -> DbResult<Node> {
        self.write(move |tx| {
            let (column, value) = ident_condition(&ident);
            let id: Option<i64> = tx
                .query_row(
                    &format!("UPDATE nodes SET reservation = ? WHERE {column} = ? AND reservation IS NULL RETURNING id"),
                    [&holder, &value],
                    |r| r.get(0),
                )
                .optional()?;
            match id {
                Some(id) => select_by_id(tx, id),
                None => Err(locked_or_missing(tx, column, &value)),
            }
        })
        .await
    }

    pub(super) async fn node_release(&self, uuid: NodeUuid, holder: String) -> DbResult<()> {
        self.write(move |tx| {
            tx.execute(
                "UPDATE nodes SET reservation = NULL WHERE uuid = ? AND reservation = ?",
                [uuid.to_string(), holder],
            )?;
            Ok(())
        })
        .await
    }

    pub(super) async fn node_release_all(&self, holder: String) -> DbResult<Vec<NodeUuid>> {
        self.write(move |tx| {
            let mut stmt = tx.prepare(
                "UPDATE nodes SET reservation = NULL WHERE reservation = ? RETURNING uuid",
            )?;
            let uuids = stmt
                .query_map([holder], |r| r.get::<_, String>(0))?
                .collect::<Result<Vec<String>, _>>()?;
            uuids
                .iter()
                .map(|u| {
                    u.parse().map_err(|e: uuid::Error| DbError::Corrupt {
                        what: "uuid",
                        detail: e.to_string(),
                    })
                })
                .collect()
        })
        .await
    }
}

/// Appends the WHERE clause of a node filter; says whether it added one.
fn push_node_filter(sql: &mut Sql, f: &NodeFilter) -> bool {
    let mut w = Where { sql, any: false };
    let equal = [
        ("driver", &f.driver),
        ("resource_class", &f.resource_class),
        ("conductor_group", &f.conductor_group),
        ("fault", &f.fault),
        ("owner", &f.owner),
        ("lessee", &f.lessee),
        ("instance_uuid", &f.instance_uuid),
        ("instance_name", &f.instance_name),
        ("parent_node", &f.parent_node),
        ("reservation", &f.reserved_by),
    ];
    for (column, value) in equal {
        if let Some(v) = value {
            w.next().push(&format!("n.{column} = ")).bind(v.clone());
        }
    }
    let presence = [
        (f.associated, "n.instance_uuid"),
        (f.sharded, "n.shard"),
        (f.reserved, "n.reservation"),
    ];
    for (wanted, column) in presence {
        if let Some(present) = wanted {
            w.next()
                .push(column)
                .push(if present { " IS NOT NULL" } else { " IS NULL" });
        }
    }
    for (value, column) in [(f.maintenance, "n.maintenance"), (f.retired, "n.retired")] {
        if let Some(v) = value {
            w.next().push(column).push(" = ").bind(i64::from(v));
        }
    }
    if let Some(states) = &f.provision_states {
        w.next().push_in(
            "n.provision_state",
            states.iter().map(|s| s.as_str().to_owned()),
        );
    }
    if let Some(project) = &f.project {
        w.next()
            .push("(n.owner = ")
            .bind(project.clone())
            .push(" OR n.lessee = ")
            .bind(project.clone())
            .push(")");
    }
    if let Some(chassis) = &f.chassis_uuid {
        w.next().push("c.uuid = ").bind(chassis.clone());
    }
    if let Some(text) = &f.description_contains {
        w.next()
            .push("n.description LIKE '%' || ")
            .bind(text.clone())
            .push(" || '%'");
    }
    if let Some(shards) = &f.shards {
        w.next().push_in("n.shard", shards.iter().cloned());
    }
    if f.exclude_children {
        w.next().push("n.parent_node IS NULL");
    }
    if let Some(uuids) = &f.uuids {
        w.next()
            .push_in("n.uuid", uuids.iter().map(|u| u.to_string()));
    }
    w.any
}
