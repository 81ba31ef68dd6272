//! Ports and port groups.

use ferric_core::{Ident, Port, PortUuid, Portgroup, PortgroupUuid};
use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, Row};

use super::{
    check_sort_column, is_not_null_failure, map_unique, opt_ts, push_page, to_json, ts, Cols, Sql,
    SqliteStore, Where,
};
use crate::error::{DbError, DbResult};
use crate::query::{Page, PortFilter, PortgroupFilter, PORTGROUP_SORT_COLUMNS, PORT_SORT_COLUMNS};

const SELECT_PORT: &str = "SELECT p.id, p.uuid, p.address, n.uuid, g.uuid, p.name, p.description, p.extra, \
     p.internal_info, p.local_link_connection, p.physical_network, p.pxe_enabled, p.is_smartnic, p.vendor, \
     p.category, p.available_for_dynamic_portgroup, p.created_at, p.updated_at \
     FROM ports p JOIN nodes n ON n.id = p.node_id LEFT JOIN portgroups g ON g.id = p.portgroup_id";

const SELECT_PORTGROUP: &str = "SELECT g.id, g.uuid, g.name, g.address, n.uuid, g.extra, g.internal_info, g.mode, \
     g.properties, g.standalone_ports_supported, g.physical_network, g.category, g.dynamic_portgroup, \
     g.created_at, g.updated_at FROM portgroups g JOIN nodes n ON n.id = g.node_id";

fn port_from_row(row: &Row<'_>) -> DbResult<Port> {
    let mut c = Cols::new(row);
    Ok(Port {
        id: c.int()?,
        uuid: c.parsed("port uuid")?,
        address: c.parsed("port address")?,
        node_uuid: c.parsed("port node")?,
        portgroup_uuid: c.opt_parsed("port group")?,
        name: c.opt_text()?,
        description: c.opt_text()?,
        extra: c.json("port extra")?,
        internal_info: c.json("port internal_info")?,
        local_link_connection: c.json("port local_link_connection")?,
        physical_network: c.opt_text()?,
        pxe_enabled: c.flag()?,
        is_smartnic: c.flag()?,
        vendor: c.opt_text()?,
        category: c.opt_text()?,
        available_for_dynamic_portgroup: c.flag()?,
        created_at: c.time("port created_at")?,
        updated_at: c.opt_time("port updated_at")?,
    })
}

fn portgroup_from_row(row: &Row<'_>) -> DbResult<Portgroup> {
    let mut c = Cols::new(row);
    Ok(Portgroup {
        id: c.int()?,
        uuid: c.parsed("portgroup uuid")?,
        name: c.opt_text()?,
        address: c.opt_parsed("portgroup address")?,
        node_uuid: c.parsed("portgroup node")?,
        extra: c.json("portgroup extra")?,
        internal_info: c.json("portgroup internal_info")?,
        mode: c.opt_text()?,
        properties: c.json("portgroup properties")?,
        standalone_ports_supported: c.flag()?,
        physical_network: c.opt_text()?,
        category: c.opt_text()?,
        dynamic_portgroup: c.flag()?,
        created_at: c.time("portgroup created_at")?,
        updated_at: c.opt_time("portgroup updated_at")?,
    })
}

fn opt(s: &Option<String>) -> SqlValue {
    s.clone().map_or(SqlValue::Null, SqlValue::Text)
}

/// Port columns after `uuid`, in the order [`port_values`] gives them.
const PORT_COLUMNS: &str = "address = ?, node_id = (SELECT id FROM nodes WHERE uuid = ?), \
     portgroup_id = (SELECT id FROM portgroups WHERE uuid = ?), name = ?, description = ?, extra = ?, \
     internal_info = ?, local_link_connection = ?, physical_network = ?, pxe_enabled = ?, is_smartnic = ?, \
     vendor = ?, category = ?, available_for_dynamic_portgroup = ?";

fn port_values(p: &Port) -> Vec<SqlValue> {
    vec![
        SqlValue::Text(p.address.to_string()),
        SqlValue::Text(p.node_uuid.to_string()),
        opt(&p.portgroup_uuid.map(|u| u.to_string())),
        opt(&p.name),
        opt(&p.description),
        SqlValue::Text(to_json(&p.extra)),
        SqlValue::Text(to_json(&p.internal_info)),
        SqlValue::Text(to_json(&p.local_link_connection)),
        opt(&p.physical_network),
        SqlValue::Integer(i64::from(p.pxe_enabled)),
        SqlValue::Integer(i64::from(p.is_smartnic)),
        opt(&p.vendor),
        opt(&p.category),
        SqlValue::Integer(i64::from(p.available_for_dynamic_portgroup)),
    ]
}

const PORTGROUP_COLUMNS: &str =
    "name = ?, node_id = (SELECT id FROM nodes WHERE uuid = ?), address = ?, \
     extra = ?, internal_info = ?, mode = ?, properties = ?, standalone_ports_supported = ?, \
     physical_network = ?, category = ?, dynamic_portgroup = ?";

fn portgroup_values(g: &Portgroup) -> Vec<SqlValue> {
    vec![
        opt(&g.name),
        SqlValue::Text(g.node_uuid.to_string()),
        opt(&g.address.as_ref().map(|a| a.to_string())),
        SqlValue::Text(to_json(&g.extra)),
        SqlValue::Text(to_json(&g.internal_info)),
        opt(&g.mode),
        SqlValue::Text(to_json(&g.properties)),
        SqlValue::Integer(i64::from(g.standalone_ports_supported)),
        opt(&g.physical_network),
        opt(&g.category),
        SqlValue::Integer(i64::from(g.dynamic_portgroup)),
    ]
}

static INSERT_PORT: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| insert_sql("ports", PORT_COLUMNS));
static INSERT_PORTGROUP: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| insert_sql("portgroups", PORTGROUP_COLUMNS));

/// `INSERT` from the `col = ?` list of an `UPDATE`, so both statements
/// come from one column list.
fn insert_sql(table: &str, assignments: &str) -> String {
    let mut columns = vec!["uuid".to_owned()];
    let mut values = vec!["?".to_owned()];
    for part in split_assignments(assignments) {
        let (col, val) = part.split_once(" = ").unwrap_or((part, "?"));
        columns.push(col.trim().to_owned());
        values.push(val.trim().to_owned());
    }
    columns.extend(["created_at".to_owned(), "updated_at".to_owned()]);
    values.extend(["?".to_owned(), "?".to_owned()]);
    format!(
        "INSERT INTO {table} ({}) VALUES ({})",
        columns.join(", "),
        values.join(", ")
    )
}

/// Splits `a = ?, b = (SELECT ... WHERE x = ?)` at top-level commas.
fn split_assignments(s: &str) -> Vec<&str> {
    let (mut parts, mut depth, mut start) = (Vec::new(), 0i32, 0);
    for (i, ch) in s.char_indices() {
        match ch {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

fn duplicate_port(e: rusqlite::Error, port: &Port) -> DbError {
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

fn duplicate_portgroup(e: rusqlite::Error, group: &Portgroup) -> DbError {
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

fn select_port(conn: &Connection, column: &str, value: SqlValue, shown: &str) -> DbResult<Port> {
    let mut sql = Sql::new(SELECT_PORT);
    sql.push(&format!(" WHERE p.{column} = ")).bind(value);
    sql.query(conn, port_from_row)?
        .into_iter()
        .next()
        .ok_or_else(|| DbError::NotFound {
            kind: "Port",
            ident: shown.to_owned(),
        })
}

fn select_portgroup(
    conn: &Connection,
    column: &str,
    value: SqlValue,
    shown: &str,
) -> DbResult<Portgroup> {
    let mut sql = Sql::new(SELECT_PORTGROUP);
    sql.push(&format!(" WHERE g.{column} = ")).bind(value);
    sql.query(conn, portgroup_from_row)?
        .into_iter()
        .next()
        .ok_or_else(|| DbError::NotFound {
            kind: "Portgroup",
            ident: shown.to_owned(),
        })
}

impl SqliteStore {
    pub(super) async fn port_create(&self, port: Port) -> DbResult<Port> {
        self.write(move |tx| {
            let mut values = vec![SqlValue::Text(port.uuid.to_string())];
            values.extend(port_values(&port));
            values.push(SqlValue::Text(ts(&port.created_at)));
            values.push(opt(&opt_ts(&port.updated_at)));
            tx.prepare_cached(&INSERT_PORT)?
                .execute(rusqlite::params_from_iter(values.iter()))
                .map_err(|e| duplicate_port(e, &port))?;
            let uuid = port.uuid.to_string();
            select_port(tx, "uuid", SqlValue::Text(uuid.clone()), &uuid)
        })
        .await
    }

    pub(super) async fn port_get(&self, column: &'static str, value: String) -> DbResult<Port> {
        self.read(move |conn| select_port(conn, column, SqlValue::Text(value.clone()), &value))
            .await
    }

    pub(super) async fn port_list(&self, f: &PortFilter, page: &Page) -> DbResult<Vec<Port>> {
        check_sort_column(&page.sort_key, PORT_SORT_COLUMNS)?;
        let mut sql = Sql::new(SELECT_PORT);
        let mut w = Where {
            sql: &mut sql,
            any: false,
        };
        if let Some(node) = f.node_uuid {
            w.next().push("n.uuid = ").bind(node.to_string());
        }
        if let Some(group) = f.portgroup_id {
            w.next().push("p.portgroup_id = ").bind(group);
        }
        let text_filters = [
            ("p.address = ", &f.address),
            ("p.physical_network = ", &f.physical_network),
            ("n.conductor_group = ", &f.conductor_group),
        ];
        for (condition, value) in text_filters {
            if let Some(v) = value {
                w.next().push(condition).bind(v.clone());
            }
        }
        if let Some(text) = &f.description_contains {
            w.next()
                .push("p.description LIKE '%' || ")
                .bind(text.clone())
                .push(" || '%'");
        }
        if let Some(shards) = &f.shards {
            w.next().push_in("n.shard", shards.iter().cloned());
        }
        let has_where = w.any;
        push_page(&mut sql, "p", "ports", &page.sort_key, page, has_where);
        self.read(move |conn| sql.query(conn, port_from_row)).await
    }

    pub(super) async fn port_save(&self, port: Port) -> DbResult<Port> {
        self.write(move |tx| {
            let mut values = port_values(&port);
            values.push(SqlValue::Text(ts(&chrono::Utc::now())));
            values.push(SqlValue::Integer(port.id));
            let changed = tx
                .prepare_cached(&format!(
                    "UPDATE ports SET {PORT_COLUMNS}, updated_at = ? WHERE id = ?"
                ))?
                .execute(rusqlite::params_from_iter(values.iter()))
                .map_err(|e| duplicate_port(e, &port))?;
            let uuid = port.uuid.to_string();
            if changed == 0 {
                return Err(DbError::NotFound {
                    kind: "Port",
                    ident: uuid,
                });
            }
            select_port(tx, "uuid", SqlValue::Text(uuid.clone()), &uuid)
        })
        .await
    }

    pub(super) async fn port_delete(&self, uuid: PortUuid) -> DbResult<()> {
        self.write(move |tx| {
            let uuid = uuid.to_string();
            if tx.execute("DELETE FROM ports WHERE uuid = ?", [&uuid])? == 0 {
                return Err(DbError::NotFound {
                    kind: "Port",
                    ident: uuid,
                });
            }
            Ok(())
        })
        .await
    }

    pub(super) async fn portgroup_create(&self, g: Portgroup) -> DbResult<Portgroup> {
        self.write(move |tx| {
            let mut values = vec![SqlValue::Text(g.uuid.to_string())];
            values.extend(portgroup_values(&g));
            values.push(SqlValue::Text(ts(&g.created_at)));
            values.push(opt(&opt_ts(&g.updated_at)));
            tx.prepare_cached(&INSERT_PORTGROUP)?
                .execute(rusqlite::params_from_iter(values.iter()))
                .map_err(|e| duplicate_portgroup(e, &g))?;
            let uuid = g.uuid.to_string();
            select_portgroup(tx, "uuid", SqlValue::Text(uuid.clone()), &uuid)
        })
        .await
    }

    pub(super) async fn portgroup_get(&self, ident: Ident<PortgroupUuid>) -> DbResult<Portgroup> {
        self.read(move |conn| match ident {
            Ident::Uuid(u) => {
                let u = u.to_string();
                select_portgroup(conn, "uuid", SqlValue::Text(u.clone()), &u)
            }
            Ident::Name(n) => select_portgroup(conn, "name", SqlValue::Text(n.clone()), &n),
        })
        .await
    }

    pub(super) async fn portgroup_list(
        &self,
        f: &PortgroupFilter,
        page: &Page,
    ) -> DbResult<Vec<Portgroup>> {
        check_sort_column(&page.sort_key, PORTGROUP_SORT_COLUMNS)?;
        let mut sql = Sql::new(SELECT_PORTGROUP);
        let mut w = Where {
            sql: &mut sql,
            any: false,
        };
        if let Some(node) = f.node_uuid {
            w.next().push("n.uuid = ").bind(node.to_string());
        }
        if let Some(address) = &f.address {
            w.next().push("g.address = ").bind(address.clone());
        }
        let has_where = w.any;
        push_page(&mut sql, "g", "portgroups", &page.sort_key, page, has_where);
        self.read(move |conn| sql.query(conn, portgroup_from_row))
            .await
    }

    pub(super) async fn portgroup_save(&self, g: Portgroup) -> DbResult<Portgroup> {
        self.write(move |tx| {
            let mut values = portgroup_values(&g);
            values.push(SqlValue::Text(ts(&chrono::Utc::now())));
            values.push(SqlValue::Integer(g.id));
            let changed = tx
                .prepare_cached(&format!(
                    "UPDATE portgroups SET {PORTGROUP_COLUMNS}, updated_at = ? WHERE id = ?"
                ))?
                .execute(rusqlite::params_from_iter(values.iter()))
                .map_err(|e| duplicate_portgroup(e, &g))?;
            let uuid = g.uuid.to_string();
            if changed == 0 {
                return Err(DbError::NotFound {
                    kind: "Portgroup",
                    ident: uuid,
                });
            }
            select_portgroup(tx, "uuid", SqlValue::Text(uuid.clone()), &uuid)
        })
        .await
    }

    pub(super) async fn portgroup_delete(&self, uuid: PortgroupUuid) -> DbResult<()> {
        self.write(move |tx| {
            let uuid = uuid.to_string();
            let members: i64 = tx.query_row(
                "SELECT count(*) FROM ports WHERE portgroup_id = (SELECT id FROM portgroups WHERE uuid = ?)",
                [&uuid],
                |r| r.get(0),
            )?;
            if members > 0 {
                return Err(DbError::Reference(format!(
                    "Port group {uuid} still has ports. All ports must be removed first."
                )));
            }
            if tx.execute("DELETE FROM portgroups WHERE uuid = ?", [&uuid])? == 0 {
                return Err(DbError::NotFound { kind: "Portgroup", ident: uuid });
            }
            Ok(())
        })
        .await
    }
}
