//! The command API on axum, with IPA's routes, token check and error
//! bodies (see [`ferric_ipa::command`]), served over plain HTTP or TLS.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use ferric_ipa::command::{
    AgentStatusInfo, CommandList, CommandQuery, CommandRequest, MAX_BODY_BYTES,
};
use ferric_ipa::{AgentFault, Command};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use serde_json::{json, Value};
use tokio::net::TcpListener;

use crate::agent::{Agent, VERSION};

const MEDIA_TYPE: &str = "application/vnd.openstack.ironic-python-agent.v1+json";
const DOCS_URL: &str = "https://docs.openstack.org/ironic-python-agent";

/// An error answer.
pub struct Fault(pub AgentFault);

impl IntoResponse for Fault {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.0.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, Json(self.0)).into_response()
    }
}

impl From<ferric_ipa::RestError> for Fault {
    fn from(error: ferric_ipa::RestError) -> Self {
        Self(AgentFault::from(error))
    }
}

/// The router.
pub fn router(agent: Arc<Agent>) -> Router {
    let commands = || {
        get(list_commands)
            .post(run_command)
            .fallback(method_not_allowed)
    };
    let one = || get(get_command).fallback(method_not_allowed);
    let status = || get(status).fallback(method_not_allowed);
    Router::new()
        .route("/", get(root).fallback(method_not_allowed))
        .route("/v1", get(v1).fallback(method_not_allowed))
        .route("/v1/", get(v1).fallback(method_not_allowed))
        .route("/v1/status", status())
        .route("/status", status())
        .route("/v1/commands", commands())
        .route("/v1/commands/", commands())
        .route("/commands", commands())
        .route("/commands/", commands())
        .route("/v1/commands/{id}", one())
        .route("/commands/{id}", one())
        .fallback(|| async { Fault(AgentFault::route_not_found()) })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(agent)
}

async fn method_not_allowed() -> Fault {
    Fault(AgentFault::method_not_allowed())
}

fn url_root(headers: &HeaderMap, agent: &Agent) -> String {
    let host = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    let tls = agent.serving_tls.load(std::sync::atomic::Ordering::Relaxed);
    format!("{}://{host}", if tls { "https" } else { "http" })
}

fn version_doc(url: &str) -> Value {
    json!({
        "id": "v1",
        "links": [
            {"href": format!("{url}/v1/"), "rel": "self"},
            {"href": DOCS_URL, "rel": "describedby", "type": "text/html"}
        ]
    })
}

async fn root(State(agent): State<Arc<Agent>>, headers: HeaderMap) -> Json<Value> {
    let url = url_root(&headers, &agent);
    Json(json!({
        "name": "OpenStack Ironic Python Agent API",
        "description": "Ironic Python Agent is a provisioning agent for OpenStack Ironic",
        "versions": [version_doc(&url)],
        "default_version": version_doc(&url),
    }))
}

async fn v1(State(agent): State<Arc<Agent>>, headers: HeaderMap) -> Json<Value> {
    let url = url_root(&headers, &agent);
    let link = |rel: &str, path: &str| json!({"href": format!("{url}{path}"), "rel": rel});
    let mut doc = version_doc(&url);
    if let Some(map) = doc.as_object_mut() {
        map.insert(
            "commands".into(),
            json!([link("self", "/v1/commands"), link("bookmark", "/commands")]),
        );
        map.insert(
            "status".into(),
            json!([link("self", "/v1/status"), link("bookmark", "/status")]),
        );
        map.insert(
            "media_types".into(),
            json!([{"base": "application/json", "type": MEDIA_TYPE}]),
        );
    }
    Json(doc)
}

async fn status(State(agent): State<Arc<Agent>>) -> Json<AgentStatusInfo> {
    Json(AgentStatusInfo {
        started_at: Some(agent.started_at),
        version: VERSION.to_owned(),
    })
}

fn check_token(agent: &Agent, query: &CommandQuery) -> Result<(), Fault> {
    if agent.token_is_valid(query.agent_token.as_deref()) {
        Ok(())
    } else {
        Err(Fault(AgentFault::token_invalid()))
    }
}

async fn list_commands(
    State(agent): State<Arc<Agent>>,
    RawQuery(q): RawQuery,
) -> Result<Json<CommandList>, Fault> {
    check_token(
        &agent,
        &CommandQuery::parse(q.as_deref().unwrap_or_default()),
    )?;
    Ok(Json(CommandList {
        commands: agent.commands.list(),
    }))
}

async fn get_command(
    State(agent): State<Arc<Agent>>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, Fault> {
    let query = CommandQuery::parse(q.as_deref().unwrap_or_default());
    check_token(&agent, &query)?;
    let entry = agent.commands.get(&id).ok_or_else(|| {
        Fault::from(ferric_ipa::RestError::object_not_found(
            "Command Result",
            &id,
        ))
    })?;
    if query.wait {
        entry.wait().await;
    }
    Ok(Json(entry.snapshot()).into_response())
}

async fn run_command(
    State(agent): State<Arc<Agent>>,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Result<Response, Fault> {
    let query = CommandQuery::parse(q.as_deref().unwrap_or_default());
    check_token(&agent, &query)?;
    let request = CommandRequest::parse(&body).map_err(Fault)?;
    let command = Command::from_request(&request)?;
    tracing::info!(
        command = command.name(),
        wait = query.wait,
        "executing command"
    );
    let entry = crate::ext::execute(&agent, command).await?;
    if query.wait {
        entry.wait().await;
    }
    Ok(Json(entry.snapshot()).into_response())
}

/// Serves `router` on `listener` (TLS when `tls` is given) until the agent
/// shuts down.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    tls: Option<Arc<rustls::ServerConfig>>,
    agent: Arc<Agent>,
) {
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    agent
        .serving_tls
        .store(acceptor.is_some(), std::sync::atomic::Ordering::Relaxed);
    let mut shutdown = agent.shutdown.subscribe();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.wait_for(Option::is_some) => return,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                continue;
            }
        };
        let service = TowerToHyperService::new(router.clone());
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let http = hyper::server::conn::http1::Builder::new();
            let result = match acceptor {
                Some(acceptor) => match acceptor.accept(stream).await {
                    Ok(tls_stream) => {
                        http.serve_connection(TokioIo::new(tls_stream), service)
                            .await
                    }
                    Err(e) => {
                        tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        return;
                    }
                },
                None => http.serve_connection(TokioIo::new(stream), service).await,
            };
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
}
