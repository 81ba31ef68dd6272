//! An inspection rule checked as Ironic checks it: first against its JSON
//! schema (reporting the error jsonschema's `best_match` would: the one
//! nearest the top of the document, the first of those), then the rule's
//! phase, priority and the arguments of each operator and action.

use ferric_core::python_repr;
use serde_json::{json, Map, Value};

/// Condition operators: (name, required arguments, optional arguments).
const OPERATORS: &[(&str, &[&str], &[&str])] = &[
    ("eq", &["values"], &["force_strings"]),
    ("lt", &["values"], &["force_strings"]),
    ("gt", &["values"], &["force_strings"]),
    ("is-empty", &["value"], &[]),
    ("in-net", &["address", "subnet"], &[]),
    ("matches", &["value", "regex"], &[]),
    ("contains", &["value", "regex"], &[]),
    ("one-of", &["value"], &["values"]),
    ("is-none", &["value"], &[]),
    ("is-true", &["value"], &[]),
    ("is-false", &["value"], &[]),
];

/// Actions: (name, required, optional, whether the plugin data is an
/// argument; Ironic adds an empty one to the stored arguments).
const ACTIONS: &[(&str, &[&str], &[&str], bool)] = &[
    ("fail", &["msg"], &[], false),
    ("log", &["msg"], &["level"], false),
    ("set-attribute", &["path", "value"], &[], false),
    ("extend-attribute", &["path", "value"], &["unique"], false),
    ("del-attribute", &["path"], &[], false),
    ("set-capability", &["name", "value"], &[], false),
    ("unset-capability", &["name"], &[], false),
    ("add-trait", &["name"], &[], false),
    ("remove-trait", &["name"], &[], false),
    (
        "set-plugin-data",
        &["path", "value", "plugin_data"],
        &[],
        true,
    ),
    (
        "extend-plugin-data",
        &["path", "value", "plugin_data"],
        &["unique"],
        true,
    ),
    ("unset-plugin-data", &["path", "plugin_data"], &[], true),
    (
        "set-port-attribute",
        &["port_id", "path", "value"],
        &[],
        false,
    ),
    (
        "extend-port-attribute",
        &["port_id", "path", "value"],
        &["unique"],
        false,
    ),
    ("del-port-attribute", &["port_id", "path"], &[], false),
    (
        "api-call",
        &["url"],
        &["headers", "proxies", "timeout", "retries", "backoff_factor"],
        false,
    ),
];

/// Schema violations found, with the depth of each in the document.
#[derive(Default)]
struct Found(Vec<(usize, String)>);

impl Found {
    fn add(&mut self, depth: usize, msg: String) {
        self.0.push((depth, msg));
    }

    fn best(self) -> Option<String> {
        let min = self.0.iter().map(|(d, _)| *d).min()?;
        self.0.into_iter().find(|(d, _)| *d == min).map(|(_, m)| m)
    }
}

#[derive(Clone, Copy)]
enum T {
    Array,
    ArrayOrObject,
    StringOrNull,
    BoolOrNull,
    Integer,
}

fn is_integer(v: &Value) -> bool {
    v.as_i64().is_some() || v.as_f64().is_some_and(|f| f.fract() == 0.0)
}

fn type_ok(t: T, v: &Value) -> bool {
    match t {
        T::Array => v.is_array(),
        T::ArrayOrObject => v.is_array() || v.is_object(),
        T::StringOrNull => v.is_string() || v.is_null(),
        T::BoolOrNull => v.is_boolean() || v.is_null(),
        T::Integer => is_integer(v),
    }
}

fn type_names(t: T) -> &'static str {
    match t {
        T::Array => "'array'",
        T::ArrayOrObject => "'array', 'object'",
        T::StringOrNull => "'string', 'null'",
        T::BoolOrNull => "'boolean', 'null'",
        T::Integer => "'integer'",
    }
}

fn check_type(found: &mut Found, depth: usize, t: T, v: &Value) -> bool {
    if type_ok(t, v) {
        return true;
    }
    found.add(
        depth,
        format!("{} is not of type {}", python_repr(v), type_names(t)),
    );
    false
}

fn check_enum(found: &mut Found, depth: usize, v: &Value, allowed: &[String]) {
    if !v.as_str().is_some_and(|s| allowed.iter().any(|a| a == s)) {
        found.add(
            depth,
            format!(
                "{} is not one of {}",
                python_repr(v),
                python_repr(&json!(allowed))
            ),
        );
    }
}

fn condition_ops() -> Vec<String> {
    let plain = OPERATORS.iter().map(|(n, ..)| (*n).to_owned());
    let inverted = OPERATORS.iter().map(|(n, ..)| format!("!{n}"));
    plain.chain(inverted).collect()
}

/// The items of `actions` or `conditions` (at depth 1).
fn check_steps(found: &mut Found, v: &Value, min_items: usize, ops: &[String], conditions: bool) {
    if !check_type(found, 1, T::Array, v) {
        return;
    }
    let items = v.as_array().map(Vec::as_slice).unwrap_or_default();
    if items.len() < min_items {
        found.add(1, format!("{} should be non-empty", python_repr(v)));
    }
    for item in items {
        let Some(obj) = item.as_object() else {
            found.add(2, format!("{} is not of type 'object'", python_repr(item)));
            continue;
        };
        for key in ["op", "args"] {
            if !obj.contains_key(key) {
                found.add(2, format!("'{key}' is a required property"));
            }
        }
        if let Some(op) = obj.get("op") {
            check_enum(found, 3, op, ops);
        }
        if let Some(args) = obj.get("args") {
            check_type(found, 3, T::ArrayOrObject, args);
        }
        if conditions {
            if let Some(m) = obj.get("multiple") {
                let allowed = ["any", "all", "first", "last"].map(str::to_owned);
                check_enum(found, 3, m, &allowed);
            }
        }
        if let Some(l) = obj.get("loop") {
            check_type(found, 3, T::ArrayOrObject, l);
        }
    }
}

fn check_string(found: &mut Found, v: &Value, max: usize) {
    if check_type(found, 1, T::StringOrNull, v) {
        if let Some(s) = v.as_str() {
            if s.chars().count() > max {
                found.add(1, format!("{} is too long", python_repr(v)));
            }
        }
    }
}

/// The properties of Ironic's rule schema, in its order.
pub(crate) const PROPERTIES: &[&str] = &[
    "actions",
    "conditions",
    "description",
    "phase",
    "priority",
    "sensitive",
    "uuid",
];

/// The message jsonschema gives for `rule` against Ironic's rule schema,
/// or `None` when it conforms.
pub(crate) fn schema_error(rule: &Value) -> Option<String> {
    let Some(obj) = rule.as_object() else {
        return Some(format!("{} is not of type 'object'", python_repr(rule)));
    };
    let mut found = Found::default();
    let action_ops: Vec<String> = ACTIONS.iter().map(|(n, ..)| (*n).to_owned()).collect();
    for key in PROPERTIES {
        let Some(v) = obj.get(*key) else { continue };
        match *key {
            "actions" => check_steps(&mut found, v, 1, &action_ops, false),
            "conditions" => check_steps(&mut found, v, 0, &condition_ops(), true),
            "description" => check_string(&mut found, v, 255),
            "phase" => check_string(&mut found, v, 16),
            "priority" => {
                if check_type(&mut found, 1, T::Integer, v) && v.as_f64().is_some_and(|p| p < 0.0) {
                    found.add(
                        1,
                        format!("{} is less than the minimum of 0", python_repr(v)),
                    );
                }
            }
            "sensitive" => drop(check_type(&mut found, 1, T::BoolOrNull, v)),
            _ => drop(check_type(&mut found, 1, T::StringOrNull, v)),
        }
    }
    if !obj.contains_key("actions") {
        found.add(0, "'actions' is a required property".into());
    }
    let extra: Vec<String> = obj
        .keys()
        .filter(|k| !PROPERTIES.contains(&k.as_str()))
        .map(|k| python_repr(&json!(k)))
        .collect();
    if !extra.is_empty() {
        let verb = if extra.len() == 1 { "was" } else { "were" };
        found.add(
            0,
            format!(
                "Additional properties are not allowed ({} {verb} unexpected)",
                extra.join(", ")
            ),
        );
    }
    found.best()
}

/// A plugin's check of its arguments; Ironic's list form is positional.
fn check_args(
    args: &mut Value,
    required: &[&str],
    optional: &[&str],
    plugin_data: bool,
) -> Result<(), String> {
    match args {
        Value::Array(items) => {
            if plugin_data {
                items.push(json!({}));
            }
            if items.len() < required.len() {
                return Err(format!(
                    "Not enough arguments provided. Missing: {}",
                    required[items.len()..].join(", ")
                ));
            }
            Ok(())
        }
        Value::Object(map) => {
            if plugin_data {
                map.insert("plugin_data".into(), json!({}));
            }
            check_named_args(map, required, optional)
        }
        _ => Err("args must be either a list or dictionary".into()),
    }
}

fn check_named_args(
    map: &Map<String, Value>,
    required: &[&str],
    optional: &[&str],
) -> Result<(), String> {
    let missing: Vec<&str> = required
        .iter()
        .copied()
        .filter(|r| !map.contains_key(*r))
        .collect();
    let unexpected: Vec<&str> = map
        .keys()
        .map(String::as_str)
        .filter(|k| !required.contains(k) && !optional.contains(k))
        .collect();
    let mut msg = Vec::new();
    if !missing.is_empty() {
        msg.push(format!(
            "missing required argument(s): {}",
            missing.join(", ")
        ));
    }
    if !unexpected.is_empty() {
        msg.push(format!("unexpected argument(s): {}", unexpected.join(", ")));
    }
    if msg.is_empty() {
        Ok(())
    } else {
        Err(msg.join("; "))
    }
}

fn steps_mut<'a>(
    rule: &'a mut Map<String, Value>,
    key: &str,
) -> impl Iterator<Item = &'a mut Map<String, Value>> {
    rule.get_mut(key)
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object_mut)
}

/// Ironic's `validate_rule` after the schema: the phase, the priority and
/// each plugin's arguments. Arguments of actions that take the plugin
/// data get an empty one, as Ironic stores them.
pub(crate) fn validate_rule(rule: &mut Map<String, Value>) -> Result<(), String> {
    let mut errors = Vec::new();
    let phase = rule.get("phase").cloned().unwrap_or_else(|| json!("main"));
    if phase.as_str() != Some("main") {
        let shown = phase
            .as_str()
            .map_or_else(|| python_repr(&phase), str::to_owned);
        errors.push(format!("Invalid phase: {shown}. Valid phases are: main"));
    }
    let priority = rule.get("priority").and_then(Value::as_f64).unwrap_or(0.0);
    if priority < 0.0 {
        errors.push("Priority cannot be negative for user-defined rules.".to_owned());
    }
    if priority > 9999.0 {
        errors.push("Priority must be between 0 and 9999 for user-defined rules.".to_owned());
    }
    for condition in steps_mut(rule, "conditions") {
        let op = condition
            .get("op")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let name = op.trim().trim_start_matches('!').trim().to_owned();
        let Some((_, required, optional)) = OPERATORS.iter().find(|(n, ..)| *n == name) else {
            return Err(format!("Unsupported operator '{name}'."));
        };
        let mut args = condition.get("args").cloned().unwrap_or_else(|| json!({}));
        check_args(&mut args, required, optional, false)?;
    }
    for action in steps_mut(rule, "actions") {
        let name = action
            .get("op")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let Some((_, required, optional, plugin_data)) = ACTIONS.iter().find(|(n, ..)| *n == name)
        else {
            return Err(format!("Unsupported action '{name}'."));
        };
        if let Some(args) = action.get_mut("args") {
            check_args(args, required, optional, *plugin_data)?;
        }
    }
    match errors.len() {
        0 => Ok(()),
        1 => Err(errors.remove(0)),
        _ => Err(format!(
            "Multiple validation errors occurred: {}",
            errors.join("; ")
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema(v: Value) -> Option<String> {
        schema_error(&v)
    }

    #[test]
    fn schema_errors_are_jsonschemas_best_match() {
        assert_eq!(
            schema(json!({"x": 1})).unwrap(),
            "'actions' is a required property"
        );
        assert_eq!(
            schema(json!({"actions": [], "x": 1})).unwrap(),
            "Additional properties are not allowed ('x' was unexpected)"
        );
        assert_eq!(
            schema(json!({"actions": []})).unwrap(),
            "[] should be non-empty"
        );
        assert_eq!(
            schema(json!({"actions": [{"op": "nope", "args": 1}], "priority": -1})).unwrap(),
            "-1 is less than the minimum of 0"
        );
        assert!(schema(json!({"actions": [{"op": "nope", "args": {}}]}))
            .unwrap()
            .starts_with("'nope' is not one of ['fail', 'log', 'set-attribute',"));
        assert_eq!(
            schema(json!({"actions": [{"args": 1}]})).unwrap(),
            "'op' is a required property"
        );
        assert_eq!(
            schema(json!({"actions": [{"op": "log", "args": {}}], "priority": "10"})).unwrap(),
            "'10' is not of type 'integer'"
        );
        assert_eq!(
            schema(json!({"actions": [{"op": "log", "args": {}}], "conditions": null})).unwrap(),
            "None is not of type 'array'"
        );
        assert_eq!(
            schema(json!({"actions": [{"op": "log", "args": {"msg": "x"}}]})),
            None
        );
    }

    #[test]
    fn plugins_check_their_arguments() {
        let mut rule = json!({
            "actions": [{"op": "set-plugin-data", "args": {"path": "a", "value": 1}}],
            "conditions": [{"op": "!eq", "args": {"values": [1, 2]}}],
        });
        let obj = rule.as_object_mut().unwrap();
        assert_eq!(validate_rule(obj), Ok(()));
        assert_eq!(obj["actions"][0]["args"]["plugin_data"], json!({}));
        let mut bad = json!({"actions": [{"op": "set-attribute", "args": {"path": "a", "x": 1}}]});
        assert_eq!(
            validate_rule(bad.as_object_mut().unwrap()),
            Err("missing required argument(s): value; unexpected argument(s): x".into())
        );
        let mut phase =
            json!({"actions": [{"op": "log", "args": ["hi"]}], "phase": "late", "priority": 10000});
        assert_eq!(
            validate_rule(phase.as_object_mut().unwrap()),
            Err("Multiple validation errors occurred: Invalid phase: late. Valid phases are: main; Priority must \
                 be between 0 and 9999 for user-defined rules."
                .into())
        );
    }
}
