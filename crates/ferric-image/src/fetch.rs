//! HTTP(S) downloads for images: one shared client (keep-alive reused), several URLs tried in
//! order, retries with back-off on connection errors and 5xx, timeouts on connect and on a
//! stalled read, and resume of a cut download with `Range` guarded by `If-Range`, so that a
//! file changed on the server is never stitched to the part already received.

use std::sync::OnceLock;
use std::time::Duration;

use bytes::Bytes;
use reqwest::header::{
    HeaderMap, HeaderValue, CONTENT_RANGE, ETAG, IF_RANGE, LAST_MODIFIED, RANGE,
};
use reqwest::StatusCode;
use tracing::{info, warn};

use crate::checksum::Hasher;
use crate::error::ImageError;

/// Timeouts, retries and TLS settings of a [`Fetcher`].
#[derive(Debug, Clone)]
pub struct FetchOptions {
    pub connect_timeout: Duration,
    /// How long a read may wait for the next bytes before the connection counts as stalled.
    pub read_timeout: Duration,
    /// Retries of one request (connection errors, 5xx, cuts) before giving up on a URL.
    pub retries: u32,
    /// First back-off delay; it doubles on each retry up to `max_retry_delay`.
    pub retry_delay: Duration,
    pub max_retry_delay: Duration,
    /// Accept any TLS certificate (IPA's `insecure`).
    pub insecure: bool,
    /// Extra trusted CA certificates, PEM.
    pub ca_pem: Option<Vec<u8>>,
}

impl Default for FetchOptions {
    fn default() -> Self {
        FetchOptions {
            connect_timeout: Duration::from_secs(30),
            read_timeout: Duration::from_secs(60),
            retries: 9,
            retry_delay: Duration::from_secs(1),
            max_retry_delay: Duration::from_secs(30),
            insecure: false,
            ca_pem: None,
        }
    }
}

/// The validator that guards a resumed request: a strong ETag, else Last-Modified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validator(HeaderValue);

impl Validator {
    fn of(headers: &HeaderMap) -> Option<Self> {
        let etag = headers
            .get(ETAG)
            .filter(|v| !v.as_bytes().starts_with(b"W/"));
        etag.or_else(|| headers.get(LAST_MODIFIED))
            .cloned()
            .map(Validator)
    }

    fn describe(&self) -> String {
        String::from_utf8_lossy(self.0.as_bytes()).into_owned()
    }
}

/// An HTTP client with its options; clone-free sharing through `&Fetcher`.
pub struct Fetcher {
    client: reqwest::Client,
    opts: FetchOptions,
}

static SHARED: OnceLock<Fetcher> = OnceLock::new();

impl Fetcher {
    pub fn new(opts: FetchOptions) -> Result<Self, ImageError> {
        let mut builder = reqwest::Client::builder()
            .connect_timeout(opts.connect_timeout)
            .danger_accept_invalid_certs(opts.insecure);
        if let Some(pem) = &opts.ca_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| ImageError::Client(format!("bad CA bundle: {e}")))?;
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        let client = builder
            .build()
            .map_err(|e| ImageError::Client(e.to_string()))?;
        Ok(Fetcher { client, opts })
    }

    /// The process-wide fetcher with default options.
    pub fn shared() -> Result<&'static Fetcher, ImageError> {
        if let Some(f) = SHARED.get() {
            return Ok(f);
        }
        let fetcher = Fetcher::new(FetchOptions::default())?;
        Ok(SHARED.get_or_init(|| fetcher))
    }

    pub fn options(&self) -> &FetchOptions {
        &self.opts
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.min(16));
        self.opts
            .retry_delay
            .saturating_mul(factor)
            .min(self.opts.max_retry_delay)
    }

    /// Downloads a small file whole (a checksum file, a config drive), at most `max` bytes.
    pub async fn bytes(&self, url: &str, max: u64) -> Result<Vec<u8>, ImageError> {
        let mut download = self
            .open(std::slice::from_ref(&url.to_string()), None)
            .await?;
        if download.total_len().is_some_and(|len| len > max) {
            return Err(ImageError::TooLarge {
                url: redact_url(url),
                max,
            });
        }
        let mut out = Vec::new();
        while let Some(chunk) = download.next_chunk().await? {
            if out.len() as u64 + chunk.len() as u64 > max {
                return Err(ImageError::TooLarge {
                    url: redact_url(url),
                    max,
                });
            }
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }

    /// Starts a download of the first URL that answers, hashing what it delivers.
    pub async fn open(
        &self,
        urls: &[String],
        hasher: Option<Hasher>,
    ) -> Result<Download<'_>, ImageError> {
        if urls.is_empty() {
            return Err(ImageError::Download("no image URL given".into()));
        }
        let mut failures = Vec::new();
        for url in urls {
            match self.get_with_retries(url, None).await {
                Ok(response) => return Ok(Download::new(self, url, response, 0, None, hasher)),
                Err(e) => {
                    warn!(url = %redact_url(url), error = %e, "image URL failed, trying the next");
                    failures.push(format!("{}: {e}", redact_url(url)));
                }
            }
        }
        Err(ImageError::Download(failures.join("; ")))
    }

    /// Starts a download of bytes `[start, end)` of a file whose validator is known: the
    /// server must answer 206 for exactly that range, or the file has changed.
    pub async fn open_range(
        &self,
        url: &str,
        validator: Option<&Validator>,
        start: u64,
        end: u64,
    ) -> Result<Download<'_>, ImageError> {
        let Some(validator) = validator else {
            return Err(ImageError::Download(format!(
                "{} must be read again in part, but the server sent no ETag or Last-Modified to guard it",
                redact_url(url)
            )));
        };
        let range = Some((start, end, validator.clone()));
        let response = self
            .get_with_retries(url, range.as_ref())
            .await
            .map_err(|e| failed(url, e))?;
        check_partial(url, &response, start, validator)?;
        let mut download = Download::new(self, url, response, start, Some(end), None);
        download.validator = Some(validator.clone());
        Ok(download)
    }

    /// A GET, retried on connection errors, timeouts and 5xx; `range` asks for part of a file.
    async fn get_with_retries(
        &self,
        url: &str,
        range: Option<&(u64, u64, Validator)>,
    ) -> Result<reqwest::Response, String> {
        let mut attempt = 0;
        loop {
            match self.get_once(url, range).await {
                Ok(response) => return Ok(response),
                Err(Failure::Fatal(msg)) => return Err(msg),
                Err(Failure::Retry(msg)) if attempt < self.opts.retries => {
                    let delay = self.backoff(attempt);
                    warn!(url = %redact_url(url), error = %msg, ?delay, attempt, "retrying");
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
                Err(Failure::Retry(msg)) => {
                    return Err(format!("{msg} (after {} retries)", self.opts.retries))
                }
            }
        }
    }

    async fn get_once(
        &self,
        url: &str,
        range: Option<&(u64, u64, Validator)>,
    ) -> Result<reqwest::Response, Failure> {
        let mut request = self.client.get(url);
        if let Some((start, end, validator)) = range {
            let header = match *end {
                u64::MAX => format!("bytes={start}-"),
                end => format!("bytes={start}-{}", end.saturating_sub(1)),
            };
            request = request
                .header(RANGE, header)
                .header(IF_RANGE, validator.0.clone());
        }
        let sent = tokio::time::timeout(
            self.opts.connect_timeout + self.opts.read_timeout,
            request.send(),
        )
        .await;
        let response = match sent {
            Err(_) => return Err(Failure::Retry("no response before the timeout".into())),
            Ok(Err(e)) => return Err(Failure::Retry(describe_reqwest(&e))),
            Ok(Ok(r)) => r,
        };
        let status = response.status();
        if status.is_success() {
            Ok(response)
        } else if status.is_server_error()
            || status == StatusCode::REQUEST_TIMEOUT
            || status == StatusCode::TOO_MANY_REQUESTS
        {
            Err(Failure::Retry(format!("server answered {status}")))
        } else {
            Err(Failure::Fatal(format!("server answered {status}")))
        }
    }
}

fn failed(url: &str, msg: String) -> ImageError {
    ImageError::Download(format!("{}: {msg}", redact_url(url)))
}

enum Failure {
    Retry(String),
    Fatal(String),
}

/// A reqwest error without the URL (it may carry a signature in its query).
fn describe_reqwest(e: &reqwest::Error) -> String {
    let kind = if e.is_connect() {
        "connection failed"
    } else if e.is_timeout() {
        "timed out"
    } else if e.is_body() || e.is_decode() {
        "connection cut while reading the body"
    } else {
        "request failed"
    };
    let mut source = std::error::Error::source(e);
    let mut detail = String::new();
    while let Some(s) = source {
        detail = s.to_string();
        source = s.source();
    }
    if detail.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}: {detail}")
    }
}

/// A URL fit for logs and errors: no user info, no query (temp URL signatures), no fragment.
pub fn redact_url(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let rest = rest.split(['?', '#']).next().unwrap_or("");
    let (authority, path) = rest.find('/').map_or((rest, ""), |i| rest.split_at(i));
    let host = authority.rsplit('@').next().unwrap_or(authority);
    let query_note = if url.contains('?') { "?…" } else { "" };
    if scheme.is_empty() {
        format!("{host}{path}{query_note}")
    } else {
        format!("{scheme}://{host}{path}{query_note}")
    }
}

fn parse_content_range(value: &str) -> Option<(u64, u64, Option<u64>)> {
    let spec = value.trim().strip_prefix("bytes ")?;
    let (range, total) = spec.split_once('/')?;
    let (first, last) = range.split_once('-')?;
    let total = if total == "*" {
        None
    } else {
        Some(total.parse().ok()?)
    };
    Some((first.parse().ok()?, last.parse().ok()?, total))
}

/// A 206 answer must start at `start`; a 200 means the If-Range validator no longer matched.
fn check_partial(
    url: &str,
    response: &reqwest::Response,
    start: u64,
    validator: &Validator,
) -> Result<(), ImageError> {
    let changed = |detail: String| ImageError::Changed {
        url: redact_url(url),
        detail,
    };
    if response.status() != StatusCode::PARTIAL_CONTENT {
        let now = Validator::of(response.headers());
        return Err(changed(match now {
            Some(now) if &now != validator => format!(
                "validator was {}, now {}",
                validator.describe(),
                now.describe()
            ),
            _ => format!(
                "the server answered {} to a range request",
                response.status()
            ),
        }));
    }
    let range = response
        .headers()
        .get(CONTENT_RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_content_range);
    match range {
        Some((first, _, _)) if first == start => Ok(()),
        _ => Err(changed(format!(
            "the server's Content-Range does not start at byte {start}"
        ))),
    }
}

/// One download in progress; resumes by itself when the connection is cut or stalls.
pub struct Download<'a> {
    fetcher: &'a Fetcher,
    url: String,
    response: Option<reqwest::Response>,
    /// Absolute file offset of the first byte asked for.
    start: u64,
    /// Absolute file offset of the next byte to deliver.
    pos: u64,
    /// Bytes already read that belong after `pos` (left over from skipping a prefix).
    pending_rest: Option<Bytes>,
    /// Absolute end expected (the file's length, or the end of the range asked for).
    end: Option<u64>,
    total_len: Option<u64>,
    validator: Option<Validator>,
    hasher: Option<Hasher>,
    resumes: u32,
    received: u64,
}

impl<'a> Download<'a> {
    fn new(
        fetcher: &'a Fetcher,
        url: &str,
        response: reqwest::Response,
        start: u64,
        end: Option<u64>,
        hasher: Option<Hasher>,
    ) -> Self {
        let length = response.content_length();
        let total_len = match end {
            Some(_) => None,
            None => length,
        };
        let validator = Validator::of(response.headers());
        Download {
            fetcher,
            url: url.to_string(),
            response: Some(response),
            start,
            pos: start,
            pending_rest: None,
            end: end.or(length.map(|l| start + l)),
            total_len,
            validator,
            hasher,
            resumes: 0,
            received: 0,
        }
    }

    /// The URL that answered.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The file's length from the first answer's Content-Length, when it had one.
    pub fn total_len(&self) -> Option<u64> {
        self.total_len
    }

    pub fn validator(&self) -> Option<&Validator> {
        self.validator.as_ref()
    }

    /// Bytes received over the network, resumed requests included.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// The hash of every byte delivered, in order.
    pub fn take_hasher(&mut self) -> Option<Hasher> {
        self.hasher.take()
    }

    /// The next bytes, in order, or `None` at the end; the end is checked against the
    /// announced length, and cuts and stalls are resumed up to the retry limit.
    pub async fn next_chunk(&mut self) -> Result<Option<Bytes>, ImageError> {
        loop {
            if let Some(rest) = self.pending_rest.take() {
                self.received -= rest.len() as u64;
                return Ok(Some(self.deliver(rest)));
            }
            let Some(response) = self.response.as_mut() else {
                return Ok(None);
            };
            let read = tokio::time::timeout(self.fetcher.opts.read_timeout, response.chunk()).await;
            let problem = match read {
                Ok(Ok(Some(chunk))) => return Ok(Some(self.deliver(chunk))),
                Ok(Ok(None)) => match self.end {
                    Some(end) if self.pos < end => {
                        format!("connection ended at byte {} of {end}", self.pos)
                    }
                    _ => {
                        self.response = None;
                        return Ok(None);
                    }
                },
                Ok(Err(e)) => describe_reqwest(&e),
                Err(_) => format!("no data for {:?} (stalled)", self.fetcher.opts.read_timeout),
            };
            self.response = None;
            self.resume(problem).await?;
        }
    }

    fn deliver(&mut self, mut chunk: Bytes) -> Bytes {
        if let Some(end) = self.end {
            let room = end.saturating_sub(self.pos);
            if chunk.len() as u64 > room {
                chunk.truncate(room as usize);
            }
        }
        self.pos += chunk.len() as u64;
        self.received += chunk.len() as u64;
        if let Some(h) = self.hasher.as_mut() {
            h.update(&chunk);
        }
        chunk
    }

    fn truncated(&self) -> ImageError {
        ImageError::Truncated {
            url: redact_url(&self.url),
            got: self.pos,
            expected: self.end.unwrap_or(self.pos),
        }
    }

    async fn resume(&mut self, problem: String) -> Result<(), ImageError> {
        if self.resumes >= self.fetcher.opts.retries {
            warn!(url = %redact_url(&self.url), %problem, "giving up on the download");
            return Err(self.truncated());
        }
        let delay = self.fetcher.backoff(self.resumes);
        self.resumes += 1;
        info!(url = %redact_url(&self.url), %problem, at = self.pos, ?delay, "resuming download");
        tokio::time::sleep(delay).await;
        let Some(validator) = self.validator.clone() else {
            return self.restart_and_skip(problem).await;
        };
        let range = (self.pos, self.end.unwrap_or(u64::MAX), validator.clone());
        let response = self
            .fetcher
            .get_with_retries(&self.url, Some(&range))
            .await
            .map_err(|e| failed(&self.url, e))?;
        if response.status() == StatusCode::OK
            && Validator::of(response.headers()).as_ref() == Some(&validator)
        {
            return self.skip_prefix(response).await;
        }
        check_partial(&self.url, &response, self.pos, &validator)?;
        self.response = Some(response);
        Ok(())
    }

    /// No validator: fetch from the start again, and accept it only if its prefix hashes the
    /// same as what was already delivered.
    async fn restart_and_skip(&mut self, problem: String) -> Result<(), ImageError> {
        if self.hasher.is_none() || self.end.is_none() {
            warn!(url = %redact_url(&self.url), %problem, "cannot resume safely");
            return Err(self.truncated());
        }
        let response = self
            .fetcher
            .get_with_retries(&self.url, None)
            .await
            .map_err(|e| failed(&self.url, e))?;
        self.skip_prefix(response).await
    }

    /// The server sent the whole file again: read past what was delivered, checking it is
    /// the same bytes when a hash of them is kept.
    async fn skip_prefix(&mut self, mut response: reqwest::Response) -> Result<(), ImageError> {
        let skip = self.pos;
        if self.start != 0 || response.content_length() != self.end {
            return Err(ImageError::Changed {
                url: redact_url(&self.url),
                detail: "the server ignored the range request and sent a different length".into(),
            });
        }
        let expected = self.hasher.clone().map(Hasher::finish_hex);
        let mut again = self.hasher.as_ref().map(|h| Hasher::new(h.algorithm()));
        let mut seen = 0u64;
        while seen < skip {
            let chunk = tokio::time::timeout(self.fetcher.opts.read_timeout, response.chunk())
                .await
                .map_err(|_| self.truncated())?
                .map_err(|_| self.truncated())?
                .ok_or_else(|| self.truncated())?;
            let take = (skip - seen).min(chunk.len() as u64) as usize;
            if let Some(h) = again.as_mut() {
                h.update(&chunk[..take]);
            }
            seen += take as u64;
            self.received += chunk.len() as u64;
            if take < chunk.len() {
                return self.finish_skip(response, expected, again, chunk.slice(take..));
            }
        }
        self.finish_skip(response, expected, again, Bytes::new())
    }

    fn finish_skip(
        &mut self,
        response: reqwest::Response,
        expected: Option<String>,
        again: Option<Hasher>,
        rest: Bytes,
    ) -> Result<(), ImageError> {
        if expected != again.map(Hasher::finish_hex) {
            return Err(ImageError::Changed {
                url: redact_url(&self.url),
                detail: "the bytes sent again differ from those already received".into(),
            });
        }
        if !rest.is_empty() {
            self.pending_rest = Some(rest);
        }
        self.response = Some(response);
        Ok(())
    }
}
