//! Work the conductor does on its own: recovery at start, the heartbeat,
//! the power-state sync and the wait-state timeouts.

pub(crate) mod power_sync;
pub(crate) mod recovery;
pub(crate) mod timeouts;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::config::secs;
use crate::Inner;

pub(crate) fn spawn_all(inner: &Arc<Inner>) {
    let cfg = &inner.config;
    every(
        inner,
        secs(cfg.heartbeat_interval),
        "heartbeat",
        |inner| async move {
            let now = inner.clock.now();
            inner
                .store
                .touch_conductor(&inner.host, now)
                .await
                .map_err(|e| e.to_string())
        },
    );
    every(
        inner,
        secs(cfg.check_provision_state_interval),
        "wait timeouts",
        |inner| async move {
            timeouts::fail_expired(&inner)
                .await
                .map_err(|e| e.to_string())?;
            recovery::recover_orphans(&inner)
                .await
                .map_err(|e| e.to_string())
        },
    );
    if cfg.power_failure_recovery_interval > 0 {
        every(
            inner,
            secs(cfg.power_failure_recovery_interval),
            "power failure recovery",
            |inner| async move {
                power_sync::recover_power_failures(&inner)
                    .await
                    .map_err(|e| e.to_string())
            },
        );
    }
    if cfg.sync_power_state_interval > 0 {
        let sync = Arc::new(power_sync::PowerSync::default());
        every(
            inner,
            secs(cfg.sync_power_state_interval),
            "power sync",
            move |inner| {
                let sync = sync.clone();
                async move { sync.run(&inner).await.map_err(|e| e.to_string()) }
            },
        );
    }
}

/// Runs `job` every `period` until the conductor stops.
fn every<F, Fut>(inner: &Arc<Inner>, period: Duration, name: &'static str, job: F)
where
    F: Fn(Arc<Inner>) -> Fut + Send + 'static,
    Fut: Future<Output = Result<(), String>> + Send,
{
    let owner = inner.clone();
    inner.tracker.spawn(async move {
        let mut ticks = tokio::time::interval(period);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await;
        loop {
            tokio::select! {
                _ = owner.shutdown.cancelled() => return,
                _ = ticks.tick() => {}
            }
            if let Err(e) = job(owner.clone()).await {
                tracing::warn!(task = name, error = %e, "periodic task failed");
            }
        }
    });
}
