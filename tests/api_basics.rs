//! Version discovery, microversion negotiation and error bodies, against
//! the real binary and Ironic 39's captured answers.

mod common;

use common::{fault, faultstring, keys, reference, Server};
use reqwest::Method;
use serde_json::json;

#[test]
fn discovery_documents_match_ironic() {
    let s = Server::start("");
    let root = s.get("/");
    let want = reference("ironic-39-root.json");
    assert_eq!(keys(&root), keys(&want));
    assert_eq!(root["default_version"]["version"], "1.115");
    assert_eq!(root["default_version"]["min_version"], "1.1");
    assert_eq!(
        root["versions"][0]["links"][0]["href"],
        format!("{}/v1/", s.url)
    );

    let v1 = s.get("/v1");
    let want = reference("ironic-39-v1.json");
    for key in keys(&want) {
        assert!(v1.get(&key).is_some(), "/v1 lacks {key}");
    }
    assert_eq!(v1["media_types"], want["media_types"]);
    assert_eq!(v1["nodes"][1]["href"], format!("{}/nodes/", s.url));
}

#[test]
fn version_headers_follow_negotiation() {
    let s = Server::start("");
    let resp = s.request(Method::GET, "/v1/nodes", None, None);
    assert_eq!(resp.status(), 200);
    let h = resp.headers();
    assert_eq!(h["x-openstack-ironic-api-minimum-version"], "1.1");
    assert_eq!(h["x-openstack-ironic-api-maximum-version"], "1.115");
    assert_eq!(h["x-openstack-ironic-api-version"], "1.1");
    assert!(h["x-openstack-request-id"]
        .to_str()
        .unwrap()
        .starts_with("req-"));

    let resp = s.request(Method::GET, "/v1/nodes", Some("latest"), None);
    assert_eq!(resp.headers()["x-openstack-ironic-api-version"], "1.115");

    let resp = s.request(Method::GET, "/v1/nodes", Some("1.999"), None);
    assert_eq!(resp.status(), 406);
    assert_eq!(
        resp.headers()["x-openstack-ironic-api-maximum-version"],
        "1.115"
    );
    assert!(resp
        .headers()
        .get("x-openstack-ironic-api-version")
        .is_none());
    let body: serde_json::Value = resp.json().unwrap();
    let want = "Version 1.999 was requested but the minor version is not supported by this service. The supported version range is: [1.1, 1.115].";
    assert_eq!(
        fault(&body),
        json!({"code": 406, "title": "Not Acceptable", "description": want})
    );

    let resp = s.request(Method::GET, "/v1/nodes", Some("one.two"), None);
    assert_eq!(resp.status(), 406);
    assert!(resp
        .headers()
        .get("x-openstack-ironic-api-maximum-version")
        .is_none());
}

#[test]
fn errors_have_ironics_shape() {
    let s = Server::start("");
    let (status, body) = s.call(Method::GET, "/v1/nodes/nonexistent", None);
    assert_eq!(status, 404);
    assert_eq!(
        fault(&body),
        json!({"faultcode": "Client", "faultstring": "Node nonexistent could not be found.", "debuginfo": null})
    );
    let (status, body) = s.call(Method::GET, "/v1/bogus", None);
    assert_eq!(status, 404);
    assert_eq!(fault(&body)["code"], 404);

    let (status, body) = s.call(Method::GET, "/v1/nodes?foo=1", None);
    assert_eq!(status, 400);
    assert_eq!(faultstring(&body), "Unexpected arguments: foo");

    let resp = s.request(Method::POST, "/v1/nodes", Some(common::LATEST), None);
    assert_eq!(resp.status(), 400);
    let (status, body) = {
        let r = reqwest::blocking::Client::new()
            .post(format!("{}/v1/nodes", s.url))
            .header("X-OpenStack-Ironic-API-Version", "latest")
            .body("{not json")
            .send()
            .unwrap();
        (r.status().as_u16(), r.json::<serde_json::Value>().unwrap())
    };
    assert_eq!(status, 400);
    assert!(
        faultstring(&body).starts_with("Malformed JSON body"),
        "{body}"
    );

    let deep = "[".repeat(40) + &"]".repeat(40);
    let r = reqwest::blocking::Client::new()
        .post(format!("{}/v1/nodes", s.url))
        .body(deep)
        .send()
        .unwrap();
    assert_eq!(r.status(), 400);
}

#[test]
fn bookmark_paths_without_v1_are_served() {
    let s = Server::start("");
    let node = s.create_node("b1");
    let (status, body) = s.call(
        Method::GET,
        &format!("/nodes/{}", node["uuid"].as_str().unwrap()),
        None,
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["name"], "b1");
}
