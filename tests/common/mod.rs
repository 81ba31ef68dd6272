//! Starting the real `ferric` binary on a free loopback port and talking
//! to it over HTTP.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::blocking::{Client, Response};
use reqwest::Method;
use serde_json::Value;

pub const LATEST: &str = "1.115";

/// A running `ferric serve`, killed when dropped.
pub struct Server {
    child: Option<Child>,
    pub url: String,
    pub data_dir: PathBuf,
    config: PathBuf,
    _dir: Option<tempfile::TempDir>,
    client: Client,
}

impl Server {
    /// Starts on a fresh data directory with `config` (TOML) as its file.
    pub fn start(config: &str) -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let data_dir = dir.path().join("data");
        let config_path = dir.path().join("ferric.toml");
        std::fs::write(&config_path, config).expect("write config");
        let mut server = Server {
            child: None,
            url: String::new(),
            data_dir,
            config: config_path,
            _dir: Some(dir),
            client: Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("client"),
        };
        server.launch();
        server
    }

    fn launch(&mut self) {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ferric"))
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&self.data_dir)
            .arg("--config")
            .arg(&self.config)
            .env("FERRIC_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn ferric");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read listen line");
        let url = line
            .trim()
            .strip_prefix("ferric listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_owned();
        self.url = url;
        self.child = Some(child);
    }

    /// SIGKILL: no chance to clean up.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGKILL, then start again on the same data directory.
    pub fn restart_after_kill(&mut self) {
        self.kill();
        self.launch();
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or_default()
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    pub fn request(
        &self,
        method: Method,
        path: &str,
        version: Option<&str>,
        body: Option<&Value>,
    ) -> Response {
        let mut req = self.client.request(method, format!("{}{path}", self.url));
        if let Some(v) = version {
            req = req.header("X-OpenStack-Ironic-API-Version", v);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        req.send().expect("request")
    }

    /// A call at the newest version; returns status and JSON body (null
    /// when empty).
    pub fn call(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        self.call_at(LATEST, method, path, body)
    }

    /// [`Server::call`] at `version`.
    pub fn call_at(
        &self,
        version: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let resp = self.request(method, path, Some(version), body.as_ref());
        let status = resp.status().as_u16();
        let text = resp.text().expect("body");
        let json = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, json)
    }

    pub fn get(&self, path: &str) -> Value {
        let (status, body) = self.call(Method::GET, path, None);
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    pub fn post(&self, path: &str, body: Value) -> Value {
        let (status, out) = self.call(Method::POST, path, Some(body));
        assert_eq!(status, 201, "POST {path}: {out}");
        out
    }

    pub fn put(&self, path: &str, body: Value) -> u16 {
        self.call(Method::PUT, path, Some(body)).0
    }

    /// A node's provision state, polled until it is `state` (10 s at most).
    pub fn wait_state(&self, node: &str, state: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let n = self.get(&format!("/v1/nodes/{node}"));
            if n["provision_state"] == state && n["reservation"].is_null() {
                return n;
            }
            assert!(
                Instant::now() < deadline,
                "node {node} stuck in {} (last_error {})",
                n["provision_state"],
                n["last_error"]
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Moves a node through a verb and waits for the state it lands in.
    pub fn provision(&self, node: &str, target: &str, land: &str) -> Value {
        let status = self.put(
            &format!("/v1/nodes/{node}/states/provision"),
            serde_json::json!({"target": target}),
        );
        assert_eq!(status, 202, "{target} on {node}");
        self.wait_state(node, land)
    }

    pub fn create_node(&self, name: &str) -> Value {
        self.post(
            "/v1/nodes",
            serde_json::json!({"driver": "fake-hardware", "name": name}),
        )
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The inner fault of an Ironic error body.
pub fn fault(body: &Value) -> Value {
    let inner = body["error_message"]
        .as_str()
        .unwrap_or_else(|| panic!("not an error body: {body}"));
    serde_json::from_str(inner).expect("inner JSON")
}

pub fn faultstring(body: &Value) -> String {
    fault(body)["faultstring"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// A reference capture of Ironic 39's answers.
pub fn reference(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/ironic-39")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("fixture JSON")
}

/// Top-level keys of an object, sorted.
pub fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    k.sort();
    k
}
