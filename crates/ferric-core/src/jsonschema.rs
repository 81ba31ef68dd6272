//! The part of JSON Schema that Ironic's request schemas use, with the
//! messages Python's `jsonschema` gives and its choice of the error to
//! report (`best_match`), so refusals read as Ironic's.
//!
//! Keywords: `type`, `enum`, `minimum` (with draft 4's boolean
//! `exclusiveMinimum`), `properties`, `required`, `additionalProperties`,
//! `dependencies` (lists), `items` (one schema), `minItems`, `anyOf` and
//! `format` (`uuid`, `mac-address`). Others are ignored.

use std::cmp::Ordering;

use serde_json::Value;

use crate::python_repr;

/// Which draft's rules apply where drafts differ (is `1.0` an integer?).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Draft {
    Four,
    TwentyTwelve,
}

/// A step into the instance: an object key or an array index.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum PathItem {
    Index(usize),
    Key(String),
}

/// One way the instance breaks the schema.
#[derive(Debug, Clone, PartialEq)]
pub struct SchemaError {
    /// Where, relative to the instance the error was found in.
    pub path: Vec<PathItem>,
    pub keyword: &'static str,
    pub message: String,
    /// The failing value matches the `type` of the schema holding the keyword.
    matches_type: bool,
    /// For `anyOf`: every branch's errors.
    pub context: Vec<SchemaError>,
}

/// Every error of `instance` against `schema`, in the order Python's
/// `iter_errors` yields them.
pub fn iter_errors(schema: &Value, instance: &Value, draft: Draft) -> Vec<SchemaError> {
    let mut out = Vec::new();
    let Value::Object(keywords) = schema else {
        return out;
    };
    let v = Validator { draft };
    for (keyword, value) in keywords {
        v.keyword(keyword, value, schema, instance, &mut out);
    }
    out
}

/// The first error, as `Validator.validate` raises it.
pub fn first_error(schema: &Value, instance: &Value, draft: Draft) -> Option<SchemaError> {
    iter_errors(schema, instance, draft).into_iter().next()
}

/// The error `jsonschema.validate` reports: the most relevant one, and
/// within an `anyOf` the branch error that explains it best.
pub fn best_match(errors: Vec<SchemaError>) -> Option<SchemaError> {
    let mut best: Option<SchemaError> = None;
    for e in errors {
        let better = best
            .as_ref()
            .is_none_or(|b| relevance(&e, b) == Ordering::Greater);
        if better {
            best = Some(e);
        }
    }
    let mut best = best?;
    while !best.context.is_empty() {
        let mut context = best.context.clone();
        context.sort_by(relevance);
        if context.len() >= 2 && relevance(&context[0], &context[1]) == Ordering::Equal {
            return Some(best);
        }
        best = context.swap_remove(0);
    }
    Some(best)
}

/// The root cause Ironic's API appends: descending into the contexts.
pub fn root_cause(error: &SchemaError) -> Option<String> {
    let mut cause = None;
    let mut current = error.clone();
    while !current.context.is_empty() {
        current = best_match(current.context.clone())?;
        cause = Some(current.message.clone());
    }
    cause
}

/// Python's `relevance` key: shallower, then later path, then not a weak
/// keyword, then matching the instance's type.
fn relevance(a: &SchemaError, b: &SchemaError) -> Ordering {
    let weak = |e: &SchemaError| !matches!(e.keyword, "anyOf" | "oneOf");
    b.path
        .len()
        .cmp(&a.path.len())
        .then_with(|| a.path.cmp(&b.path))
        .then_with(|| weak(a).cmp(&weak(b)))
        .then_with(|| (!a.matches_type).cmp(&!b.matches_type))
}

struct Validator {
    draft: Draft,
}

impl Validator {
    fn descend(&self, schema: &Value, instance: &Value, at: Option<PathItem>) -> Vec<SchemaError> {
        let mut errors = iter_errors(schema, instance, self.draft);
        if let Some(step) = at {
            for e in &mut errors {
                e.path.insert(0, step.clone());
            }
        }
        errors
    }

    fn is_type(&self, instance: &Value, name: &str) -> bool {
        match name {
            "object" => instance.is_object(),
            "array" => instance.is_array(),
            "string" => instance.is_string(),
            "boolean" => instance.is_boolean(),
            "null" => instance.is_null(),
            "number" => instance.is_number(),
            "integer" => match instance {
                Value::Number(n) if n.is_i64() || n.is_u64() => true,
                Value::Number(n) => {
                    self.draft == Draft::TwentyTwelve
                        && n.as_f64().is_some_and(|f| f.fract() == 0.0)
                }
                _ => false,
            },
            _ => false,
        }
    }

    fn matches_type(&self, schema: &Value, instance: &Value) -> bool {
        match schema.get("type") {
            Some(Value::String(t)) => self.is_type(instance, t),
            Some(Value::Array(ts)) => ts
                .iter()
                .filter_map(Value::as_str)
                .any(|t| self.is_type(instance, t)),
            _ => false,
        }
    }

    fn error(
        &self,
        keyword: &'static str,
        message: String,
        schema: &Value,
        instance: &Value,
    ) -> SchemaError {
        SchemaError {
            path: Vec::new(),
            keyword,
            message,
            matches_type: self.matches_type(schema, instance),
            context: Vec::new(),
        }
    }

    fn keyword(
        &self,
        keyword: &str,
        value: &Value,
        schema: &Value,
        instance: &Value,
        out: &mut Vec<SchemaError>,
    ) {
        let r = python_repr(instance);
        match keyword {
            "type" => {
                let types: Vec<&str> = match value {
                    Value::String(t) => vec![t.as_str()],
                    Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
                    _ => return,
                };
                if !types.iter().any(|t| self.is_type(instance, t)) {
                    let names: Vec<String> = types.iter().map(|t| format!("'{t}'")).collect();
                    let msg = format!("{r} is not of type {}", names.join(", "));
                    out.push(self.error("type", msg, schema, instance));
                }
            }
            "enum" => {
                let Value::Array(options) = value else { return };
                if !options.contains(instance) {
                    let msg = format!("{r} is not one of {}", python_repr(value));
                    out.push(self.error("enum", msg, schema, instance));
                }
            }
            "minimum" => self.minimum(value, schema, instance, out),
            "minItems" => {
                let (Value::Array(items), Some(min)) = (instance, value.as_u64()) else {
                    return;
                };
                if (items.len() as u64) < min {
                    let what = if min == 1 {
                        "should be non-empty"
                    } else {
                        "is too short"
                    };
                    out.push(self.error("minItems", format!("{r} {what}"), schema, instance));
                }
            }
            "items" => {
                let Value::Array(items) = instance else {
                    return;
                };
                for (i, item) in items.iter().enumerate() {
                    out.extend(self.descend(value, item, Some(PathItem::Index(i))));
                }
            }
            "properties" => {
                let (Value::Object(props), Value::Object(obj)) = (value, instance) else {
                    return;
                };
                for (name, sub) in props {
                    if let Some(v) = obj.get(name) {
                        out.extend(self.descend(sub, v, Some(PathItem::Key(name.clone()))));
                    }
                }
            }
            "required" => {
                let (Value::Array(names), Value::Object(obj)) = (value, instance) else {
                    return;
                };
                for name in names.iter().filter_map(Value::as_str) {
                    if !obj.contains_key(name) {
                        out.push(self.error(
                            "required",
                            format!("'{name}' is a required property"),
                            schema,
                            instance,
                        ));
                    }
                }
            }
            "additionalProperties" => self.additional(value, schema, instance, out),
            "dependencies" => {
                let (Value::Object(deps), Value::Object(obj)) = (value, instance) else {
                    return;
                };
                for (name, needs) in deps {
                    if !obj.contains_key(name) {
                        continue;
                    }
                    for need in needs
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                    {
                        if !obj.contains_key(need) {
                            let msg = format!("'{need}' is a dependency of '{name}'");
                            out.push(self.error("dependencies", msg, schema, instance));
                        }
                    }
                }
            }
            "anyOf" => {
                let Value::Array(branches) = value else {
                    return;
                };
                let mut all = Vec::new();
                for branch in branches {
                    let errors = self.descend(branch, instance, None);
                    if errors.is_empty() {
                        return;
                    }
                    all.extend(errors);
                }
                let msg = format!("{r} is not valid under any of the given schemas");
                let mut e = self.error("anyOf", msg, schema, instance);
                e.context = all;
                out.push(e);
            }
            "format" => {
                let (Some(format), Value::String(s)) = (value.as_str(), instance) else {
                    return;
                };
                let ok = match format {
                    "uuid" => is_uuid_like(s),
                    "mac-address" => s.parse::<crate::MacAddress>().is_ok(),
                    _ => true,
                };
                if !ok {
                    out.push(self.error(
                        "format",
                        format!("{r} is not a '{format}'"),
                        schema,
                        instance,
                    ));
                }
            }
            _ => {}
        }
    }

    fn minimum(&self, value: &Value, schema: &Value, instance: &Value, out: &mut Vec<SchemaError>) {
        let (Some(n), Some(min)) = (
            instance.as_f64().filter(|_| instance.is_number()),
            value.as_f64(),
        ) else {
            return;
        };
        let exclusive =
            self.draft == Draft::Four && schema.get("exclusiveMinimum") == Some(&Value::Bool(true));
        let (failed, cmp) = if exclusive {
            (n <= min, "less than or equal to")
        } else {
            (n < min, "less than")
        };
        if failed {
            let msg = format!(
                "{} is {cmp} the minimum of {}",
                python_repr(instance),
                python_repr(value)
            );
            out.push(self.error("minimum", msg, schema, instance));
        }
    }

    fn additional(
        &self,
        value: &Value,
        schema: &Value,
        instance: &Value,
        out: &mut Vec<SchemaError>,
    ) {
        let Value::Object(obj) = instance else { return };
        let known = schema.get("properties").and_then(Value::as_object);
        let mut extras: Vec<&String> = obj
            .keys()
            .filter(|k| !known.is_some_and(|p| p.contains_key(*k)))
            .collect();
        if extras.is_empty() {
            return;
        }
        match value {
            Value::Bool(false) => {
                extras.sort();
                let verb = if extras.len() == 1 { "was" } else { "were" };
                let names: Vec<String> = extras
                    .iter()
                    .map(|k| python_repr(&Value::String((*k).clone())))
                    .collect();
                let msg = format!(
                    "Additional properties are not allowed ({} {verb} unexpected)",
                    names.join(", ")
                );
                out.push(self.error("additionalProperties", msg, schema, instance));
            }
            Value::Object(_) => {
                for k in extras {
                    out.extend(self.descend(value, &obj[k], Some(PathItem::Key(k.clone()))));
                }
            }
            _ => {}
        }
    }
}

/// oslo's `is_uuid_like`: 32 hex digits once `urn:`, `uuid:`, braces and
/// hyphens are dropped.
fn is_uuid_like(s: &str) -> bool {
    let hex: String = s
        .replace("urn:", "")
        .replace("uuid:", "")
        .trim_matches(|c| c == '{' || c == '}')
        .replace('-', "");
    hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn any_of_descends_to_the_branch_of_the_right_type() {
        let schema = json!({"type": "object", "properties": {"n": {"anyOf": [
            {"type": "integer", "minimum": 0}, {"type": "string", "enum": ["MAX"]}]}}});
        let msg = |v: Value| {
            best_match(iter_errors(&schema, &v, Draft::Four))
                .unwrap()
                .message
        };
        assert_eq!(msg(json!({"n": -1})), "-1 is less than the minimum of 0");
        assert_eq!(msg(json!({"n": "x"})), "'x' is not one of ['MAX']");
        assert_eq!(
            msg(json!({"n": true})),
            "True is not valid under any of the given schemas"
        );
    }

    #[test]
    fn uuids_are_recognized_as_oslo_does() {
        assert!(is_uuid_like("1be26c0b-03f2-4d2e-ae87-c02d7f33c123"));
        assert!(is_uuid_like("{1BE26C0B03F24D2EAE87C02D7F33C123}"));
        assert!(!is_uuid_like("1be26c0b-03f2-4d2e-ae87"));
    }
}
