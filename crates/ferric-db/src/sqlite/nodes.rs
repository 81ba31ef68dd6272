//! Nodes, their traits and their locks.

use ferric_core::{Ident, InterfaceKind, Interfaces, Node, NodeIdent, NodeUuid};
use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Row, Sqlite, SqliteConnection};

use super::{
    check_sort_column, json_column, map_unique, now, optional_parsed_column, parsed_column,
    push_in_list, push_page, to_json, SqliteStore,
};
use crate::error::{DbError, DbResult};
use crate::query::{NodeFilter, Page, NODE_SORT_COLUMNS};
use crate::AfterSave;

const SELECT_NODE: &str = "SELECT n.*, c.uuid AS chassis_uuid, \
     (SELECT json_group_array(trait) FROM \
        (SELECT trait FROM node_traits t WHERE t.node_id = n.id ORDER BY trait)) AS traits \
     FROM nodes n LEFT JOIN chassis c ON c.id = n.chassis_id";

/// The columns a save writes, in bind order (see [`bind_node_fields`]).
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

type SqliteQuery<'q> = sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments<'q>>;

/// The placeholder of a writable column: nodes refer to chassis by id, but
/// a `Node` knows its chassis by UUID.
fn placeholder(column: &str) -> &'static str {
    if column == "chassis_id" {
        "(SELECT id FROM chassis WHERE uuid = ?)"
    } else {
        "?"
    }
}

fn insert_node_sql() -> String {
    let columns = WRITABLE_COLUMNS.join(", ");
    let values: Vec<&str> = WRITABLE_COLUMNS.iter().map(|c| placeholder(c)).collect();
    format!(
        "INSERT INTO nodes ({columns}, created_at) VALUES ({}, ?) RETURNING id",
        values.join(", ")
    )
}

fn update_node_sql(release: bool) -> String {
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

/// Binds a node's writable fields in [`WRITABLE_COLUMNS`] order.
fn bind_node_fields<'q>(
    q: SqliteQuery<'q>,
    n: &'q Node,
    updated_at: Option<chrono::DateTime<chrono::Utc>>,
) -> SqliteQuery<'q> {
    let mut q = q
        .bind(n.uuid.to_string())
        .bind(n.name.as_deref())
        .bind(n.description.as_deref())
        .bind(n.driver.as_str());
    for kind in InterfaceKind::ALL {
        q = q.bind(n.interfaces.get(*kind));
    }
    q.bind(to_json(&n.driver_info))
        .bind(to_json(&n.driver_internal_info))
        .bind(to_json(&n.properties))
        .bind(to_json(&n.instance_info))
        .bind(n.instance_uuid.as_deref())
        .bind(n.instance_name.as_deref())
        .bind(to_json(&n.extra))
        .bind(n.chassis_uuid.as_deref())
        .bind(n.provision_state.as_str())
        .bind(n.target_provision_state.map(|s| s.as_str()))
        .bind(n.provision_updated_at)
        .bind(n.power_state.map(|s| s.as_str()))
        .bind(n.target_power_state.map(|s| s.as_str()))
        .bind(n.maintenance)
        .bind(n.maintenance_reason.as_deref())
        .bind(n.fault.as_deref())
        .bind(n.last_error.as_deref())
        .bind(n.conductor_group.as_str())
        .bind(n.resource_class.as_deref())
        .bind(n.owner.as_deref())
        .bind(n.lessee.as_deref())
        .bind(n.automated_clean)
        .bind(n.protected)
        .bind(n.protected_reason.as_deref())
        .bind(n.retired)
        .bind(n.retired_reason.as_deref())
        .bind(n.console_enabled)
        .bind(n.boot_mode.as_deref())
        .bind(n.secure_boot)
        .bind(to_json(&n.clean_step))
        .bind(to_json(&n.deploy_step))
        .bind(to_json(&n.service_step))
        .bind(to_json(&n.raid_config))
        .bind(to_json(&n.target_raid_config))
        .bind(to_json(&n.network_data))
        .bind(n.shard.as_deref())
        .bind(n.parent_node.as_deref())
        .bind(n.allocation_uuid.as_deref())
        .bind(n.inspection_started_at)
        .bind(n.inspection_finished_at)
        .bind(n.health.as_deref())
        .bind(n.disable_power_off)
        .bind(updated_at)
}

fn node_from_row(row: &SqliteRow) -> DbResult<Node> {
    let mut interfaces = Interfaces::default();
    for kind in InterfaceKind::ALL {
        let name: String = row.try_get(kind.field_name())?;
        interfaces.set(*kind, name);
    }
    let traits_json: String = row.try_get("traits")?;
    let traits: Vec<String> = serde_json::from_str(&traits_json).map_err(|e| DbError::Corrupt {
        what: "traits",
        detail: e.to_string(),
    })?;
    Ok(Node {
        id: row.try_get("id")?,
        uuid: parsed_column(row, "uuid")?,
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        driver: row.try_get("driver")?,
        interfaces,
        driver_info: json_column(row, "driver_info")?,
        driver_internal_info: json_column(row, "driver_internal_info")?,
        properties: json_column(row, "properties")?,
        instance_info: json_column(row, "instance_info")?,
        instance_uuid: row.try_get("instance_uuid")?,
        instance_name: row.try_get("instance_name")?,
        extra: json_column(row, "extra")?,
        chassis_uuid: row.try_get("chassis_uuid")?,
        provision_state: parsed_column(row, "provision_state")?,
        target_provision_state: optional_parsed_column(row, "target_provision_state")?,
        provision_updated_at: row.try_get("provision_updated_at")?,
        power_state: optional_parsed_column(row, "power_state")?,
        target_power_state: optional_parsed_column(row, "target_power_state")?,
        maintenance: row.try_get("maintenance")?,
        maintenance_reason: row.try_get("maintenance_reason")?,
        fault: row.try_get("fault")?,
        last_error: row.try_get("last_error")?,
        reservation: row.try_get("reservation")?,
        conductor_group: row.try_get("conductor_group")?,
        resource_class: row.try_get("resource_class")?,
        traits,
        owner: row.try_get("owner")?,
        lessee: row.try_get("lessee")?,
        automated_clean: row.try_get("automated_clean")?,
        protected: row.try_get("protected")?,
        protected_reason: row.try_get("protected_reason")?,
        retired: row.try_get("retired")?,
        retired_reason: row.try_get("retired_reason")?,
        console_enabled: row.try_get("console_enabled")?,
        boot_mode: row.try_get("boot_mode")?,
        secure_boot: row.try_get("secure_boot")?,
        clean_step: json_column(row, "clean_step")?,
        deploy_step: json_column(row, "deploy_step")?,
        service_step: json_column(row, "service_step")?,
        raid_config: json_column(row, "raid_config")?,
        target_raid_config: json_column(row, "target_raid_config")?,
        network_data: json_column(row, "network_data")?,
        shard: row.try_get("shard")?,
        parent_node: row.try_get("parent_node")?,
        allocation_uuid: row.try_get("allocation_uuid")?,
        inspection_started_at: row.try_get("inspection_started_at")?,
        inspection_finished_at: row.try_get("inspection_finished_at")?,
        health: row.try_get("health")?,
        disable_power_off: row.try_get("disable_power_off")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

static INSERT_NODE: std::sync::LazyLock<String> = std::sync::LazyLock::new(insert_node_sql);
static UPDATE_NODE: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| update_node_sql(false));
static UPDATE_NODE_RELEASE: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| update_node_sql(true));

fn duplicate_node(e: sqlx::Error, node: &Node) -> DbError {
    map_unique(e, "node", |field| match field {
        "name" => node.name.clone().unwrap_or_default(),
        "instance_uuid" => node.instance_uuid.clone().unwrap_or_default(),
        _ => node.uuid.to_string(),
    })
}

async fn select_node_by_id(conn: &mut SqliteConnection, id: i64) -> DbResult<Node> {
    let row = sqlx::query(&format!("{SELECT_NODE} WHERE n.id = ?"))
        .bind(id)
        .fetch_optional(conn)
        .await?;
    match row {
        Some(row) => node_from_row(&row),
        None => Err(not_found(&id.to_string())),
    }
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

async fn insert_traits(
    conn: &mut SqliteConnection,
    node_id: i64,
    traits: &[String],
) -> DbResult<()> {
    for t in traits {
        sqlx::query("INSERT OR IGNORE INTO node_traits (node_id, trait) VALUES (?, ?)")
            .bind(node_id)
            .bind(t)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Why a write guarded by `reservation = holder` matched no row.
async fn lock_lost_or_missing(conn: &mut SqliteConnection, uuid: &str, holder: &str) -> DbError {
    let exists = sqlx::query("SELECT 1 FROM nodes WHERE uuid = ?")
        .bind(uuid)
        .fetch_optional(conn)
        .await;
    match exists {
        Ok(Some(_)) => DbError::LockLost {
            node: uuid.to_owned(),
            holder: holder.to_owned(),
        },
        Ok(None) => not_found(uuid),
        Err(e) => e.into(),
    }
}

impl SqliteStore {
    pub(super) async fn node_create(&self, node: &Node) -> DbResult<Node> {
        let mut tx = self.writer.begin().await?;
        let created_at = node.created_at;
        let id: i64 = bind_node_fields(sqlx::query(&INSERT_NODE), node, node.updated_at)
            .bind(created_at)
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| duplicate_node(e, node))?
            .try_get("id")?;
        insert_traits(&mut tx, id, &node.traits).await?;
        let stored = select_node_by_id(&mut tx, id).await?;
        tx.commit().await?;
        Ok(stored)
    }

    pub(super) async fn node_get(&self, ident: &NodeIdent) -> DbResult<Node> {
        let (column, value) = ident_condition(ident);
        let row = sqlx::query(&format!("{SELECT_NODE} WHERE n.{column} = ?"))
            .bind(&value)
            .fetch_optional(&self.readers)
            .await?;
        match row {
            Some(row) => node_from_row(&row),
            None => Err(not_found(&value)),
        }
    }

    pub(super) async fn node_get_by_id(&self, id: i64) -> DbResult<Node> {
        let mut conn = self.readers.acquire().await?;
        select_node_by_id(&mut conn, id).await
    }

    pub(super) async fn node_list(&self, filter: &NodeFilter, page: &Page) -> DbResult<Vec<Node>> {
        check_sort_column(&page.sort_key, NODE_SORT_COLUMNS)?;
        let mut qb = QueryBuilder::<Sqlite>::new(SELECT_NODE);
        let has_where = push_node_filter(&mut qb, filter);
        push_page(&mut qb, "n", &page.sort_key, page, has_where);
        let rows = qb.build().fetch_all(&self.readers).await?;
        rows.iter().map(node_from_row).collect()
    }

    pub(super) async fn node_save(
        &self,
        node: &Node,
        holder: &str,
        after: AfterSave,
    ) -> DbResult<Node> {
        let sql: &str = match after {
            AfterSave::KeepLock => &UPDATE_NODE,
            AfterSave::Release => &UPDATE_NODE_RELEASE,
        };
        let mut tx = self.writer.begin().await?;
        let done = bind_node_fields(sqlx::query(sql), node, Some(now()))
            .bind(node.id)
            .bind(holder)
            .execute(&mut *tx)
            .await
            .map_err(|e| duplicate_node(e, node))?;
        if done.rows_affected() == 0 {
            return Err(lock_lost_or_missing(&mut tx, &node.uuid.to_string(), holder).await);
        }
        let stored = select_node_by_id(&mut tx, node.id).await?;
        tx.commit().await?;
        Ok(stored)
    }

    pub(super) async fn node_set_traits(
        &self,
        uuid: NodeUuid,
        traits: &[String],
        holder: &str,
    ) -> DbResult<Node> {
        let mut tx = self.writer.begin().await?;
        let row = sqlx::query(
            "UPDATE nodes SET updated_at = ? WHERE uuid = ? AND reservation = ? RETURNING id",
        )
        .bind(now())
        .bind(uuid.to_string())
        .bind(holder)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Err(lock_lost_or_missing(&mut tx, &uuid.to_string(), holder).await);
        };
        let id: i64 = row.try_get("id")?;
        sqlx::query("DELETE FROM node_traits WHERE node_id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        insert_traits(&mut tx, id, traits).await?;
        let stored = select_node_by_id(&mut tx, id).await?;
        tx.commit().await?;
        Ok(stored)
    }

    pub(super) async fn node_delete(&self, uuid: NodeUuid, holder: &str) -> DbResult<()> {
        let mut tx = self.writer.begin().await?;
        let uuid = uuid.to_string();
        let row = sqlx::query("SELECT id FROM nodes WHERE uuid = ? AND reservation = ?")
            .bind(&uuid)
            .bind(holder)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = row else {
            return Err(lock_lost_or_missing(&mut tx, &uuid, holder).await);
        };
        let id: i64 = row.try_get("id")?;
        for sql in [
            "DELETE FROM ports WHERE node_id = ?",
            "DELETE FROM portgroups WHERE node_id = ?",
            "DELETE FROM node_traits WHERE node_id = ?",
            "DELETE FROM nodes WHERE id = ?",
        ] {
            sqlx::query(sql).bind(id).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub(super) async fn node_reserve(&self, ident: &NodeIdent, holder: &str) -> DbResult<Node> {
        let (column, value) = ident_condition(ident);
        let mut conn = self.writer.acquire().await?;
        let row = sqlx::query(&format!(
            "UPDATE nodes SET reservation = ? WHERE {column} = ? AND reservation IS NULL RETURNING id"
        ))
        .bind(holder)
        .bind(&value)
        .fetch_optional(&mut *conn)
        .await?;
        if let Some(row) = row {
            return select_node_by_id(&mut conn, row.try_get("id")?).await;
        }
        let holder_row = sqlx::query(&format!(
            "SELECT uuid, reservation FROM nodes WHERE {column} = ?"
        ))
        .bind(&value)
        .fetch_optional(&mut *conn)
        .await?;
        match holder_row {
            None => Err(not_found(&value)),
            Some(row) => Err(DbError::NodeLocked {
                node: row.try_get("uuid")?,
                holder: row
                    .try_get::<Option<String>, _>("reservation")?
                    .unwrap_or_default(),
            }),
        }
    }

    pub(super) async fn node_release(&self, uuid: NodeUuid, holder: &str) -> DbResult<()> {
        sqlx::query("UPDATE nodes SET reservation = NULL WHERE uuid = ? AND reservation = ?")
            .bind(uuid.to_string())
            .bind(holder)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    pub(super) async fn node_release_all(&self, holder: &str) -> DbResult<Vec<NodeUuid>> {
        let rows =
            sqlx::query("UPDATE nodes SET reservation = NULL WHERE reservation = ? RETURNING uuid")
                .bind(holder)
                .fetch_all(&self.writer)
                .await?;
        rows.iter().map(|r| parsed_column(r, "uuid")).collect()
    }
}

/// Appends the WHERE clause of a node filter; says whether it added one.
fn push_node_filter(qb: &mut QueryBuilder<'_, Sqlite>, f: &NodeFilter) -> bool {
    let mut any = false;
    let mut and = |qb: &mut QueryBuilder<'_, Sqlite>| {
        qb.push(if any { " AND " } else { " WHERE " });
        any = true;
    };
    macro_rules! eq {
        ($field:expr, $col:literal) => {
            if let Some(v) = &$field {
                and(qb);
                qb.push(concat!("n.", $col, " = ")).push_bind(v.clone());
            }
        };
    }
    macro_rules! flag {
        ($field:expr, $col:literal) => {
            if let Some(v) = $field {
                and(qb);
                qb.push(concat!("n.", $col, " = ")).push_bind(v);
            }
        };
    }
    if let Some(assoc) = f.associated {
        and(qb);
        qb.push(if assoc {
            "n.instance_uuid IS NOT NULL"
        } else {
            "n.instance_uuid IS NULL"
        });
    }
    flag!(f.maintenance, "maintenance");
    flag!(f.retired, "retired");
    if let Some(states) = &f.provision_states {
        and(qb);
        push_in_list(
            qb,
            "n.provision_state",
            states.iter().map(|s| s.as_str().to_owned()),
        );
    }
    eq!(f.driver, "driver");
    eq!(f.resource_class, "resource_class");
    eq!(f.conductor_group, "conductor_group");
    eq!(f.fault, "fault");
    eq!(f.owner, "owner");
    eq!(f.lessee, "lessee");
    eq!(f.instance_uuid, "instance_uuid");
    eq!(f.instance_name, "instance_name");
    eq!(f.parent_node, "parent_node");
    eq!(f.reserved_by, "reservation");
    if let Some(project) = &f.project {
        and(qb);
        qb.push("(n.owner = ").push_bind(project.clone());
        qb.push(" OR n.lessee = ")
            .push_bind(project.clone())
            .push(")");
    }
    if let Some(chassis) = &f.chassis_uuid {
        and(qb);
        qb.push("c.uuid = ").push_bind(chassis.clone());
    }
    if let Some(text) = &f.description_contains {
        and(qb);
        qb.push("instr(n.description, ")
            .push_bind(text.clone())
            .push(") > 0");
    }
    if let Some(shards) = &f.shards {
        and(qb);
        push_in_list(qb, "n.shard", shards.iter().cloned());
    }
    if let Some(sharded) = f.sharded {
        and(qb);
        qb.push(if sharded {
            "n.shard IS NOT NULL"
        } else {
            "n.shard IS NULL"
        });
    }
    if f.exclude_children {
        and(qb);
        qb.push("n.parent_node IS NULL");
    }
    if let Some(reserved) = f.reserved {
        and(qb);
        qb.push(if reserved {
            "n.reservation IS NOT NULL"
        } else {
            "n.reservation IS NULL"
        });
    }
    if let Some(uuids) = &f.uuids {
        and(qb);
        push_in_list(qb, "n.uuid", uuids.iter().map(|u| u.to_string()));
    }
    any
}
