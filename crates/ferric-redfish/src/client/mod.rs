//! The HTTP client of one BMC: endpoint settings, and the operations Ferric's `redfish`
//! interfaces need (systems, reset, boot override, virtual media), with sushy's and Ironic's
//! fallbacks. One [`Client`] per BMC, cloned freely: every clone shares one session.

mod cache;
mod error;
mod media;
mod system;
mod transport;

pub use cache::SessionCache;
pub use error::Error;

use crate::model::{Resource, ServiceRoot};
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use transport::Transport;

/// How the client authenticates (Ironic's `redfish_auth_type`). Without a username, nothing
/// is sent, whatever the type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum AuthType {
    /// HTTP basic authentication on every request.
    Basic,
    /// A Redfish session (`X-Auth-Token`), and nothing else.
    Session,
    /// A session, falling back to basic when the BMC will not open one (sushy's
    /// `SessionOrBasicAuth`).
    #[default]
    Auto,
}

/// How the BMC's TLS certificate is checked (Ironic's `redfish_verify_ca`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub enum VerifyCa {
    /// Against the built-in web roots.
    #[default]
    Yes,
    /// Not at all.
    No,
    /// Against the PEM certificates of this file, or of the files of this directory.
    Bundle(PathBuf),
}

/// A password. `Debug` shows `***`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Password(String);

impl Password {
    pub fn new(password: impl Into<String>) -> Password {
        Password(password.into())
    }

    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl From<&str> for Password {
    fn from(password: &str) -> Password {
        Password::new(password)
    }
}

impl From<String> for Password {
    fn from(password: String) -> Password {
        Password(password)
    }
}

/// Where a BMC is and how to talk to it.
#[derive(Clone)]
pub struct Endpoint {
    /// `https://host:port`; no scheme means https; a path is the API root (default
    /// `/redfish/v1/`).
    pub address: String,
    pub username: Option<String>,
    pub password: Option<Password>,
    pub auth: AuthType,
    pub verify_ca: VerifyCa,
    /// The limit on each request, connection included.
    pub timeout: Duration,
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoint")
            .field("address", &transport::without_userinfo(&self.address))
            .field("username", &self.username)
            .field("password", &self.password)
            .field("auth", &self.auth)
            .field("verify_ca", &self.verify_ca)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl Endpoint {
    /// An endpoint without credentials: `Auto` authentication, verified TLS, sushy's 60 s
    /// request timeout.
    pub fn new(address: impl Into<String>) -> Endpoint {
        Endpoint {
            address: address.into(),
            username: None,
            password: None,
            auth: AuthType::Auto,
            verify_ca: VerifyCa::Yes,
            timeout: Duration::from_secs(60),
        }
    }

    /// The same endpoint with credentials.
    pub fn with_credentials(
        mut self,
        username: impl Into<String>,
        password: impl Into<Password>,
    ) -> Endpoint {
        self.username = Some(username.into());
        self.password = Some(password.into());
        self
    }
}

/// How often a request is tried when the BMC is unreachable or busy (503), and the pause
/// before each retry (`delay`, then twice it, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (at least 1).
    pub attempts: u32,
    pub delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> RetryPolicy {
        RetryPolicy {
            attempts: 3,
            delay: Duration::from_secs(1),
        }
    }
}

/// A client of one BMC; cheap to clone, every clone sharing one session. When the last clone
/// goes, its session is deleted (in the background, if a tokio runtime is running).
#[derive(Clone)]
pub struct Client {
    transport: Arc<Transport>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("address", &self.transport.endpoint.address)
            .field("username", &self.transport.endpoint.username)
            .field("auth", &self.transport.endpoint.auth)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client with the default [`RetryPolicy`]. No request is sent yet.
    pub fn new(endpoint: Endpoint) -> Result<Client, Error> {
        Client::with_retry_policy(endpoint, RetryPolicy::default())
    }

    pub fn with_retry_policy(endpoint: Endpoint, retry: RetryPolicy) -> Result<Client, Error> {
        Ok(Client {
            transport: Arc::new(Transport::new(endpoint, retry)?),
        })
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.transport.endpoint
    }

    /// Whether `other` is a clone of this client (shares its session).
    pub fn same_as(&self, other: &Client) -> bool {
        Arc::ptr_eq(&self.transport, &other.transport)
    }

    /// The service root (fetched once per client).
    pub async fn service_root(&self) -> Result<ServiceRoot, Error> {
        self.transport.service_root().await.cloned()
    }

    /// GETs and parses any resource.
    pub async fn get<T: Resource>(&self, path: &str) -> Result<T, Error> {
        let reply = self
            .transport
            .call(reqwest::Method::GET, path, None, None)
            .await?;
        Ok(T::parse(path, &reply.body)?)
    }

    /// Deletes the session, if there is one. The client stays usable: its next request
    /// authenticates again.
    pub async fn logout(&self) -> Result<(), Error> {
        self.transport.logout().await
    }

    /// Logs out in the background (if a runtime is running), for a client being let go.
    pub(crate) fn logout_in_background(self) {
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(e) = self.logout().await {
                    tracing::warn!(error = %e, "logout of an evicted client failed");
                }
            });
        }
    }
}
