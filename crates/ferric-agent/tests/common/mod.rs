//! Test harness: a fake Ironic API (lookup/heartbeat recorder), an image
//! server, a copy of the fake /proc /sys /dev tree, and the agent binary
//! run against them. Everything listens on 127.0.0.1:0 and writes only
//! inside temp dirs.

#![allow(dead_code, clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Path as UrlPath, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

pub const NODE_UUID: &str = "fb1cf066-0b24-49b5-b8ce-4f1df789b019";
pub const TOKEN: &str = "sqY15qmSwFs7MZfTmgUwq_4g6mkGkwWfH2q8lBJM_PQ";

/// What the fake Ironic answers.
#[derive(Clone)]
pub struct IronicSetup {
    /// `default_version.version` of `GET /`.
    pub version: String,
    /// Lookups answered 404 before the real answer.
    pub failing_lookups: usize,
    /// `node.properties`.
    pub properties: Value,
    pub heartbeat_timeout: u64,
    /// Heartbeats answered 500 before they are accepted.
    pub failing_heartbeats: usize,
}

impl Default for IronicSetup {
    fn default() -> Self {
        Self {
            version: "1.67".into(),
            failing_lookups: 0,
            properties: json!({}),
            heartbeat_timeout: 300,
            failing_heartbeats: 0,
        }
    }
}

#[derive(Default)]
pub struct Recorded {
    pub lookups: Vec<(Instant, String, Option<String>)>,
    pub heartbeats: Vec<(Instant, Value, Option<String>)>,
}

#[derive(Clone)]
struct IronicState {
    setup: IronicSetup,
    recorded: Arc<Mutex<Recorded>>,
}

pub struct FakeIronic {
    pub addr: SocketAddr,
    pub recorded: Arc<Mutex<Recorded>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeIronic {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn version_header(headers: &HeaderMap) -> Option<String> {
    headers
        .get("x-openstack-ironic-api-version")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

async fn root(State(s): State<IronicState>) -> Json<Value> {
    let v = json!({"id": "v1", "links": [{"href": "http://127.0.0.1/v1/", "rel": "self"}], "status": "CURRENT", "min_version": "1.1", "version": s.setup.version});
    Json(
        json!({"name": "OpenStack Ironic API", "description": "fake", "default_version": v, "versions": [v]}),
    )
}

async fn lookup(
    State(s): State<IronicState>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    let count = {
        let mut r = s.recorded.lock().unwrap();
        r.lookups.push((
            Instant::now(),
            q.unwrap_or_default(),
            version_header(&headers),
        ));
        r.lookups.len()
    };
    if count <= s.setup.failing_lookups {
        let body = json!({"error_message": "{\"faultcode\": \"Client\", \"faultstring\": \"Resource could not be found.\", \"debuginfo\": null}"});
        return (StatusCode::NOT_FOUND, Json(body)).into_response();
    }
    let token = if count == s.setup.failing_lookups + 1 {
        TOKEN
    } else {
        "******"
    };
    let mut answer: Value = serde_json::from_str(include_str!(
        "../../../ferric-ipa/tests/fixtures/ironic-39-lookup.json"
    ))
    .unwrap();
    answer["config"]["agent_token"] = json!(token);
    answer["config"]["heartbeat_timeout"] = json!(s.setup.heartbeat_timeout);
    answer["node"]["properties"] = s.setup.properties.clone();
    Json(answer).into_response()
}

async fn heartbeat(
    State(s): State<IronicState>,
    UrlPath(uuid): UrlPath<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    assert_eq!(uuid, NODE_UUID);
    let count = {
        let mut r = s.recorded.lock().unwrap();
        r.heartbeats
            .push((Instant::now(), body, version_header(&headers)));
        r.heartbeats.len()
    };
    if count <= s.setup.failing_heartbeats {
        return (StatusCode::INTERNAL_SERVER_ERROR, "boom").into_response();
    }
    StatusCode::ACCEPTED.into_response()
}

impl FakeIronic {
    pub async fn start(setup: IronicSetup) -> Self {
        Self::start_on("127.0.0.1:0".parse().unwrap(), setup).await
    }

    pub async fn start_on(addr: SocketAddr, setup: IronicSetup) -> Self {
        let recorded = Arc::new(Mutex::new(Recorded::default()));
        let state = IronicState {
            setup,
            recorded: recorded.clone(),
        };
        let app = Router::new()
            .route("/", get(root))
            .route("/v1/lookup", get(lookup))
            .route("/v1/heartbeat/{uuid}", post(heartbeat))
            .with_state(state);
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self {
            addr,
            recorded,
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn heartbeats(&self) -> Vec<Value> {
        self.recorded
            .lock()
            .unwrap()
            .heartbeats
            .iter()
            .map(|h| h.1.clone())
            .collect()
    }

    /// Waits for `n` heartbeats and returns the last body.
    pub async fn wait_heartbeats(&self, n: usize, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(h) = self.recorded.lock().unwrap().heartbeats.get(n - 1) {
                return h.1.clone();
            }
            assert!(
                Instant::now() < deadline,
                "no heartbeat #{n} within {timeout:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Serves files from memory at `/NAME`; `/slow/NAME` trickles the body.
pub struct ImageServer {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ImageServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ImageServer {
    pub async fn start(files: Vec<(String, Vec<u8>)>) -> Self {
        let files = Arc::new(files);
        let find = |files: &[(String, Vec<u8>)], name: &str| {
            files
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, d)| d.clone())
        };
        let fast = files.clone();
        let slow = files.clone();
        let app = Router::new()
            .route(
                "/slow/{name}",
                get(move |UrlPath(name): UrlPath<String>| {
                    let data = find(&slow, &name);
                    async move {
                        let Some(data) = data else {
                            return StatusCode::NOT_FOUND.into_response();
                        };
                        let len = data.len();
                        let chunks: Vec<Vec<u8>> = data
                            .chunks(len.div_ceil(10).max(1))
                            .map(<[u8]>::to_vec)
                            .collect();
                        let stream = futures_util::stream::iter(chunks).then(|c| async move {
                            tokio::time::sleep(Duration::from_millis(150)).await;
                            Ok::<_, std::io::Error>(c)
                        });
                        Response::builder()
                            .header("content-length", len)
                            .body(Body::from_stream(stream))
                            .unwrap()
                    }
                }),
            )
            .route(
                "/{name}",
                get(move |UrlPath(name): UrlPath<String>| {
                    let data = find(&fast, &name);
                    async move {
                        match data {
                            Some(d) => d.into_response(),
                            None => StatusCode::NOT_FOUND.into_response(),
                        }
                    }
                }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self { addr, task }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}/{path}", self.addr)
    }
}

use futures_util::StreamExt;

/// Copies tests/fixtures/fakeroot into `dest`, symlinks kept.
pub fn copy_fake_root(dest: &Path) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fakeroot");
    copy_tree(&src, dest);
}

fn copy_tree(src: &Path, dest: &Path) {
    std::fs::create_dir_all(dest).unwrap();
    for entry in std::fs::read_dir(src).unwrap() {
        let entry = entry.unwrap();
        let target = dest.join(entry.file_name());
        let kind = entry.file_type().unwrap();
        if kind.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(entry.path()).unwrap(), &target).unwrap();
        } else if kind.is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// A sparse file of `size` bytes.
pub fn sparse_file(path: &Path, size: u64) {
    std::fs::File::create(path).unwrap().set_len(size).unwrap();
}

/// The running agent; killed when dropped.
pub struct AgentProcess {
    pub child: Child,
    pub started: Instant,
    pub log: PathBuf,
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl AgentProcess {
    pub fn spawn(dir: &Path, args: &[String]) -> Self {
        let log = dir.join("agent.log");
        let out = std::fs::File::create(&log).unwrap();
        let started = Instant::now();
        // FERRIC_AGENT_BIN lets a measurement run another build (release, static).
        let binary = std::env::var("FERRIC_AGENT_BIN")
            .unwrap_or_else(|_| env!("CARGO_BIN_EXE_ferric-agent").to_owned());
        let child = Command::new(binary)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        Self {
            child,
            started,
            log,
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

/// Arguments common to every run: the API, a free local port, fast
/// heartbeats and lookups, and the fake tree's /proc (empty cmdline).
pub fn base_args(api_url: &str, root: &Path) -> Vec<String> {
    [
        "--api-url",
        api_url,
        "--listen",
        "127.0.0.1:0",
        "--advertise-host",
        "127.0.0.1",
        "--lookup-interval",
        "0.1",
        "--lookup-timeout",
        "20",
        "--min-heartbeat-interval",
        "0.3",
        "--proc-root",
        &root.join("proc").to_string_lossy(),
        "--sys-root",
        &root.join("sys").to_string_lossy(),
        "--dev-root",
        &root.join("dev").to_string_lossy(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// A client of the agent's command API.
pub struct AgentApi {
    pub base: String,
    pub http: reqwest::Client,
}

impl AgentApi {
    pub fn new(callback_url: &str) -> Self {
        Self {
            base: callback_url.trim_end_matches('/').to_owned(),
            http: reqwest::Client::new(),
        }
    }

    pub async fn run(&self, name: &str, params: Value, wait: bool) -> (u16, Value) {
        let url = format!("{}/v1/commands/?wait={wait}&agent_token={TOKEN}", self.base);
        let resp = self
            .http
            .post(url)
            .json(&json!({"name": name, "params": params}))
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap())
    }

    pub async fn get(&self, path_and_query: &str) -> (u16, Value) {
        let resp = self
            .http
            .get(format!("{}{path_and_query}", self.base))
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// Polls a command until it is no longer RUNNING.
    pub async fn wait_done(&self, id: &str) -> Value {
        let (status, body) = self
            .get(&format!("/v1/commands/{id}?wait=true&agent_token={TOKEN}"))
            .await;
        assert_eq!(status, 200, "{body}");
        body
    }
}

/// Starts the fake Ironic and the agent, and waits for the first heartbeat.
pub async fn agent_with(
    setup: IronicSetup,
    dir: &Path,
    extra: &[&str],
) -> (FakeIronic, AgentProcess, AgentApi) {
    let root = dir.join("root");
    if !root.exists() {
        copy_fake_root(&root);
    }
    let ironic = FakeIronic::start(setup).await;
    let mut args = base_args(&ironic.url(), &root);
    args.extend(extra.iter().map(|s| s.to_string()));
    let agent = AgentProcess::spawn(dir, &args);
    let first = tokio::time::timeout(
        Duration::from_secs(20),
        ironic.wait_heartbeats(1, Duration::from_secs(20)),
    )
    .await;
    let Ok(first) = first else {
        panic!("no heartbeat; agent log:\n{}", agent.log_text())
    };
    let api = AgentApi::new(first["callback_url"].as_str().unwrap());
    (ironic, agent, api)
}

/// `params` for step commands.
pub fn node_params() -> Value {
    json!({"node": {"uuid": NODE_UUID, "properties": {}, "instance_info": {}, "driver_internal_info": {}}, "ports": []})
}
