//! JSON Patch (RFC 6902) as Ironic accepts it: `add`, `replace` and
//! `remove` on paths of word characters, with Ironic's error texts.

use serde_json::{Map, Value};

use crate::error::ApiError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Add,
    Replace,
    Remove,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PatchOp {
    pub op: Op,
    pub path: String,
    pub value: Option<Value>,
}

impl PatchOp {
    /// The first path segment: the field the operation touches.
    pub fn field(&self) -> &str {
        self.path
            .trim_start_matches('/')
            .split('/')
            .next()
            .unwrap_or("")
    }

    /// Whether the operation addresses the whole field (`/name`), not a
    /// key inside it (`/extra/foo`).
    pub fn is_whole_field(&self) -> bool {
        self.path.matches('/').count() == 1
    }

    /// Ironic quotes the failing operation as a Python dict.
    fn describe(&self) -> String {
        let op = match self.op {
            Op::Add => "add",
            Op::Replace => "replace",
            Op::Remove => "remove",
        };
        match &self.value {
            Some(v) => format!("{{'op': '{op}', 'path': '{}', 'value': {v}}}", self.path),
            None => format!("{{'op': '{op}', 'path': '{}'}}", self.path),
        }
    }
}

fn schema_error(msg: String) -> ApiError {
    ApiError::bad_request(format!("Schema error for patch: {msg}"))
}

fn valid_path(path: &str) -> bool {
    path.starts_with('/')
        && path[1..].split('/').all(|seg| {
            !seg.is_empty()
                && seg
                    .chars()
                    .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
        })
}

/// Checks a PATCH body's shape and turns it into operations.
pub fn parse(body: Value) -> Result<Vec<PatchOp>, ApiError> {
    let Value::Array(items) = body else {
        return Err(schema_error(format!("{body} is not of type 'array'")));
    };
    items.into_iter().map(parse_op).collect()
}

fn parse_op(item: Value) -> Result<PatchOp, ApiError> {
    let Value::Object(mut obj) = item else {
        return Err(schema_error(format!("{item} is not of type 'object'")));
    };
    if let Some(extra) = obj
        .keys()
        .find(|k| !matches!(k.as_str(), "op" | "path" | "value"))
    {
        return Err(schema_error(format!(
            "Additional properties are not allowed ('{extra}' was unexpected)"
        )));
    }
    let op = match obj.get("op") {
        Some(Value::String(s)) if s == "add" => Op::Add,
        Some(Value::String(s)) if s == "replace" => Op::Replace,
        Some(Value::String(s)) if s == "remove" => Op::Remove,
        Some(other) => {
            return Err(schema_error(format!(
                "{other} is not one of ['add', 'replace', 'remove']"
            )))
        }
        None => return Err(schema_error("'op' is a required property".into())),
    };
    let path = match obj.remove("path") {
        Some(Value::String(p)) if valid_path(&p) => p,
        Some(Value::String(p)) => {
            return Err(schema_error(format!(
                "'{p}' does not match '^(/[\\\\w-]+)+$'"
            )));
        }
        Some(other) => return Err(schema_error(format!("{other} is not of type 'string'"))),
        None => return Err(schema_error("'path' is a required property".into())),
    };
    Ok(PatchOp {
        op,
        path,
        value: obj.remove("value"),
    })
}

/// Refuses operations on fields outside `allowed`.
pub fn check_allowed(ops: &[PatchOp], allowed: &[&str]) -> Result<(), ApiError> {
    for op in ops {
        if !allowed.contains(&op.field()) {
            return Err(ApiError::bad_request(format!(
                "Cannot patch {}. Only the following can be updated: {}",
                op.path,
                allowed.join(", ")
            )));
        }
    }
    Ok(())
}

/// Applies the operations to `doc` in order.
pub fn apply(doc: &mut Value, ops: &[PatchOp]) -> Result<(), ApiError> {
    for op in ops {
        apply_one(doc, op).map_err(|reason| {
            ApiError::bad_request(format!(
                "Couldn't apply patch '{}'. Reason: {reason}",
                op.describe()
            ))
        })?;
    }
    Ok(())
}

fn apply_one(doc: &mut Value, op: &PatchOp) -> Result<(), String> {
    let segments: Vec<String> = op.path[1..].split('/').map(str::to_owned).collect();
    let (last, parents) = segments.split_last().ok_or("empty path")?;
    let mut target = &mut *doc;
    for seg in parents {
        target = child(target, seg)
            .ok_or_else(|| format!("can't find a non-existent object '{seg}'"))?;
    }
    let value = || {
        op.value
            .clone()
            .ok_or("The operation does not contain a 'value' member".to_owned())
    };
    match (target, op.op) {
        (Value::Object(map), Op::Add) => {
            map.insert(last.clone(), value()?);
        }
        (Value::Object(map), Op::Replace) => {
            let v = value()?;
            let slot = map
                .get_mut(last)
                .ok_or(format!("can't replace a non-existent object '{last}'"))?;
            *slot = v;
        }
        (Value::Object(map), Op::Remove) => {
            remove_key(map, last)?;
        }
        (Value::Array(items), op_kind) => apply_to_array(items, last, op_kind, value)?,
        _ => return Err(format!("can't find a non-existent object '{last}'")),
    }
    Ok(())
}

fn remove_key(map: &mut Map<String, Value>, key: &str) -> Result<(), String> {
    map.shift_remove(key)
        .map(drop)
        .ok_or(format!("can't remove a non-existent object '{key}'"))
}

fn apply_to_array(
    items: &mut Vec<Value>,
    index: &str,
    op: Op,
    value: impl Fn() -> Result<Value, String>,
) -> Result<(), String> {
    if op == Op::Add && index == "-" {
        items.push(value()?);
        return Ok(());
    }
    let i: usize = index
        .parse()
        .map_err(|_| format!("'{index}' is not a valid sequence index"))?;
    match op {
        Op::Add if i <= items.len() => items.insert(i, value()?),
        Op::Replace if i < items.len() => items[i] = value()?,
        Op::Remove if i < items.len() => drop(items.remove(i)),
        _ => return Err("can't replace outside of list".into()),
    }
    Ok(())
}

fn child<'a>(v: &'a mut Value, seg: &str) -> Option<&'a mut Value> {
    match v {
        Value::Object(map) => map.get_mut(seg),
        Value::Array(items) => seg.parse::<usize>().ok().and_then(|i| items.get_mut(i)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn operations_apply_like_jsonpatch() {
        let mut doc = json!({"extra": {"a": 1}, "name": "n1", "driver_info": {}});
        let ops = parse(json!([
            {"op": "add", "path": "/extra/b", "value": 2},
            {"op": "replace", "path": "/name", "value": "n2"},
            {"op": "remove", "path": "/extra/a"},
            {"op": "add", "path": "/driver_info/ipmi_address", "value": "10.0.0.1"},
        ]))
        .unwrap();
        apply(&mut doc, &ops).unwrap();
        assert_eq!(
            doc,
            json!({"extra": {"b": 2}, "name": "n2", "driver_info": {"ipmi_address": "10.0.0.1"}})
        );
    }

    #[test]
    fn bad_patches_get_ironic_messages() {
        let err = |v: Value| parse(v).unwrap_err().message;
        assert_eq!(
            err(json!([{"op": "test", "path": "/a", "value": 1}])),
            "Schema error for patch: \"test\" is not one of ['add', 'replace', 'remove']"
        );
        assert_eq!(
            err(json!([{"op": "add", "path": "/a", "from": "/b"}])),
            "Schema error for patch: Additional properties are not allowed ('from' was unexpected)"
        );
        assert!(
            err(json!([{"op": "add", "path": "/extra/a.b", "value": 1}]))
                .contains("does not match")
        );
        let mut doc = json!({"extra": {}});
        let ops = parse(json!([{"op": "remove", "path": "/extra/nope"}])).unwrap();
        assert_eq!(
            apply(&mut doc, &ops).unwrap_err().message,
            "Couldn't apply patch '{'op': 'remove', 'path': '/extra/nope'}'. Reason: can't remove a non-existent object 'nope'"
        );
        let ops = parse(json!([{"op": "add", "path": "/extra/x"}])).unwrap();
        assert!(apply(&mut doc, &ops)
            .unwrap_err()
            .message
            .ends_with("The operation does not contain a 'value' member"));
        let ops = parse(json!([{"op": "add", "path": "/uuid", "value": "x"}])).unwrap();
        assert_eq!(
            check_allowed(&ops, &["name", "extra"]).unwrap_err().message,
            "Cannot patch /uuid. Only the following can be updated: name, extra"
        );
    }
}
