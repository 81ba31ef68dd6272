//! Deploy templates and their steps.

use std::collections::HashMap;

use ferric_core::{DeployTemplate, DeployTemplateUuid, Ident, TemplateStep};
use rusqlite::types::Value as SqlValue;
use rusqlite::{params, Connection, OptionalExtension, Row};

use super::{
    check_sort_column, map_unique, opt_ts, push_page, to_json, ts, Cols, Sql, SqliteStore,
};
use crate::error::{DbError, DbResult};
use crate::query::{Page, DEPLOY_TEMPLATE_SORT_COLUMNS};

const SELECT: &str =
    "SELECT t.id, t.uuid, t.name, t.extra, t.created_at, t.updated_at FROM deploy_templates t";

fn template_from_row(row: &Row<'_>) -> DbResult<DeployTemplate> {
    let mut c = Cols::new(row);
    Ok(DeployTemplate {
        id: c.int()?,
        uuid: c.parsed("deploy template uuid")?,
        name: c.text()?,
        extra: c.json("deploy template extra")?,
        created_at: c.time("deploy template created_at")?,
        updated_at: c.opt_time("deploy template updated_at")?,
        steps: Vec::new(),
    })
}

fn step_from_row(row: &Row<'_>) -> DbResult<(i64, TemplateStep)> {
    let mut c = Cols::new(row);
    let owner = c.int()?;
    Ok((
        owner,
        TemplateStep {
            interface: c.text()?,
            step: c.text()?,
            args: c.json("deploy template step args")?,
            priority: c.int()?,
        },
    ))
}

fn not_found(ident: impl ToString) -> DbError {
    DbError::NotFound {
        kind: "Deploy template",
        ident: ident.to_string(),
    }
}

/// Fills in the steps of `templates`, in the order they were stored.
fn with_steps(
    conn: &Connection,
    mut templates: Vec<DeployTemplate>,
) -> DbResult<Vec<DeployTemplate>> {
    if templates.is_empty() {
        return Ok(templates);
    }
    let mut sql = Sql::new(
        "SELECT deploy_template_id, interface, step, args, priority FROM deploy_template_steps WHERE ",
    );
    sql.push_in(
        "deploy_template_id",
        templates.iter().map(|t| t.id.to_string()),
    );
    sql.push(" ORDER BY id");
    let mut by_owner: HashMap<i64, Vec<TemplateStep>> = HashMap::new();
    for (owner, step) in sql.query(conn, step_from_row)? {
        by_owner.entry(owner).or_default().push(step);
    }
    for t in &mut templates {
        t.steps = by_owner.remove(&t.id).unwrap_or_default();
    }
    Ok(templates)
}

fn select_one(conn: &Connection, column: &str, value: String) -> DbResult<DeployTemplate> {
    let found = conn
        .prepare_cached(&format!("{SELECT} WHERE t.{column} = ?"))?
        .query_row([&value], |row| Ok(template_from_row(row)))
        .optional()?
        .transpose()?;
    let template = found.ok_or_else(|| not_found(&value))?;
    with_steps(conn, vec![template])?
        .pop()
        .ok_or_else(|| not_found(value))
}

fn insert_steps(tx: &Connection, id: i64, steps: &[TemplateStep]) -> DbResult<()> {
    let mut stmt = tx.prepare_cached(
        "INSERT INTO deploy_template_steps (deploy_template_id, interface, step, args, priority) VALUES (?, ?, ?, ?, ?)",
    )?;
    for s in steps {
        stmt.execute(params![
            id,
            s.interface,
            s.step,
            to_json(&s.args),
            s.priority
        ])?;
    }
    Ok(())
}

fn duplicate(t: &DeployTemplate) -> impl Fn(&str) -> String + '_ {
    move |field| match field {
        "name" => t.name.clone(),
        _ => t.uuid.to_string(),
    }
}

impl SqliteStore {
    pub(super) async fn deploy_template_create(
        &self,
        t: DeployTemplate,
    ) -> DbResult<DeployTemplate> {
        self.write(move |tx| {
            tx.execute(
                "INSERT INTO deploy_templates (uuid, name, extra, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
                params![t.uuid.to_string(), t.name, to_json(&t.extra), ts(&t.created_at), opt_ts(&t.updated_at)],
            )
            .map_err(|e| map_unique(e, "deploy template", duplicate(&t)))?;
            insert_steps(tx, tx.last_insert_rowid(), &t.steps)?;
            select_one(tx, "uuid", t.uuid.to_string())
        })
        .await
    }

    pub(super) async fn deploy_template_get(
        &self,
        ident: Ident<DeployTemplateUuid>,
    ) -> DbResult<DeployTemplate> {
        self.read(move |conn| match ident {
            Ident::Uuid(u) => select_one(conn, "uuid", u.to_string()),
            Ident::Name(n) => select_one(conn, "name", n),
        })
        .await
    }

    pub(super) async fn deploy_template_list(&self, page: &Page) -> DbResult<Vec<DeployTemplate>> {
        check_sort_column(&page.sort_key, DEPLOY_TEMPLATE_SORT_COLUMNS)?;
        let mut sql = Sql::new(SELECT);
        push_page(
            &mut sql,
            "t",
            "deploy_templates",
            &page.sort_key,
            page,
            false,
        );
        self.read(move |conn| {
            let templates = sql.query(conn, template_from_row)?;
            with_steps(conn, templates)
        })
        .await
    }

    pub(super) async fn deploy_template_list_by_names(
        &self,
        names: Vec<String>,
    ) -> DbResult<Vec<DeployTemplate>> {
        let mut sql = Sql::new(SELECT);
        sql.push(" WHERE ")
            .push_in("t.name", names.into_iter())
            .push(" ORDER BY t.id");
        self.read(move |conn| {
            let templates = sql.query(conn, template_from_row)?;
            with_steps(conn, templates)
        })
        .await
    }

    /// Writes the name, extra and steps (replacing the stored ones).
    pub(super) async fn deploy_template_save(&self, t: DeployTemplate) -> DbResult<DeployTemplate> {
        self.write(move |tx| {
            let changed = tx
                .execute(
                    "UPDATE deploy_templates SET name = ?, extra = ?, updated_at = ? WHERE id = ?",
                    params![t.name, to_json(&t.extra), ts(&chrono::Utc::now()), t.id],
                )
                .map_err(|e| map_unique(e, "deploy template", duplicate(&t)))?;
            if changed == 0 {
                return Err(not_found(t.uuid));
            }
            tx.execute(
                "DELETE FROM deploy_template_steps WHERE deploy_template_id = ?",
                [t.id],
            )?;
            insert_steps(tx, t.id, &t.steps)?;
            select_one(tx, "uuid", t.uuid.to_string())
        })
        .await
    }

    pub(super) async fn deploy_template_delete(&self, uuid: DeployTemplateUuid) -> DbResult<()> {
        self.write(move |tx| {
            let gone = tx.execute(
                "DELETE FROM deploy_templates WHERE uuid = ?",
                [SqlValue::Text(uuid.to_string())],
            )?;
            if gone == 0 {
                return Err(not_found(uuid));
            }
            Ok(())
        })
        .await
    }
}
