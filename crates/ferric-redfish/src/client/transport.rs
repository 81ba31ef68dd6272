//! One BMC's HTTP transport: address resolution, authentication (basic, or one session shared
//! by every clone, renewed once on 401 and deleted at logout or drop), bounded retries, and
//! mapping of answers to [`Error`]s.

use super::{AuthType, Endpoint, Error, RetryPolicy, VerifyCa};
use crate::model::{RedfishError, Resource, ServiceRoot, Session};
use crate::request::session_body;
use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use std::fmt;
use std::net::Ipv6Addr;
use tokio::sync::{Mutex, OnceCell};
use tracing::{debug, warn};
use url::Url;

/// Larger bodies are refused: no Redfish resource Ferric reads comes near this.
const MAX_BODY: usize = 8 << 20;
const DEFAULT_ROOT: &str = "/redfish/v1/";

/// A session token; `Debug` never shows it.
#[derive(Clone)]
pub(crate) struct Token(String);

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// A response, read whole.
#[derive(Debug)]
pub(crate) struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name)?.to_str().ok()
    }
}

/// How a request authenticates.
#[derive(Debug, Clone)]
enum Creds {
    Anonymous,
    Basic,
    Token { token: Token, generation: u64 },
}

#[derive(Debug)]
struct OpenSession {
    token: Token,
    /// Where to DELETE it; `None` when the BMC did not say (then it can only time out).
    location: Option<String>,
    generation: u64,
}

#[derive(Debug, Default)]
enum AuthState {
    /// Nothing decided yet (or logged out): the next request authenticates.
    #[default]
    Fresh,
    Basic,
    Session(OpenSession),
}

#[derive(Debug, Default)]
struct AuthSlot {
    state: AuthState,
    generations: u64,
    /// A session once worked: from then on, `Auto` no longer falls back to basic.
    session_worked: bool,
}

/// Why one attempt failed before any answer.
enum SendError {
    Connect(String),
    Timeout,
    Other(String),
}

pub(crate) struct Transport {
    pub endpoint: Endpoint,
    origin: Url,
    root_prefix: String,
    http: reqwest::Client,
    retry: RetryPolicy,
    auth: Mutex<AuthSlot>,
    root: OnceCell<ServiceRoot>,
}

impl Transport {
    pub fn new(endpoint: Endpoint, retry: RetryPolicy) -> Result<Transport, Error> {
        let (origin, root_prefix) = parse_address(&endpoint.address)?;
        let http = build_http(&endpoint)?;
        Ok(Transport {
            endpoint,
            origin,
            root_prefix,
            http,
            retry,
            auth: Mutex::new(AuthSlot::default()),
            root: OnceCell::new(),
        })
    }

    pub fn address(&self) -> &str {
        &self.endpoint.address
    }

    pub fn root_prefix(&self) -> &str {
        &self.root_prefix
    }

    /// The URL of a path (or of a URL the BMC gave: only its path is kept, so that a BMC
    /// naming another host, or its own address behind NAT, never redirects our credentials).
    pub fn url(&self, path: &str) -> Result<Url, Error> {
        let joined = match Url::parse(path) {
            Ok(absolute) => {
                let mut local = absolute.path().to_owned();
                if let Some(query) = absolute.query() {
                    local.push('?');
                    local.push_str(query);
                }
                self.origin.join(&local)
            }
            Err(_) if path.starts_with('/') => self.origin.join(path),
            Err(_) => self
                .origin
                .join(&self.root_prefix)
                .and_then(|root| root.join(path)),
        };
        joined.map_err(|e| Error::InvalidAddress {
            address: format!("{}{path}", self.endpoint.address),
            reason: e.to_string(),
        })
    }

    /// An authenticated request; any status but 2xx is an error.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        if_match: Option<&str>,
    ) -> Result<Reply, Error> {
        let url = self.url(path)?;
        let creds = self.credentials().await?;
        let mut reply = self.send(&method, &url, body, if_match, &creds).await?;
        if reply.status == StatusCode::UNAUTHORIZED {
            let Creds::Token { generation, .. } = creds else {
                return Err(self.auth_failed());
            };
            debug!(address = %self.address(), "session refused; opening a new one");
            let renewed = self.renew(generation).await?;
            reply = self.send(&method, &url, body, if_match, &renewed).await?;
            if reply.status == StatusCode::UNAUTHORIZED {
                return Err(self.auth_failed());
            }
        }
        if !reply.status.is_success() {
            return Err(self.http_error(&method, path, &reply));
        }
        Ok(reply)
    }

    /// The service root, fetched once. DSP0266 lets anyone read it; a BMC that wants
    /// credentials for it gets basic ones.
    pub async fn service_root(&self) -> Result<&ServiceRoot, Error> {
        self.root
            .get_or_try_init(|| async {
                let url = self.url(&self.root_prefix)?;
                let mut reply = self
                    .send(&Method::GET, &url, None, None, &Creds::Anonymous)
                    .await?;
                if reply.status == StatusCode::UNAUTHORIZED && self.endpoint.username.is_some() {
                    reply = self
                        .send(&Method::GET, &url, None, None, &Creds::Basic)
                        .await?;
                }
                if reply.status == StatusCode::UNAUTHORIZED {
                    return Err(self.auth_failed());
                }
                if !reply.status.is_success() {
                    return Err(self.http_error(&Method::GET, &self.root_prefix, &reply));
                }
                Ok(ServiceRoot::parse(&self.root_prefix, &reply.body)?)
            })
            .await
    }

    /// Deletes the session, if there is one; the next request authenticates again.
    pub async fn logout(&self) -> Result<(), Error> {
        let mut slot = self.auth.lock().await;
        let AuthState::Session(session) = std::mem::take(&mut slot.state) else {
            return Ok(());
        };
        let Some(location) = session.location else {
            warn!(address = %self.address(), "the BMC gave no session URI; the session is left to time out");
            return Ok(());
        };
        let url = self.url(&location)?;
        let creds = Creds::Token {
            token: session.token,
            generation: session.generation,
        };
        let reply = self.send(&Method::DELETE, &url, None, None, &creds).await?;
        // 401 or 404: the BMC already dropped it.
        let gone = matches!(reply.status.as_u16(), 401 | 404);
        if !reply.status.is_success() && !gone {
            return Err(self.http_error(&Method::DELETE, &location, &reply));
        }
        debug!(address = %self.address(), "session deleted");
        Ok(())
    }

    fn auth_failed(&self) -> Error {
        Error::AuthFailed {
            address: self.endpoint.address.clone(),
        }
    }

    fn http_error(&self, method: &Method, path: &str, reply: &Reply) -> Error {
        let body = RedfishError::parse(&reply.body);
        Error::Http {
            address: self.endpoint.address.clone(),
            method: method.to_string(),
            path: path.to_owned(),
            status: reply.status.as_u16(),
            messages: body
                .as_ref()
                .map(RedfishError::messages)
                .unwrap_or_default(),
            body: body.map(Box::new),
        }
    }

    /// The credentials for the next request, authenticating first if nothing is decided.
    async fn credentials(&self) -> Result<Creds, Error> {
        let mut slot = self.auth.lock().await;
        match &slot.state {
            AuthState::Session(s) => return Ok(session_creds(s)),
            AuthState::Basic => return Ok(self.basic_creds()),
            AuthState::Fresh => {}
        }
        if self.endpoint.username.is_none() || self.endpoint.auth == AuthType::Basic {
            slot.state = AuthState::Basic;
            return Ok(self.basic_creds());
        }
        match self.open_session(&mut slot).await {
            Ok(creds) => Ok(creds),
            Err(e) if self.may_fall_back(&slot, &e) => {
                warn!(address = %self.address(), error = %e, "no session; falling back to basic authentication");
                slot.state = AuthState::Basic;
                Ok(Creds::Basic)
            }
            Err(e) => Err(e),
        }
    }

    /// sushy's `SessionOrBasicAuth`: fall back unless the BMC was unreachable or a session
    /// once worked (then something is wrong that basic authentication would hide).
    fn may_fall_back(&self, slot: &AuthSlot, error: &Error) -> bool {
        self.endpoint.auth == AuthType::Auto
            && !slot.session_worked
            && !matches!(error, Error::Connection { .. } | Error::Timeout { .. })
    }

    fn basic_creds(&self) -> Creds {
        if self.endpoint.username.is_some() {
            Creds::Basic
        } else {
            Creds::Anonymous
        }
    }

    /// Replaces a session the BMC refused, unless another request already did.
    async fn renew(&self, stale_generation: u64) -> Result<Creds, Error> {
        let mut slot = self.auth.lock().await;
        if let AuthState::Session(s) = &slot.state {
            if s.generation != stale_generation {
                return Ok(session_creds(s));
            }
        }
        // The refused token is dead at the BMC: nothing to delete.
        slot.state = AuthState::Fresh;
        self.open_session(&mut slot).await
    }

    /// POSTs credentials to the session collection and records the session.
    async fn open_session(&self, slot: &mut AuthSlot) -> Result<Creds, Error> {
        let (Some(username), Some(password)) = (&self.endpoint.username, &self.endpoint.password)
        else {
            return Err(Error::SessionRefused {
                address: self.endpoint.address.clone(),
                reason: "a session needs redfish_username and redfish_password".into(),
            });
        };
        let path = self.sessions_path().await?;
        let url = self.url(&path)?;
        let body = session_body(username, password.expose());
        let reply = self
            .send(&Method::POST, &url, Some(&body), None, &Creds::Anonymous)
            .await?;
        if matches!(reply.status.as_u16(), 401 | 403) {
            return Err(self.auth_failed());
        }
        if reply.status.as_u16() >= 400 {
            return Err(self.http_error(&Method::POST, &path, &reply));
        }
        let Some(token) = reply.header("X-Auth-Token").filter(|t| !t.is_empty()) else {
            return Err(Error::SessionRefused {
                address: self.endpoint.address.clone(),
                reason: format!("POST {path} answered {} without X-Auth-Token", reply.status),
            });
        };
        let location = reply
            .header(header::LOCATION.as_str())
            .map(str::to_owned)
            .or_else(|| Session::parse(&path, &reply.body).ok()?.odata_id);
        if location.is_none() {
            warn!(address = %self.address(), "the BMC gave a session but no URI to delete it with");
        }
        slot.generations += 1;
        slot.session_worked = true;
        let session = OpenSession {
            token: Token(token.to_owned()),
            location,
            generation: slot.generations,
        };
        debug!(address = %self.address(), "session opened");
        let creds = session_creds(&session);
        slot.state = AuthState::Session(session);
        Ok(creds)
    }

    /// DSP0266's discovery: `Links.Sessions` of the root, else the standard path.
    async fn sessions_path(&self) -> Result<String, Error> {
        let root = self.service_root().await?;
        Ok(match root.sessions_path() {
            Some(path) => path.to_owned(),
            None => format!("{}SessionService/Sessions", self.root_prefix),
        })
    }

    /// Sends with bounded retries: connection failures and 503 for any method; timeouts and
    /// other 5xx only for GET (sushy's rule: a POST may already have been carried out); and
    /// the "busy, try again" answers of iDRAC and iLO.
    async fn send(
        &self,
        method: &Method,
        url: &Url,
        body: Option<&Value>,
        if_match: Option<&str>,
        creds: &Creds,
    ) -> Result<Reply, Error> {
        let mut attempt = 1;
        loop {
            let outcome = self.send_once(method, url, body, if_match, creds).await;
            let retry = match &outcome {
                Ok(reply) => should_retry_status(method, reply),
                Err(SendError::Connect(_)) => true,
                Err(SendError::Timeout) => *method == Method::GET,
                Err(SendError::Other(_)) => false,
            };
            if !retry || attempt >= self.retry.attempts.max(1) {
                return outcome.map_err(|e| self.send_error(e, method, url));
            }
            warn!(address = %self.address(), %method, path = url.path(), attempt, "BMC unavailable; retrying");
            tokio::time::sleep(self.retry.delay * attempt).await;
            attempt += 1;
        }
    }

    async fn send_once(
        &self,
        method: &Method,
        url: &Url,
        body: Option<&Value>,
        if_match: Option<&str>,
        creds: &Creds,
    ) -> Result<Reply, SendError> {
        let mut request = self.http.request(method.clone(), url.clone());
        if let Some(tag) = if_match {
            request = request.header(header::IF_MATCH, tag);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        request = match creds {
            Creds::Anonymous => request,
            Creds::Basic => request.basic_auth(
                self.endpoint.username.as_deref().unwrap_or_default(),
                self.endpoint.password.as_ref().map(|p| p.expose()),
            ),
            Creds::Token { token, .. } => request.header("X-Auth-Token", token_header(token)?),
        };
        let mut response = request.send().await.map_err(classify)?;
        let status = response.status();
        let headers = response.headers().clone();
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(classify)? {
            if bytes.len() + chunk.len() > MAX_BODY {
                return Err(SendError::Other(format!(
                    "body larger than {MAX_BODY} bytes"
                )));
            }
            bytes.extend_from_slice(&chunk);
        }
        debug!(%method, path = url.path(), status = status.as_u16(), "redfish request");
        Ok(Reply {
            status,
            headers,
            body: bytes,
        })
    }

    fn send_error(&self, error: SendError, method: &Method, url: &Url) -> Error {
        let address = self.endpoint.address.clone();
        match error {
            SendError::Connect(cause) | SendError::Other(cause) => {
                Error::Connection { address, cause }
            }
            SendError::Timeout => Error::Timeout {
                address,
                method: method.to_string(),
                path: url.path().to_owned(),
                after: self.endpoint.timeout,
            },
        }
    }
}

impl Drop for Transport {
    /// The last clone is gone: delete the session, in the background if a runtime is there.
    fn drop(&mut self) {
        let AuthState::Session(session) = std::mem::take(&mut self.auth.get_mut().state) else {
            return;
        };
        let Some(location) = session.location else {
            return;
        };
        let (Ok(url), Ok(token)) = (self.url(&location), token_header(&session.token)) else {
            return;
        };
        let address = self.endpoint.address.clone();
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                let request = self.http.delete(url).header("X-Auth-Token", token);
                runtime.spawn(async move {
                    match request.send().await {
                        Ok(reply) => debug!(%address, status = reply.status().as_u16(), "session deleted on drop"),
                        Err(e) => warn!(%address, error = %e.without_url(), "cannot delete the session on drop"),
                    }
                });
            }
            Err(_) => warn!(%address, "no async runtime at drop; the session is left to time out"),
        }
    }
}

fn session_creds(session: &OpenSession) -> Creds {
    Creds::Token {
        token: session.token.clone(),
        generation: session.generation,
    }
}

fn token_header(token: &Token) -> Result<HeaderValue, SendError> {
    let mut value = HeaderValue::from_str(&token.0)
        .map_err(|_| SendError::Other("the session token is not a valid header value".into()))?;
    value.set_sensitive(true);
    Ok(value)
}

fn should_retry_status(method: &Method, reply: &Reply) -> bool {
    let status = reply.status.as_u16();
    if status == 503 || (status >= 500 && *method == Method::GET) {
        return true;
    }
    (status == 400 || status >= 500) && bmc_says_busy(&reply.body)
}

/// iDRAC's SYS518 and iLO's InvalidOperationForSystemState: "not ready yet, try again".
fn bmc_says_busy(body: &[u8]) -> bool {
    let text = String::from_utf8_lossy(body);
    text.contains("SYS518")
        || (text.contains("iLO") && text.contains("InvalidOperationForSystemState"))
}

fn classify(error: reqwest::Error) -> SendError {
    if error.is_timeout() {
        return SendError::Timeout;
    }
    let connect = error.is_connect();
    let cause = cause_chain(&error.without_url());
    if connect {
        SendError::Connect(cause)
    } else {
        SendError::Other(cause)
    }
}

/// The error and its sources as one line (the error must have its URL removed).
fn cause_chain(error: &reqwest::Error) -> String {
    let mut parts = vec![error.to_string()];
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let text = cause.to_string();
        if parts.last() != Some(&text) {
            parts.push(text);
        }
        source = cause.source();
    }
    parts.join(": ")
}

/// Reads `redfish_address` as Ironic does: no scheme means https, a bare IPv6 address gets
/// brackets, and a path is the API root (default `/redfish/v1/`).
pub(crate) fn parse_address(address: &str) -> Result<(Url, String), Error> {
    let invalid = |reason: &str| Error::InvalidAddress {
        address: without_userinfo(address),
        reason: reason.to_owned(),
    };
    let trimmed = address.trim();
    if trimmed.is_empty() {
        return Err(invalid("it is empty"));
    }
    let bracketed = match trimmed.parse::<Ipv6Addr>() {
        Ok(_) => format!("[{trimmed}]"),
        Err(_) => trimmed.to_owned(),
    };
    let full = if bracketed.contains("://") {
        bracketed
    } else {
        format!("https://{bracketed}")
    };
    let url = Url::parse(&full).map_err(|e| invalid(&e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid("the scheme must be http or https"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid("it has no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(
            "credentials belong in redfish_username and redfish_password, not the address",
        ));
    }
    let mut root = url.path().to_owned();
    if root.is_empty() || root == "/" {
        root = DEFAULT_ROOT.to_owned();
    } else if !root.ends_with('/') {
        root.push('/');
    }
    let mut origin = url;
    origin.set_path("/");
    origin.set_query(None);
    origin.set_fragment(None);
    Ok((origin, root))
}

/// The address with any `user:password@` replaced by `***@`, fit for an error message.
pub(crate) fn without_userinfo(address: &str) -> String {
    let start = address.find("://").map_or(0, |i| i + 3);
    let authority_end = address[start..]
        .find(['/', '?', '#'])
        .map_or(address.len(), |i| start + i);
    match address[start..authority_end].rfind('@') {
        Some(at) => format!("{}***{}", &address[..start], &address[start + at..]),
        None => address.to_owned(),
    }
}

fn build_http(endpoint: &Endpoint) -> Result<reqwest::Client, Error> {
    let mut headers = HeaderMap::new();
    headers.insert("OData-Version", HeaderValue::from_static("4.0"));
    headers.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
    headers.insert(
        header::ACCEPT_ENCODING,
        HeaderValue::from_static("identity"),
    );
    // sushy's field experience: some BMCs choke on long-lived connections.
    headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    let mut builder = reqwest::Client::builder()
        .default_headers(headers)
        .timeout(endpoint.timeout)
        .redirect(same_origin_redirects())
        .use_rustls_tls();
    builder = match &endpoint.verify_ca {
        VerifyCa::Yes => builder,
        VerifyCa::No => builder.danger_accept_invalid_certs(true),
        VerifyCa::Bundle(path) => {
            let mut builder = builder.tls_built_in_root_certs(false);
            for certificate in read_bundle(path)? {
                builder = builder.add_root_certificate(certificate);
            }
            builder
        }
    };
    builder.build().map_err(|e| Error::InvalidAddress {
        address: endpoint.address.clone(),
        reason: format!("cannot build an HTTP client: {}", e.without_url()),
    })
}

/// Redirects are followed on the BMC itself only (the emulator redirects system names to
/// their UUIDs): a session token must never follow a redirect to another host.
fn same_origin_redirects() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        let previous = attempt.previous();
        let same_origin = previous
            .first()
            .is_some_and(|first| first.origin() == attempt.url().origin());
        if same_origin && previous.len() <= 5 {
            attempt.follow()
        } else {
            attempt.stop()
        }
    })
}

/// The certificates of a PEM file, or of every PEM file in a directory.
fn read_bundle(path: &std::path::Path) -> Result<Vec<reqwest::Certificate>, Error> {
    let failed = |cause: String| Error::CaBundle {
        path: path.to_owned(),
        cause,
    };
    let files = if path.is_dir() {
        let mut files: Vec<_> = std::fs::read_dir(path)
            .map_err(|e| failed(e.to_string()))?
            .filter_map(|entry| Some(entry.ok()?.path()))
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        files
    } else {
        vec![path.to_owned()]
    };
    let mut certificates = Vec::new();
    for file in files {
        let pem = std::fs::read(&file).map_err(|e| failed(format!("{}: {e}", file.display())))?;
        // A directory may hold other files; only a file given by name must be PEM.
        match reqwest::Certificate::from_pem_bundle(&pem) {
            Ok(found) => certificates.extend(found),
            Err(e) if !path.is_dir() => return Err(failed(e.to_string())),
            Err(_) => {}
        }
    }
    if certificates.is_empty() {
        return Err(failed("no PEM certificate in it".into()));
    }
    Ok(certificates)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn an_address_without_scheme_is_https_with_the_standard_root() {
        let (origin, root) = parse_address("bmc.example:8443").unwrap();
        assert_eq!(origin.as_str(), "https://bmc.example:8443/");
        assert_eq!(root, "/redfish/v1/");
    }

    #[test]
    fn a_path_in_the_address_is_the_root_prefix() {
        let (origin, root) = parse_address("http://10.1.2.3/custom/v1").unwrap();
        assert_eq!(origin.as_str(), "http://10.1.2.3/");
        assert_eq!(root, "/custom/v1/");
    }

    #[test]
    fn a_bare_ipv6_address_gets_brackets() {
        let (origin, _) = parse_address("fd00::5").unwrap();
        assert_eq!(origin.as_str(), "https://[fd00::5]/");
    }

    #[test]
    fn bad_addresses_are_refused_with_a_reason() {
        for bad in [
            "",
            "ftp://bmc",
            "https://user:pw@bmc",
            "https://",
            "ftp://u:pw@h/x@y",
        ] {
            let err = parse_address(bad).unwrap_err();
            assert!(matches!(err, Error::InvalidAddress { .. }), "{bad}: {err}");
            assert!(!err.to_string().contains("pw"), "{err}");
        }
        assert_eq!(
            without_userinfo("https://u:pw@bmc:443/x@y"),
            "https://***@bmc:443/x@y"
        );
        assert_eq!(without_userinfo("bmc.example"), "bmc.example");
    }

    #[test]
    fn urls_from_the_bmc_keep_only_their_path() {
        let endpoint = Endpoint::new("http://127.0.0.1:16399");
        let transport = Transport::new(endpoint, RetryPolicy::default()).unwrap();
        let foreign = transport
            .url("https://10.9.9.9/redfish/v1/SessionService/Sessions/7?x=1")
            .unwrap();
        assert_eq!(
            foreign.as_str(),
            "http://127.0.0.1:16399/redfish/v1/SessionService/Sessions/7?x=1"
        );
        let relative = transport.url("Systems").unwrap();
        assert_eq!(
            relative.as_str(),
            "http://127.0.0.1:16399/redfish/v1/Systems"
        );
    }

    #[test]
    fn busy_answers_of_idrac_and_ilo_are_retried_for_any_method() {
        let reply = |status: u16, body: &str| Reply {
            status: StatusCode::from_u16(status).unwrap(),
            headers: HeaderMap::new(),
            body: body.as_bytes().to_vec(),
        };
        assert!(should_retry_status(&Method::POST, &reply(503, "")));
        assert!(should_retry_status(&Method::GET, &reply(500, "")));
        assert!(!should_retry_status(&Method::POST, &reply(500, "")));
        assert!(should_retry_status(
            &Method::POST,
            &reply(400, "SYS518: not ready")
        ));
        assert!(should_retry_status(
            &Method::PATCH,
            &reply(500, "iLO.2.14.InvalidOperationForSystemState")
        ));
        assert!(!should_retry_status(
            &Method::POST,
            &reply(400, "bad value")
        ));
        assert!(!should_retry_status(&Method::GET, &reply(404, "")));
    }

    #[test]
    fn ca_bundles_are_read_from_a_file_or_the_pem_files_of_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        let pem = dir.path().join("ca.pem");
        std::fs::write(&pem, include_str!("test-ca.pem")).unwrap();
        std::fs::write(dir.path().join("README"), "not a certificate").unwrap();
        assert_eq!(read_bundle(&pem).unwrap().len(), 1);
        assert_eq!(read_bundle(dir.path()).unwrap().len(), 1);

        let junk = dir.path().join("README");
        let empty = tempfile::tempdir().unwrap();
        for bad in [
            junk.as_path(),
            empty.path(),
            Path::new("/nonexistent/ca.pem"),
        ] {
            let err = read_bundle(bad).unwrap_err();
            assert!(
                matches!(&err, Error::CaBundle { path, .. } if path == bad),
                "{err}"
            );
        }
        let mut endpoint = Endpoint::new("https://127.0.0.1:16398");
        endpoint.verify_ca = VerifyCa::Bundle(pem);
        assert!(Transport::new(endpoint, RetryPolicy::default()).is_ok());
    }

    #[test]
    fn a_token_never_shows_in_debug() {
        let token = Token("s3cr3t-token".into());
        assert_eq!(format!("{token:?}"), "***");
        let creds = Creds::Token {
            token,
            generation: 1,
        };
        assert!(!format!("{creds:?}").contains("s3cr3t"));
    }
}
