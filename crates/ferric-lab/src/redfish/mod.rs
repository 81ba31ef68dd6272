//! Redfish over HTTP for the lab's machines, shaped as sushy-tools serves it
//! so that Python `sushy` and Ferric's drivers walk it: the service root,
//! Systems (power, boot override, reset, NIC), Managers (virtual media) and
//! the SessionService. One listener serves every machine; a machine's BMC
//! account (basic auth or a session made with it) opens that machine.
//!
//! Every request first meets [`gate`]: the faults of the machine it names
//! (delay, then loss as a 503), then authentication. The `/lab` endpoints
//! ([`crate::lab_api`]) share the listener and need neither.

mod error;
mod managers;
mod sessions;
mod systems;

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use base64::Engine;
use serde_json::{json, Value};

pub use error::RedfishError;
pub use sessions::Sessions;

use crate::lab::Lab;
use crate::sim::Machine;

/// What the Redfish handlers share.
pub struct Service {
    pub lab: Arc<Lab>,
    pub sessions: Sessions,
}

/// Who is asking: the machines their credentials open.
#[derive(Debug, Clone)]
pub struct Principal {
    pub machines: Vec<usize>,
}

impl Principal {
    /// The named machine, if it exists and these credentials open it.
    pub fn machine<'a>(
        &self,
        service: &'a Service,
        name: &str,
    ) -> Result<&'a Arc<Machine>, RedfishError> {
        let machine = service
            .lab
            .machine(name)
            .ok_or_else(|| RedfishError::not_found(&format!("system {name}")))?;
        if self.machines.contains(&machine.index) {
            Ok(machine)
        } else {
            Err(RedfishError::unauthorized())
        }
    }

    /// The machines these credentials open, in file order.
    pub fn visible<'a>(
        &'a self,
        service: &'a Service,
    ) -> impl Iterator<Item = &'a Arc<Machine>> + 'a {
        service
            .lab
            .machines
            .iter()
            .filter(|m| self.machines.contains(&m.index))
    }
}

/// The Redfish routes (without the path normalisation `bmc` adds).
pub fn router(service: Arc<Service>) -> Router {
    Router::new()
        .route("/redfish", get(versions))
        .route("/redfish/v1", get(service_root))
        .merge(systems::routes())
        .merge(managers::routes())
        .merge(sessions::routes())
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(service.clone(), gate))
        .with_state(service)
}

async fn not_found(request: Request) -> RedfishError {
    RedfishError::not_found(request.uri().path())
}

async fn versions() -> Response {
    redfish_json(json!({ "v1": "/redfish/v1/" }))
}

async fn service_root() -> Response {
    redfish_json(json!({
        "@odata.type": "#ServiceRoot.v1_5_0.ServiceRoot",
        "@odata.id": "/redfish/v1/",
        "Id": "RootService",
        "Name": "Ferric lab BMC",
        "RedfishVersion": "1.5.0",
        "UUID": crate::machine::stable_uuid("service root").to_string(),
        "Product": "ferric-lab",
        "Vendor": "Ferric",
        "Systems": { "@odata.id": "/redfish/v1/Systems" },
        "Managers": { "@odata.id": "/redfish/v1/Managers" },
        "SessionService": { "@odata.id": "/redfish/v1/SessionService" },
        "Links": { "Sessions": { "@odata.id": "/redfish/v1/SessionService/Sessions" } },
    }))
}

/// A Redfish JSON body with the headers clients expect.
pub fn redfish_json(body: Value) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        body.to_string(),
    )
        .into_response()
}

/// A collection body.
pub fn collection(odata_type: &str, id: &str, name: &str, members: Vec<String>) -> Value {
    json!({
        "@odata.type": odata_type,
        "@odata.id": id,
        "Name": name,
        "Members@odata.count": members.len(),
        "Members": members.iter().map(|m| json!({ "@odata.id": m })).collect::<Vec<_>>(),
    })
}

/// Parses a JSON object body into a Redfish error when it is not one.
pub fn json_object(body: &[u8]) -> Result<serde_json::Map<String, Value>, RedfishError> {
    match serde_json::from_slice(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(RedfishError::malformed("the body is not a JSON object")),
        Err(e) => Err(RedfishError::malformed(&format!(
            "the body is not JSON: {e}"
        ))),
    }
}

/// Faults, then authentication, for every Redfish request.
async fn gate(State(service): State<Arc<Service>>, mut request: Request, next: Next) -> Response {
    if let Some(machine) = machine_in_path(&service.lab, request.uri().path()) {
        let faults = machine.faults();
        tokio::time::sleep(faults.delay()).await;
        if faults.lose_this_one() {
            tracing::debug!(
                machine = machine.name(),
                path = request.uri().path(),
                "fault: 503"
            );
            return with_odata_version(RedfishError::unavailable().into_response());
        }
    }
    if !is_public(request.method(), request.uri().path()) {
        match authenticate(&service, request.headers()) {
            Some(principal) => {
                request.extensions_mut().insert(principal);
            }
            None => return with_odata_version(RedfishError::unauthorized().into_response()),
        }
    }
    with_odata_version(next.run(request).await)
}

fn with_odata_version(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert("OData-Version", HeaderValue::from_static("4.0"));
    response
}

/// The machine a `/redfish/v1/Systems/NAME...` or `/Managers/NAME...` path
/// names.
fn machine_in_path<'a>(lab: &'a Lab, path: &str) -> Option<&'a Arc<Machine>> {
    let mut segments = path.trim_start_matches('/').split('/');
    match (
        segments.next(),
        segments.next(),
        segments.next(),
        segments.next(),
    ) {
        (Some("redfish"), Some("v1"), Some("Systems" | "Managers"), Some(name)) => {
            lab.machine(name)
        }
        _ => None,
    }
}

fn is_public(method: &Method, path: &str) -> bool {
    let path = path.trim_end_matches('/');
    matches!(path, "" | "/redfish" | "/redfish/v1")
        || (method == Method::POST && path == "/redfish/v1/SessionService/Sessions")
}

fn authenticate(service: &Service, headers: &HeaderMap) -> Option<Principal> {
    if let Some(token) = headers.get("X-Auth-Token") {
        return service.sessions.principal(token.as_bytes(), Instant::now());
    }
    let (username, password) = basic_credentials(headers)?;
    let machines = service.lab.login(&username, &password, Instant::now());
    (!machines.is_empty()).then_some(Principal { machines })
}

fn basic_credentials(headers: &HeaderMap) -> Option<(Vec<u8>, Vec<u8>)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let encoded = value
        .strip_prefix("Basic ")
        .or_else(|| value.strip_prefix("basic "))?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let colon = decoded.iter().position(|b| *b == b':')?;
    let (user, rest) = decoded.split_at(colon);
    Some((user.to_vec(), rest.get(1..).unwrap_or_default().to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_paths() {
        assert!(is_public(&Method::GET, "/redfish/v1/"));
        assert!(is_public(&Method::GET, "/redfish/v1"));
        assert!(is_public(&Method::GET, "/redfish"));
        assert!(is_public(
            &Method::POST,
            "/redfish/v1/SessionService/Sessions"
        ));
        assert!(!is_public(
            &Method::GET,
            "/redfish/v1/SessionService/Sessions"
        ));
        assert!(!is_public(&Method::GET, "/redfish/v1/Systems"));
    }

    #[test]
    fn basic_credentials_are_decoded() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Basic YWRtaW46cGE6c3N3b3Jk"),
        );
        let (user, password) = basic_credentials(&headers).unwrap();
        assert_eq!(user, b"admin");
        assert_eq!(password, b"pa:ssword");
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic !!"));
        assert!(basic_credentials(&headers).is_none());
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer x"));
        assert!(basic_credentials(&headers).is_none());
    }
}
