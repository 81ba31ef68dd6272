//! Inspection rules.

use ferric_core::inspection_rule::InspectionRuleUuid;
use ferric_core::InspectionRule;
use rusqlite::{params, Connection, Row};
use serde_json::Value;

use super::{
    check_sort_column, constraint_message, corrupt, opt_ts, push_page, ts, Cols, Sql, SqliteStore,
};
use crate::error::{DbError, DbResult};
use crate::query::{Page, INSPECTION_RULE_SORT_COLUMNS};

const SELECT: &str =
    "SELECT r.id, r.uuid, r.priority, r.description, r.scope, r.sensitive, r.phase, \
     r.conditions, r.actions, r.created_at, r.updated_at FROM inspection_rules r";

fn list_of(text: &str, what: &'static str) -> DbResult<Vec<Value>> {
    serde_json::from_str(text).map_err(|e| corrupt(what, e))
}

fn rule_from_row(row: &Row<'_>) -> DbResult<InspectionRule> {
    let mut c = Cols::new(row);
    Ok(InspectionRule {
        id: c.int()?,
        uuid: c.parsed("inspection rule uuid")?,
        priority: c.int()?,
        description: c.opt_text()?,
        scope: c.opt_text()?,
        sensitive: c.flag()?,
        phase: c.opt_text()?,
        conditions: list_of(&c.text()?, "inspection rule conditions")?,
        actions: list_of(&c.text()?, "inspection rule actions")?,
        created_at: c.time("inspection rule created_at")?,
        updated_at: c.opt_time("inspection rule updated_at")?,
    })
}

fn not_found(uuid: InspectionRuleUuid) -> DbError {
    DbError::NotFound {
        kind: "Rule",
        ident: uuid.to_string(),
    }
}

fn select(conn: &Connection, uuid: InspectionRuleUuid) -> DbResult<InspectionRule> {
    let mut sql = Sql::new(SELECT);
    sql.push(" WHERE r.uuid = ").bind(uuid.to_string());
    sql.query(conn, rule_from_row)?
        .into_iter()
        .next()
        .ok_or_else(|| not_found(uuid))
}

fn json_list(items: &[Value]) -> String {
    serde_json::to_string(items).unwrap_or_else(|_| "[]".into())
}

fn duplicate(e: rusqlite::Error, uuid: InspectionRuleUuid) -> DbError {
    match constraint_message(&e) {
        Some(m) if m.contains("inspection_rules.uuid") => DbError::Duplicate {
            kind: "rule",
            field: "uuid".into(),
            value: uuid.to_string(),
        },
        _ => DbError::from(e),
    }
}

impl SqliteStore {
    pub(super) async fn inspection_rule_create(
        &self,
        r: InspectionRule,
    ) -> DbResult<InspectionRule> {
        self.write(move |tx| {
            tx.execute(
                "INSERT INTO inspection_rules (uuid, priority, description, scope, sensitive, phase, conditions, \
                 actions, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                params![
                    r.uuid.to_string(),
                    r.priority,
                    r.description,
                    r.scope,
                    r.sensitive,
                    r.phase,
                    json_list(&r.conditions),
                    json_list(&r.actions),
                    ts(&r.created_at),
                    opt_ts(&r.updated_at)
                ],
            )
            .map_err(|e| duplicate(e, r.uuid))?;
            select(tx, r.uuid)
        })
        .await
    }

    pub(super) async fn inspection_rule_get(
        &self,
        uuid: InspectionRuleUuid,
    ) -> DbResult<InspectionRule> {
        self.read(move |conn| select(conn, uuid)).await
    }

    pub(super) async fn inspection_rule_list(&self, page: &Page) -> DbResult<Vec<InspectionRule>> {
        check_sort_column(&page.sort_key, INSPECTION_RULE_SORT_COLUMNS)?;
        let mut sql = Sql::new(SELECT);
        push_page(
            &mut sql,
            "r",
            "inspection_rules",
            &page.sort_key,
            page,
            false,
        );
        self.read(move |conn| sql.query(conn, rule_from_row)).await
    }

    pub(super) async fn inspection_rule_save(&self, r: InspectionRule) -> DbResult<InspectionRule> {
        self.write(move |tx| {
            let changed = tx.execute(
                "UPDATE inspection_rules SET priority = ?, description = ?, scope = ?, sensitive = ?, phase = ?, \
                 conditions = ?, actions = ?, updated_at = ? WHERE uuid = ?",
                params![
                    r.priority,
                    r.description,
                    r.scope,
                    r.sensitive,
                    r.phase,
                    json_list(&r.conditions),
                    json_list(&r.actions),
                    ts(&chrono::Utc::now()),
                    r.uuid.to_string()
                ],
            )?;
            if changed == 0 {
                return Err(not_found(r.uuid));
            }
            select(tx, r.uuid)
        })
        .await
    }

    pub(super) async fn inspection_rule_delete(&self, uuid: InspectionRuleUuid) -> DbResult<()> {
        self.write(move |tx| {
            if tx.execute(
                "DELETE FROM inspection_rules WHERE uuid = ?",
                [uuid.to_string()],
            )? == 0
            {
                return Err(not_found(uuid));
            }
            Ok(())
        })
        .await
    }
}
