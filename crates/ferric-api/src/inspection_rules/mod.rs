//! `/v1/inspection_rules` (from 1.96): rules the inspection applies to
//! what it found. Ferric stores and serves them; it does not run them yet.

mod validation;

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use ferric_core::inspection_rule::InspectionRuleUuid;
use ferric_core::{python_repr, InspectionRule};
use ferric_db::query::INSPECTION_RULE_SORT_COLUMNS;
use serde_json::{json, Map, Value};

use crate::context::{Ctx, JsonBody, Params};
use crate::error::{ApiError, ApiResult};
use crate::listing::ListArgs;
use crate::nodes::view::{opt_timestamp, timestamp};
use crate::version::at;
use crate::{patch, AppState};

const GATE_MESSAGE: &str = "The API version does not allow inspection rules";

/// Fields in the order Ironic builds them.
const FIELDS: &[&str] = &[
    "uuid",
    "created_at",
    "updated_at",
    "description",
    "priority",
    "sensitive",
    "phase",
    "conditions",
    "actions",
    "links",
];

const DEFAULT_FIELDS: &[&str] = &["uuid", "priority", "phase", "description"];

/// Below 1.96 reads are not found and changes not allowed, as Ironic's
/// version decorators answer.
fn require(ctx: &Ctx, status: StatusCode) -> ApiResult<()> {
    if ctx.version.at_least(at::INSPECTION_RULES) {
        Ok(())
    } else {
        Err(ApiError::new(status, GATE_MESSAGE))
    }
}

/// Ironic shows a step's `op` and `args`, and its `loop` (and, for a
/// condition, `multiple`) only when it loops.
fn shown_steps(steps: &[Value], conditions: bool) -> Value {
    let shown: Vec<Value> = steps
        .iter()
        .map(|step| {
            let mut out = Map::new();
            out.insert("op".into(), step.get("op").cloned().unwrap_or(Value::Null));
            out.insert(
                "args".into(),
                step.get("args").cloned().unwrap_or(Value::Null),
            );
            if let Some(l) = step.get("loop").filter(|l| crate::mask::truthy(l)) {
                out.insert("loop".into(), l.clone());
                if conditions {
                    let multiple = step.get("multiple").cloned().unwrap_or(json!("any"));
                    out.insert("multiple".into(), multiple);
                }
            }
            Value::Object(out)
        })
        .collect();
    Value::Array(shown)
}

fn rule_json(ctx: &Ctx, r: &InspectionRule, fields: Option<&[String]>) -> Value {
    crate::listing::render_fields(ctx, fields, FIELDS.iter().map(|n| (*n, 1)), |name| {
        Some(match name {
            "uuid" => json!(r.uuid),
            "created_at" => json!(timestamp(&r.created_at)),
            "updated_at" => json!(opt_timestamp(&r.updated_at)),
            "description" => json!(r.description),
            "priority" => json!(r.priority),
            "sensitive" => json!(r.sensitive),
            "phase" => json!(r.phase),
            "conditions" if r.sensitive => Value::Null,
            "actions" if r.sensitive => Value::Null,
            "conditions" => shown_steps(&r.conditions, true),
            "actions" => shown_steps(&r.actions, false),
            // Ironic builds these links under `inspection`, not
            // `inspection_rules`.
            "links" => ctx.links(&format!("inspection/{}", r.uuid)),
            _ => return None,
        })
    })
}

fn check_fields(fields: &[String]) -> ApiResult<()> {
    let bad: Vec<&str> = fields
        .iter()
        .map(String::as_str)
        .filter(|f| !FIELDS.contains(f))
        .collect();
    if bad.is_empty() {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "Field(s) \"{}\" are not valid",
            bad.join(", ")
        )))
    }
}

/// The path's UUID, checked by the request parameter schema.
fn uuid_param(raw: &str) -> ApiResult<InspectionRuleUuid> {
    raw.parse()
        .map_err(|_| ApiError::bad_request(format!("Schema error: '{raw}' is not a 'uuid'")))
}

async fn load(app: &AppState, raw: &str) -> ApiResult<InspectionRule> {
    let missing = || ApiError::not_found(format!("Rule {raw} could not be found."));
    let uuid: InspectionRuleUuid = raw.parse().map_err(|_| missing())?;
    app.store()
        .get_inspection_rule(uuid)
        .await
        .map_err(|e| match e {
            ferric_db::DbError::NotFound { .. } => missing(),
            other => other.into(),
        })
}

fn take_sort_dir(p: &mut Params) -> ApiResult<ferric_db::SortDir> {
    match p.take("sort_dir").as_deref() {
        None | Some("asc") => Ok(ferric_db::SortDir::Asc),
        Some("desc") => Ok(ferric_db::SortDir::Desc),
        Some(other) => Err(ApiError::bad_request(format!(
            "Schema error: '{other}' is not one of ['asc', 'desc']"
        ))),
    }
}

/// The schema refuses sorting by the JSON lists; the store, by anything
/// that is not a column.
fn take_sort_key(p: &mut Params) -> ApiResult<String> {
    let key = p.take("sort_key").unwrap_or_else(|| "id".into());
    if key == "actions" || key == "conditions" {
        return Err(ApiError::bad_request(format!(
            "Schema error: '{key}' should not be valid under {{'type': 'string', 'enum': ['actions', 'conditions']}}"
        )));
    }
    if !INSPECTION_RULE_SORT_COLUMNS.contains(&key.as_str()) {
        return Err(ApiError::bad_request(format!(
            "The sort_key value \"{key}\" is an invalid field for sorting"
        )));
    }
    Ok(key)
}

pub async fn list(State(app): State<AppState>, ctx: Ctx, mut p: Params) -> ApiResult<Response> {
    require(&ctx, StatusCode::NOT_FOUND)?;
    let phase = p.take("phase");
    let sort_dir = take_sort_dir(&mut p)?;
    let sort_key = take_sort_key(&mut p)?;
    let mut args = ListArgs::take(&ctx, &mut p, INSPECTION_RULE_SORT_COLUMNS, &[], |_| None)?;
    p.finish()?;
    args.sort_dir = sort_dir;
    args.sort_key = sort_key;
    if args.fields.is_none() && args.detail != Some(true) {
        args.fields = Some(DEFAULT_FIELDS.iter().map(|f| (*f).to_owned()).collect());
    }
    let marker = match &args.marker {
        Some(m) => Some(load(&app, m).await?.id),
        None => None,
    };
    let rules = app
        .store()
        .list_inspection_rules(&args.page(marker))
        .await?;
    if let (Some(fields), false) = (&args.fields, rules.is_empty()) {
        check_fields(fields)?;
    }
    let fields = args.fields.as_deref();
    let items: Vec<Value> = rules.iter().map(|r| rule_json(&ctx, r, fields)).collect();
    let mut out = json!({"inspection_rules": items});
    if let Some(last) = rules.last() {
        if rules.len() == usize::try_from(args.limit).unwrap_or(usize::MAX) {
            out["next"] = json!(next_link(&ctx, &args, phase.as_deref(), last));
        }
    }
    Ok(Json(out).into_response())
}

/// Ironic's `next` for rules: under `inspection`, led by the (unused)
/// filters as Python prints them.
fn next_link(ctx: &Ctx, args: &ListArgs, phase: Option<&str>, last: &InspectionRule) -> String {
    let filters = match phase {
        Some(p) => format!("{{'phase': {}}}", python_repr(&json!(p))),
        None => "{}".to_owned(),
    };
    let dir = match args.sort_dir {
        ferric_db::SortDir::Asc => "asc",
        ferric_db::SortDir::Desc => "desc",
    };
    let mut query = format!(
        "filters={filters}&sort_key={}&sort_dir={dir}&",
        args.sort_key
    );
    if let Some(d) = args.detail {
        query.push_str(if d { "detail=True&" } else { "detail=False&" });
    }
    if let Some(f) = &args.fields {
        query.push_str(&format!("fields={}&", f.join(",")));
    }
    format!(
        "{}/v1/inspection?{query}limit={}&marker={}",
        ctx.base, args.limit, last.uuid
    )
}

pub async fn show(
    State(app): State<AppState>,
    ctx: Ctx,
    Path(raw): Path<String>,
    mut p: Params,
) -> ApiResult<Response> {
    require(&ctx, StatusCode::NOT_FOUND)?;
    let fields = crate::listing::take_fields(&ctx, &mut p)?;
    p.finish()?;
    uuid_param(&raw)?;
    let rule = load(&app, &raw).await?;
    if let Some(f) = &fields {
        check_fields(f)?;
    }
    Ok(Json(rule_json(&ctx, &rule, fields.as_deref())).into_response())
}

/// A rule from a checked body; `base` is the rule being patched.
fn build(
    obj: &Map<String, Value>,
    uuid: InspectionRuleUuid,
    base: Option<&InspectionRule>,
) -> InspectionRule {
    let steps = |key: &str| {
        obj.get(key)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let now = chrono::Utc::now();
    InspectionRule {
        id: base.map_or(0, |b| b.id),
        uuid,
        priority: obj.get("priority").map_or(0, crate::volumes::as_int),
        description: obj
            .get("description")
            .and_then(Value::as_str)
            .map(str::to_owned),
        scope: base.and_then(|b| b.scope.clone()),
        sensitive: obj
            .get("sensitive")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        phase: obj.get("phase").and_then(Value::as_str).map(str::to_owned),
        conditions: steps("conditions"),
        actions: steps("actions"),
        created_at: base.map_or(now, |b| b.created_at),
        updated_at: base.and_then(|b| b.updated_at),
    }
}

/// The schema, then Ironic's rule checks; `what` names the schema in
/// errors as Ironic's two validators do.
fn validate(prefix: &str, body: &mut Value) -> ApiResult<()> {
    if let Some(msg) = validation::schema_error(body) {
        return Err(ApiError::bad_request(format!("{prefix}{msg}")));
    }
    let Value::Object(obj) = body else {
        return Err(ApiError::internal());
    };
    validation::validate_rule(obj).map_err(ApiError::bad_request)
}

pub async fn create(
    State(app): State<AppState>,
    ctx: Ctx,
    JsonBody(mut body): JsonBody,
) -> ApiResult<Response> {
    require(&ctx, StatusCode::METHOD_NOT_ALLOWED)?;
    validate("Schema error: ", &mut body)?;
    let Value::Object(obj) = &body else {
        return Err(ApiError::internal());
    };
    let uuid = match obj.get("uuid").and_then(Value::as_str) {
        Some(u) if !u.is_empty() => u
            .parse()
            .map_err(|_| ApiError::bad_request(format!("Expected UUID for uuid: {u}")))?,
        _ => InspectionRuleUuid::new_random(),
    };
    let mut rule = build(obj, uuid, None);
    if !obj.contains_key("phase") {
        rule.phase = Some("main".into());
    }
    let created = app.store().create_inspection_rule(&rule).await?;
    let location = format!("{}/v1/inspection_rules/{}", ctx.base, created.uuid);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(rule_json(&ctx, &created, None)),
    )
        .into_response())
}

/// The rule as Ironic's `as_dict` gives it to a patch.
fn document(r: &InspectionRule) -> Value {
    json!({
        "id": r.id,
        "uuid": r.uuid,
        "priority": r.priority,
        "description": r.description,
        "sensitive": r.sensitive,
        "phase": r.phase,
        "scope": r.scope,
        "actions": r.actions,
        "conditions": r.conditions,
        "created_at": timestamp(&r.created_at),
        "updated_at": opt_timestamp(&r.updated_at),
    })
}

/// Once sensitive, a rule stays so.
fn check_sensitive(rule: &InspectionRule, body: &Value, ops: &[patch::PatchOp]) -> ApiResult<()> {
    let Some(first) = ops
        .iter()
        .find(|o| o.path == "/sensitive" && o.op != patch::Op::Remove)
    else {
        return Ok(());
    };
    let unsets = first
        .value
        .as_ref()
        .is_some_and(|v| !v.is_null() && !crate::mask::truthy(v));
    if unsets && rule.sensitive {
        return Err(unset_sensitive(body));
    }
    Ok(())
}

fn unset_sensitive(patch: &Value) -> ApiError {
    ApiError::bad_request(format!(
        "Couldn't apply patch '{}'. Reason: Inspection rules cannot have the sensitive flag unset.",
        python_repr(patch)
    ))
}

pub async fn update(
    State(app): State<AppState>,
    ctx: Ctx,
    Path(raw): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    require(&ctx, StatusCode::METHOD_NOT_ALLOWED)?;
    if raw.parse::<InspectionRuleUuid>().is_err() {
        return Err(ApiError::bad_request(format!(
            "Expected UUID for inspection_rule_uuid: {raw}"
        )));
    }
    let ops = patch::parse(body.clone())?;
    let current = load(&app, &raw).await?;
    check_sensitive(&current, &body, &ops)?;
    let mut doc = document(&current);
    for op in &ops {
        let root = op.is_whole_field() && op.op == patch::Op::Add;
        if root && doc.get(op.field()).is_none() {
            return Err(ApiError::bad_request(format!(
                "Adding a new attribute ({}) to the root of the resource is not allowed",
                op.path
            )));
        }
    }
    patch::apply(&mut doc, &ops)?;
    if let Value::Object(obj) = &mut doc {
        obj.retain(|k, _| validation::PROPERTIES.contains(&k.as_str()));
    }
    validate("Schema error for patch: ", &mut doc)?;
    let Value::Object(obj) = &doc else {
        return Err(ApiError::internal());
    };
    if let Some(u) = obj.get("uuid").and_then(Value::as_str) {
        match u.parse::<InspectionRuleUuid>() {
            Err(_) => {
                return Err(ApiError::bad_request(format!(
                    "Expected UUID for uuid: {u}"
                )))
            }
            // Ironic saves under the new UUID, which no rule has.
            Ok(other) if other != current.uuid => {
                return Err(ApiError::not_found(format!("Rule {u} could not be found.")))
            }
            Ok(_) => {}
        }
    }
    if current.sensitive && obj.get("sensitive") != Some(&json!(true)) {
        return Err(unset_sensitive(&body));
    }
    let updated = build(obj, current.uuid, Some(&current));
    let saved = app.store().save_inspection_rule(&updated).await?;
    Ok(Json(rule_json(&ctx, &saved, None)).into_response())
}

pub async fn delete(
    State(app): State<AppState>,
    ctx: Ctx,
    Path(raw): Path<String>,
    p: Params,
) -> ApiResult<Response> {
    require(&ctx, StatusCode::METHOD_NOT_ALLOWED)?;
    p.finish()?;
    let uuid = uuid_param(&raw)?;
    load(&app, &raw).await?;
    app.store().delete_inspection_rule(uuid).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
