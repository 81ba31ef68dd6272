//! The SQLite store: one file in the data directory, WAL journal, one
//! writer connection and a few readers, each owned by its own thread.
//!
//! Async callers hand a closure to a connection's thread and await its
//! answer; so the number of threads and connections is fixed, writes queue
//! in order instead of failing with SQLITE_BUSY, and rows are read
//! straight from SQLite's buffers without copying every value first.

mod bios_firmware;
mod chassis;
mod conductors;
mod deploy_templates;
mod history;
mod inspection_rules;
mod nodes;
mod ports;
mod runbooks;
mod shards;
mod volumes;

use std::path::Path;
use std::str::FromStr;
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OpenFlags, Row};

use crate::error::{DbError, DbResult};
use crate::query::{Page, SortDir};

/// Reader connections; readers never block each other or the writer.
const READERS: usize = 3;

type Job = Box<dyn FnOnce(&mut Connection) + Send>;

/// Storage in one SQLite database file.
#[derive(Clone)]
pub struct SqliteStore {
    writer: mpsc::Sender<Job>,
    readers: mpsc::Sender<Job>,
}

fn migrations() -> rusqlite_migration::Migrations<'static> {
    rusqlite_migration::Migrations::new(vec![
        rusqlite_migration::M::up(include_str!("../../migrations/sqlite/0001_initial.sql")),
        rusqlite_migration::M::up(include_str!(
            "../../migrations/sqlite/0002_history_inventory.sql"
        )),
        rusqlite_migration::M::up(include_str!(
            "../../migrations/sqlite/0003_deploy_templates.sql"
        )),
        rusqlite_migration::M::up(include_str!("../../migrations/sqlite/0004_runbooks.sql")),
        rusqlite_migration::M::up(include_str!("../../migrations/sqlite/0005_volumes.sql")),
        rusqlite_migration::M::up(include_str!(
            "../../migrations/sqlite/0006_inspection_rules.sql"
        )),
        rusqlite_migration::M::up(include_str!(
            "../../migrations/sqlite/0007_bios_firmware.sql"
        )),
    ])
}

fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // A small page cache per connection keeps memory flat; the OS caches
    // the file anyway.
    conn.pragma_update(None, "cache_size", -2048)?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(())
}

/// Runs jobs on `conn` until every sender is gone.
fn serve(conn: Connection, jobs: Arc<Mutex<mpsc::Receiver<Job>>>) {
    let mut conn = conn;
    loop {
        let job = {
            let Ok(rx) = jobs.lock() else { return };
            match rx.recv() {
                Ok(job) => job,
                Err(_) => return,
            }
        };
        job(&mut conn);
    }
}

fn spawn_thread(
    name: String,
    conn: Connection,
    jobs: Arc<Mutex<mpsc::Receiver<Job>>>,
) -> DbResult<()> {
    std::thread::Builder::new()
        .name(name)
        .stack_size(256 * 1024)
        .spawn(move || serve(conn, jobs))
        .map(drop)
        .map_err(|e| DbError::Backend(Box::new(e)))
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and brings its
    /// schema up to date.
    pub async fn open(path: &Path) -> DbResult<SqliteStore> {
        let path = path.to_owned();
        tokio::task::spawn_blocking(move || Self::open_blocking(&path))
            .await
            .map_err(|e| DbError::Backend(Box::new(e)))?
    }

    fn open_blocking(path: &Path) -> DbResult<SqliteStore> {
        let mut writer = Connection::open(path)?;
        configure(&writer)?;
        migrations()
            .to_latest(&mut writer)
            .map_err(|e| DbError::Backend(Box::new(e)))?;
        let (wtx, wrx) = mpsc::channel::<Job>();
        spawn_thread("ferric-db-writer".into(), writer, Arc::new(Mutex::new(wrx)))?;
        let (rtx, rrx) = mpsc::channel::<Job>();
        let rrx = Arc::new(Mutex::new(rrx));
        for i in 0..READERS {
            let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
                | OpenFlags::SQLITE_OPEN_NO_MUTEX
                | OpenFlags::SQLITE_OPEN_URI;
            let reader = Connection::open_with_flags(path, flags)?;
            reader.busy_timeout(Duration::from_secs(10))?;
            reader.pragma_update(None, "cache_size", -2048)?;
            reader.set_prepared_statement_cache_capacity(64);
            spawn_thread(format!("ferric-db-reader-{i}"), reader, rrx.clone())?;
        }
        Ok(SqliteStore {
            writer: wtx,
            readers: rtx,
        })
    }

    async fn on<T: Send + 'static>(
        queue: &mpsc::Sender<Job>,
        f: impl FnOnce(&mut Connection) -> DbResult<T> + Send + 'static,
    ) -> DbResult<T> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |conn| {
            let _ = tx.send(f(conn));
        });
        queue.send(job).map_err(|_| closed())?;
        rx.await.map_err(|_| closed())?
    }

    /// Runs `f` on a reader connection.
    pub(super) async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> DbResult<T> + Send + 'static,
    ) -> DbResult<T> {
        Self::on(&self.readers, move |c| f(c)).await
    }

    /// Runs `f` in one transaction on the writer connection.
    pub(super) async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> DbResult<T> + Send + 'static,
    ) -> DbResult<T> {
        Self::on(&self.writer, move |c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let out = f(&tx)?;
            tx.commit()?;
            Ok(out)
        })
        .await
    }
}

fn closed() -> DbError {
    DbError::Backend("the database connection thread has stopped".into())
}

impl From<rusqlite::Error> for DbError {
    fn from(e: rusqlite::Error) -> Self {
        DbError::Backend(Box::new(e))
    }
}

/// The message of a failed constraint, e.g. `UNIQUE constraint failed:
/// nodes.name`.
fn constraint_message(e: &rusqlite::Error) -> Option<&str> {
    match e {
        rusqlite::Error::SqliteFailure(err, Some(msg))
            if err.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            Some(msg.as_str())
        }
        _ => None,
    }
}

/// Maps a unique-constraint failure to [`DbError::Duplicate`]; anything
/// else stays a backend error.
fn map_unique(
    e: rusqlite::Error,
    kind: &'static str,
    value_of: impl Fn(&str) -> String,
) -> DbError {
    if let Some(rest) =
        constraint_message(&e).and_then(|m| m.strip_prefix("UNIQUE constraint failed: "))
    {
        let column = rest.split(", ").next().unwrap_or(rest);
        let field = column.rsplit('.').next().unwrap_or(column).to_owned();
        return DbError::Duplicate {
            kind,
            value: value_of(&field),
            field,
        };
    }
    DbError::from(e)
}

fn is_not_null_failure(e: &rusqlite::Error, column: &str) -> bool {
    constraint_message(e) == Some(format!("NOT NULL constraint failed: {column}").as_str())
}

/// Timestamps are stored as fixed-width RFC 3339 text in UTC, so they sort
/// as text.
pub(crate) fn ts(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

fn opt_ts(t: &Option<DateTime<Utc>>) -> Option<String> {
    t.as_ref().map(ts)
}

fn to_json(obj: &ferric_core::JsonObject) -> String {
    serde_json::to_string(obj).unwrap_or_else(|_| "{}".into())
}

/// Reads a row's columns in order; the SELECT lists them in that order.
pub(crate) struct Cols<'r, 's> {
    row: &'r Row<'s>,
    next: usize,
}

impl<'r, 's> Cols<'r, 's> {
    pub(crate) fn new(row: &'r Row<'s>) -> Self {
        Cols { row, next: 0 }
    }

    fn take<T: rusqlite::types::FromSql>(&mut self) -> DbResult<T> {
        let v = self.row.get(self.next)?;
        self.next += 1;
        Ok(v)
    }

    fn text(&mut self) -> DbResult<String> {
        self.take()
    }

    fn opt_text(&mut self) -> DbResult<Option<String>> {
        self.take()
    }

    fn int(&mut self) -> DbResult<i64> {
        self.take()
    }

    fn flag(&mut self) -> DbResult<bool> {
        self.take()
    }

    fn opt_flag(&mut self) -> DbResult<Option<bool>> {
        self.take()
    }

    fn json(&mut self, what: &'static str) -> DbResult<ferric_core::JsonObject> {
        let i = self.next;
        self.next += 1;
        let text = self
            .row
            .get_ref(i)?
            .as_str()
            .map_err(|e| corrupt(what, e))?;
        serde_json::from_str(text).map_err(|e| corrupt(what, e))
    }

    fn parsed<T: FromStr>(&mut self, what: &'static str) -> DbResult<T>
    where
        T::Err: std::fmt::Display,
    {
        let i = self.next;
        self.next += 1;
        let text = self
            .row
            .get_ref(i)?
            .as_str()
            .map_err(|e| corrupt(what, e))?;
        text.parse().map_err(|e| corrupt(what, e))
    }

    fn opt_parsed<T: FromStr>(&mut self, what: &'static str) -> DbResult<Option<T>>
    where
        T::Err: std::fmt::Display,
    {
        let i = self.next;
        self.next += 1;
        match self
            .row
            .get_ref(i)?
            .as_str_or_null()
            .map_err(|e| corrupt(what, e))?
        {
            Some(text) => text.parse().map(Some).map_err(|e| corrupt(what, e)),
            None => Ok(None),
        }
    }

    fn time(&mut self, what: &'static str) -> DbResult<DateTime<Utc>> {
        self.parsed::<DateTime<Utc>>(what)
    }

    fn opt_time(&mut self, what: &'static str) -> DbResult<Option<DateTime<Utc>>> {
        self.opt_parsed::<DateTime<Utc>>(what)
    }
}

pub(crate) fn corrupt(what: &'static str, e: impl std::fmt::Display) -> DbError {
    DbError::Corrupt {
        what,
        detail: e.to_string(),
    }
}

/// SQL text with its parameters, built together.
#[derive(Default)]
pub(crate) struct Sql {
    pub(crate) text: String,
    pub(crate) params: Vec<SqlValue>,
}

impl Sql {
    pub(crate) fn new(text: &str) -> Sql {
        Sql {
            text: text.to_owned(),
            params: Vec::new(),
        }
    }

    pub(crate) fn push(&mut self, text: &str) -> &mut Self {
        self.text.push_str(text);
        self
    }

    pub(crate) fn bind(&mut self, value: impl Into<SqlValue>) -> &mut Self {
        self.text.push('?');
        self.params.push(value.into());
        self
    }

    /// Adds `value` as a numbered parameter and returns its placeholder
    /// (`?N`), to use as often as needed; later `?`s number on from it.
    pub(crate) fn numbered(&mut self, value: impl Into<SqlValue>) -> String {
        self.params.push(value.into());
        format!("?{}", self.params.len())
    }

    /// `column IN (?, ?, ...)`; an empty list matches nothing.
    pub(crate) fn push_in(
        &mut self,
        column: &str,
        values: impl Iterator<Item = String>,
    ) -> &mut Self {
        self.push(column).push(" IN (NULL");
        for v in values {
            self.push(", ").bind(v);
        }
        self.push(")")
    }

    /// Runs the query, mapping each row.
    pub(crate) fn query<T>(
        &self,
        conn: &Connection,
        map: impl Fn(&Row<'_>) -> DbResult<T>,
    ) -> DbResult<Vec<T>> {
        let mut stmt = conn.prepare_cached(&self.text)?;
        let mut rows = stmt.query(rusqlite::params_from_iter(self.params.iter()))?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            out.push(map(row)?);
        }
        Ok(out)
    }
}

/// Joins conditions with WHERE, then AND.
pub(crate) struct Where<'a> {
    pub(crate) sql: &'a mut Sql,
    pub(crate) any: bool,
}

impl Where<'_> {
    pub(crate) fn next(&mut self) -> &mut Sql {
        self.sql.push(if self.any { " AND " } else { " WHERE " });
        self.any = true;
        self.sql
    }
}

/// Appends the keyset condition, order and limit of a page. `table` is the
/// alias of the listed table; `column` must already be validated against
/// the table's sortable columns. SQLite puts NULLs first when ascending and
/// last when descending; the marker condition follows that order, with the
/// id as tie breaker.
fn push_page(sql: &mut Sql, table: &str, base: &str, column: &str, page: &Page, has_where: bool) {
    let col = format!("{table}.{column}");
    let id = format!("{table}.id");
    let (cmp, dir) = match page.sort_dir {
        SortDir::Asc => (">", "ASC"),
        SortDir::Desc => ("<", "DESC"),
    };
    if let Some(marker) = page.marker {
        sql.push(if has_where { " AND " } else { " WHERE " });
        // One numbered parameter, used wherever the marker is: the text of
        // the statement stays the same from page to page, so it is
        // prepared once.
        let m = sql.numbered(marker);
        if column == "id" {
            sql.push(&format!("{id} {cmp} {m}"));
        } else {
            // The marker row's value, an uncorrelated subquery SQLite
            // evaluates once.
            let mv = format!("(SELECT {column} FROM {base} WHERE id = {m})");
            let after_null = match page.sort_dir {
                SortDir::Asc => format!("{col} IS NOT NULL OR {id} > {m}"),
                SortDir::Desc => format!("{col} IS NULL AND {id} < {m}"),
            };
            let nulls_after_values = match page.sort_dir {
                SortDir::Asc => String::new(),
                SortDir::Desc => format!(" OR {col} IS NULL"),
            };
            sql.push(&format!(
                "(({mv} IS NULL AND ({after_null})) OR ({mv} IS NOT NULL AND \
                 ({col} {cmp} {mv} OR ({col} = {mv} AND {id} {cmp} {m}){nulls_after_values})))"
            ));
        }
    }
    if column == "id" {
        sql.push(&format!(" ORDER BY {id} {dir}"));
    } else {
        sql.push(&format!(" ORDER BY {col} {dir}, {id} {dir}"));
    }
    if let Some(limit) = page.limit {
        sql.push(" LIMIT ").bind(i64::from(limit));
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
        self.node_create(node.clone()).await
    }
    async fn get_node(&self, ident: &ferric_core::NodeIdent) -> DbResult<ferric_core::Node> {
        self.node_get(ident.clone()).await
    }
    async fn list_nodes(
        &self,
        filter: &crate::NodeFilter,
        page: &Page,
    ) -> DbResult<Vec<ferric_core::Node>> {
        self.node_list(filter, page).await
    }
    async fn list_nodes_brief(
        &self,
        filter: &crate::NodeFilter,
        page: &Page,
    ) -> DbResult<Vec<crate::BriefNode>> {
        self.node_list_brief(filter, page).await
    }
    async fn reserve_node_brief(
        &self,
        uuid: ferric_core::NodeUuid,
        holder: &str,
    ) -> DbResult<crate::BriefNode> {
        self.node_reserve_brief(uuid, holder.to_owned()).await
    }
    async fn save_power_sync(
        &self,
        uuid: ferric_core::NodeUuid,
        holder: &str,
        record: &crate::PowerSyncRecord,
    ) -> DbResult<()> {
        self.node_save_power_sync(uuid, holder.to_owned(), record.clone())
            .await
    }
    async fn save_node(
        &self,
        node: &ferric_core::Node,
        holder: &str,
        after: crate::AfterSave,
    ) -> DbResult<ferric_core::Node> {
        self.node_save(node.clone(), holder.to_owned(), after).await
    }
    async fn set_node_traits(
        &self,
        uuid: ferric_core::NodeUuid,
        traits: &[String],
        holder: &str,
    ) -> DbResult<ferric_core::Node> {
        self.node_set_traits(uuid, traits.to_vec(), holder.to_owned())
            .await
    }
    async fn delete_node(&self, uuid: ferric_core::NodeUuid, holder: &str) -> DbResult<()> {
        self.node_delete(uuid, holder.to_owned()).await
    }
    async fn reserve_node(
        &self,
        ident: &ferric_core::NodeIdent,
        holder: &str,
    ) -> DbResult<ferric_core::Node> {
        self.node_reserve(ident.clone(), holder.to_owned()).await
    }
    async fn release_node(&self, uuid: ferric_core::NodeUuid, holder: &str) -> DbResult<()> {
        self.node_release(uuid, holder.to_owned()).await
    }
    async fn release_all_reservations(&self, holder: &str) -> DbResult<Vec<ferric_core::NodeUuid>> {
        self.node_release_all(holder.to_owned()).await
    }
    async fn create_port(&self, port: &ferric_core::Port) -> DbResult<ferric_core::Port> {
        self.port_create(port.clone()).await
    }
    async fn get_port(&self, uuid: ferric_core::PortUuid) -> DbResult<ferric_core::Port> {
        self.port_get("uuid", uuid.to_string()).await
    }
    async fn get_port_by_address(
        &self,
        address: &ferric_core::MacAddress,
    ) -> DbResult<ferric_core::Port> {
        self.port_get("address", address.to_string()).await
    }
    async fn get_port_by_name(&self, name: &str) -> DbResult<ferric_core::Port> {
        self.port_get("name", name.to_owned()).await
    }
    async fn list_ports(
        &self,
        filter: &crate::PortFilter,
        page: &Page,
    ) -> DbResult<Vec<ferric_core::Port>> {
        self.port_list(filter, page).await
    }
    async fn save_port(&self, port: &ferric_core::Port) -> DbResult<ferric_core::Port> {
        self.port_save(port.clone()).await
    }
    async fn delete_port(&self, uuid: ferric_core::PortUuid) -> DbResult<()> {
        self.port_delete(uuid).await
    }
    async fn create_portgroup(
        &self,
        group: &ferric_core::Portgroup,
    ) -> DbResult<ferric_core::Portgroup> {
        self.portgroup_create(group.clone()).await
    }
    async fn get_portgroup(
        &self,
        ident: &ferric_core::Ident<ferric_core::PortgroupUuid>,
    ) -> DbResult<ferric_core::Portgroup> {
        self.portgroup_get(ident.clone()).await
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
        self.portgroup_save(group.clone()).await
    }
    async fn delete_portgroup(&self, uuid: ferric_core::PortgroupUuid) -> DbResult<()> {
        self.portgroup_delete(uuid).await
    }
    async fn create_chassis(
        &self,
        chassis: &ferric_core::Chassis,
    ) -> DbResult<ferric_core::Chassis> {
        self.chassis_create(chassis.clone()).await
    }
    async fn get_chassis(&self, uuid: ferric_core::ChassisUuid) -> DbResult<ferric_core::Chassis> {
        self.chassis_get(uuid).await
    }
    async fn list_chassis(&self, page: &Page) -> DbResult<Vec<ferric_core::Chassis>> {
        self.chassis_list(page).await
    }
    async fn save_chassis(&self, chassis: &ferric_core::Chassis) -> DbResult<ferric_core::Chassis> {
        self.chassis_save(chassis.clone()).await
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
        self.conductor_register(hostname.to_owned(), group.to_owned(), drivers.to_vec(), now)
            .await
    }
    async fn touch_conductor(&self, hostname: &str, now: DateTime<Utc>) -> DbResult<()> {
        self.conductor_touch(hostname.to_owned(), now).await
    }
    async fn unregister_conductor(&self, hostname: &str) -> DbResult<()> {
        self.conductor_unregister(hostname.to_owned()).await
    }
    async fn get_conductor(&self, hostname: &str) -> DbResult<ferric_core::ConductorRecord> {
        self.conductor_get(hostname.to_owned()).await
    }
    async fn add_history(&self, event: &ferric_core::HistoryEvent, keep: usize) -> DbResult<()> {
        self.history_add(event.clone(), keep).await
    }
    async fn list_history(
        &self,
        node: ferric_core::NodeUuid,
        page: &Page,
    ) -> DbResult<Vec<ferric_core::HistoryEvent>> {
        self.history_list(node, page.clone()).await
    }
    async fn get_history(
        &self,
        node: ferric_core::NodeUuid,
        event: uuid::Uuid,
    ) -> DbResult<ferric_core::HistoryEvent> {
        self.history_get(node, event).await
    }
    async fn save_inventory(&self, inventory: &ferric_core::NodeInventory) -> DbResult<()> {
        self.inventory_save(inventory.clone()).await
    }
    async fn get_inventory(
        &self,
        node: ferric_core::NodeUuid,
    ) -> DbResult<ferric_core::NodeInventory> {
        self.inventory_get(node).await
    }
    async fn list_conductors(&self, page: &Page) -> DbResult<Vec<ferric_core::ConductorRecord>> {
        self.conductor_list(page).await
    }

    // Shards.
    async fn shard_counts(&self) -> DbResult<Vec<(Option<String>, u64)>> {
        self.shards_count().await
    }

    // BIOS settings and firmware components.
    async fn list_bios_settings(
        &self,
        node: ferric_core::NodeUuid,
    ) -> DbResult<Vec<ferric_core::BiosSetting>> {
        self.bios_list(node).await
    }
    async fn get_bios_setting(
        &self,
        node: ferric_core::NodeUuid,
        name: &str,
    ) -> DbResult<ferric_core::BiosSetting> {
        self.bios_get(node, name.to_owned()).await
    }
    async fn replace_bios_settings(
        &self,
        node: ferric_core::NodeUuid,
        settings: &[ferric_core::BiosSetting],
        now: DateTime<Utc>,
    ) -> DbResult<()> {
        self.bios_replace(node, settings.to_vec(), now).await
    }
    async fn list_firmware_components(
        &self,
        node: ferric_core::NodeUuid,
    ) -> DbResult<Vec<ferric_core::FirmwareComponent>> {
        self.firmware_list(node).await
    }
    async fn sync_firmware_components(
        &self,
        node: ferric_core::NodeUuid,
        components: &[ferric_core::FirmwareComponent],
        now: DateTime<Utc>,
    ) -> DbResult<()> {
        self.firmware_sync(node, components.to_vec(), now).await
    }

    // Deploy templates.
    async fn create_deploy_template(
        &self,
        template: &ferric_core::DeployTemplate,
    ) -> DbResult<ferric_core::DeployTemplate> {
        self.deploy_template_create(template.clone()).await
    }
    async fn get_deploy_template(
        &self,
        ident: &ferric_core::Ident<ferric_core::DeployTemplateUuid>,
    ) -> DbResult<ferric_core::DeployTemplate> {
        self.deploy_template_get(ident.clone()).await
    }
    async fn list_deploy_templates(
        &self,
        page: &Page,
    ) -> DbResult<Vec<ferric_core::DeployTemplate>> {
        self.deploy_template_list(page).await
    }
    async fn list_deploy_templates_by_names(
        &self,
        names: &[String],
    ) -> DbResult<Vec<ferric_core::DeployTemplate>> {
        self.deploy_template_list_by_names(names.to_vec()).await
    }
    async fn save_deploy_template(
        &self,
        template: &ferric_core::DeployTemplate,
    ) -> DbResult<ferric_core::DeployTemplate> {
        self.deploy_template_save(template.clone()).await
    }
    async fn delete_deploy_template(&self, uuid: ferric_core::DeployTemplateUuid) -> DbResult<()> {
        self.deploy_template_delete(uuid).await
    }

    // Runbooks.
    async fn create_runbook(
        &self,
        runbook: &ferric_core::Runbook,
    ) -> DbResult<ferric_core::Runbook> {
        self.runbook_create(runbook.clone()).await
    }
    async fn get_runbook(
        &self,
        ident: &ferric_core::Ident<ferric_core::RunbookUuid>,
    ) -> DbResult<ferric_core::Runbook> {
        self.runbook_get(ident.clone()).await
    }
    async fn list_runbooks(&self, page: &Page) -> DbResult<Vec<ferric_core::Runbook>> {
        self.runbook_list(page).await
    }
    async fn save_runbook(&self, runbook: &ferric_core::Runbook) -> DbResult<ferric_core::Runbook> {
        self.runbook_save(runbook.clone()).await
    }
    async fn set_runbook_traits(
        &self,
        uuid: ferric_core::RunbookUuid,
        traits: &[String],
    ) -> DbResult<ferric_core::Runbook> {
        self.runbook_set_traits(uuid, traits.to_vec()).await
    }
    async fn delete_runbook(&self, uuid: ferric_core::RunbookUuid) -> DbResult<()> {
        self.runbook_delete(uuid).await
    }

    // Volume connectors and targets.
    async fn create_volume_connector(
        &self,
        c: &ferric_core::VolumeConnector,
    ) -> DbResult<ferric_core::VolumeConnector> {
        self.volume_connector_create(c.clone()).await
    }
    async fn get_volume_connector(
        &self,
        uuid: ferric_core::volume::VolumeConnectorUuid,
    ) -> DbResult<ferric_core::VolumeConnector> {
        self.volume_connector_get(uuid).await
    }
    async fn list_volume_connectors(
        &self,
        node: Option<ferric_core::NodeUuid>,
        page: &Page,
    ) -> DbResult<Vec<ferric_core::VolumeConnector>> {
        self.volume_connector_list(node, page).await
    }
    async fn save_volume_connector(
        &self,
        c: &ferric_core::VolumeConnector,
    ) -> DbResult<ferric_core::VolumeConnector> {
        self.volume_connector_save(c.clone()).await
    }
    async fn delete_volume_connector(
        &self,
        uuid: ferric_core::volume::VolumeConnectorUuid,
    ) -> DbResult<()> {
        self.volume_connector_delete(uuid).await
    }
    async fn create_volume_target(
        &self,
        t: &ferric_core::VolumeTarget,
    ) -> DbResult<ferric_core::VolumeTarget> {
        self.volume_target_create(t.clone()).await
    }
    async fn get_volume_target(
        &self,
        uuid: ferric_core::volume::VolumeTargetUuid,
    ) -> DbResult<ferric_core::VolumeTarget> {
        self.volume_target_get(uuid).await
    }
    async fn list_volume_targets(
        &self,
        node: Option<ferric_core::NodeUuid>,
        page: &Page,
    ) -> DbResult<Vec<ferric_core::VolumeTarget>> {
        self.volume_target_list(node, page).await
    }
    async fn save_volume_target(
        &self,
        t: &ferric_core::VolumeTarget,
    ) -> DbResult<ferric_core::VolumeTarget> {
        self.volume_target_save(t.clone()).await
    }
    async fn delete_volume_target(
        &self,
        uuid: ferric_core::volume::VolumeTargetUuid,
    ) -> DbResult<()> {
        self.volume_target_delete(uuid).await
    }

    // Inspection rules.
    async fn create_inspection_rule(
        &self,
        rule: &ferric_core::InspectionRule,
    ) -> DbResult<ferric_core::InspectionRule> {
        self.inspection_rule_create(rule.clone()).await
    }
    async fn get_inspection_rule(
        &self,
        uuid: ferric_core::inspection_rule::InspectionRuleUuid,
    ) -> DbResult<ferric_core::InspectionRule> {
        self.inspection_rule_get(uuid).await
    }
    async fn list_inspection_rules(
        &self,
        page: &Page,
    ) -> DbResult<Vec<ferric_core::InspectionRule>> {
        self.inspection_rule_list(page).await
    }
    async fn save_inspection_rule(
        &self,
        rule: &ferric_core::InspectionRule,
    ) -> DbResult<ferric_core::InspectionRule> {
        self.inspection_rule_save(rule.clone()).await
    }
    async fn delete_inspection_rule(
        &self,
        uuid: ferric_core::inspection_rule::InspectionRuleUuid,
    ) -> DbResult<()> {
        self.inspection_rule_delete(uuid).await
    }
}
