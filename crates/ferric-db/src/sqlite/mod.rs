//! The SQLite store: one file in the data directory, WAL journal, one
//! writer connection and a few readers.

mod chassis;
mod conductors;
mod nodes;
mod ports;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{QueryBuilder, Row, Sqlite};

use crate::error::{DbError, DbResult};
use crate::query::{Page, SortDir};

static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// Storage in one SQLite database file.
#[derive(Clone)]
pub struct SqliteStore {
    /// Exactly one connection: writes queue here instead of failing with
    /// SQLITE_BUSY.
    writer: SqlitePool,
    readers: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and brings its
    /// schema up to date.
    pub async fn open(path: &Path) -> DbResult<SqliteStore> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(60))
            .connect_with(options.clone())
            .await?;
        MIGRATIONS.run(&writer).await?;
        let readers = SqlitePoolOptions::new()
            .max_connections(4)
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(60))
            .connect_with(options.read_only(true))
            .await?;
        Ok(SqliteStore { writer, readers })
    }

    /// Closes both pools, checkpointing the WAL.
    pub async fn close(&self) {
        self.readers.close().await;
        self.writer.close().await;
    }
}

/// Maps a unique-constraint failure to [`DbError::Duplicate`]; anything
/// else stays a backend error.
fn map_unique(e: sqlx::Error, kind: &'static str, value_of: impl Fn(&str) -> String) -> DbError {
    if let sqlx::Error::Database(db) = &e {
        if let Some(rest) = db.message().strip_prefix("UNIQUE constraint failed: ") {
            let column = rest.split(", ").next().unwrap_or(rest);
            let field = column.rsplit('.').next().unwrap_or(column).to_owned();
            return DbError::Duplicate {
                kind,
                value: value_of(&field),
                field,
            };
        }
    }
    DbError::from(e)
}

fn json_column(row: &SqliteRow, column: &'static str) -> DbResult<ferric_core::JsonObject> {
    let text: String = row.try_get(column)?;
    serde_json::from_str(&text).map_err(|e| DbError::Corrupt {
        what: column,
        detail: e.to_string(),
    })
}

fn parsed_column<T: FromStr>(row: &SqliteRow, column: &'static str) -> DbResult<T>
where
    T::Err: std::fmt::Display,
{
    let text: String = row.try_get(column)?;
    text.parse().map_err(|e: T::Err| DbError::Corrupt {
        what: column,
        detail: e.to_string(),
    })
}

fn optional_parsed_column<T: FromStr>(row: &SqliteRow, column: &'static str) -> DbResult<Option<T>>
where
    T::Err: std::fmt::Display,
{
    let text: Option<String> = row.try_get(column)?;
    text.map(|t| {
        t.parse().map_err(|e: T::Err| DbError::Corrupt {
            what: column,
            detail: e.to_string(),
        })
    })
    .transpose()
}

fn to_json(obj: &ferric_core::JsonObject) -> String {
    serde_json::Value::Object(obj.clone()).to_string()
}

fn now() -> DateTime<Utc> {
    Utc::now()
}

/// Appends the keyset condition, order and limit of a page. `table` is the
/// alias of the listed table; `column` must already be validated against
/// the table's sortable columns. SQLite puts NULLs first when ascending and
/// last when descending; the marker condition follows that order, with the
/// id as tie breaker.
fn push_page(
    qb: &mut QueryBuilder<'_, Sqlite>,
    table: &str,
    column: &str,
    page: &Page,
    has_where: bool,
) {
    let col = format!("{table}.{column}");
    let id = format!("{table}.id");
    let (cmp, dir) = match page.sort_dir {
        SortDir::Asc => (">", "ASC"),
        SortDir::Desc => ("<", "DESC"),
    };
    if let Some(m) = page.marker {
        qb.push(if has_where { " AND " } else { " WHERE " });
        if column == "id" {
            qb.push(format!("{id} {cmp} ")).push_bind(m);
        } else {
            // The marker row's value, `mv`, is an uncorrelated subquery that
            // SQLite evaluates once.
            let mv = format!(
                "(SELECT {column} FROM {} WHERE id = {m})",
                base_table(table)
            );
            let after_null = match page.sort_dir {
                SortDir::Asc => format!("{col} IS NOT NULL OR {id} > {m}"),
                SortDir::Desc => format!("{col} IS NULL AND {id} < {m}"),
            };
            let nulls_after_values = match page.sort_dir {
                SortDir::Asc => String::new(),
                SortDir::Desc => format!(" OR {col} IS NULL"),
            };
            qb.push(format!(
                "(({mv} IS NULL AND ({after_null})) OR ({mv} IS NOT NULL AND \
                 ({col} {cmp} {mv} OR ({col} = {mv} AND {id} {cmp} {m}){nulls_after_values})))"
            ));
        }
    }
    if column == "id" {
        qb.push(format!(" ORDER BY {id} {dir}"));
    } else {
        qb.push(format!(" ORDER BY {col} {dir}, {id} {dir}"));
    }
    if let Some(limit) = page.limit {
        qb.push(" LIMIT ").push_bind(i64::from(limit));
    }
}

/// Appends `column IN (v1, v2, ...)`; an empty list matches nothing.
fn push_in_list(
    qb: &mut QueryBuilder<'_, Sqlite>,
    column: &str,
    values: impl Iterator<Item = String>,
) {
    qb.push(column).push(" IN (NULL");
    for v in values {
        qb.push(", ").push_bind(v);
    }
    qb.push(")");
}

fn base_table(alias: &str) -> &str {
    match alias {
        "n" => "nodes",
        "p" => "ports",
        "g" => "portgroups",
        "c" => "chassis",
        "k" => "conductors",
        other => other,
    }
}

fn check_sort_column(column: &str, allowed: &[&str]) -> DbResult<()> {
    if allowed.contains(&column) {
        Ok(())
    } else {
        Err(DbError::Reference(format!("cannot sort by {column}")))
    }
}

#[async_trait::async_trait]
impl crate::Store for SqliteStore {
    async fn create_node(&self, node: &ferric_core::Node) -> DbResult<ferric_core::Node> {
        self.node_create(node).await
    }
    async fn get_node(&self, ident: &ferric_core::NodeIdent) -> DbResult<ferric_core::Node> {
        self.node_get(ident).await
    }
    async fn get_node_by_id(&self, id: i64) -> DbResult<ferric_core::Node> {
        self.node_get_by_id(id).await
    }
    async fn list_nodes(
        &self,
        filter: &crate::NodeFilter,
        page: &Page,
    ) -> DbResult<Vec<ferric_core::Node>> {
        self.node_list(filter, page).await
    }
    async fn save_node(
        &self,
        node: &ferric_core::Node,
        holder: &str,
        after: crate::AfterSave,
    ) -> DbResult<ferric_core::Node> {
        self.node_save(node, holder, after).await
    }
    async fn set_node_traits(
        &self,
        uuid: ferric_core::NodeUuid,
        traits: &[String],
        holder: &str,
    ) -> DbResult<ferric_core::Node> {
        self.node_set_traits(uuid, traits, holder).await
    }
    async fn delete_node(&self, uuid: ferric_core::NodeUuid, holder: &str) -> DbResult<()> {
        self.node_delete(uuid, holder).await
    }
    async fn reserve_node(
        &self,
        ident: &ferric_core::NodeIdent,
        holder: &str,
    ) -> DbResult<ferric_core::Node> {
        self.node_reserve(ident, holder).await
    }
    async fn release_node(&self, uuid: ferric_core::NodeUuid, holder: &str) -> DbResult<()> {
        self.node_release(uuid, holder).await
    }
    async fn release_all_reservations(&self, holder: &str) -> DbResult<Vec<ferric_core::NodeUuid>> {
        self.node_release_all(holder).await
    }
    async fn create_port(&self, port: &ferric_core::Port) -> DbResult<ferric_core::Port> {
        self.port_create(port).await
    }
    async fn get_port(&self, uuid: ferric_core::PortUuid) -> DbResult<ferric_core::Port> {
        self.port_get("uuid", &uuid.to_string()).await
    }
    async fn get_port_by_address(
        &self,
        address: &ferric_core::MacAddress,
    ) -> DbResult<ferric_core::Port> {
        self.port_get_by_address(address).await
    }
    async fn get_port_by_name(&self, name: &str) -> DbResult<ferric_core::Port> {
        self.port_get("name", name).await
    }
    async fn list_ports(
        &self,
        filter: &crate::PortFilter,
        page: &Page,
    ) -> DbResult<Vec<ferric_core::Port>> {
        self.port_list(filter, page).await
    }
    async fn save_port(&self, port: &ferric_core::Port) -> DbResult<ferric_core::Port> {
        self.port_save(port).await
    }
    async fn delete_port(&self, uuid: ferric_core::PortUuid) -> DbResult<()> {
        self.port_delete(uuid).await
    }
    async fn create_portgroup(
        &self,
        group: &ferric_core::Portgroup,
    ) -> DbResult<ferric_core::Portgroup> {
        self.portgroup_create(group).await
    }
    async fn get_portgroup(
        &self,
        ident: &ferric_core::Ident<ferric_core::PortgroupUuid>,
    ) -> DbResult<ferric_core::Portgroup> {
        self.portgroup_get(ident).await
    }
    async fn get_portgroup_by_id(&self, id: i64) -> DbResult<ferric_core::Portgroup> {
        self.portgroup_get_by_id(id).await
    }
    async fn list_portgroups(
        &self,
        filter: &crate::PortgroupFilter,
        page: &Page,
    ) -> DbResult<Vec<ferric_core::Portgroup>> {
        self.portgroup_list(filter, page).await
    }
    async fn save_portgroup(
        &self,
        group: &ferric_core::Portgroup,
    ) -> DbResult<ferric_core::Portgroup> {
        self.portgroup_save(group).await
    }
    async fn delete_portgroup(&self, uuid: ferric_core::PortgroupUuid) -> DbResult<()> {
        self.portgroup_delete(uuid).await
    }
    async fn create_chassis(
        &self,
        chassis: &ferric_core::Chassis,
    ) -> DbResult<ferric_core::Chassis> {
        self.chassis_create(chassis).await
    }
    async fn get_chassis(&self, uuid: ferric_core::ChassisUuid) -> DbResult<ferric_core::Chassis> {
        self.chassis_get(uuid).await
    }
    async fn list_chassis(&self, page: &Page) -> DbResult<Vec<ferric_core::Chassis>> {
        self.chassis_list(page).await
    }
    async fn save_chassis(&self, chassis: &ferric_core::Chassis) -> DbResult<ferric_core::Chassis> {
        self.chassis_save(chassis).await
    }
    async fn delete_chassis(&self, uuid: ferric_core::ChassisUuid) -> DbResult<()> {
        self.chassis_delete(uuid).await
    }
    async fn register_conductor(
        &self,
        hostname: &str,
        group: &str,
        drivers: &[String],
        now: DateTime<Utc>,
    ) -> DbResult<ferric_core::ConductorRecord> {
        self.conductor_register(hostname, group, drivers, now).await
    }
    async fn touch_conductor(&self, hostname: &str, now: DateTime<Utc>) -> DbResult<()> {
        self.conductor_touch(hostname, now).await
    }
    async fn unregister_conductor(&self, hostname: &str) -> DbResult<()> {
        self.conductor_unregister(hostname).await
    }
    async fn get_conductor(&self, hostname: &str) -> DbResult<ferric_core::ConductorRecord> {
        self.conductor_get(hostname).await
    }
    async fn list_conductors(&self, page: &Page) -> DbResult<Vec<ferric_core::ConductorRecord>> {
        self.conductor_list(page).await
    }
}
