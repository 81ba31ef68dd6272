//! HTTP boot: the files under one root (iPXE scripts, kernels, ramdisks,
//! images) served read-only, streamed, with single byte ranges, and traced
//! per client.
//!
//! Only regular files whose real path stays inside the root are served;
//! `..`, and links that lead out of the root, get 404 like a missing file so
//! that nothing outside is probed.

use std::io::SeekFrom;
use std::net::SocketAddr;
use std::path::{Component, Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::SystemTime;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use futures_core::Stream;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio_util::io::ReaderStream;

use crate::trace::{Client, Event, EventKind, TraceSink};

/// Bytes read from disk per chunk of a response.
const CHUNK: usize = 256 * 1024;

#[derive(Clone)]
struct Served {
    root: Arc<PathBuf>,
    trace: Arc<dyn TraceSink>,
}

/// A router serving `root` at `/`. Serve it with
/// `into_make_service_with_connect_info::<SocketAddr>()` so that traces
/// know the client.
pub fn router(root: PathBuf, trace: Arc<dyn TraceSink>) -> Router {
    Router::new().fallback(serve_file).with_state(Served {
        root: Arc::new(root),
        trace,
    })
}

/// Serves `root` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    root: PathBuf,
    trace: Arc<dyn TraceSink>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(root, trace).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

async fn serve_file(
    State(served): State<Served>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let path = uri.path().to_owned();
    let report = |kind: EventKind| {
        served.trace.record(Event {
            at: SystemTime::now(),
            client: Client::Address(peer.ip()),
            kind,
        })
    };
    let failed = |error: String| EventKind::FileFailed {
        protocol: "http",
        path: path.clone(),
        bytes: 0,
        error,
    };
    if method != Method::GET && method != Method::HEAD {
        report(failed(format!("method {method} refused")));
        return (
            StatusCode::METHOD_NOT_ALLOWED,
            [(header::ALLOW, "GET, HEAD")],
        )
            .into_response();
    }
    let file = match open_inside(&served.root, &path).await {
        Ok(file) => file,
        Err(reason) => {
            report(failed(reason.to_owned()));
            return (StatusCode::NOT_FOUND, "not found\n").into_response();
        }
    };
    let (file, size) = file;
    let range = match headers
        .get(header::RANGE)
        .map(|v| parse_range(v.as_bytes(), size))
    {
        None | Some(RangeAsk::Ignored) => None,
        Some(RangeAsk::Satisfiable(first, last)) => Some((first, last)),
        Some(RangeAsk::Unsatisfiable) => {
            report(failed(format!("range outside the file's {size} bytes")));
            return (
                StatusCode::RANGE_NOT_SATISFIABLE,
                [(header::CONTENT_RANGE, format!("bytes */{size}"))],
            )
                .into_response();
        }
    };
    respond(
        file,
        size,
        range,
        method == Method::HEAD,
        path,
        peer,
        served.trace.clone(),
    )
    .await
}

async fn respond(
    mut file: tokio::fs::File,
    size: u64,
    range: Option<(u64, u64)>,
    head_only: bool,
    path: String,
    peer: SocketAddr,
    trace: Arc<dyn TraceSink>,
) -> Response {
    let (status, first, length) = match range {
        Some((first, last)) => (StatusCode::PARTIAL_CONTENT, first, last - first + 1),
        None => (StatusCode::OK, 0, size),
    };
    let mut builder = Response::builder()
        .status(status)
        .header(header::CONTENT_LENGTH, length)
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::CONTENT_TYPE, content_type(&path));
    if let Some((first, last)) = range {
        builder = builder.header(
            header::CONTENT_RANGE,
            format!("bytes {first}-{last}/{size}"),
        );
    }
    if head_only {
        return builder
            .body(Body::empty())
            .unwrap_or_else(|_| internal_error());
    }
    if first > 0 {
        if let Err(e) = file.seek(SeekFrom::Start(first)).await {
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("cannot seek: {e}\n"),
            )
                .into_response();
        }
    }
    let label = match range {
        Some((first, last)) => format!("{path} (bytes {first}-{last})"),
        None => path,
    };
    let stream = Counted {
        inner: ReaderStream::with_capacity(file.take(length), CHUNK),
        expected: length,
        sent: 0,
        path: label,
        peer,
        trace,
        reported: false,
    };
    builder
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| internal_error())
}

fn internal_error() -> Response {
    StatusCode::INTERNAL_SERVER_ERROR.into_response()
}

/// Opens the regular file at URL path `path` under `root`, refusing
/// anything that leaves it.
async fn open_inside(root: &Path, path: &str) -> Result<(tokio::fs::File, u64), &'static str> {
    let relative = relative_path(path).ok_or("path leaves the root")?;
    let real_root = tokio::fs::canonicalize(root)
        .await
        .map_err(|_| "the HTTP root is missing")?;
    let real = tokio::fs::canonicalize(real_root.join(relative))
        .await
        .map_err(|_| "no such file")?;
    if !real.starts_with(&real_root) {
        return Err("link leads out of the root");
    }
    let file = tokio::fs::File::open(&real)
        .await
        .map_err(|_| "cannot open the file")?;
    let meta = file.metadata().await.map_err(|_| "cannot read the file")?;
    if !meta.is_file() {
        return Err("not a regular file");
    }
    Ok((file, meta.len()))
}

/// The percent-decoded URL path as a relative path of normal components.
fn relative_path(path: &str) -> Option<PathBuf> {
    let decoded = percent_decode(path.trim_start_matches('/'))?;
    if decoded.is_empty() || decoded.contains('\0') || decoded.contains('\\') {
        return None;
    }
    let relative = PathBuf::from(decoded);
    relative
        .components()
        .all(|c| matches!(c, Component::Normal(_)))
        .then_some(relative)
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[derive(Debug, PartialEq, Eq)]
enum RangeAsk {
    /// Not a single byte range this server honours: the whole file.
    Ignored,
    Satisfiable(u64, u64),
    Unsatisfiable,
}

/// Reads a `Range` header against a file of `size` bytes (RFC 9110 14.2):
/// one range is honoured; several, or a malformed header, are ignored.
fn parse_range(value: &[u8], size: u64) -> RangeAsk {
    let Some(spec) = std::str::from_utf8(value)
        .ok()
        .and_then(|v| v.trim().strip_prefix("bytes="))
    else {
        return RangeAsk::Ignored;
    };
    if spec.contains(',') {
        return RangeAsk::Ignored;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return RangeAsk::Ignored;
    };
    let number = |s: &str| s.trim().parse::<u64>().ok();
    match (first.trim().is_empty(), last.trim().is_empty()) {
        (true, true) => RangeAsk::Ignored,
        (true, false) => match number(last) {
            Some(0) => RangeAsk::Unsatisfiable,
            Some(_) if size == 0 => RangeAsk::Unsatisfiable,
            Some(suffix) => RangeAsk::Satisfiable(size.saturating_sub(suffix), size - 1),
            None => RangeAsk::Ignored,
        },
        (false, open_end) => {
            let Some(first) = number(first) else {
                return RangeAsk::Ignored;
            };
            let last = if open_end {
                Some(u64::MAX)
            } else {
                number(last)
            };
            match last {
                None => RangeAsk::Ignored,
                Some(last) if last < first => RangeAsk::Ignored,
                Some(_) if first >= size => RangeAsk::Unsatisfiable,
                Some(last) => RangeAsk::Satisfiable(first, last.min(size - 1)),
            }
        }
    }
}

fn content_type(path: &str) -> &'static str {
    let name = path.rsplit('/').next().unwrap_or(path);
    if name.ends_with(".ipxe") || name == "config" || name.ends_with(".cfg") {
        "text/plain; charset=utf-8"
    } else {
        "application/octet-stream"
    }
}

/// A file body that reports, when it ends or is dropped, how many bytes
/// went out.
struct Counted<S> {
    inner: S,
    expected: u64,
    sent: u64,
    path: String,
    peer: SocketAddr,
    trace: Arc<dyn TraceSink>,
    reported: bool,
}

impl<S> Counted<S> {
    fn report(&mut self, error: Option<String>) {
        if self.reported {
            return;
        }
        self.reported = true;
        let kind = match error {
            None => EventKind::FileServed {
                protocol: "http",
                path: self.path.clone(),
                bytes: self.sent,
            },
            Some(error) => EventKind::FileFailed {
                protocol: "http",
                path: self.path.clone(),
                bytes: self.sent,
                error,
            },
        };
        self.trace.record(Event {
            at: SystemTime::now(),
            client: Client::Address(self.peer.ip()),
            kind,
        });
    }
}

impl<S> Stream for Counted<S>
where
    S: Stream<Item = std::io::Result<Bytes>> + Unpin,
{
    type Item = std::io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let polled = Pin::new(&mut self.inner).poll_next(cx);
        match &polled {
            Poll::Ready(Some(Ok(chunk))) => {
                self.sent += chunk.len() as u64;
                // The server may stop polling once Content-Length is met.
                if self.sent >= self.expected {
                    self.report(None);
                }
            }
            Poll::Ready(Some(Err(e))) => {
                let error = format!("read failed: {e}");
                self.report(Some(error));
            }
            Poll::Ready(None) if self.sent < self.expected => {
                let error = format!("file shrank to {} of {} bytes", self.sent, self.expected);
                self.report(Some(error));
            }
            Poll::Ready(None) => self.report(None),
            Poll::Pending => {}
        }
        polled
    }
}

impl<S> Drop for Counted<S> {
    fn drop(&mut self) {
        if !self.reported && self.sent >= self.expected {
            self.report(None);
        } else if !self.reported {
            self.report(Some("the client went away".into()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_read_as_rfc_9110_says() {
        use RangeAsk::*;
        let cases: &[(&str, RangeAsk)] = &[
            ("bytes=0-99", Satisfiable(0, 99)),
            ("bytes=100-", Satisfiable(100, 999)),
            ("bytes=-10", Satisfiable(990, 999)),
            ("bytes=-5000", Satisfiable(0, 999)),
            ("bytes=900-5000", Satisfiable(900, 999)),
            ("bytes=1000-", Unsatisfiable),
            ("bytes=-0", Unsatisfiable),
            ("bytes=5-1", Ignored),
            ("bytes=0-1,5-6", Ignored),
            ("items=0-1", Ignored),
            ("bytes=a-b", Ignored),
            ("bytes=-", Ignored),
        ];
        for (header, want) in cases {
            assert_eq!(&parse_range(header.as_bytes(), 1000), want, "{header}");
        }
        assert_eq!(parse_range(b"bytes=0-", 0), Unsatisfiable);
    }

    #[test]
    fn paths_that_leave_the_root_are_refused() {
        for bad in [
            "/",
            "/../etc/passwd",
            "/a/../../b",
            "/%2e%2e/x",
            "/a\\b",
            "/a%00b",
            "/%zz",
            "/./a",
        ] {
            assert_eq!(relative_path(bad), None, "{bad}");
        }
        assert_eq!(
            relative_path("/node/config"),
            Some(PathBuf::from("node/config"))
        );
        assert_eq!(relative_path("/a%20b"), Some(PathBuf::from("a b")));
    }
}
