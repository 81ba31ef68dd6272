//! Work the conductor does on its own: recovery at start, the heartbeat,
//! the power-state sync and the wait-state timeouts.

pub(crate) mod power_sync;
pub(crate) mod recovery;
pub(crate) mod timeouts;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use ferric_db::{BriefNode, NodeFilter, Page};

use crate::config::secs;
use crate::Inner;

/// Nodes listed per query: what a periodic task holds in memory at most.
pub(crate) const PAGE_SIZE: u32 = 500;

/// The nodes matching a filter, a page of brief nodes at a time, in id
/// order: what periodic tasks walk instead of loading every node.
pub(crate) struct BriefPages<'a> {
    inner: &'a Inner,
    filter: NodeFilter,
    page: Page,
    done: bool,
}

impl<'a> BriefPages<'a> {
    pub(crate) fn new(inner: &'a Inner, filter: NodeFilter) -> Self {
        BriefPages {
            inner,
            filter,
            page: Page {
                limit: Some(PAGE_SIZE),
                ..Page::default()
            },
            done: false,
        }
    }

    /// The next page; `None` after the last.
    pub(crate) async fn next(&mut self) -> crate::error::Result<Option<Vec<BriefNode>>> {
        if self.done {
            return Ok(None);
        }
        let nodes = self
            .inner
            .store
            .list_nodes_brief(&self.filter, &self.page)
            .await?;
        self.page.marker = nodes.last().map(|n| n.id);
        self.done = nodes.len() < PAGE_SIZE as usize;
        Ok(Some(nodes))
    }
}

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
        let period = secs(cfg.sync_power_state_interval);
        every(inner, period, "power sync", move |inner| {
            let sync = sync.clone();
            let deadline = tokio::time::Instant::now() + period;
            async move { sync.run(inner, deadline).await.map_err(|e| e.to_string()) }
        });
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
