//! Shared by the `stream_*` tests: a local HTTP file server with Range support and fault
//! knobs, qemu tool helpers, and target files.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use ferric_image::{FetchOptions, Fetcher};
use sha2::Digest;

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Logged {
    pub path: String,
    pub range: Option<String>,
    pub if_range: Option<String>,
    pub status: u16,
    /// The client's address: one per TCP connection.
    pub peer: SocketAddr,
}

#[derive(Clone)]
struct File {
    bytes: Arc<Vec<u8>>,
    version: u32,
}

/// Fault knobs; each "once" knob is consumed by the first response it applies to.
#[derive(Default)]
pub struct Knobs {
    /// Cut the next response's body after this many bytes.
    pub cut_once: Mutex<Option<u64>>,
    /// Cut every response's body after this many bytes.
    pub cut_always: Mutex<Option<u64>>,
    /// Answer 500 this many times.
    pub fail_500: AtomicU32,
    /// From the next request on, serve these bytes (a new version, new validators).
    pub change_on_next_request: Mutex<Option<Vec<u8>>>,
    /// After this many bytes of the next response, pause this long.
    pub stall_once: Mutex<Option<(u64, Duration)>>,
    /// Pause before each 64 KiB piece.
    pub piece_delay: Mutex<Option<Duration>>,
    pub no_validators: AtomicBool,
    /// Send Last-Modified but no ETag.
    pub last_modified_only: AtomicBool,
    pub ignore_range: AtomicBool,
    pub no_length: AtomicBool,
}

#[derive(Default)]
struct ServerState {
    files: Mutex<HashMap<String, File>>,
    log: Mutex<Vec<Logged>>,
    knobs: Knobs,
}

pub struct TestServer {
    pub addr: SocketAddr,
    state: Arc<ServerState>,
}

impl TestServer {
    pub async fn start() -> Self {
        let state = Arc::new(ServerState::default());
        let app = axum::Router::new()
            .fallback(serve)
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = app.into_make_service_with_connect_info::<SocketAddr>();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        TestServer { addr, state }
    }

    pub fn put(&self, path: &str, bytes: Vec<u8>) {
        let file = File {
            bytes: Arc::new(bytes),
            version: 1,
        };
        self.state
            .files
            .lock()
            .unwrap()
            .insert(path.to_string(), file);
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn knobs(&self) -> &Knobs {
        &self.state.knobs
    }

    pub fn requests(&self) -> Vec<Logged> {
        self.state.log.lock().unwrap().clone()
    }
}

fn validators(knobs: &Knobs, version: u32) -> (Option<String>, Option<String>) {
    if knobs.no_validators.load(Ordering::SeqCst) {
        return (None, None);
    }
    let modified = format!("Tue, 01 Dec 2026 00:00:{version:02} GMT");
    if knobs.last_modified_only.load(Ordering::SeqCst) {
        return (None, Some(modified));
    }
    (Some(format!("\"v{version}\"")), Some(modified))
}

fn parse_range(value: &str, len: u64) -> Option<(u64, u64)> {
    let spec = value.strip_prefix("bytes=")?;
    let (a, b) = spec.split_once('-')?;
    let start: u64 = a.parse().ok()?;
    let end = if b.is_empty() {
        len
    } else {
        b.parse::<u64>().ok()? + 1
    };
    (start < end && end <= len).then_some((start, end))
}

async fn serve(
    State(st): State<Arc<ServerState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
) -> Response {
    let path = req.uri().path().to_string();
    let headers = req.headers();
    let get = |h: &HeaderMap, name| {
        h.get(name)
            .and_then(|v: &header::HeaderValue| v.to_str().ok())
            .map(str::to_string)
    };
    let range = get(headers, header::RANGE);
    let if_range = get(headers, header::IF_RANGE);
    if let Some(new) = st.knobs.change_on_next_request.lock().unwrap().take() {
        let mut files = st.files.lock().unwrap();
        let version = files.get(&path).map_or(1, |f| f.version + 1);
        files.insert(
            path.clone(),
            File {
                bytes: Arc::new(new),
                version,
            },
        );
    }
    let (status, response) = respond(&st, &path, range.as_deref(), if_range.as_deref());
    st.log.lock().unwrap().push(Logged {
        path,
        range,
        if_range,
        status,
        peer,
    });
    response
}

fn respond(
    st: &ServerState,
    path: &str,
    range: Option<&str>,
    if_range: Option<&str>,
) -> (u16, Response) {
    let knobs = &st.knobs;
    if knobs.fail_500.load(Ordering::SeqCst) > 0 {
        knobs.fail_500.fetch_sub(1, Ordering::SeqCst);
        return (500, status_only(StatusCode::INTERNAL_SERVER_ERROR));
    }
    let Some(file) = st.files.lock().unwrap().get(path).cloned() else {
        return (404, status_only(StatusCode::NOT_FOUND));
    };
    let len = file.bytes.len() as u64;
    let (etag, modified) = validators(knobs, file.version);
    let current = etag.clone().or(modified.clone());
    let guard_ok = if_range.is_none_or(|v| Some(v) == current.as_deref());
    let partial = range
        .filter(|_| guard_ok && !knobs.ignore_range.load(Ordering::SeqCst))
        .and_then(|r| parse_range(r, len));
    let (status, start, end) = match partial {
        Some((s, e)) => (StatusCode::PARTIAL_CONTENT, s, e),
        None => (StatusCode::OK, 0, len),
    };
    let mut builder = Response::builder()
        .status(status)
        .header(header::ACCEPT_RANGES, "bytes");
    if let Some(e) = etag {
        builder = builder.header(header::ETAG, e);
    }
    if let Some(m) = modified {
        builder = builder.header(header::LAST_MODIFIED, m);
    }
    if status == StatusCode::PARTIAL_CONTENT {
        builder = builder.header(
            header::CONTENT_RANGE,
            format!("bytes {start}-{}/{len}", end - 1),
        );
    }
    if !knobs.no_length.load(Ordering::SeqCst) {
        builder = builder.header(header::CONTENT_LENGTH, end - start);
    }
    let cut = knobs
        .cut_once
        .lock()
        .unwrap()
        .take()
        .or(*knobs.cut_always.lock().unwrap());
    let stall = knobs.stall_once.lock().unwrap().take();
    let delay = *knobs.piece_delay.lock().unwrap();
    let body = body_stream(file.bytes, start, end, cut, stall, delay);
    (status.as_u16(), builder.body(body).unwrap())
}

fn status_only(status: StatusCode) -> Response {
    Response::builder()
        .status(status)
        .body(Body::empty())
        .unwrap()
}

fn body_stream(
    bytes: Arc<Vec<u8>>,
    start: u64,
    end: u64,
    cut: Option<u64>,
    stall: Option<(u64, Duration)>,
    delay: Option<Duration>,
) -> Body {
    const PIECE: u64 = 64 * 1024;
    let state = (start, 0u64, stall);
    let stream = futures_util::stream::unfold(state, move |(pos, sent, stall)| {
        let bytes = bytes.clone();
        async move {
            if pos >= end {
                return None;
            }
            if cut.is_some_and(|c| sent >= c) {
                // Let the server flush what it has, so the cut falls inside the body.
                tokio::time::sleep(Duration::from_millis(30)).await;
                let err =
                    std::io::Error::new(std::io::ErrorKind::ConnectionReset, "cut by the test");
                return Some((Err(err), (end, sent, None)));
            }
            let mut stall = stall;
            if let Some((after, pause)) = stall {
                if sent >= after {
                    tokio::time::sleep(pause).await;
                    stall = None;
                }
            }
            if let Some(d) = delay {
                tokio::time::sleep(d).await;
            }
            let mut take = PIECE.min(end - pos);
            if let Some(c) = cut {
                take = take.min(c - sent);
            }
            if let Some((after, _)) = stall {
                if after > sent {
                    take = take.min(after - sent);
                }
            }
            let piece = Bytes::copy_from_slice(&bytes[pos as usize..(pos + take) as usize]);
            Some((Ok(piece), (pos + take, sent + take, stall)))
        }
    });
    Body::from_stream(stream)
}

/// A fetcher with short timeouts and back-off, for tests.
pub fn quick_fetcher() -> Fetcher {
    Fetcher::new(FetchOptions {
        connect_timeout: Duration::from_secs(2),
        read_timeout: Duration::from_millis(700),
        retries: 3,
        retry_delay: Duration::from_millis(10),
        max_retry_delay: Duration::from_millis(50),
        ..FetchOptions::default()
    })
    .unwrap()
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub fn md5_hex(bytes: &[u8]) -> String {
    md5::Md5::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub fn sha512_hex(bytes: &[u8]) -> String {
    sha2::Sha512::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Bytes that are not all zeros and differ from block to block.
pub fn patterned(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| {
            ((i / 251) as u8)
                .wrapping_mul(31)
                .wrapping_add(i as u8)
                .wrapping_add(seed)
                | 1
        })
        .collect()
}

/// A target file of `len` bytes filled with `fill`.
pub fn target_file(dir: &Path, name: &str, len: usize, fill: u8) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, vec![fill; len]).unwrap();
    path
}

pub fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("tool runs");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `qemu-img convert -O raw` of a file, read back.
pub fn qemu_raw(image: &Path) -> Vec<u8> {
    let raw = image.with_extension("raw");
    run(Command::new("qemu-img")
        .args(["convert", "-O", "raw"])
        .arg(image)
        .arg(&raw));
    std::fs::read(raw).unwrap()
}
