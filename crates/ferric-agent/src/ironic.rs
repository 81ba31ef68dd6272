//! The agent's client of Ironic's ramdisk API (IPA's
//! `ironic_api_client.py`): version discovery, lookup with retries and
//! back-off, heartbeats. Several API URLs are tried in order on connection
//! errors, and the one that worked moves to the front. The agent token is
//! never logged.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use ferric_ipa::fault::ironic_error_text;
use ferric_ipa::heartbeat::heartbeat_path;
use ferric_ipa::lookup::LOOKUP_PATH;
use ferric_ipa::version::ApiRoot;
use ferric_ipa::{ApiVersion, HeartbeatRequest, LookupQuery, LookupResponse};
use rand::Rng;
use reqwest::{Method, StatusCode};

/// Longest wait between lookup attempts (IPA's `max_interval`).
pub const MAX_LOOKUP_INTERVAL: Duration = Duration::from_secs(60);

/// Why a call to Ironic failed.
#[derive(Debug, thiserror::Error)]
pub enum IronicError {
    /// No URL could be reached.
    #[error("cannot reach the Ironic API at {url}: {reason}")]
    Unreachable {
        /// The last URL tried.
        url: String,
        /// The transport error.
        reason: String,
    },
    /// Ironic answered with an error status.
    #[error("Ironic answered {status}: {message}")]
    Status {
        /// HTTP status.
        status: u16,
        /// Ironic's faultstring.
        message: String,
    },
    /// The lookup answer could not be read.
    #[error("invalid lookup answer: {0}")]
    BadAnswer(String),
    /// Lookup did not succeed before the lookup timeout.
    #[error("lookup of {addresses} did not succeed within {seconds:.1} s; last error: {last}")]
    LookupTimedOut {
        /// The MACs looked up.
        addresses: String,
        /// The timeout.
        seconds: f64,
        /// The last failure.
        last: String,
    },
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
}

/// Client settings.
#[derive(Debug, Clone, Default)]
pub struct ClientOptions {
    /// Base URLs.
    pub urls: Vec<String>,
    /// Skip certificate checks.
    pub insecure: bool,
    /// X-OpenStack-Request-ID header value.
    pub global_request_id: Option<String>,
    /// Use this version instead of discovering it.
    pub forced_version: Option<ApiVersion>,
}

/// The Ironic API client.
pub struct IronicClient {
    urls: Mutex<Vec<String>>,
    http: reqwest::Client,
    request_id: Option<String>,
    version: Mutex<Option<ApiVersion>>,
}

impl IronicClient {
    /// A client for `options.urls`.
    pub fn new(options: ClientOptions) -> Result<Self, IronicError> {
        let http = reqwest::Client::builder()
            .danger_accept_invalid_certs(options.insecure)
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(2)
            .build()
            .map_err(|e| IronicError::Client(e.to_string()))?;
        Ok(Self {
            urls: Mutex::new(options.urls),
            http,
            request_id: options.global_request_id,
            version: Mutex::new(options.forced_version),
        })
    }

    fn urls(&self) -> Vec<String> {
        self.urls.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The URL currently tried first.
    pub fn current_url(&self) -> String {
        self.urls().first().cloned().unwrap_or_default()
    }

    async fn request(
        &self,
        method: Method,
        path_and_query: &str,
        version: Option<ApiVersion>,
        body: Option<Vec<u8>>,
    ) -> Result<(StatusCode, Vec<u8>), IronicError> {
        let urls = self.urls();
        let mut last = IronicError::Unreachable {
            url: String::new(),
            reason: "no API URL configured".into(),
        };
        for (index, base) in urls.iter().enumerate() {
            let mut req = self
                .http
                .request(method.clone(), format!("{base}{path_and_query}"))
                .header("Accept", "application/json")
                .header("Content-Type", "application/json");
            if let Some(v) = version {
                req = req.header("X-OpenStack-Ironic-API-Version", v.to_string());
            }
            if let Some(id) = &self.request_id {
                req = req.header("X-OpenStack-Request-ID", id);
            }
            if let Some(body) = &body {
                req = req.body(body.clone());
            }
            let outcome = match req.send().await {
                Ok(resp) => {
                    let status = resp.status();
                    resp.bytes().await.map(|b| (status, b.to_vec()))
                }
                Err(e) => Err(e),
            };
            match outcome {
                Ok(answer) => {
                    self.promote(index);
                    return Ok(answer);
                }
                Err(e) => {
                    tracing::warn!(url = %base, error = %transport_text(&e), "cannot reach the Ironic API");
                    last = IronicError::Unreachable {
                        url: base.clone(),
                        reason: transport_text(&e),
                    };
                }
            }
        }
        Err(last)
    }

    fn promote(&self, index: usize) {
        if index > 0 {
            self.urls
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .rotate_left(index);
        }
    }

    /// The server's highest microversion from `GET /`; IPA's fallback
    /// (1.31) when discovery fails, which is retried next time.
    pub async fn api_version(&self) -> ApiVersion {
        if let Some(v) = *self.version.lock().unwrap_or_else(|p| p.into_inner()) {
            return v;
        }
        match self.discover().await {
            Ok(v) => {
                *self.version.lock().unwrap_or_else(|p| p.into_inner()) = Some(v);
                tracing::info!(version = %v, "Ironic API version discovered");
                v
            }
            Err(e) => {
                tracing::warn!(error = %e, fallback = %ApiVersion::MIN_KNOWN, "version discovery failed");
                ApiVersion::MIN_KNOWN
            }
        }
    }

    async fn discover(&self) -> Result<ApiVersion, IronicError> {
        let (status, body) = self.request(Method::GET, "/", None, None).await?;
        if !status.is_success() {
            return Err(IronicError::Status {
                status: status.as_u16(),
                message: ironic_error_text(&body),
            });
        }
        let root: ApiRoot =
            serde_json::from_slice(&body).map_err(|e| IronicError::BadAnswer(e.to_string()))?;
        Ok(root.max_version())
    }

    /// One lookup attempt.
    pub async fn lookup_once(&self, query: &LookupQuery) -> Result<LookupResponse, IronicError> {
        let version = ApiVersion::for_lookup(self.api_version().await);
        let path = format!("{LOOKUP_PATH}?{}", query.to_query_string());
        let (status, body) = self
            .request(Method::GET, &path, Some(version), None)
            .await?;
        if status != StatusCode::OK {
            return Err(IronicError::Status {
                status: status.as_u16(),
                message: ironic_error_text(&body),
            });
        }
        LookupResponse::from_body(&body).map_err(|e| IronicError::BadAnswer(e.to_string()))
    }

    /// Lookup retried while the API is unreachable or answers an error
    /// (404 until the node is in a lookup state, 409 while locked), waiting
    /// a random exponential back-off from `interval` up to 60 s, until
    /// `timeout` has passed.
    pub async fn lookup(
        &self,
        query: &LookupQuery,
        timeout: Duration,
        interval: Duration,
    ) -> Result<LookupResponse, IronicError> {
        let deadline = Instant::now() + timeout;
        let addresses = query
            .addresses
            .iter()
            .map(|m| m.to_string())
            .collect::<Vec<_>>()
            .join(",");
        for attempt in 0u32.. {
            let error = match self.lookup_once(query).await {
                Ok(answer) => return Ok(answer),
                Err(e) => e,
            };
            tracing::warn!(attempt, addresses = %addresses, error = %error, "lookup failed, retrying");
            let now = Instant::now();
            if now >= deadline {
                return Err(IronicError::LookupTimedOut {
                    addresses,
                    seconds: timeout.as_secs_f64(),
                    last: error.to_string(),
                });
            }
            let wait = backoff(interval, attempt).min(deadline - now);
            tokio::time::sleep(wait).await;
        }
        unreachable!("the attempt counter is unbounded")
    }

    /// Posts the inventory for inspection (IPA's `call_inspector`, which
    /// sends no microversion): Ironic answers with the node's UUID (and, at
    /// 1.84, what a lookup answers). A node that is not being inspected is
    /// not an error: `None`, and lookup goes on as usual.
    pub async fn continue_inspection(
        &self,
        url: Option<&str>,
        data: &serde_json::Value,
    ) -> Result<Option<String>, IronicError> {
        let body = serde_json::to_vec(data).map_err(|e| IronicError::BadAnswer(e.to_string()))?;
        let (status, answer) = match url {
            Some(url) => self.request_url(url, body).await?,
            None => {
                self.request(Method::POST, "/v1/continue_inspection", None, Some(body))
                    .await?
            }
        };
        if !status.is_success() {
            tracing::info!(status = status.as_u16(), message = %ironic_error_text(&answer), "inspection not taken; proceeding with lookup");
            return Ok(None);
        }
        let value: serde_json::Value =
            serde_json::from_slice(&answer).map_err(|e| IronicError::BadAnswer(e.to_string()))?;
        let uuid = value
            .get("uuid")
            .or_else(|| value.get("node").and_then(|n| n.get("uuid")))
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned);
        Ok(uuid)
    }

    async fn request_url(
        &self,
        url: &str,
        body: Vec<u8>,
    ) -> Result<(StatusCode, Vec<u8>), IronicError> {
        let sent = self
            .http
            .post(url)
            .header("Accept", "application/json")
            .header("Content-Type", "application/json")
            .body(body)
            .send()
            .await;
        let unreachable = |e: reqwest::Error| IronicError::Unreachable {
            url: url.to_owned(),
            reason: transport_text(&e),
        };
        let resp = sent.map_err(unreachable)?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(unreachable)?;
        Ok((status, bytes.to_vec()))
    }

    /// One heartbeat; Ironic answers 202.
    pub async fn heartbeat(
        &self,
        node_uuid: &str,
        body: &HeartbeatRequest,
        version: ApiVersion,
    ) -> Result<(), IronicError> {
        let json = serde_json::to_vec(body).map_err(|e| IronicError::BadAnswer(e.to_string()))?;
        let version = ApiVersion::for_heartbeat(version);
        let (status, answer) = self
            .request(
                Method::POST,
                &heartbeat_path(node_uuid),
                Some(version),
                Some(json),
            )
            .await?;
        if status == StatusCode::ACCEPTED {
            Ok(())
        } else {
            Err(IronicError::Status {
                status: status.as_u16(),
                message: ironic_error_text(&answer),
            })
        }
    }
}

/// tenacity's `wait_random_exponential(min=interval, max=60)`: a random
/// wait between `interval` and `interval × 2^attempt`, capped at 60 s.
pub fn backoff(interval: Duration, attempt: u32) -> Duration {
    let base = interval.as_secs_f64();
    let top = (base * 2f64.powi(attempt.min(30) as i32)).min(MAX_LOOKUP_INTERVAL.as_secs_f64());
    let low = base.min(top);
    let seconds = if top > low {
        rand::rng().random_range(low..=top)
    } else {
        low
    };
    Duration::from_secs_f64(seconds)
}

/// A transport error's text with its causes.
fn transport_text(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_caps() {
        let interval = Duration::from_millis(100);
        for attempt in 0..40 {
            let wait = backoff(interval, attempt);
            assert!(wait >= interval, "{attempt}: {wait:?}");
            assert!(wait <= MAX_LOOKUP_INTERVAL);
            let top = Duration::from_secs_f64((0.1 * 2f64.powi(attempt.min(30) as i32)).min(60.0));
            assert!(
                wait <= top + Duration::from_millis(1),
                "{attempt}: {wait:?} > {top:?}"
            );
        }
        assert_eq!(backoff(Duration::ZERO, 0), Duration::ZERO);
    }

    #[tokio::test]
    async fn unreachable_urls_fail_over() {
        let client = IronicClient::new(ClientOptions {
            urls: vec!["http://127.0.0.1:1".into(), "http://127.0.0.1:2".into()],
            ..Default::default()
        })
        .unwrap();
        assert_eq!(client.api_version().await, ApiVersion::MIN_KNOWN);
        let err = client
            .lookup(
                &LookupQuery::default(),
                Duration::from_millis(300),
                Duration::from_millis(50),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, IronicError::LookupTimedOut { .. }), "{err}");
    }
}
