//! The heartbeater, as IPA's `IronicPythonAgentHeartbeater`: the first
//! heartbeat at once, then every 0.3–0.6 × `heartbeat_timeout`; after an
//! error, again in 1–2 × the minimum interval (5 s in IPA, `--min-heartbeat-
//! interval` here); and soon after an asynchronous command ends, but never
//! sooner than [`FORCED_AFTER`] (or the minimum interval, if shorter) after
//! the previous heartbeat. IPA waits its minimum interval there: a deploy's
//! conductor then waits up to 5 s to learn that the image is written.

use std::sync::Arc;
use std::time::Duration;

use ferric_ipa::heartbeat::HeartbeatFields;
use ferric_ipa::HeartbeatRequest;
use rand::Rng;
use tokio::time::Instant;

use crate::agent::{Agent, VERSION};

/// How soon after the previous heartbeat a finished command is reported.
pub const FORCED_AFTER: Duration = Duration::from_secs(1);

/// What to advertise in heartbeats.
#[derive(Debug, Clone)]
pub struct Advertised {
    /// The callback URL.
    pub callback_url: String,
    /// The certificate PEM, when serving TLS.
    pub verify_ca: Option<String>,
}

/// Runs until the agent shuts down.
pub async fn run(agent: Arc<Agent>, advertised: Advertised) {
    let Some(client) = agent.ironic.as_ref() else {
        return;
    };
    let Some(node) = agent.node() else { return };
    let timeout = agent.lookup_config().map_or(300, |c| c.heartbeat_timeout);
    let min_interval = agent.config.min_heartbeat_interval;
    let mut shutdown = agent.shutdown.subscribe();
    let mut next = Instant::now();
    let mut previous: Option<Instant> = None;
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(next) => {}
            _ = agent.heartbeat_now.notified() => {
                // Forced: soon, but not in a burst after the previous one.
                let gap = min_interval.min(FORCED_AFTER);
                let earliest = previous.map_or_else(Instant::now, |p| p + gap);
                if earliest < next {
                    next = earliest;
                }
                continue;
            }
            _ = shutdown.wait_for(Option::is_some) => return,
        }
        let version = client.api_version().await;
        let body = HeartbeatRequest::for_version(
            version,
            HeartbeatFields {
                callback_url: advertised.callback_url.clone(),
                agent_token: agent.token(),
                agent_version: Some(VERSION.to_owned()),
                agent_verify_ca: advertised.verify_ca.clone(),
                agent_status: None,
                agent_status_message: None,
            },
        );
        let interval = match client.heartbeat(&node.uuid, &body, version).await {
            Ok(()) => {
                tracing::debug!("heartbeat accepted");
                // A zero timeout would heartbeat in a loop: never below the minimum.
                jitter(Duration::from_secs(timeout), 0.3, 0.6).max(min_interval)
            }
            Err(e) => {
                tracing::warn!(error = %e, url = %client.current_url(), "heartbeat failed");
                jitter(min_interval, 1.0, 2.0)
            }
        };
        let now = Instant::now();
        previous = Some(now);
        next = now + interval;
        tracing::info!(seconds = interval.as_secs_f64(), "next heartbeat");
    }
}

/// `value × uniform(low, high)`.
pub fn jitter(value: Duration, low: f64, high: f64) -> Duration {
    value.mul_f64(rand::rng().random_range(low..=high))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_in_range() {
        for _ in 0..100 {
            let d = jitter(Duration::from_secs(300), 0.3, 0.6);
            assert!(
                d >= Duration::from_secs(90) && d <= Duration::from_secs(180),
                "{d:?}"
            );
        }
    }
}
