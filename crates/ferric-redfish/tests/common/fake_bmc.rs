//! A small Redfish BMC on axum with a real session service, counting what the client does:
//! sessions opened and deleted, how each request authenticated, `If-Match` values, and knobs
//! to expire sessions, answer 503, refuse stale entity tags or answer slowly.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

pub const USER: &str = "admin";
pub const PASSWORD: &str = "fake-bmc-secret";
/// `Basic base64("admin:fake-bmc-secret")`.
const BASIC: &str = "Basic YWRtaW46ZmFrZS1ibWMtc2VjcmV0";

/// How one request authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    None,
    Basic,
    Token,
    Bad,
}

#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub auth: Auth,
    pub if_match: Option<String>,
}

#[derive(Debug)]
pub struct Knobs {
    /// Without it, POSTs to the session collection answer 404.
    pub session_service: bool,
    /// Answer 503 to this many requests for the systems collection.
    pub unavailable: u32,
    /// Pause before answering the systems collection.
    pub slow: Duration,
}

#[derive(Debug)]
struct Bmc {
    knobs: Knobs,
    sessions: HashMap<String, String>,
    opened: u32,
    deleted: u32,
    next: u32,
    seen: Vec<Seen>,
    etag: u32,
    boot: Value,
}

#[derive(Clone)]
pub struct FakeBmc {
    state: Arc<Mutex<Bmc>>,
    pub address: String,
}

impl FakeBmc {
    pub async fn start(port: u16, knobs: Knobs) -> FakeBmc {
        let state = Arc::new(Mutex::new(Bmc {
            knobs,
            sessions: HashMap::new(),
            opened: 0,
            deleted: 0,
            next: 0,
            seen: Vec::new(),
            etag: 1,
            boot: json!({
                "BootSourceOverrideTarget": "Hdd",
                "BootSourceOverrideEnabled": "Disabled",
                "BootSourceOverrideMode": "UEFI"
            }),
        }));
        let app = Router::new()
            .route("/redfish/v1/", get(root))
            .route("/redfish/v1/SessionService/Sessions", post(open).get(list))
            .route(
                "/redfish/v1/SessionService/Sessions/{id}",
                axum::routing::delete(close),
            )
            .route("/redfish/v1/Systems", get(systems))
            .route("/redfish/v1/Systems/1", get(system).patch(patch_system))
            .route(
                "/redfish/v1/Systems/1/Actions/ComputerSystem.Reset",
                post(reset),
            )
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap_or_else(|e| panic!("bind 127.0.0.1:{port}: {e}"));
        tokio::spawn(async move {
            axum::serve(listener, app).await.ok();
        });
        FakeBmc {
            state,
            address: format!("http://127.0.0.1:{port}"),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Bmc> {
        self.state.lock().unwrap()
    }

    pub fn live_sessions(&self) -> usize {
        self.lock().sessions.len()
    }

    pub fn opened(&self) -> u32 {
        self.lock().opened
    }

    pub fn deleted(&self) -> u32 {
        self.lock().deleted
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.lock().seen.clone()
    }

    /// Forgets every session, as a BMC does when they time out.
    pub fn expire_sessions(&self) {
        self.lock().sessions.clear();
    }

    /// Changes the system behind the client's back: its entity tag moves on.
    pub fn touch_system(&self) {
        self.lock().etag += 1;
    }

    pub fn boot(&self) -> Value {
        self.lock().boot.clone()
    }

    /// Waits until the BMC holds `count` sessions (a background DELETE may be in flight).
    pub async fn wait_for_sessions(&self, count: usize) -> usize {
        for _ in 0..100 {
            if self.live_sessions() == count {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.live_sessions()
    }
}

type Shared = State<Arc<Mutex<Bmc>>>;

fn authenticate(bmc: &mut Bmc, method: &Method, uri: &Uri, headers: &HeaderMap) -> Auth {
    let token = headers.get("X-Auth-Token").and_then(|v| v.to_str().ok());
    let basic = headers.get("Authorization").and_then(|v| v.to_str().ok());
    let auth = match (token, basic) {
        (Some(token), _) if bmc.sessions.contains_key(token) => Auth::Token,
        (Some(_), _) => Auth::Bad,
        (None, Some(BASIC)) => Auth::Basic,
        (None, Some(_)) => Auth::Bad,
        (None, None) => Auth::None,
    };
    bmc.seen.push(Seen {
        method: method.to_string(),
        path: uri.path().to_owned(),
        auth: auth.clone(),
        if_match: headers
            .get("If-Match")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
    });
    auth
}

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        Json(json!({"error": {"code": "Base.1.8.NoValidSession", "message": "no valid session"}})),
    )
        .into_response()
}

/// Records the request; whether it carries a live session or the basic credentials.
fn authorized(state: &Mutex<Bmc>, method: &Method, uri: &Uri, headers: &HeaderMap) -> bool {
    let mut bmc = state.lock().unwrap();
    matches!(
        authenticate(&mut bmc, method, uri, headers),
        Auth::Token | Auth::Basic
    )
}

async fn root(State(state): Shared, method: Method, uri: Uri, headers: HeaderMap) -> Response {
    authenticate(&mut state.lock().unwrap(), &method, &uri, &headers);
    Json(json!({
        "@odata.id": "/redfish/v1/",
        "Id": "RootService",
        "RedfishVersion": "1.15.0",
        "Systems": {"@odata.id": "/redfish/v1/Systems"},
        "SessionService": {"@odata.id": "/redfish/v1/SessionService"},
        "Links": {"Sessions": {"@odata.id": "/redfish/v1/SessionService/Sessions"}}
    }))
    .into_response()
}

async fn open(
    State(state): Shared,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let mut bmc = state.lock().unwrap();
    authenticate(&mut bmc, &method, &uri, &headers);
    if !bmc.knobs.session_service {
        return (StatusCode::NOT_FOUND, "no session service").into_response();
    }
    if body["UserName"] != USER || body["Password"] != PASSWORD {
        return unauthorized();
    }
    bmc.next += 1;
    bmc.opened += 1;
    let id = format!("s{}", bmc.next);
    let token = format!("token-{}-{}", bmc.next, std::process::id());
    bmc.sessions.insert(token.clone(), id.clone());
    let location = format!("/redfish/v1/SessionService/Sessions/{id}");
    (
        StatusCode::CREATED,
        [("X-Auth-Token", token), ("Location", location.clone())],
        Json(json!({"@odata.id": location, "Id": id, "UserName": USER})),
    )
        .into_response()
}

async fn list(State(state): Shared, method: Method, uri: Uri, headers: HeaderMap) -> Response {
    if !authorized(&state, &method, &uri, &headers) {
        return unauthorized();
    }
    let bmc = state.lock().unwrap();
    let members: Vec<Value> = bmc
        .sessions
        .values()
        .map(|id| json!({"@odata.id": format!("/redfish/v1/SessionService/Sessions/{id}")}))
        .collect();
    Json(json!({"Members": members, "Members@odata.count": members.len()})).into_response()
}

async fn close(
    State(state): Shared,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if !authorized(&state, &method, &uri, &headers) {
        return unauthorized();
    }
    let mut bmc = state.lock().unwrap();
    let before = bmc.sessions.len();
    bmc.sessions.retain(|_, session| *session != id);
    if bmc.sessions.len() == before {
        return StatusCode::NOT_FOUND.into_response();
    }
    bmc.deleted += 1;
    StatusCode::NO_CONTENT.into_response()
}

async fn systems(State(state): Shared, method: Method, uri: Uri, headers: HeaderMap) -> Response {
    if !authorized(&state, &method, &uri, &headers) {
        return unauthorized();
    }
    let slow = {
        let mut bmc = state.lock().unwrap();
        if bmc.knobs.unavailable > 0 {
            bmc.knobs.unavailable -= 1;
            return (StatusCode::SERVICE_UNAVAILABLE, "busy").into_response();
        }
        bmc.knobs.slow
    };
    tokio::time::sleep(slow).await;
    Json(json!({"Members": [{"@odata.id": "/redfish/v1/Systems/1"}]})).into_response()
}

async fn system(State(state): Shared, method: Method, uri: Uri, headers: HeaderMap) -> Response {
    if !authorized(&state, &method, &uri, &headers) {
        return unauthorized();
    }
    let bmc = state.lock().unwrap();
    let mut boot = bmc.boot.clone();
    boot["BootSourceOverrideTarget@Redfish.AllowableValues"] = json!(["Pxe", "Hdd", "Cd"]);
    (
        [("ETag", format!("W/\"{}\"", bmc.etag))],
        Json(json!({
            "@odata.id": "/redfish/v1/Systems/1",
            "Id": "1",
            "PowerState": "On",
            "Boot": boot,
            "Actions": {"#ComputerSystem.Reset": {
                "target": "/redfish/v1/Systems/1/Actions/ComputerSystem.Reset",
                "ResetType@Redfish.AllowableValues": ["On", "ForceOff", "ForceRestart"]
            }}
        })),
    )
        .into_response()
}

async fn patch_system(
    State(state): Shared,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if !authorized(&state, &method, &uri, &headers) {
        return unauthorized();
    }
    let mut bmc = state.lock().unwrap();
    let current = [format!("W/\"{}\"", bmc.etag), format!("\"{}\"", bmc.etag)];
    if let Some(tag) = headers.get("If-Match").and_then(|v| v.to_str().ok()) {
        if !current.iter().any(|c| c == tag) {
            return StatusCode::PRECONDITION_FAILED.into_response();
        }
    }
    if let Some(fields) = body["Boot"].as_object() {
        for (key, value) in fields {
            bmc.boot[key] = value.clone();
        }
    }
    bmc.etag += 1;
    StatusCode::NO_CONTENT.into_response()
}

async fn reset(State(state): Shared, method: Method, uri: Uri, headers: HeaderMap) -> Response {
    if !authorized(&state, &method, &uri, &headers) {
        return unauthorized();
    }
    StatusCode::NO_CONTENT.into_response()
}
