//! `ferric boot trace MAC`: the last network-boot exchanges of a machine,
//! read from a running server at `GET /ferric/v1/boot/trace/{mac}` (an
//! endpoint of Ferric's own, beside Ironic's `/v1`).

use std::sync::Arc;

use anyhow::{bail, Context, Result};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use ferric_netboot::trace::{describe, Client, Event, EventKind, MacAddr, Recorder};
use serde_json::{json, Value};

/// The trace endpoint, for merging into the API's router.
pub fn router(trace: Arc<Recorder>) -> Router {
    Router::new()
        .route("/ferric/v1/boot/trace/{mac}", get(trace_of))
        .with_state(trace)
}

async fn trace_of(State(trace): State<Arc<Recorder>>, Path(mac): Path<String>) -> Response {
    let Some(mac) = MacAddr::parse(&mac) else {
        let body = json!({"error": format!("{mac:?} is not a MAC address")});
        return (StatusCode::BAD_REQUEST, Json(body)).into_response();
    };
    let events: Vec<Value> = trace.events_of(mac).iter().map(event_json).collect();
    Json(json!({"mac": mac.to_string(), "events": events})).into_response()
}

fn event_json(event: &Event) -> Value {
    let at: chrono::DateTime<chrono::Utc> = event.at.into();
    let client = match event.client {
        Client::Mac(mac) => mac.to_string(),
        Client::Address(ip) => ip.to_string(),
    };
    let kind = match &event.kind {
        EventKind::DhcpReceived { .. } => "dhcp_received",
        EventKind::DhcpSent { .. } => "dhcp_sent",
        EventKind::DhcpIgnored { .. } => "dhcp_ignored",
        EventKind::DhcpLease { .. } => "dhcp_lease",
        EventKind::FileServed { .. } => "file_served",
        EventKind::FileSizeAsked { .. } => "file_size_asked",
        EventKind::FileFailed { .. } => "file_failed",
    };
    json!({
        "at": at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "client": client,
        "kind": kind,
        "description": describe(&event.kind),
    })
}

#[derive(clap::Args)]
pub struct TraceArgs {
    /// The machine's MAC address.
    mac: String,
    /// The server's API URL.
    #[arg(long, env = "FERRIC_URL", default_value = "http://127.0.0.1:6385")]
    url: String,
    /// Print the server's JSON instead of lines.
    #[arg(long)]
    json: bool,
}

pub fn run(args: TraceArgs) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let body = runtime.block_on(fetch(&args))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&body)?);
        return Ok(());
    }
    let events = body["events"].as_array().cloned().unwrap_or_default();
    if events.is_empty() {
        println!(
            "no boot exchanges seen for {}",
            body["mac"].as_str().unwrap_or(&args.mac)
        );
        return Ok(());
    }
    for event in events {
        println!(
            "{}  {}",
            event["at"].as_str().unwrap_or("?"),
            event["description"].as_str().unwrap_or("?")
        );
    }
    Ok(())
}

async fn fetch(args: &TraceArgs) -> Result<Value> {
    let url = format!(
        "{}/ferric/v1/boot/trace/{}",
        args.url.trim_end_matches('/'),
        args.mac
    );
    let response = reqwest::get(&url)
        .await
        .with_context(|| format!("cannot reach {url}"))?;
    let status = response.status();
    let body: Value = response
        .json()
        .await
        .with_context(|| format!("{url} did not answer JSON"))?;
    if !status.is_success() {
        bail!(
            "{}",
            body["error"]
                .as_str()
                .unwrap_or("the server refused the request")
        );
    }
    Ok(body)
}
