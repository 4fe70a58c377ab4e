//! Work a node does on its own schedule. Every task is safe with several
//! nodes on one database: it changes a row only if the row still needs it.

use crate::AppState;
use crate::services::licenses;
use std::time::Duration;

/// Starts the background tasks; they stop when the returned handle is dropped or aborted.
pub fn spawn(state: AppState) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
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
