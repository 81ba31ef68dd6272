//! What the deploy template and runbook endpoints share: the JSON-schema
//! checks Ironic runs on them, with jsonschema's messages and its choice of
//! which error to report when there are several (`best_match`: the
//! shallowest, then the greatest path, then a strong keyword over
//! `anyOf`), and their endpoint gate, markers and list bodies.

use ferric_core::{python_repr, JsonObject};
use serde_json::Value;

use crate::error::ApiError;

/// The interfaces deploy, clean and service steps may name, in the order
/// Ironic's schemas list them.
pub const STEP_INTERFACES: &[&str] = &[
    "vendor",
    "power",
    "management",
    "firmware",
    "deploy",
    "bios",
    "raid",
];

/// One segment of the path to a failing value.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Seg {
    Key(String),
    Index(usize),
}

#[derive(Debug)]
struct Found {
    path: Vec<Seg>,
    weak: bool,
    message: String,
}

/// The errors of one validation; [`Errors::into_result`] reports the one
/// jsonschema would.
#[derive(Debug, Default)]
pub struct Errors(Vec<Found>);

impl Errors {
    pub fn add(&mut self, path: &[Seg], message: String) {
        self.0.push(Found {
            path: path.to_vec(),
            weak: false,
            message,
        });
    }

    /// An `anyOf` failure: loses to any other error at the same place.
    pub fn add_weak(&mut self, path: &[Seg], message: String) {
        self.0.push(Found {
            path: path.to_vec(),
            weak: true,
            message,
        });
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn best(self) -> Option<Found> {
        let rank = |f: &Found| (std::cmp::Reverse(f.path.len()), f.path.clone(), !f.weak);
        let mut best: Option<Found> = None;
        for f in self.0 {
            if best.as_ref().is_none_or(|b| rank(&f) > rank(b)) {
                best = Some(f);
            }
        }
        best
    }

    /// `Schema error for {name}: {message}`, as Ironic's argument
    /// validator words it.
    pub fn into_result(self, name: &str) -> Result<(), ApiError> {
        match self.best() {
            None => Ok(()),
            Some(f) => Err(ApiError::bad_request(format!(
                "Schema error for {name}: {}",
                f.message
            ))),
        }
    }
}

pub fn not_of_type(v: &Value, types: &str) -> String {
    format!("{} is not of type {types}", python_repr(v))
}

fn child(path: &[Seg], key: &str) -> Vec<Seg> {
    let mut p = path.to_vec();
    p.push(Seg::Key(key.to_owned()));
    p
}

/// `type: object`, `required` and `additionalProperties: false` of an
/// object; returns the object when it is one.
pub fn check_object<'a>(
    errs: &mut Errors,
    path: &[Seg],
    v: &'a Value,
    required: &[&str],
    allowed: &[&str],
) -> Option<&'a JsonObject> {
    let Some(obj) = v.as_object() else {
        errs.add(path, not_of_type(v, "'object'"));
        return None;
    };
    for key in required.iter().filter(|k| !obj.contains_key(**k)) {
        errs.add(path, format!("'{key}' is a required property"));
    }
    let mut extra: Vec<&str> = obj
        .keys()
        .map(String::as_str)
        .filter(|k| !allowed.contains(k))
        .collect();
    extra.sort_unstable();
    if !extra.is_empty() {
        let names: Vec<String> = extra
            .iter()
            .map(|k| python_repr(&Value::from(*k)))
            .collect();
        let verb = if extra.len() == 1 { "was" } else { "were" };
        errs.add(
            path,
            format!(
                "Additional properties are not allowed ({} {verb} unexpected)",
                names.join(", ")
            ),
        );
    }
    Some(obj)
}

/// A string of `min..=max` characters.
pub fn check_string(errs: &mut Errors, path: &[Seg], v: &Value, min: usize, max: usize) -> bool {
    let Some(s) = v.as_str() else {
        errs.add(path, not_of_type(v, "'string'"));
        return false;
    };
    let len = s.chars().count();
    if len < min {
        errs.add(path, format!("{} should be non-empty", python_repr(v)));
        return false;
    }
    if len > max {
        errs.add(path, format!("{} is too long", python_repr(v)));
        return false;
    }
    true
}

/// A string or null of at most `max` characters.
pub fn check_opt_string(errs: &mut Errors, path: &[Seg], v: &Value, max: usize) {
    match v {
        Value::Null => {}
        Value::String(s) if s.chars().count() > max => {
            errs.add(path, format!("{} is too long", python_repr(v)));
        }
        Value::String(_) => {}
        other => errs.add(path, not_of_type(other, "'string', 'null'")),
    }
}

/// An object or null.
pub fn check_opt_object(errs: &mut Errors, path: &[Seg], v: &Value) {
    if !v.is_object() && !v.is_null() {
        errs.add(path, not_of_type(v, "'object', 'null'"));
    }
}

/// A boolean or null.
pub fn check_opt_bool(errs: &mut Errors, path: &[Seg], v: &Value) {
    if !v.is_boolean() && !v.is_null() {
        errs.add(path, not_of_type(v, "'boolean', 'null'"));
    }
}

/// Ironic's trait schema: `CUSTOM_` and upper-case letters, digits and
/// underscores, or a standard trait; 1 to 255 characters.
pub fn check_trait(errs: &mut Errors, path: &[Seg], v: &Value) {
    if !check_string(errs, path, v, 1, 255) {
        return;
    }
    let name = v.as_str().unwrap_or_default();
    if !ferric_core::node::is_valid_trait(name) {
        let cause = format!("{} does not match '^CUSTOM_[A-Z0-9_]+$'", python_repr(v));
        errs.add_weak(path, any_of(v, &cause));
    }
}

fn any_of(v: &Value, cause: &str) -> String {
    format!(
        "{} is not valid under any of the given schemas. Possible root cause: {cause}",
        python_repr(v)
    )
}

/// A priority or order: a non-negative integer, or a string of digits.
/// Returns its value.
pub fn check_rank(errs: &mut Errors, path: &[Seg], v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => {
            let whole = n
                .as_i64()
                .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64));
            match whole {
                Some(i) if i >= 0 => Some(i),
                Some(_) => {
                    errs.add(path, format!("{n} is less than the minimum of 0"));
                    None
                }
                None => {
                    errs.add_weak(path, any_of(v, &not_of_type(v, "'integer'")));
                    None
                }
            }
        }
        Value::String(s) if !s.is_empty() => {
            if s.bytes().all(|b| b.is_ascii_digit()) {
                // Digits beyond i64 are refused like any other bad value.
                s.parse().ok().or_else(|| {
                    errs.add(path, format!("{} is too large", python_repr(v)));
                    None
                })
            } else {
                errs.add(
                    path,
                    format!("{} does not match '^[0-9]+$'", python_repr(v)),
                );
                None
            }
        }
        other => {
            errs.add_weak(path, any_of(other, &not_of_type(other, "'integer'")));
            None
        }
    }
}

/// What a step of a kind of resource holds: its rank key (`priority` or
/// `order`) and the keys it must have.
pub struct StepShape {
    pub rank: &'static str,
    pub required: &'static [&'static str],
}

/// A deploy template's step: every key required.
pub const DEPLOY_STEP: StepShape = StepShape {
    rank: "priority",
    required: &["interface", "step", "args", "priority"],
};

/// A runbook's step: `args` may be left out.
pub const RUNBOOK_STEP: StepShape = StepShape {
    rank: "order",
    required: &["interface", "step", "order"],
};

/// One step against its schema.
pub fn check_step(errs: &mut Errors, path: &[Seg], v: &Value, shape: &StepShape) {
    let allowed = ["args", "interface", shape.rank, "step"];
    let Some(obj) = check_object(errs, path, v, shape.required, &allowed) else {
        return;
    };
    if let Some(args) = obj.get("args") {
        if !args.is_object() {
            errs.add(&child(path, "args"), not_of_type(args, "'object'"));
        }
    }
    if let Some(iface) = obj.get("interface") {
        let p = child(path, "interface");
        match iface.as_str() {
            None => errs.add(&p, not_of_type(iface, "'string'")),
            Some(s) if !STEP_INTERFACES.contains(&s) => {
                let names: Vec<String> = STEP_INTERFACES.iter().map(|i| format!("'{i}'")).collect();
                errs.add(
                    &p,
                    format!(
                        "{} is not one of [{}]",
                        python_repr(iface),
                        names.join(", ")
                    ),
                );
            }
            Some(_) => {}
        }
    }
    if let Some(rank) = obj.get(shape.rank) {
        check_rank(errs, &child(path, shape.rank), rank);
    }
    if let Some(step) = obj.get("step") {
        check_string(errs, &child(path, "step"), step, 1, usize::MAX);
    }
}

/// `steps`: a non-empty array of steps.
pub fn check_steps(errs: &mut Errors, path: &[Seg], v: &Value, shape: &StepShape) {
    let Some(items) = v.as_array() else {
        errs.add(path, not_of_type(v, "'array'"));
        return;
    };
    if items.is_empty() {
        errs.add(path, "[] should be non-empty".into());
    }
    for (i, item) in items.iter().enumerate() {
        let mut p = path.to_vec();
        p.push(Seg::Index(i));
        check_step(errs, &p, item, shape);
    }
}

/// A step of a validated body, with its rank as an integer and `args`
/// defaulting to `{}`.
pub struct ParsedStep {
    pub interface: String,
    pub step: String,
    pub args: JsonObject,
    pub rank: i64,
}

/// The steps of a body that passed [`check_steps`].
pub fn parse_steps(v: &Value, shape: &StepShape) -> Vec<ParsedStep> {
    let text = |o: &JsonObject, k: &str| o.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_object)
        .map(|o| ParsedStep {
            interface: text(o, "interface"),
            step: text(o, "step"),
            args: o
                .get("args")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default(),
            rank: o
                .get(shape.rank)
                .and_then(|r| check_rank(&mut Errors::default(), &[], r))
                .unwrap_or(0),
        })
        .collect()
}

/// Ironic's `duplicate_steps`: an interface and step may appear once (in
/// runbooks too, with the same words).
pub fn duplicate_steps(steps: &[ParsedStep]) -> Result<(), ApiError> {
    let mut seen: Vec<(&str, &str)> = Vec::new();
    let mut dups: Vec<String> = Vec::new();
    for s in steps {
        let key = (s.interface.as_str(), s.step.as_str());
        if seen.contains(&key) {
            let d = format!("interface: {}, step: {}", s.interface, s.step);
            if !dups.contains(&d) {
                dups.push(d);
            }
        } else {
            seen.push(key);
        }
    }
    if dups.is_empty() {
        return Ok(());
    }
    Err(ApiError::bad_request(format!(
        "Deploy template invalid: Duplicate deploy steps. A template cannot have multiple deploy steps with the same \
         interface and step. Duplicates: {}.",
        dups.join("; ")
    )))
}

/// A step as the API shows it: interface, step, args (secrets masked),
/// then its rank.
pub fn step_view(interface: &str, step: &str, args: &JsonObject, rank: (&str, i64)) -> Value {
    let mut obj = JsonObject::new();
    obj.insert("interface".into(), interface.into());
    obj.insert("step".into(), step.into());
    obj.insert(
        "args".into(),
        Value::Object(ferric_core::secret::mask_dict(args)),
    );
    obj.insert(rank.0.into(), rank.1.into());
    Value::Object(obj)
}

/// Ironic's `uuid` argument check on a body's `uuid`.
pub fn check_uuid(obj: &JsonObject) -> Result<(), ApiError> {
    match obj.get("uuid") {
        Some(Value::String(u)) if !ferric_core::ids::is_uuid_like(u) => Err(ApiError::bad_request(
            format!("Expected UUID for uuid: {u}"),
        )),
        _ => Ok(()),
    }
}

// What the deploy template and runbook endpoints share beyond schemas.

/// Below `minor` an endpoint does not exist: 404 to reads, 405 to writes
/// (Ironic's `_route` check), with `message`.
pub fn endpoint_gate(
    ctx: &crate::context::Ctx,
    method: &axum::http::Method,
    minor: u32,
    message: &'static str,
) -> Result<(), ApiError> {
    if ctx.version.at_least(minor) {
        return Ok(());
    }
    let status = if method == axum::http::Method::GET {
        axum::http::StatusCode::NOT_FOUND
    } else {
        axum::http::StatusCode::METHOD_NOT_ALLOWED
    };
    Err(ApiError::routing(status, message))
}

/// A list's marker: Ironic looks it up by UUID only. `kind` names the
/// resource in the 404 ("Deploy template", "Runbook"); `id_of` finds the
/// row's id.
pub async fn uuid_marker<U, F, Fut>(marker: &str, kind: &str, id_of: F) -> Result<i64, ApiError>
where
    U: std::str::FromStr,
    F: FnOnce(U) -> Fut,
    Fut: std::future::Future<Output = ferric_db::DbResult<i64>>,
{
    if !ferric_core::ids::is_valid_logical_name(marker) {
        return Err(ApiError::bad_request(format!(
            "Expected name for marker: {marker}"
        )));
    }
    let not_found = || ApiError::not_found(format!("{kind} {marker} could not be found."));
    let uuid: U = marker.parse().map_err(|_| not_found())?;
    match id_of(uuid).await {
        Ok(id) => Ok(id),
        Err(ferric_db::DbError::NotFound { .. }) => Err(not_found()),
        Err(e) => Err(e.into()),
    }
}

/// The fields a list shows: all with detail, else those asked for, else
/// `uuid` and `name`.
pub fn list_fields(args: &crate::listing::ListArgs, detail_path: bool) -> Option<Vec<String>> {
    match (&args.fields, args.wants_detail(detail_path)) {
        (_, true) => None,
        (Some(f), false) => Some(f.clone()),
        (None, false) => Some(vec!["uuid".to_owned(), "name".to_owned()]),
    }
}

/// `{collection: items}` with the `next` link of a full page; `last` is
/// the UUID of the page's last item.
pub fn list_body(
    ctx: &crate::context::Ctx,
    args: &crate::listing::ListArgs,
    collection: &str,
    detail_path: bool,
    items: Vec<Value>,
    last: Option<String>,
) -> Value {
    let count = items.len();
    let mut out = serde_json::Map::new();
    out.insert(collection.to_owned(), Value::Array(items));
    let resource = if detail_path {
        format!("{collection}/detail")
    } else {
        collection.to_owned()
    };
    let last = last.unwrap_or_default();
    if let Some(next) = args.next_link(ctx, &resource, &[], count, &last) {
        out.insert("next".into(), Value::String(next));
    }
    Value::Object(out)
}

/// Ironic checks each patched step on its own first, reporting the first
/// bad one, after dropping the keys a step does not have.
pub fn check_patched_steps(doc: &mut Value, shape: &StepShape) -> Result<(), ApiError> {
    let keep = ["args", "interface", shape.rank, "step"];
    for step in doc["steps"].as_array_mut().into_iter().flatten() {
        if let Some(obj) = step.as_object_mut() {
            obj.retain(|k, _| keep.contains(&k.as_str()));
        }
        let mut errs = Errors::default();
        check_step(&mut errs, &[], step, shape);
        errs.into_result("patch")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn template_errors(v: &Value) -> String {
        let mut errs = Errors::default();
        if let Some(obj) = check_object(&mut errs, &[], v, &["steps", "name"], &["name", "steps"]) {
            if let Some(n) = obj.get("name") {
                check_trait(&mut errs, &[Seg::Key("name".into())], n);
            }
            if let Some(s) = obj.get("steps") {
                check_steps(&mut errs, &[Seg::Key("steps".into())], s, &DEPLOY_STEP);
            }
        }
        errs.into_result("template").unwrap_err().message
    }

    fn step(extra: Value) -> Value {
        let mut s = json!({"interface": "deploy", "step": "s", "args": {}, "priority": 1});
        for (k, v) in extra.as_object().unwrap() {
            s[k] = v.clone();
        }
        s
    }

    /// Messages and choices checked against Python's jsonschema 4.26 on
    /// Ironic's schemas.
    #[test]
    fn errors_are_those_jsonschema_reports() {
        let cases = [
            (json!({"steps": [step(json!({}))]}), "'name' is a required property"),
            (json!({"name": "FOO", "steps": [step(json!({}))]}),
             "'FOO' is not valid under any of the given schemas. Possible root cause: 'FOO' does not match '^CUSTOM_[A-Z0-9_]+$'"),
            (json!({"name": "CUSTOM_A", "steps": []}), "[] should be non-empty"),
            (json!({"name": "CUSTOM_A", "steps": [step(json!({"interface": "boot"}))]}),
             "'boot' is not one of ['vendor', 'power', 'management', 'firmware', 'deploy', 'bios', 'raid']"),
            (json!({"name": "CUSTOM_A", "steps": [step(json!({"priority": -1}))]}), "-1 is less than the minimum of 0"),
            (json!({"name": "CUSTOM_A", "steps": [step(json!({"priority": "x"}))]}), "'x' does not match '^[0-9]+$'"),
            (json!({"name": "CUSTOM_A", "steps": [step(json!({"priority": 1.5}))]}),
             "1.5 is not valid under any of the given schemas. Possible root cause: 1.5 is not of type 'integer'"),
            (json!({"name": "CUSTOM_A", "steps": [step(json!({"priority": true}))]}),
             "True is not valid under any of the given schemas. Possible root cause: True is not of type 'integer'"),
            (json!({"name": "CUSTOM_A", "steps": [step(json!({"foo": 1}))]}),
             "Additional properties are not allowed ('foo' was unexpected)"),
            (json!({"name": "CUSTOM_A", "steps": [step(json!({})) ], "foo": 1, "bar": 2}),
             "Additional properties are not allowed ('bar', 'foo' were unexpected)"),
            (json!({"name": "FOO", "steps": [step(json!({"interface": "x"}))]}),
             "'FOO' is not valid under any of the given schemas. Possible root cause: 'FOO' does not match '^CUSTOM_[A-Z0-9_]+$'"),
            (json!({"name": "CUSTOM_A", "steps": [step(json!({"interface": "x"})), step(json!({"priority": -1}))]}),
             "-1 is less than the minimum of 0"),
            (json!({"name": "CUSTOM_A", "steps": [step(json!({"interface": "x", "priority": -1}))]}),
             "-1 is less than the minimum of 0"),
            (json!({"name": "CUSTOM_A", "steps": [{"interface": "x", "step": "a", "priority": 1}]}),
             "'args' is a required property"),
            (json!({"name": 5, "steps": [step(json!({}))]}), "5 is not of type 'string'"),
            (json!([]), "[] is not of type 'object'"),
        ];
        for (body, want) in cases {
            assert_eq!(
                template_errors(&body),
                format!("Schema error for template: {want}"),
                "{body}"
            );
        }
    }

    #[test]
    fn duplicates_are_named() {
        let steps = parse_steps(
            &json!([step(json!({})), step(json!({"priority": 3}))]),
            &DEPLOY_STEP,
        );
        assert_eq!(
            duplicate_steps(&steps).unwrap_err().message,
            "Deploy template invalid: Duplicate deploy steps. A template cannot have multiple deploy steps with \
             the same interface and step. Duplicates: interface: deploy, step: s."
        );
    }
}
