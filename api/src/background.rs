//! Work a node does on its own schedule. Every task is safe with several
//! nodes on one database: it changes a row only if the row still needs it.

use crate::AppState;
use crate::services::{jobs, licenses};
use std::time::Duration;

/// Starts the background tasks; they stop when the returned handle is dropped or aborted.
pub fn spawn(state: AppState) -> tokio::task::JoinHandle<()> {
    let node = entity::new_id();
    let jobs_state = state.clone();
    let job_runner = tokio::spawn(async move {
        // Jobs queued through this node start at once; jobs queued through
        // another node, or whose node's claim lapsed, within a second.
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let queued = jobs_state.jobs_queued.clone();
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = queued.notified() => {}
            }
            if let Err(e) = jobs::run_pending(&jobs_state.db, &node).await {
                tracing::warn!(error = %e.detail(), "job runner failed; retrying");
            }
        }
    });
    tokio::spawn(async move {
        let _runner = AbortOnDrop(job_runner);
        let mut tick = tokio::time::interval(Duration::from_secs(state.config.sweep_interval_seconds.max(1)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match licenses::expire_due(&state.db).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(expired = n, "expiry sweep"),
                Err(e) => tracing::warn!(error = %e.detail(), "expiry sweep failed; retrying at the next tick"),
            }
        }
    })
}

/// Stops a task when the task that owns it ends or is aborted.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
