//! The SessionService: `POST Sessions` with a BMC account's UserName and
//! Password makes a session (201, `X-Auth-Token`, `Location`) opening the
//! machines that account opens; sessions are listed, read and deleted, and
//! expire after 30 idle minutes. A machine's `max_sessions` fault caps the
//! sessions opening it.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use serde_json::{json, Value};

use super::{collection, json_object, redfish_json, Principal, RedfishError, Service};
use crate::config::constant_time_eq;

/// Idle sessions end after this long.
pub const SESSION_TIMEOUT: Duration = Duration::from_secs(30 * 60);

const SESSIONS: &str = "/redfish/v1/SessionService/Sessions";

struct Session {
    id: String,
    token: String,
    username: String,
    machines: Vec<usize>,
    last_used: Instant,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("id", &self.id)
            .field("token", &"***")
            .field("username", &self.username)
            .field("machines", &self.machines)
            .finish()
    }
}

/// The open Redfish sessions of every machine.
#[derive(Debug, Default)]
pub struct Sessions {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    next_id: u64,
    open: Vec<Session>,
}

impl Inner {
    fn expire(&mut self, now: Instant) {
        self.open
            .retain(|s| now.duration_since(s.last_used) < SESSION_TIMEOUT);
    }
}

/// A session as listed: its id and user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    pub id: String,
    pub username: String,
}

impl Sessions {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Opens a session unless one of its machines is at its limit
    /// (`limits`: each machine's index and cap). Returns the id and token.
    pub fn open(
        &self,
        username: &str,
        machines: Vec<usize>,
        limits: &[(usize, Option<usize>)],
        now: Instant,
    ) -> Option<(String, String)> {
        let mut inner = self.lock();
        inner.expire(now);
        let full = limits.iter().any(|(machine, cap)| {
            cap.is_some_and(|cap| {
                inner
                    .open
                    .iter()
                    .filter(|s| s.machines.contains(machine))
                    .count()
                    >= cap
            })
        });
        if full {
            return None;
        }
        inner.next_id += 1;
        let id = inner.next_id.to_string();
        let token: String = rand::random::<[u8; 24]>()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        inner.open.push(Session {
            id: id.clone(),
            token: token.clone(),
            username: username.to_string(),
            machines,
            last_used: now,
        });
        Some((id, token))
    }

    /// The principal of a token, if its session is open (and keeps it open).
    pub fn principal(&self, token: &[u8], now: Instant) -> Option<Principal> {
        let mut inner = self.lock();
        inner.expire(now);
        let session = inner
            .open
            .iter_mut()
            .find(|s| constant_time_eq(s.token.as_bytes(), token))?;
        session.last_used = now;
        Some(Principal {
            machines: session.machines.clone(),
        })
    }

    /// The sessions sharing a machine with `who`.
    pub fn visible(&self, who: &Principal) -> Vec<SessionInfo> {
        self.lock()
            .open
            .iter()
            .filter(|s| s.machines.iter().any(|m| who.machines.contains(m)))
            .map(|s| SessionInfo {
                id: s.id.clone(),
                username: s.username.clone(),
            })
            .collect()
    }

    /// Closes a session `who` can see; false if there is none.
    pub fn close(&self, id: &str, who: &Principal) -> bool {
        let mut inner = self.lock();
        let before = inner.open.len();
        inner
            .open
            .retain(|s| !(s.id == id && s.machines.iter().any(|m| who.machines.contains(m))));
        inner.open.len() != before
    }

    /// How many sessions open a machine.
    pub fn count_for(&self, machine: usize) -> usize {
        self.lock()
            .open
            .iter()
            .filter(|s| s.machines.contains(&machine))
            .count()
    }
}

pub fn routes() -> Router<Arc<Service>> {
    Router::new()
        .route("/redfish/v1/SessionService", get(service_doc))
        .route(SESSIONS, get(list).post(create))
        .route(
            "/redfish/v1/SessionService/Sessions/{id}",
            get(show).delete(delete),
        )
}

async fn service_doc() -> Response {
    redfish_json(json!({
        "@odata.type": "#SessionService.v1_1_8.SessionService",
        "@odata.id": "/redfish/v1/SessionService",
        "Id": "SessionService",
        "Name": "Session Service",
        "ServiceEnabled": true,
        "SessionTimeout": SESSION_TIMEOUT.as_secs(),
        "Sessions": { "@odata.id": SESSIONS },
    }))
}

fn session_json(info: &SessionInfo) -> Value {
    json!({
        "@odata.type": "#Session.v1_3_0.Session",
        "@odata.id": format!("{SESSIONS}/{}", info.id),
        "Id": info.id,
        "Name": "User Session",
        "UserName": info.username,
    })
}

async fn create(
    State(service): State<Arc<Service>>,
    body: Bytes,
) -> Result<Response, RedfishError> {
    let body = json_object(&body)?;
    let field = |key: &str| match body.get(key) {
        Some(Value::String(text)) => Ok(text.clone()),
        Some(_) => Err(RedfishError::property_type(key, "a string")),
        None => Err(RedfishError::parameter_missing("create a session", key)),
    };
    let username = field("UserName")?;
    let password = field("Password")?;
    let now = Instant::now();
    let machines = service
        .lab
        .login(username.as_bytes(), password.as_bytes(), now);
    if machines.is_empty() {
        return Err(RedfishError::unauthorized());
    }
    let limits: Vec<(usize, Option<usize>)> = machines
        .iter()
        .filter_map(|i| service.lab.at(*i))
        .map(|m| (m.index, m.faults().max_sessions))
        .collect();
    let Some((id, token)) = service.sessions.open(&username, machines, &limits, now) else {
        tracing::info!(user = %username, "session refused: limit reached");
        return Err(RedfishError::session_limit());
    };
    tracing::info!(user = %username, session = %id, "session created");
    let location = format!("{SESSIONS}/{id}");
    let mut response = (
        StatusCode::CREATED,
        redfish_json(session_json(&SessionInfo { id, username })),
    )
        .into_response();
    let headers = response.headers_mut();
    if let (Ok(token), Ok(location)) = (
        HeaderValue::from_str(&token),
        HeaderValue::from_str(&location),
    ) {
        headers.insert("X-Auth-Token", token);
        headers.insert(header::LOCATION, location);
    }
    Ok(response)
}

async fn list(
    State(service): State<Arc<Service>>,
    Extension(who): Extension<Principal>,
) -> Response {
    let members = service
        .sessions
        .visible(&who)
        .iter()
        .map(|s| format!("{SESSIONS}/{}", s.id))
        .collect();
    redfish_json(collection(
        "#SessionCollection.SessionCollection",
        SESSIONS,
        "Session Collection",
        members,
    ))
}

async fn show(
    State(service): State<Arc<Service>>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Response, RedfishError> {
    service
        .sessions
        .visible(&who)
        .iter()
        .find(|s| s.id == id)
        .map(|s| redfish_json(session_json(s)))
        .ok_or_else(|| RedfishError::not_found(&format!("session {id}")))
}

async fn delete(
    State(service): State<Arc<Service>>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<StatusCode, RedfishError> {
    if service.sessions.close(&id, &who) {
        tracing::info!(session = %id, "session deleted");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(RedfishError::not_found(&format!("session {id}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_open_find_and_close() {
        let sessions = Sessions::default();
        let now = Instant::now();
        let (id, token) = sessions.open("admin", vec![0], &[(0, None)], now).unwrap();
        let who = sessions.principal(token.as_bytes(), now).unwrap();
        assert_eq!(who.machines, vec![0]);
        assert!(sessions.principal(b"not-a-token", now).is_none());
        assert_eq!(sessions.visible(&who).len(), 1);
        let stranger = Principal { machines: vec![1] };
        assert!(!sessions.close(&id, &stranger));
        assert!(sessions.close(&id, &who));
        assert!(sessions.principal(token.as_bytes(), now).is_none());
    }

    #[test]
    fn a_cap_refuses_the_next_session_of_that_machine_only() {
        let sessions = Sessions::default();
        let now = Instant::now();
        for _ in 0..4 {
            assert!(sessions.open("a", vec![0], &[(0, Some(4))], now).is_some());
        }
        assert!(sessions.open("a", vec![0], &[(0, Some(4))], now).is_none());
        assert!(sessions.open("b", vec![1], &[(1, Some(4))], now).is_some());
        assert_eq!(sessions.count_for(0), 4);
    }

    #[test]
    fn idle_sessions_expire() {
        let sessions = Sessions::default();
        let now = Instant::now();
        let (_, token) = sessions.open("a", vec![0], &[], now).unwrap();
        let later = now + SESSION_TIMEOUT;
        assert!(sessions.principal(token.as_bytes(), later).is_none());
        assert_eq!(sessions.count_for(0), 0);
    }
}
