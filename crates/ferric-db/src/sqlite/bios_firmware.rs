//! A node's BIOS settings and firmware components: rows that belong to a
//! node and go with it, rewritten as its interfaces read them.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use ferric_core::{BiosSetting, FirmwareComponent, NodeUuid};
use rusqlite::{params, Connection, OptionalExtension, Row};

use super::history::node_id;
use super::{ts, Cols, SqliteStore};
use crate::error::{DbError, DbResult};

const BIOS_COLUMNS: &str =
    "name, value, attribute_type, allowable_values, lower_bound, max_length, \
     min_length, read_only, reset_required, \"unique\", upper_bound, created_at, updated_at";

const FIRMWARE_COLUMNS: &str =
    "component, initial_version, current_version, last_version_flashed, \
     vendor, model, serial_number, created_at, updated_at";

fn setting_from_row(row: &Row<'_>) -> DbResult<BiosSetting> {
    let mut c = Cols::new(row);
    Ok(BiosSetting {
        name: c.text()?,
        value: c.opt_text()?,
        attribute_type: c.opt_text()?,
        allowable_values: match c.opt_text()? {
            None => None,
            Some(text) => Some(serde_json::from_str(&text).map_err(|e| DbError::Corrupt {
                what: "bios allowable_values",
                detail: e.to_string(),
            })?),
        },
        lower_bound: c.take()?,
        max_length: c.take()?,
        min_length: c.take()?,
        read_only: c.opt_flag()?,
        reset_required: c.opt_flag()?,
        unique: c.opt_flag()?,
        upper_bound: c.take()?,
        created_at: Some(c.time("bios created_at")?),
        updated_at: c.opt_time("bios updated_at")?,
    })
}

fn component_from_row(row: &Row<'_>) -> DbResult<FirmwareComponent> {
    let mut c = Cols::new(row);
    Ok(FirmwareComponent {
        component: c.text()?,
        initial_version: c.text()?,
        current_version: c.opt_text()?,
        last_version_flashed: c.opt_text()?,
        vendor: c.opt_text()?,
        model: c.opt_text()?,
        serial_number: c.opt_text()?,
        created_at: Some(c.time("firmware created_at")?),
        updated_at: c.opt_time("firmware updated_at")?,
    })
}

fn list_settings(conn: &Connection, id: i64) -> DbResult<Vec<BiosSetting>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {BIOS_COLUMNS} FROM bios_settings WHERE node_id = ? ORDER BY name"
    ))?;
    let mut rows = stmt.query([id])?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(setting_from_row(row)?);
    }
    Ok(out)
}

fn list_components(conn: &Connection, id: i64) -> DbResult<Vec<FirmwareComponent>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {FIRMWARE_COLUMNS} FROM firmware_information WHERE node_id = ? ORDER BY id"
    ))?;
    let mut rows = stmt.query([id])?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(component_from_row(row)?);
    }
    Ok(out)
}

fn allowable_json(s: &BiosSetting) -> Option<String> {
    s.allowable_values
        .as_ref()
        .map(|v| serde_json::to_string(v).unwrap_or_else(|_| "[]".into()))
}

/// Creates the setting, or rewrites the stored one of its name; `now` is
/// its creation time or its update time.
fn upsert_setting(
    tx: &rusqlite::Transaction<'_>,
    id: i64,
    s: &BiosSetting,
    now: &str,
) -> DbResult<()> {
    tx.prepare_cached(&format!(
        "INSERT INTO bios_settings (node_id, {BIOS_COLUMNS}) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL) \
         ON CONFLICT (node_id, name) DO UPDATE SET value = excluded.value, \
         attribute_type = excluded.attribute_type, allowable_values = excluded.allowable_values, \
         lower_bound = excluded.lower_bound, max_length = excluded.max_length, \
         min_length = excluded.min_length, read_only = excluded.read_only, \
         reset_required = excluded.reset_required, \"unique\" = excluded.\"unique\", \
         upper_bound = excluded.upper_bound, updated_at = excluded.created_at"
    ))?
    .execute(params![
        id,
        s.name,
        s.value,
        s.attribute_type,
        allowable_json(s),
        s.lower_bound,
        s.max_length,
        s.min_length,
        s.read_only,
        s.reset_required,
        s.unique,
        s.upper_bound,
        now,
    ])?;
    Ok(())
}

/// Writes `seen` over the stored component of the same name: a new
/// version moves `current_version` and is recorded as flashed.
fn update_component(
    tx: &rusqlite::Transaction<'_>,
    id: i64,
    stored: &FirmwareComponent,
    seen: &FirmwareComponent,
    now: &str,
) -> DbResult<()> {
    let (current, flashed) = if stored.current_version != seen.current_version {
        (seen.current_version.clone(), seen.current_version.clone())
    } else {
        (
            stored.current_version.clone(),
            stored.last_version_flashed.clone(),
        )
    };
    tx.prepare_cached(
        "UPDATE firmware_information SET current_version = ?, last_version_flashed = ?, \
         vendor = ?, model = ?, serial_number = ?, updated_at = ? \
         WHERE node_id = ? AND component = ?",
    )?
    .execute(params![
        current,
        flashed,
        seen.vendor,
        seen.model,
        seen.serial_number,
        now,
        id,
        seen.component,
    ])?;
    Ok(())
}

fn insert_component(
    tx: &rusqlite::Transaction<'_>,
    id: i64,
    seen: &FirmwareComponent,
    now: &str,
) -> DbResult<()> {
    // A component seen for the first time starts at the version it has.
    let initial = seen
        .current_version
        .clone()
        .unwrap_or_else(|| seen.initial_version.clone());
    tx.prepare_cached(&format!(
        "INSERT INTO firmware_information (node_id, {FIRMWARE_COLUMNS}) \
         VALUES (?, ?, ?, ?, NULL, ?, ?, ?, ?, NULL)"
    ))?
    .execute(params![
        id,
        seen.component,
        initial,
        seen.current_version,
        seen.vendor,
        seen.model,
        seen.serial_number,
        now,
    ])?;
    Ok(())
}

impl SqliteStore {
    pub(super) async fn bios_list(&self, node: NodeUuid) -> DbResult<Vec<BiosSetting>> {
        self.read(move |conn| list_settings(conn, node_id(conn, node)?))
            .await
    }

    pub(super) async fn bios_get(&self, node: NodeUuid, name: String) -> DbResult<BiosSetting> {
        self.read(move |conn| {
            let id = node_id(conn, node)?;
            conn.prepare_cached(&format!(
                "SELECT {BIOS_COLUMNS} FROM bios_settings WHERE node_id = ? AND name = ?"
            ))?
            .query_row(params![id, name], |row| Ok(setting_from_row(row)))
            .optional()?
            .unwrap_or_else(|| {
                Err(DbError::NotFound {
                    kind: "BIOS setting",
                    ident: name.clone(),
                })
            })
        })
        .await
    }

    /// Makes the node's settings `settings`: new ones created, changed
    /// values updated, the others deleted; unchanged ones keep their times.
    pub(super) async fn bios_replace(
        &self,
        node: NodeUuid,
        settings: Vec<BiosSetting>,
        now: DateTime<Utc>,
    ) -> DbResult<()> {
        self.write(move |tx| {
            let id = node_id(tx, node)?;
            let now = ts(&now);
            let stored: HashMap<String, Option<String>> = list_settings(tx, id)?
                .into_iter()
                .map(|s| (s.name, s.value))
                .collect();
            for s in &settings {
                if stored.get(&s.name) != Some(&s.value) {
                    upsert_setting(tx, id, s, &now)?;
                }
            }
            for name in stored.keys() {
                if !settings.iter().any(|s| &s.name == name) {
                    tx.prepare_cached("DELETE FROM bios_settings WHERE node_id = ? AND name = ?")?
                        .execute(params![id, name])?;
                }
            }
            Ok(())
        })
        .await
    }

    pub(super) async fn firmware_list(&self, node: NodeUuid) -> DbResult<Vec<FirmwareComponent>> {
        self.read(move |conn| list_components(conn, node_id(conn, node)?))
            .await
    }

    /// Records the components just read: new ones created, changed ones
    /// updated; components not seen stay as they were.
    pub(super) async fn firmware_sync(
        &self,
        node: NodeUuid,
        seen: Vec<FirmwareComponent>,
        now: DateTime<Utc>,
    ) -> DbResult<()> {
        self.write(move |tx| {
            let id = node_id(tx, node)?;
            let now = ts(&now);
            let stored = list_components(tx, id)?;
            for component in &seen {
                match stored.iter().find(|s| s.component == component.component) {
                    None => insert_component(tx, id, component, &now)?,
                    Some(old) if old.changed_by(component) => {
                        update_component(tx, id, old, component, &now)?
                    }
                    Some(_) => {}
                }
            }
            Ok(())
        })
        .await
    }
}
