//! Ports and port groups.

use ferric_core::{Ident, MacAddress, Port, PortUuid, Portgroup, PortgroupUuid};
use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Row, Sqlite, SqliteConnection};

use super::{
    check_sort_column, json_column, map_unique, now, optional_parsed_column, parsed_column,
    push_in_list, push_page, to_json, SqliteStore,
};
use crate::error::{DbError, DbResult};
use crate::query::{Page, PortFilter, PortgroupFilter, PORTGROUP_SORT_COLUMNS, PORT_SORT_COLUMNS};

const SELECT_PORT: &str = "SELECT p.*, n.uuid AS node_uuid, g.uuid AS portgroup_uuid \
     FROM ports p JOIN nodes n ON n.id = p.node_id LEFT JOIN portgroups g ON g.id = p.portgroup_id";

const SELECT_PORTGROUP: &str =
    "SELECT g.*, n.uuid AS node_uuid FROM portgroups g JOIN nodes n ON n.id = g.node_id";

fn port_from_row(row: &SqliteRow) -> DbResult<Port> {
    Ok(Port {
        id: row.try_get("id")?,
        uuid: parsed_column(row, "uuid")?,
        address: parsed_column(row, "address")?,
        node_uuid: parsed_column(row, "node_uuid")?,
        portgroup_uuid: optional_parsed_column(row, "portgroup_uuid")?,
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        extra: json_column(row, "extra")?,
        internal_info: json_column(row, "internal_info")?,
        local_link_connection: json_column(row, "local_link_connection")?,
        physical_network: row.try_get("physical_network")?,
        pxe_enabled: row.try_get("pxe_enabled")?,
        is_smartnic: row.try_get("is_smartnic")?,
        vendor: row.try_get("vendor")?,
        category: row.try_get("category")?,
        available_for_dynamic_portgroup: row.try_get("available_for_dynamic_portgroup")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn portgroup_from_row(row: &SqliteRow) -> DbResult<Portgroup> {
    Ok(Portgroup {
        id: row.try_get("id")?,
        uuid: parsed_column(row, "uuid")?,
        name: row.try_get("name")?,
        address: optional_parsed_column(row, "address")?,
        node_uuid: parsed_column(row, "node_uuid")?,
        extra: json_column(row, "extra")?,
        internal_info: json_column(row, "internal_info")?,
        mode: row.try_get("mode")?,
        properties: json_column(row, "properties")?,
        standalone_ports_supported: row.try_get("standalone_ports_supported")?,
        physical_network: row.try_get("physical_network")?,
        category: row.try_get("category")?,
        dynamic_portgroup: row.try_get("dynamic_portgroup")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

const PORT_COLUMNS: &str = "uuid, address, node_id, portgroup_id, name, description, extra, \
     internal_info, local_link_connection, physical_network, pxe_enabled, is_smartnic, vendor, \
     category, available_for_dynamic_portgroup, created_at, updated_at";
const PORT_VALUES: &str = "?, ?, (SELECT id FROM nodes WHERE uuid = ?), \
     (SELECT id FROM portgroups WHERE uuid = ?), ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?";

const PORTGROUP_COLUMNS: &str = "uuid, name, node_id, address, extra, internal_info, mode, \
     properties, standalone_ports_supported, physical_network, category, dynamic_portgroup, \
     created_at, updated_at";
const PORTGROUP_VALUES: &str =
    "?, ?, (SELECT id FROM nodes WHERE uuid = ?), ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?";

fn duplicate_port(e: sqlx::Error, port: &Port) -> DbError {
    if is_not_null_failure(&e, "ports.node_id") {
        return DbError::NotFound {
            kind: "Node",
            ident: port.node_uuid.to_string(),
        };
    }
    map_unique(e, "port", |field| match field {
        "address" => port.address.to_string(),
        "name" => port.name.clone().unwrap_or_default(),
        _ => port.uuid.to_string(),
    })
}

fn duplicate_portgroup(e: sqlx::Error, group: &Portgroup) -> DbError {
    if is_not_null_failure(&e, "portgroups.node_id") {
        return DbError::NotFound {
            kind: "Node",
            ident: group.node_uuid.to_string(),
        };
    }
    map_unique(e, "portgroup", |field| match field {
        "address" => group
            .address
            .as_ref()
            .map(|a| a.to_string())
            .unwrap_or_default(),
        "name" => group.name.clone().unwrap_or_default(),
        _ => group.uuid.to_string(),
    })
}

fn is_not_null_failure(e: &sqlx::Error, column: &str) -> bool {
    match e {
        sqlx::Error::Database(db) => {
            db.message() == format!("NOT NULL constraint failed: {column}")
        }
        _ => false,
    }
}

async fn select_port(conn: &mut SqliteConnection, column: &str, value: &str) -> DbResult<Port> {
    let row = sqlx::query(&format!("{SELECT_PORT} WHERE p.{column} = ?"))
        .bind(value)
        .fetch_optional(conn)
        .await?;
    match row {
        Some(row) => port_from_row(&row),
        None => Err(DbError::NotFound {
            kind: "Port",
            ident: value.to_owned(),
        }),
    }
}

async fn select_portgroup(
    conn: &mut SqliteConnection,
    column: &str,
    value: &str,
) -> DbResult<Portgroup> {
    let row = sqlx::query(&format!("{SELECT_PORTGROUP} WHERE g.{column} = ?"))
        .bind(value)
        .fetch_optional(conn)
        .await?;
    match row {
        Some(row) => portgroup_from_row(&row),
        None => Err(DbError::NotFound {
            kind: "Portgroup",
            ident: value.to_owned(),
        }),
    }
}

impl SqliteStore {
    pub(super) async fn port_create(&self, port: &Port) -> DbResult<Port> {
        let mut tx = self.writer.begin().await?;
        sqlx::query(&format!(
            "INSERT INTO ports ({PORT_COLUMNS}) VALUES ({PORT_VALUES})"
        ))
        .bind(port.uuid.to_string())
        .bind(port.address.as_str())
        .bind(port.node_uuid.to_string())
        .bind(port.portgroup_uuid.map(|u| u.to_string()))
        .bind(port.name.as_deref())
        .bind(port.description.as_deref())
        .bind(to_json(&port.extra))
        .bind(to_json(&port.internal_info))
        .bind(to_json(&port.local_link_connection))
        .bind(port.physical_network.as_deref())
        .bind(port.pxe_enabled)
        .bind(port.is_smartnic)
        .bind(port.vendor.as_deref())
        .bind(port.category.as_deref())
        .bind(port.available_for_dynamic_portgroup)
        .bind(port.created_at)
        .bind(port.updated_at)
        .execute(&mut *tx)
        .await
        .map_err(|e| duplicate_port(e, port))?;
        let stored = select_port(&mut tx, "uuid", &port.uuid.to_string()).await?;
        tx.commit().await?;
        Ok(stored)
    }

    pub(super) async fn port_get(&self, column: &str, value: &str) -> DbResult<Port> {
        let mut conn = self.readers.acquire().await?;
        select_port(&mut conn, column, value).await
    }

    pub(super) async fn port_get_by_address(&self, address: &MacAddress) -> DbResult<Port> {
        self.port_get("address", address.as_str()).await
    }

    pub(super) async fn port_list(&self, f: &PortFilter, page: &Page) -> DbResult<Vec<Port>> {
        check_sort_column(&page.sort_key, PORT_SORT_COLUMNS)?;
        let mut qb = QueryBuilder::<Sqlite>::new(SELECT_PORT);
        qb.push(" WHERE 1 = 1");
        if let Some(node) = f.node_uuid {
            qb.push(" AND n.uuid = ").push_bind(node.to_string());
        }
        if let Some(group) = f.portgroup_id {
            qb.push(" AND p.portgroup_id = ").push_bind(group);
        }
        if let Some(address) = &f.address {
            qb.push(" AND p.address = ").push_bind(address.clone());
        }
        if let Some(net) = &f.physical_network {
            qb.push(" AND p.physical_network = ").push_bind(net.clone());
        }
        if let Some(group) = &f.conductor_group {
            qb.push(" AND n.conductor_group = ")
                .push_bind(group.clone());
        }
        if let Some(text) = &f.description_contains {
            qb.push(" AND instr(p.description, ")
                .push_bind(text.clone())
                .push(") > 0");
        }
        if let Some(shards) = &f.shards {
            qb.push(" AND ");
            push_in_list(&mut qb, "n.shard", shards.iter().cloned());
        }
        push_page(&mut qb, "p", &page.sort_key, page, true);
        let rows = qb.build().fetch_all(&self.readers).await?;
        rows.iter().map(port_from_row).collect()
    }

    pub(super) async fn port_save(&self, port: &Port) -> DbResult<Port> {
        let mut tx = self.writer.begin().await?;
        let done = sqlx::query(
            "UPDATE ports SET address = ?, node_id = (SELECT id FROM nodes WHERE uuid = ?), \
             portgroup_id = (SELECT id FROM portgroups WHERE uuid = ?), name = ?, description = ?, \
             extra = ?, internal_info = ?, local_link_connection = ?, physical_network = ?, \
             pxe_enabled = ?, is_smartnic = ?, vendor = ?, category = ?, \
             available_for_dynamic_portgroup = ?, updated_at = ? WHERE id = ?",
        )
        .bind(port.address.as_str())
        .bind(port.node_uuid.to_string())
        .bind(port.portgroup_uuid.map(|u| u.to_string()))
        .bind(port.name.as_deref())
        .bind(port.description.as_deref())
        .bind(to_json(&port.extra))
        .bind(to_json(&port.internal_info))
        .bind(to_json(&port.local_link_connection))
        .bind(port.physical_network.as_deref())
        .bind(port.pxe_enabled)
        .bind(port.is_smartnic)
        .bind(port.vendor.as_deref())
        .bind(port.category.as_deref())
        .bind(port.available_for_dynamic_portgroup)
        .bind(now())
        .bind(port.id)
        .execute(&mut *tx)
        .await
        .map_err(|e| duplicate_port(e, port))?;
        if done.rows_affected() == 0 {
            return Err(DbError::NotFound {
                kind: "Port",
                ident: port.uuid.to_string(),
            });
        }
        let stored = select_port(&mut tx, "uuid", &port.uuid.to_string()).await?;
        tx.commit().await?;
        Ok(stored)
    }

    pub(super) async fn port_delete(&self, uuid: PortUuid) -> DbResult<()> {
        let done = sqlx::query("DELETE FROM ports WHERE uuid = ?")
            .bind(uuid.to_string())
            .execute(&self.writer)
            .await?;
        if done.rows_affected() == 0 {
            return Err(DbError::NotFound {
                kind: "Port",
                ident: uuid.to_string(),
            });
        }
        Ok(())
    }

    pub(super) async fn portgroup_create(&self, g: &Portgroup) -> DbResult<Portgroup> {
        let mut tx = self.writer.begin().await?;
        sqlx::query(&format!(
            "INSERT INTO portgroups ({PORTGROUP_COLUMNS}) VALUES ({PORTGROUP_VALUES})"
        ))
        .bind(g.uuid.to_string())
        .bind(g.name.as_deref())
        .bind(g.node_uuid.to_string())
        .bind(g.address.as_ref().map(|a| a.to_string()))
        .bind(to_json(&g.extra))
        .bind(to_json(&g.internal_info))
        .bind(g.mode.as_deref())
        .bind(to_json(&g.properties))
        .bind(g.standalone_ports_supported)
        .bind(g.physical_network.as_deref())
        .bind(g.category.as_deref())
        .bind(g.dynamic_portgroup)
        .bind(g.created_at)
        .bind(g.updated_at)
        .execute(&mut *tx)
        .await
        .map_err(|e| duplicate_portgroup(e, g))?;
        let stored = select_portgroup(&mut tx, "uuid", &g.uuid.to_string()).await?;
        tx.commit().await?;
        Ok(stored)
    }

    pub(super) async fn portgroup_get(&self, ident: &Ident<PortgroupUuid>) -> DbResult<Portgroup> {
        let mut conn = self.readers.acquire().await?;
        match ident {
            Ident::Uuid(u) => select_portgroup(&mut conn, "uuid", &u.to_string()).await,
            Ident::Name(n) => select_portgroup(&mut conn, "name", n).await,
        }
    }

    pub(super) async fn portgroup_get_by_id(&self, id: i64) -> DbResult<Portgroup> {
        let mut conn = self.readers.acquire().await?;
        select_portgroup(&mut conn, "id", &id.to_string()).await
    }

    pub(super) async fn portgroup_list(
        &self,
        f: &PortgroupFilter,
        page: &Page,
    ) -> DbResult<Vec<Portgroup>> {
        check_sort_column(&page.sort_key, PORTGROUP_SORT_COLUMNS)?;
        let mut qb = QueryBuilder::<Sqlite>::new(SELECT_PORTGROUP);
        qb.push(" WHERE 1 = 1");
        if let Some(node) = f.node_uuid {
            qb.push(" AND n.uuid = ").push_bind(node.to_string());
        }
        if let Some(address) = &f.address {
            qb.push(" AND g.address = ").push_bind(address.clone());
        }
        push_page(&mut qb, "g", &page.sort_key, page, true);
        let rows = qb.build().fetch_all(&self.readers).await?;
        rows.iter().map(portgroup_from_row).collect()
    }

    pub(super) async fn portgroup_save(&self, g: &Portgroup) -> DbResult<Portgroup> {
        let mut tx = self.writer.begin().await?;
        let done = sqlx::query(
            "UPDATE portgroups SET name = ?, node_id = (SELECT id FROM nodes WHERE uuid = ?), \
             address = ?, extra = ?, internal_info = ?, mode = ?, properties = ?, \
             standalone_ports_supported = ?, physical_network = ?, category = ?, \
             dynamic_portgroup = ?, updated_at = ? WHERE id = ?",
        )
        .bind(g.name.as_deref())
        .bind(g.node_uuid.to_string())
        .bind(g.address.as_ref().map(|a| a.to_string()))
        .bind(to_json(&g.extra))
        .bind(to_json(&g.internal_info))
        .bind(g.mode.as_deref())
        .bind(to_json(&g.properties))
        .bind(g.standalone_ports_supported)
        .bind(g.physical_network.as_deref())
        .bind(g.category.as_deref())
        .bind(g.dynamic_portgroup)
        .bind(now())
        .bind(g.id)
        .execute(&mut *tx)
        .await
        .map_err(|e| duplicate_portgroup(e, g))?;
        if done.rows_affected() == 0 {
            return Err(DbError::NotFound {
                kind: "Portgroup",
                ident: g.uuid.to_string(),
            });
        }
        let stored = select_portgroup(&mut tx, "uuid", &g.uuid.to_string()).await?;
        tx.commit().await?;
        Ok(stored)
    }

    pub(super) async fn portgroup_delete(&self, uuid: PortgroupUuid) -> DbResult<()> {
        let mut tx = self.writer.begin().await?;
        let members: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM ports WHERE portgroup_id = (SELECT id FROM portgroups WHERE uuid = ?)",
        )
        .bind(uuid.to_string())
        .fetch_one(&mut *tx)
        .await?;
        if members > 0 {
            return Err(DbError::Reference(format!(
                "Port group {uuid} still has ports. All ports must be removed first."
            )));
        }
        let done = sqlx::query("DELETE FROM portgroups WHERE uuid = ?")
            .bind(uuid.to_string())
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(DbError::NotFound {
                kind: "Portgroup",
                ident: uuid.to_string(),
            });
        }
        tx.commit().await?;
        Ok(())
    }
}
