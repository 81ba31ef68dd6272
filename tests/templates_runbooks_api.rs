//! Deploy templates and runbooks over HTTP, and what they do to deploys,
//! cleaning and servicing.

mod common;

use common::{faultstring, Server};
use reqwest::Method;
use serde_json::{json, Value};

fn status_at(s: &Server, method: Method, path: &str, version: &str, body: Option<Value>) -> u16 {
    s.request(method, path, Some(version), body.as_ref())
        .status()
        .as_u16()
}

fn key_order(v: &Value) -> Vec<&str> {
    v.as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default()
}

fn refused(s: &Server, method: Method, path: &str, body: Value) -> (u16, String) {
    let (status, out) = s.call(method, path, Some(body));
    (status, faultstring(&out))
}

#[test]
fn deploy_templates_exist_from_1_55() {
    let s = Server::start("");
    let path = "/v1/deploy_templates";
    assert_eq!(status_at(&s, Method::GET, path, "1.54", None), 404);
    let body = json!({"name": "CUSTOM_A", "steps": [{"interface": "raid", "step": "create_configuration", "args": {}, "priority": 10}]});
    assert_eq!(
        status_at(&s, Method::POST, path, "1.54", Some(body.clone())),
        405
    );
    assert_eq!(status_at(&s, Method::GET, path, "1.55", None), 200);
    assert_eq!(status_at(&s, Method::POST, path, "1.55", Some(body)), 201);
    let v1 = s.request(Method::GET, "/v1", Some("1.54"), None);
    assert!(v1
        .json::<Value>()
        .unwrap()
        .get("deploy_templates")
        .is_none());
    assert!(s.get("/v1").get("deploy_templates").is_some());
}

#[test]
fn deploy_templates_are_made_listed_changed_and_deleted() {
    let s = Server::start("");
    let sample = json!({
        "extra": {},
        "name": "CUSTOM_HYPERTHREADING_ON",
        "steps": [{"interface": "bios", "step": "apply_configuration",
                   "args": {"settings": [{"name": "LogicalProc", "value": "Enabled"}], "password": "x"},
                   "priority": 150}]
    });
    let t = s.post("/v1/deploy_templates", sample.clone());
    assert_eq!(
        key_order(&t),
        [
            "uuid",
            "created_at",
            "updated_at",
            "name",
            "extra",
            "links",
            "steps"
        ]
    );
    assert_eq!(
        key_order(&t["steps"][0]),
        ["interface", "step", "args", "priority"]
    );
    assert_eq!(t["steps"][0]["args"]["password"], "******");
    assert_eq!(t["updated_at"], Value::Null);
    let uuid = t["uuid"].as_str().unwrap().to_owned();

    assert_eq!(
        refused(&s, Method::POST, "/v1/deploy_templates", sample.clone()),
        (
            409,
            "A deploy template with name CUSTOM_HYPERTHREADING_ON already exists.".into()
        )
    );
    let mut bad = sample.clone();
    bad["name"] = json!("HYPERTHREADING");
    assert_eq!(
        refused(&s, Method::POST, "/v1/deploy_templates", bad),
        (400, "Schema error for template: 'HYPERTHREADING' is not valid under any of the given schemas. Possible root cause: 'HYPERTHREADING' does not match '^CUSTOM_[A-Z0-9_]+$'".into())
    );
    let two = json!({"name": "CUSTOM_TWO", "steps": [
        {"interface": "raid", "step": "create_configuration", "args": {}, "priority": 1},
        {"interface": "raid", "step": "create_configuration", "args": {}, "priority": 2}]});
    assert_eq!(
        refused(&s, Method::POST, "/v1/deploy_templates", two),
        (400, "Deploy template invalid: Duplicate deploy steps. A template cannot have multiple deploy steps with the same interface and step. Duplicates: interface: raid, step: create_configuration.".into())
    );
    let string_priority = json!({"name": "HW_CPU_X86_AVX2", "steps": [
        {"interface": "raid", "step": "create_configuration", "args": {}, "priority": "20"}]});
    let std_trait = s.post("/v1/deploy_templates", string_priority);
    assert_eq!(std_trait["steps"][0]["priority"], 20);

    let list = s.get("/v1/deploy_templates");
    assert_eq!(
        key_order(&list["deploy_templates"][0]),
        ["uuid", "name", "links"]
    );
    assert_eq!(list["deploy_templates"].as_array().unwrap().len(), 2);
    let detail = s.get("/v1/deploy_templates/detail");
    assert_eq!(detail["deploy_templates"][0]["steps"][0]["priority"], 150);
    let page = s.get("/v1/deploy_templates?limit=1&sort_key=name&sort_dir=desc");
    assert_eq!(page["deploy_templates"][0]["name"], "HW_CPU_X86_AVX2");
    assert!(page["next"]
        .as_str()
        .unwrap()
        .contains("sort_key=name&sort_dir=desc&limit=1&marker="));
    let (status, body) = s.call(Method::GET, "/v1/deploy_templates?sort_key=steps", None);
    assert_eq!(
        (status, faultstring(&body)),
        (
            400,
            "The sort_key value steps is an invalid field for sorting".into()
        )
    );
    let named = s.get("/v1/deploy_templates/CUSTOM_HYPERTHREADING_ON?fields=name");
    assert_eq!(key_order(&named), ["name", "links"]);
    let (status, body) = s.call(Method::GET, "/v1/deploy_templates/x?fields=bogus", None);
    assert_eq!(status, 400);
    assert!(faultstring(&body)
        .starts_with("Schema error: 'bogus' is not one of ['created_at', 'description'"));
    let (status, body) = s.call(Method::GET, "/v1/deploy_templates/CUSTOM_NOPE", None);
    assert_eq!(
        (status, faultstring(&body)),
        (
            404,
            "Deploy template CUSTOM_NOPE could not be found.".into()
        )
    );

    let path = format!("/v1/deploy_templates/{uuid}");
    let (status, patched) = s.call(
        Method::PATCH,
        &path,
        Some(json!([
            {"op": "replace", "path": "/name", "value": "CUSTOM_HT_ON"},
            {"op": "add", "path": "/extra/owner", "value": "ops"},
            {"op": "replace", "path": "/steps/0/priority", "value": 60},
        ])),
    );
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["name"], "CUSTOM_HT_ON");
    assert_eq!(patched["extra"], json!({"owner": "ops"}));
    assert_eq!(patched["steps"][0]["priority"], 60);
    assert!(patched["updated_at"].is_string());
    assert_eq!(
        refused(
            &s,
            Method::PATCH,
            &path,
            json!([{"op": "remove", "path": "/steps/0/args"}])
        ),
        (
            400,
            "Schema error for patch: 'args' is a required property".into()
        )
    );
    assert_eq!(
        refused(
            &s,
            Method::PATCH,
            &path,
            json!([{"op": "replace", "path": "/name", "value": "HW_CPU_X86_AVX2"}])
        ),
        (
            409,
            "A deploy template with name HW_CPU_X86_AVX2 already exists.".into()
        )
    );
    assert_eq!(
        refused(&s, Method::PATCH, &path, json!([{"op": "replace", "path": "/uuid", "value": "x"}])),
        (400, "Cannot patch /uuid. Only the following can be updated: extra, name, steps, description".into())
    );

    let (status, _) = s.call(Method::DELETE, "/v1/deploy_templates/CUSTOM_HT_ON", None);
    assert_eq!(status, 204);
    let (status, _) = s.call(Method::GET, &path, None);
    assert_eq!(status, 404);
}

/// A node in `available` whose instance traits name `traits`.
fn available_node(s: &Server, name: &str, traits: &[&str]) -> String {
    let node = s.create_node(name);
    let uuid = node["uuid"].as_str().expect("a node uuid").to_owned();
    assert_eq!(
        s.put(
            &format!("/v1/nodes/{uuid}/traits"),
            json!({"traits": traits})
        ),
        204
    );
    let (status, body) = s.call(
        Method::PATCH,
        &format!("/v1/nodes/{uuid}"),
        Some(json!([{"op": "add", "path": "/instance_info/traits", "value": traits}])),
    );
    assert_eq!(status, 200, "{body}");
    s.provision(&uuid, "manage", "manageable");
    s.provision(&uuid, "provide", "available");
    uuid
}

/// `interface.step` of each step of a list (nothing for what is not one).
fn step_names(steps: &Value) -> Vec<String> {
    steps
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            let text = |k: &str| s[k].as_str().unwrap_or("?").to_owned();
            format!("{}.{}", text("interface"), text("step"))
        })
        .collect()
}

#[test]
fn a_deploy_runs_the_steps_of_the_templates_its_traits_name() {
    let s = Server::start("");
    s.post(
        "/v1/deploy_templates",
        json!({"name": "CUSTOM_RAID_HOLD", "steps": [
            {"interface": "raid", "step": "create_configuration", "args": {}, "priority": 95},
            {"interface": "deploy", "step": "hold", "args": {}, "priority": 90},
            {"interface": "deploy", "step": "deploy", "args": {}, "priority": 0}]}),
    );
    s.post(
        "/v1/deploy_templates",
        json!({"name": "CUSTOM_UNUSED", "steps": [
            {"interface": "raid", "step": "delete_configuration", "args": {}, "priority": 80}]}),
    );
    let uuid = available_node(&s, "templated", &["CUSTOM_RAID_HOLD"]);
    let provision = format!("/v1/nodes/{uuid}/states/provision");
    assert_eq!(s.put(&provision, json!({"target": "active"})), 202);
    let held = s.wait_state(&uuid, "deploy hold");
    // The core step is turned off; the template's steps run by priority.
    assert_eq!(
        step_names(&held["driver_internal_info"]["deploy_steps"]),
        ["raid.create_configuration", "deploy.hold"]
    );
    assert_eq!(held["deploy_step"]["step"], "hold");
    assert_eq!(held["driver_internal_info"]["deploy_step_index"], 1);
    assert_eq!(s.put(&provision, json!({"target": "unhold"})), 202);
    s.wait_state(&uuid, "active");

    // A node without the trait deploys with the driver's steps alone.
    let plain = available_node(&s, "plain", &[]);
    s.provision(&plain, "active", "active");
}

#[test]
fn template_steps_are_checked_against_the_driver() {
    let s = Server::start("");
    s.post(
        "/v1/deploy_templates",
        json!({"name": "CUSTOM_BAD_ARGS", "steps": [
            {"interface": "raid", "step": "create_configuration", "args": {"foo": 1}, "priority": 10}]}),
    );
    let uuid = available_node(&s, "badargs", &["CUSTOM_BAD_ARGS"]);
    let provision = format!("/v1/nodes/{uuid}/states/provision");
    let (status, body) = s.call(Method::PUT, &provision, Some(json!({"target": "active"})));
    assert_eq!(status, 400, "{body}");
    let msg = faultstring(&body);
    let prefix = format!(
        "Failed to validate deploy or power info for node {uuid}: Validation of deploy steps from deploy \
         templates matching this node's instance traits failed. Matching deploy templates: CUSTOM_BAD_ARGS. \
         Errors: "
    );
    assert!(msg.starts_with(&prefix), "{msg}");
    assert!(
        msg.ends_with("has these unexpected arguments: foo"),
        "{msg}"
    );
    assert_eq!(
        s.get(&format!("/v1/nodes/{uuid}"))["provision_state"],
        "available"
    );

    // A step the driver does not offer (yet) is left out, as Ironic
    // leaves out steps only an agent may bring.
    s.post(
        "/v1/deploy_templates",
        json!({"name": "CUSTOM_BIOS", "steps": [
            {"interface": "bios", "step": "apply_configuration", "args": {"settings": []}, "priority": 10}]}),
    );
    let other = available_node(&s, "nobios", &["CUSTOM_BIOS"]);
    let provision = format!("/v1/nodes/{other}/states/provision");
    assert_eq!(s.put(&provision, json!({"target": "active"})), 202);
    s.wait_state(&other, "active");
}

#[test]
fn runbooks_exist_from_1_92_and_their_traits_from_1_112() {
    let s = Server::start("");
    let body = json!({"name": "CUSTOM_RB_GATE", "steps": [{"interface": "deploy", "step": "hold", "order": 1}]});
    assert_eq!(
        status_at(&s, Method::GET, "/v1/runbooks", "1.91", None),
        404
    );
    assert_eq!(
        status_at(&s, Method::POST, "/v1/runbooks", "1.91", Some(body.clone())),
        405
    );
    assert_eq!(
        status_at(&s, Method::GET, "/v1/runbooks", "1.92", None),
        200
    );
    assert_eq!(
        status_at(&s, Method::POST, "/v1/runbooks", "1.92", Some(body)),
        201
    );
    let old = s
        .request(
            Method::GET,
            "/v1/runbooks/CUSTOM_RB_GATE",
            Some("1.111"),
            None,
        )
        .json::<Value>()
        .unwrap();
    assert!(old.get("traits").is_none() && old.get("description").is_none());
    let traits = "/v1/runbooks/CUSTOM_RB_GATE/traits";
    assert_eq!(status_at(&s, Method::GET, traits, "1.111", None), 404);
    assert_eq!(status_at(&s, Method::GET, traits, "1.112", None), 200);
}

#[test]
fn runbooks_are_made_changed_and_given_traits() {
    let s = Server::start("");
    let steps = json!([
        {"interface": "bios", "step": "factory_reset", "args": {}, "order": 2},
        {"interface": "deploy", "step": "hold", "order": 1}
    ]);
    let r = s.post(
        "/v1/runbooks",
        json!({"name": "rb-1", "description": "reset", "steps": steps, "public": true}),
    );
    assert_eq!(
        key_order(&r),
        [
            "uuid",
            "created_at",
            "updated_at",
            "name",
            "extra",
            "public",
            "owner",
            "disable_ramdisk",
            "description",
            "links",
            "steps",
            "traits"
        ]
    );
    assert_eq!(
        r["steps"][1],
        json!({"interface": "deploy", "step": "hold", "args": {}, "order": 1})
    );
    assert_eq!(
        (r["public"].clone(), r["owner"].clone(), r["traits"].clone()),
        (json!(true), Value::Null, json!([]))
    );
    let uuid = r["uuid"].as_str().unwrap().to_owned();

    let (status, body) = s.call(
        Method::POST,
        "/v1/runbooks",
        Some(json!({"name": "rb 2", "steps": steps})),
    );
    assert_eq!(
        (status, faultstring(&body)),
        (
            400,
            "Schema error for runbook: 'rb 2' does not match '^[A-Za-z0-9\\\\-._~]+$'".into()
        )
    );
    let old_name = s.request(
        Method::POST,
        "/v1/runbooks",
        Some("1.92"),
        Some(&json!({"name": "rb-2", "steps": steps})),
    );
    assert_eq!(old_name.status().as_u16(), 400);
    let (status, body) = s.call(
        Method::POST,
        "/v1/runbooks",
        Some(json!({"name": "rb-3", "steps": steps, "owner": "p1"})),
    );
    assert_eq!(
        (status, faultstring(&body)),
        (400, "Cannot create a runbook as a project scoped admin with an owner other than your own project.".into())
    );
    let (status, body) = s.call(
        Method::POST,
        "/v1/runbooks",
        Some(json!({"name": "rb-1", "steps": steps})),
    );
    assert_eq!(
        (status, faultstring(&body)),
        (409, "A runbook with name rb-1 already exists.".into())
    );

    let list = s.get("/v1/runbooks");
    assert_eq!(key_order(&list["runbooks"][0]), ["uuid", "name", "links"]);
    let (status, body) = s.call(Method::GET, "/v1/runbooks?fields=bogus", None);
    assert_eq!(
        (status, faultstring(&body)),
        (400, "Field(s) \"bogus\" are not valid".into())
    );

    let path = format!("/v1/runbooks/{uuid}");
    let (status, body) = s.call(
        Method::PATCH,
        &path,
        Some(json!([{"op": "add", "path": "/owner", "value": "p1"}])),
    );
    assert_eq!(status, 400, "{body}");
    assert!(faultstring(&body).ends_with("Reason: There cannot be an owner for a public runbook"));
    let (status, patched) = s.call(
        Method::PATCH,
        &path,
        Some(json!([
            {"op": "replace", "path": "/public", "value": false},
            {"op": "add", "path": "/owner", "value": "p1"},
            {"op": "replace", "path": "/steps/0/order", "value": "5"},
            {"op": "replace", "path": "/disable_ramdisk", "value": true},
        ])),
    );
    assert_eq!(status, 200, "{patched}");
    assert_eq!(
        (patched["public"].clone(), patched["owner"].clone()),
        (json!(false), json!("p1"))
    );
    assert_eq!(patched["steps"][0]["order"], 5);
    assert_eq!(patched["disable_ramdisk"], true);

    let traits = format!("/v1/runbooks/{uuid}/traits");
    assert_eq!(s.put(&format!("{traits}/CUSTOM_B"), Value::Null), 204);
    assert_eq!(s.put(&format!("{traits}/CUSTOM_A"), Value::Null), 204);
    assert_eq!(s.get(&traits), json!({"traits": ["CUSTOM_A", "CUSTOM_B"]}));
    let (status, body) = s.call(Method::PUT, &format!("{traits}/bad"), None);
    assert_eq!(status, 400, "{body}");
    assert!(faultstring(&body).starts_with("Schema error for trait: 'bad' is not valid"));
    let (status, body) = s.call(Method::PUT, &traits, Some(json!({})));
    assert_eq!(status, 400);
    assert!(faultstring(&body).starts_with("A single runbook trait may be added via PUT"));
    assert_eq!(s.put(&traits, json!({"traits": ["CUSTOM_C"]})), 204);
    assert_eq!(s.get("/v1/runbooks/rb-1")["traits"], json!(["CUSTOM_C"]));
    let (status, _) = s.call(Method::DELETE, &format!("{traits}/CUSTOM_NONE"), None);
    assert_eq!(status, 204);
    let (status, _) = s.call(Method::DELETE, &traits, None);
    assert_eq!(status, 204);
    assert_eq!(s.get(&traits), json!({"traits": []}));

    let (status, _) = s.call(Method::DELETE, "/v1/runbooks/rb-1", None);
    assert_eq!(status, 204);
    let (status, body) = s.call(Method::GET, &path, None);
    assert_eq!(
        (status, faultstring(&body)),
        (404, format!("Runbook {uuid} could not be found."))
    );
}

#[test]
fn cleaning_and_servicing_with_a_runbook() {
    let s = Server::start("");
    let r = s.post(
        "/v1/runbooks",
        json!({"name": "hold-then-reset", "steps": [
            {"interface": "deploy", "step": "hold", "order": 1},
            {"interface": "vendor", "step": "log_passthrough", "args": {}, "order": 2}]}),
    );
    let rb = r["uuid"].as_str().unwrap().to_owned();
    let node = s.create_node("rbnode");
    let uuid = node["uuid"].as_str().unwrap().to_owned();
    s.provision(&uuid, "manage", "manageable");
    let provision = format!("/v1/nodes/{uuid}/states/provision");
    let clean = json!({"target": "clean", "runbook": "hold-then-reset"});

    let (status, body) = s.call(Method::PUT, &provision, Some(clean.clone()));
    assert_eq!(
        (status, faultstring(&body)),
        (400, format!("Runbook {rb} has no traits configured. Please ask an administrator to add traits to the runbook."))
    );
    assert_eq!(
        s.put(
            &format!("/v1/runbooks/{rb}/traits/CUSTOM_RB_OK"),
            Value::Null
        ),
        204
    );
    let (status, body) = s.call(Method::PUT, &provision, Some(clean.clone()));
    assert_eq!(
        (status, faultstring(&body)),
        (400, format!("This runbook has not been approved for use on this node {uuid}. The node does not have any of the runbook's traits ['CUSTOM_RB_OK']. Please ask an administrator to add a matching trait to your node."))
    );
    assert_eq!(
        s.put(
            &format!("/v1/nodes/{uuid}/traits/CUSTOM_RB_OK"),
            Value::Null
        ),
        204
    );
    let both = json!({"target": "clean", "runbook": rb, "clean_steps": [{"interface": "deploy", "step": "hold"}]});
    let (status, body) = s.call(Method::PUT, &provision, Some(both));
    assert_eq!(
        (status, faultstring(&body)),
        (
            400,
            "Please provide either \"clean_steps\" or a runbook, but not both.".into()
        )
    );
    let (status, body) = s.call(
        Method::PUT,
        &provision,
        Some(json!({"target": "clean", "runbook": "nope"})),
    );
    assert_eq!(
        (status, faultstring(&body)),
        (404, "Runbook nope could not be found.".into())
    );
    // Before 1.112 the runbook's name must be a trait of the node.
    let legacy = s.request(Method::PUT, &provision, Some("1.111"), Some(&clean));
    assert_eq!(legacy.status().as_u16(), 400);

    assert_eq!(s.put(&provision, clean), 202);
    let held = s.wait_state(&uuid, "clean hold");
    assert_eq!(held["clean_step"]["step"], "hold");
    assert_eq!(
        step_names(&held["driver_internal_info"]["clean_steps"]),
        ["deploy.hold", "vendor.log_passthrough"]
    );
    assert_eq!(s.put(&provision, json!({"target": "unhold"})), 202);
    s.wait_state(&uuid, "manageable");

    // Servicing an active node with the same runbook.
    s.provision(&uuid, "provide", "available");
    s.provision(&uuid, "active", "active");
    assert_eq!(
        s.put(&provision, json!({"target": "service", "runbook": rb})),
        202
    );
    let held = s.wait_state(&uuid, "service hold");
    assert_eq!(held["service_step"]["step"], "hold");
    assert_eq!(s.put(&provision, json!({"target": "unhold"})), 202);
    s.wait_state(&uuid, "active");
    let (status, body) = s.call(
        Method::PUT,
        &provision,
        Some(json!({"target": "undeploy", "runbook": rb})),
    );
    assert_eq!(
        (status, faultstring(&body)),
        (
            400,
            "disable_ramdisk is supported only with manual cleaning or servicing".into()
        )
    );
}
