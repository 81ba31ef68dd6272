//! Runbooks, their steps and their traits.

use std::collections::HashMap;

use ferric_core::{Ident, Runbook, RunbookStep, RunbookUuid};
use rusqlite::{params, Connection, OptionalExtension, Row};

use super::{
    check_sort_column, map_unique, opt_ts, push_page, to_json, ts, Cols, Sql, SqliteStore,
};
use crate::error::{DbError, DbResult};
use crate::query::{Page, RUNBOOK_SORT_COLUMNS};

const SELECT: &str =
    "SELECT r.id, r.uuid, r.name, r.description, r.public, r.owner, r.disable_ramdisk, \
                      r.extra, r.created_at, r.updated_at FROM runbooks r";

fn runbook_from_row(row: &Row<'_>) -> DbResult<Runbook> {
    let mut c = Cols::new(row);
    Ok(Runbook {
        id: c.int()?,
        uuid: c.parsed("runbook uuid")?,
        name: c.text()?,
        description: c.opt_text()?,
        public: c.flag()?,
        owner: c.opt_text()?,
        disable_ramdisk: c.flag()?,
        extra: c.json("runbook extra")?,
        created_at: c.time("runbook created_at")?,
        updated_at: c.opt_time("runbook updated_at")?,
        steps: Vec::new(),
        traits: Vec::new(),
    })
}

fn step_from_row(row: &Row<'_>) -> DbResult<(i64, RunbookStep)> {
    let mut c = Cols::new(row);
    let owner = c.int()?;
    Ok((
        owner,
        RunbookStep {
            interface: c.text()?,
            step: c.text()?,
            args: c.json("runbook step args")?,
            order: c.int()?,
        },
    ))
}

fn trait_from_row(row: &Row<'_>) -> DbResult<(i64, String)> {
    let mut c = Cols::new(row);
    Ok((c.int()?, c.text()?))
}

fn not_found(ident: impl ToString) -> DbError {
    DbError::NotFound {
        kind: "Runbook",
        ident: ident.to_string(),
    }
}

/// Rows of `table` for these runbooks, grouped by runbook.
fn children<T>(
    conn: &Connection,
    runbooks: &[Runbook],
    select: &str,
    order: &str,
    map: impl Fn(&Row<'_>) -> DbResult<(i64, T)>,
) -> DbResult<HashMap<i64, Vec<T>>> {
    let mut sql = Sql::new(select);
    sql.push(" WHERE ")
        .push_in("runbook_id", runbooks.iter().map(|r| r.id.to_string()))
        .push(order);
    let mut by_owner: HashMap<i64, Vec<T>> = HashMap::new();
    for (owner, item) in sql.query(conn, map)? {
        by_owner.entry(owner).or_default().push(item);
    }
    Ok(by_owner)
}

/// Fills in the steps (in the order stored) and traits (sorted).
fn complete(conn: &Connection, mut runbooks: Vec<Runbook>) -> DbResult<Vec<Runbook>> {
    if runbooks.is_empty() {
        return Ok(runbooks);
    }
    let mut steps = children(
        conn,
        &runbooks,
        "SELECT runbook_id, interface, step, args, \"order\" FROM runbook_steps",
        " ORDER BY id",
        step_from_row,
    )?;
    let mut traits = children(
        conn,
        &runbooks,
        "SELECT runbook_id, trait FROM runbook_traits",
        " ORDER BY trait",
        trait_from_row,
    )?;
    for r in &mut runbooks {
        r.steps = steps.remove(&r.id).unwrap_or_default();
        r.traits = traits.remove(&r.id).unwrap_or_default();
    }
    Ok(runbooks)
}

fn select_one(conn: &Connection, column: &str, value: String) -> DbResult<Runbook> {
    let found = conn
        .prepare_cached(&format!("{SELECT} WHERE r.{column} = ?"))?
        .query_row([&value], |row| Ok(runbook_from_row(row)))
        .optional()?
        .transpose()?;
    let runbook = found.ok_or_else(|| not_found(&value))?;
    complete(conn, vec![runbook])?
        .pop()
        .ok_or_else(|| not_found(value))
}

fn id_of(conn: &Connection, uuid: RunbookUuid) -> DbResult<i64> {
    conn.query_row(
        "SELECT id FROM runbooks WHERE uuid = ?",
        [uuid.to_string()],
        |r| r.get(0),
    )
    .optional()?
    .ok_or_else(|| not_found(uuid))
}

fn insert_steps(tx: &Connection, id: i64, steps: &[RunbookStep]) -> DbResult<()> {
    let mut stmt = tx.prepare_cached(
        "INSERT INTO runbook_steps (runbook_id, interface, step, args, \"order\") VALUES (?, ?, ?, ?, ?)",
    )?;
    for s in steps {
        stmt.execute(params![id, s.interface, s.step, to_json(&s.args), s.order])?;
    }
    Ok(())
}

/// Replaces the runbook's traits; a trait given twice is stored once.
fn replace_traits(tx: &Connection, id: i64, traits: &[String]) -> DbResult<()> {
    tx.execute("DELETE FROM runbook_traits WHERE runbook_id = ?", [id])?;
    let mut stmt = tx
        .prepare_cached("INSERT OR IGNORE INTO runbook_traits (runbook_id, trait) VALUES (?, ?)")?;
    for t in traits {
        stmt.execute(params![id, t])?;
    }
    Ok(())
}

fn duplicate(r: &Runbook) -> impl Fn(&str) -> String + '_ {
    move |field| match field {
        "name" => r.name.clone(),
        _ => r.uuid.to_string(),
    }
}

impl SqliteStore {
    pub(super) async fn runbook_create(&self, r: Runbook) -> DbResult<Runbook> {
        self.write(move |tx| {
            tx.execute(
                "INSERT INTO runbooks (uuid, name, description, public, owner, disable_ramdisk, extra, created_at, \
                 updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                params![
                    r.uuid.to_string(),
                    r.name,
                    r.description,
                    r.public,
                    r.owner,
                    r.disable_ramdisk,
                    to_json(&r.extra),
                    ts(&r.created_at),
                    opt_ts(&r.updated_at)
                ],
            )
            .map_err(|e| map_unique(e, "runbook", duplicate(&r)))?;
            let id = tx.last_insert_rowid();
            insert_steps(tx, id, &r.steps)?;
            replace_traits(tx, id, &r.traits)?;
            select_one(tx, "uuid", r.uuid.to_string())
        })
        .await
    }

    pub(super) async fn runbook_get(&self, ident: Ident<RunbookUuid>) -> DbResult<Runbook> {
        self.read(move |conn| match ident {
            Ident::Uuid(u) => select_one(conn, "uuid", u.to_string()),
            Ident::Name(n) => select_one(conn, "name", n),
        })
        .await
    }

    pub(super) async fn runbook_list(&self, page: &Page) -> DbResult<Vec<Runbook>> {
        check_sort_column(&page.sort_key, RUNBOOK_SORT_COLUMNS)?;
        let mut sql = Sql::new(SELECT);
        push_page(&mut sql, "r", "runbooks", &page.sort_key, page, false);
        self.read(move |conn| {
            let runbooks = sql.query(conn, runbook_from_row)?;
            complete(conn, runbooks)
        })
        .await
    }

    /// Writes every field but the traits, replacing the stored steps.
    pub(super) async fn runbook_save(&self, r: Runbook) -> DbResult<Runbook> {
        self.write(move |tx| {
            let changed = tx
                .execute(
                    "UPDATE runbooks SET name = ?, description = ?, public = ?, owner = ?, disable_ramdisk = ?, \
                     extra = ?, updated_at = ? WHERE id = ?",
                    params![
                        r.name,
                        r.description,
                        r.public,
                        r.owner,
                        r.disable_ramdisk,
                        to_json(&r.extra),
                        ts(&chrono::Utc::now()),
                        r.id
                    ],
                )
                .map_err(|e| map_unique(e, "runbook", duplicate(&r)))?;
            if changed == 0 {
                return Err(not_found(r.uuid));
            }
            tx.execute("DELETE FROM runbook_steps WHERE runbook_id = ?", [r.id])?;
            insert_steps(tx, r.id, &r.steps)?;
            select_one(tx, "uuid", r.uuid.to_string())
        })
        .await
    }

    pub(super) async fn runbook_set_traits(
        &self,
        uuid: RunbookUuid,
        traits: Vec<String>,
    ) -> DbResult<Runbook> {
        self.write(move |tx| {
            let id = id_of(tx, uuid)?;
            replace_traits(tx, id, &traits)?;
            select_one(tx, "uuid", uuid.to_string())
        })
        .await
    }

    pub(super) async fn runbook_delete(&self, uuid: RunbookUuid) -> DbResult<()> {
        self.write(move |tx| {
            if tx.execute("DELETE FROM runbooks WHERE uuid = ?", [uuid.to_string()])? == 0 {
                return Err(not_found(uuid));
            }
            Ok(())
        })
        .await
    }
}
