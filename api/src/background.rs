//! Work a node does on its own schedule. Every task is safe with several
//! nodes on one database: it changes a row only if the row still needs it.

use crate::AppState;
use crate::services::{email, exhaustion, fulfilment, jobs, licenses, reminders, webhooks};
use entity::Environment;
use sea_orm::Iterable;
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
            for (environment, pool) in jobs_state.pools_to_check.take() {
                if let Err(e) = exhaustion::check(&jobs_state.db, environment, &pool).await {
                    tracing::warn!(error = %e.detail(), pool = pool.id(), "exhaustion check failed");
                }
            }
        }
    });
    let hooks = state.clone();
    let webhook_worker = tokio::spawn(async move {
        // Events written through this node go out at once; others within a second.
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let written = hooks.events_written.clone();
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = written.notified() => {}
            }
            if let Err(e) = webhooks::dispatch(&hooks.db).await {
                tracing::warn!(error = %e.detail(), "queueing webhook deliveries failed; retrying");
            }
            if let Err(e) = email::send_due(&hooks.db, &hooks.mailer).await {
                tracing::warn!(error = %e.detail(), "sending email failed; retrying");
            }
            let allow_private = match hooks.webhooks_may_reach_private().await {
                Ok(allow) => allow,
                Err(e) => {
                    tracing::warn!(error = %e.detail(), "reading the webhook address policy failed; retrying");
                    continue;
                }
            };
            loop {
                let retry = hooks.config.webhook_retry_seconds;
                match webhooks::deliver_due(&hooks.db, &hooks.webhooks, allow_private, retry).await {
                    Ok(0) => break,
                    Ok(_) => continue,
                    Err(e) => {
                        tracing::warn!(error = %e.detail(), "sending webhooks failed; retrying");
                        break;
                    }
                }
            }
        }
    });
    tokio::spawn(async move {
        let _runner = AbortOnDrop(job_runner);
        let _webhooks = AbortOnDrop(webhook_worker);
        let mut tick = tokio::time::interval(Duration::from_secs(state.config.sweep_interval_seconds.max(1)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            state.client_limits.shrink();
            state.login_limits.shrink();
            match licenses::expire_due(&state.db).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(expired = n, "expiry sweep"),
                Err(e) => tracing::warn!(error = %e.detail(), "expiry sweep failed; retrying at the next tick"),
            }
            if let Err(e) = reminders::announce_expiring(&state.db).await {
                tracing::warn!(error = %e.detail(), "expiring-licence notices failed; retrying at the next tick");
            }
            // Safety nets: lines left waiting when keys arrived through a node
            // that stopped before filling them, and pools never checked.
            for environment in Environment::iter() {
                if let Err(e) = fulfilment::backfill(&state.db, environment).await {
                    tracing::warn!(error = %e.detail(), "backfill sweep failed; retrying at the next tick");
                }
                if let Err(e) = exhaustion::check_all(&state.db, environment).await {
                    tracing::warn!(error = %e.detail(), "exhaustion sweep failed; retrying at the next tick");
                }
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
