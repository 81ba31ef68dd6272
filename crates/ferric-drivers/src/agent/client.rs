//! The conductor's client of a node's agent: IPA's command API, as Ironic's
//! `agent_client` calls it (every call carries `?agent_token=`; connection
//! failures are retried; 409 means the agent is busy).

use std::time::Duration;

use ferric_core::Node;
use ferric_ipa::{CommandList, CommandRequest, CommandResult};
use serde_json::{json, Map, Value};

use crate::config::AgentConfig;
use crate::error::DriverError;

/// A client for one node's agent, at the address its last heartbeat gave.
pub struct AgentClient {
    http: reqwest::Client,
    url: String,
    token: Option<String>,
    node: ferric_core::NodeUuid,
    attempts: u32,
}

impl AgentClient {
    /// The client of `node`'s agent; fails if no agent has heartbeated.
    pub fn for_node(node: &Node, config: &AgentConfig) -> Result<AgentClient, DriverError> {
        let internal = &node.driver_internal_info;
        let url = internal
            .get("agent_url")
            .and_then(Value::as_str)
            .filter(|u| !u.is_empty())
            .ok_or_else(|| {
                DriverError::transient(
                    "Agent driver requires agent_url in driver_internal_info",
                    None,
                )
            })?;
        let mut builder = reqwest::Client::builder()
            .timeout(Duration::from_secs(config.command_timeout.max(1)))
            .connect_timeout(Duration::from_secs(config.command_timeout.clamp(1, 30)));
        if let Some(pem) = internal.get("agent_verify_ca").and_then(Value::as_str) {
            let cert = reqwest::Certificate::from_pem(pem.as_bytes()).map_err(|e| {
                DriverError::failed_by("the agent's certificate (agent_verify_ca) is not PEM", e)
            })?;
            builder = builder
                .tls_built_in_root_certs(false)
                .add_root_certificate(cert);
        }
        let http = builder
            .build()
            .map_err(|e| DriverError::failed_by("cannot make an HTTP client for the agent", e))?;
        Ok(AgentClient {
            http,
            url: url.trim_end_matches('/').to_owned(),
            token: internal
                .get("agent_secret_token")
                .and_then(Value::as_str)
                .map(str::to_owned),
            node: node.uuid,
            attempts: config.max_command_attempts.max(1),
        })
    }

    fn commands_url(&self) -> String {
        format!("{}/v1/commands/", self.url)
    }

    fn query(&self, wait: Option<bool>) -> Vec<(&'static str, String)> {
        let mut q = Vec::new();
        if let Some(w) = wait {
            q.push(("wait", w.to_string()));
        }
        if let Some(t) = &self.token {
            q.push(("agent_token", t.clone()));
        }
        q
    }

    /// Runs `name` with `params`; with `wait` the agent answers once the
    /// command has ended.
    pub async fn command(
        &self,
        name: &str,
        params: Map<String, Value>,
        wait: bool,
    ) -> Result<CommandResult, DriverError> {
        let body = CommandRequest {
            name: name.to_owned(),
            params,
        };
        tracing::debug!(node = %self.node, command = name, wait, "agent command");
        let mut attempt = 1;
        loop {
            let sent = self
                .http
                .post(self.commands_url())
                .query(&self.query(Some(wait)))
                .json(&body)
                .send()
                .await;
            match sent {
                Ok(resp) => return self.command_answer(name, resp).await,
                // A timed-out command may have reached the agent: it is not
                // sent twice (the second would meet a busy agent).
                Err(e) if attempt < self.attempts && e.is_connect() => {
                    tracing::warn!(node = %self.node, command = name, attempt, "agent unreachable; trying again");
                    attempt += 1;
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                Err(e) => return Err(self.unreachable(name, e)),
            }
        }
    }

    async fn command_answer(
        &self,
        name: &str,
        resp: reqwest::Response,
    ) -> Result<CommandResult, DriverError> {
        let status = resp.status();
        let text = resp.text().await.map_err(|e| self.unreachable(name, e))?;
        if status.is_client_error() || status.is_server_error() {
            let fault = serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|v| {
                    v.get("faultstring")
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                })
                .unwrap_or_else(|| text.chars().take(200).collect());
            let message = format!(
                "Agent API for node {} returned HTTP status code {} with error: {fault}",
                self.node,
                status.as_u16()
            );
            if status.as_u16() == 409 || fault.to_ascii_lowercase().contains("agent is busy") {
                return Err(DriverError::transient(message, None));
            }
            return Err(DriverError::failed(message));
        }
        let result: CommandResult = serde_json::from_str(&text).map_err(|e| {
            DriverError::failed_by(
                format!("the agent on node {} answered {name} with something that is not a command result", self.node),
                e,
            )
        })?;
        if result.is_type_error() {
            return Err(DriverError::failed(format!(
                "Agent command {name} for node {} failed: {}",
                self.node,
                command_error(&result)
            )));
        }
        Ok(result)
    }

    /// Every command the agent has run since it started, oldest first.
    pub async fn commands(&self) -> Result<Vec<CommandResult>, DriverError> {
        let mut attempt = 1;
        loop {
            let sent = self
                .http
                .get(self.commands_url())
                .query(&self.query(None))
                .send()
                .await;
            match sent {
                Ok(resp) => {
                    let status = resp.status();
                    let text = resp
                        .text()
                        .await
                        .map_err(|e| self.unreachable("status", e))?;
                    if !status.is_success() {
                        return Err(DriverError::failed(format!(
                            "Agent API for node {} returned HTTP status code {} when asked for the status of its commands",
                            self.node,
                            status.as_u16()
                        )));
                    }
                    let list: CommandList = serde_json::from_str(&text).map_err(|e| {
                        DriverError::failed_by(
                            format!(
                                "the agent on node {} sent a command list that cannot be read",
                                self.node
                            ),
                            e,
                        )
                    })?;
                    return Ok(list.commands);
                }
                Err(e) if attempt < self.attempts && (e.is_connect() || e.is_timeout()) => {
                    // Reading the status is safe to repeat.
                    attempt += 1;
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                Err(e) => return Err(self.unreachable("status", e)),
            }
        }
    }

    /// Runs `name` in the background and asks how it goes every two
    /// seconds until it ends or `deadline` passes (Ironic's `poll=True`,
    /// for commands that may outlast one HTTP call).
    pub async fn command_polled(
        &self,
        name: &str,
        params: Map<String, Value>,
        deadline: tokio::time::Instant,
    ) -> Result<CommandResult, DriverError> {
        let started = self.command(name, params, false).await?;
        if started.command_status.is_done() {
            return Ok(started);
        }
        let short = name.split_once('.').map_or(name, |(_, n)| n);
        loop {
            if tokio::time::Instant::now() >= deadline {
                return Err(DriverError::Timeout {
                    operation: format!("the agent's {name}"),
                    seconds: 0,
                });
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
            let commands = self.commands().await?;
            let last = commands
                .iter()
                .rev()
                .find(|c| c.id == started.id || c.command_name == short);
            if let Some(done) = last.filter(|c| c.command_status.is_done()) {
                return Ok(done.clone());
            }
        }
    }

    /// The error of a failed call. reqwest's text carries the URL, and with
    /// it the agent token: the URL is dropped.
    fn unreachable(&self, what: &str, e: reqwest::Error) -> DriverError {
        DriverError::transient(
            format!(
                "Failed to connect to the agent running on node {} for {what}",
                self.node
            ),
            Some(std::sync::Arc::new(e.without_url())),
        )
    }
}

/// The text of a failed command's error, as Ironic's `get_command_error`
/// gives it.
pub fn command_error(result: &CommandResult) -> String {
    match &result.command_error {
        Some(e) => e.text(),
        None => "Invalid agent response".to_owned(),
    }
}

/// The node as the agent is sent it (`node.as_dict(secure=True)`: secrets
/// masked).
pub fn node_dict(node: &Node) -> Value {
    json!({
        "uuid": node.uuid.to_string(),
        "name": node.name,
        "driver": node.driver,
        "properties": node.properties,
        "instance_info": ferric_core::secret::mask_dict(&node.instance_info),
        "driver_info": ferric_core::secret::mask_dict(&node.driver_info),
        "driver_internal_info": ferric_core::secret::mask_dict(&node.driver_internal_info),
        "instance_uuid": node.instance_uuid,
        "provision_state": node.provision_state.as_str(),
    })
}

/// The node's ports as the agent is sent them (`port.as_dict()`).
pub fn ports_list(ports: &[ferric_core::Port]) -> Value {
    Value::Array(
        ports
            .iter()
            .map(|p| {
                json!({
                    "uuid": p.uuid.to_string(),
                    "address": p.address.as_str(),
                    "pxe_enabled": p.pxe_enabled,
                    "extra": p.extra,
                    "local_link_connection": p.local_link_connection,
                    "physical_network": p.physical_network,
                })
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_failed_call_never_shows_the_token() {
        // A port nothing listens on: the connection is refused at once.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let mut node = Node::enroll(
            ferric_core::NodeUuid::new_random(),
            "fake-hardware".into(),
            Default::default(),
            chrono::Utc::now(),
        );
        node.driver_internal_info.insert(
            "agent_url".into(),
            json!(format!("http://127.0.0.1:{port}")),
        );
        node.driver_internal_info
            .insert("agent_secret_token".into(), json!("s3cr3t-t0ken"));
        let config = AgentConfig {
            max_command_attempts: 1,
            ..AgentConfig::default()
        };
        let client = AgentClient::for_node(&node, &config).unwrap();
        let e = client.commands().await.unwrap_err();
        assert!(e.is_transient());
        assert!(!e.chain().contains("s3cr3t"), "{}", e.chain());
        let e = client
            .command("standby.sync", Map::new(), true)
            .await
            .unwrap_err();
        assert!(!e.chain().contains("s3cr3t"), "{}", e.chain());
        assert!(!format!("{e:?}").contains("s3cr3t"));
    }
}
