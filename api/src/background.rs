//! The node's job runner: everything done off the request path is a job in
//! the job table (see `services::jobs`), claimed by one node at a time. The
//! runner also keeps the node's own memory tidy (rate-limit budgets) and
//! checks the pools its requests took keys from, and writes when devices
//! were last seen.

use crate::AppState;
use crate::error::AppResult;
use crate::services::jobs::{self, Done};
use crate::services::{email, exhaustion, fulfilment, licenses, reminders, webhooks};
use entity::{Environment, job};
use sea_orm::Iterable;
use std::collections::HashSet;
use std::time::{Duration, Instant};
use tokio::task::JoinSet;

/// Jobs one node runs at once.
const CONCURRENT_JOBS: usize = 4;
/// Kinds woken early when a request writes events or email.
const DELIVERIES: [&str; 2] = [jobs::DELIVER_WEBHOOKS, jobs::SEND_EMAILS];

/// The node's name: configured, or the host name and the port it listens on.
pub fn node_name(config: &crate::config::Config, listening: std::net::SocketAddr) -> String {
    config.node_id.clone().unwrap_or_else(|| {
        let host = hostname::get().map(|h| h.to_string_lossy().into_owned()).unwrap_or_else(|_| "keysmith".into());
        format!("{host}:{}", listening.port())
    })
}

/// The recurring jobs and how often each runs, in seconds.
pub fn schedule(state: &AppState) -> [(&'static str, u64); 4] {
    let sweep = state.config.sweep_interval_seconds.max(1);
    [
        (jobs::EXPIRE_LICENSES, sweep),
        (jobs::SEND_EXPIRY_NOTICES, sweep),
        (jobs::DELIVER_WEBHOOKS, 1),
        (jobs::SEND_EMAILS, 1),
    ]
}

/// Starts the runner; it stops when the returned handle is dropped or
/// aborted. Name the node (`state.jobs.set_node`) first, and start the
/// runner before serving: it first takes back what this node held when it
/// last stopped, which must not catch the node's own new jobs.
pub async fn spawn(state: AppState) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let node = state.jobs.node().to_string();
    let ready = async {
        jobs::recover(&state.db, &node).await?;
        jobs::ensure_recurring(&state.db, &schedule(&state)).await
    };
    ready.await.map_err(|e| anyhow::anyhow!("starting the job runner: {}", e.detail()))?;
    Ok(tokio::spawn(async move {
        tracing::info!(node = %node, "job runner started");
        // The node's live event feed lives as long as the runner.
        let _feed = tokio_util::task::AbortOnDropHandle::new(tokio::spawn(crate::services::live::feed(
            state.db.clone(),
            state.live.clone(),
        )));
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let sweep = Duration::from_secs(state.config.sweep_interval_seconds.max(1));
        let mut tidied = Instant::now();
        let mut running: JoinSet<&'static str> = JoinSet::new();
        let mut busy: HashSet<&'static str> = HashSet::new();
        // Deliveries asked for while this node was already delivering: run
        // again as soon as the current run ends.
        let mut woken: HashSet<&'static str> = HashSet::new();
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    if let Err(e) = state.sightings.write(&state.db).await {
                        tracing::warn!(error = %e.detail(), "recording when devices were last seen failed");
                    }
                }
                _ = state.jobs_queued.notified() => {}
                _ = state.events_written.notified() => woken.extend(DELIVERIES),
                // A webhook send ended: deliveries it made room for go now.
                _ = state.webhooks.send_ended() => {
                    woken.insert(jobs::DELIVER_WEBHOOKS);
                }
                Some(done) = running.join_next(), if !running.is_empty() => {
                    if let Ok(kind) = done {
                        busy.remove(kind);
                    }
                }
            }
            if tidied.elapsed() >= sweep {
                tidied = Instant::now();
                state.client_limits.shrink();
                state.login_limits.shrink();
                state.integration_limits.shrink();
            }
            for (environment, pool) in state.pools_to_check.take() {
                if let Err(e) = exhaustion::check(&state.db, environment, &pool).await {
                    tracing::warn!(error = %e.detail(), pool = pool.id(), "exhaustion check failed");
                }
            }
            if let Err(e) = jobs::fail_abandoned(&state.db, &node).await {
                tracing::warn!(error = %e.detail(), "checking for abandoned jobs failed; retrying");
            }
            while running.len() < CONCURRENT_JOBS {
                let wake: Vec<&str> = woken.difference(&busy).copied().collect();
                let skip: Vec<&str> = busy.iter().copied().collect();
                let job = match jobs::claim(&state.db, &node, &wake, &skip).await {
                    Ok(Some(job)) => job,
                    Ok(None) => break,
                    Err(e) => {
                        tracing::warn!(error = %e.detail(), "claiming a job failed; retrying");
                        break;
                    }
                };
                let Some(kind) = known_kind(&job.kind) else {
                    let error = format!("this node does not know the job kind {}", job.kind);
                    if let Err(e) = jobs::finish(&state.db, &job, &node, Err(error)).await {
                        tracing::warn!(error = %e.detail(), "recording a failed job failed");
                    }
                    continue;
                };
                woken.remove(kind);
                busy.insert(kind);
                let (state, node) = (state.clone(), node.clone());
                running.spawn(async move {
                    run(&state, &node, job).await;
                    kind
                });
            }
        }
    }))
}

fn known_kind(kind: &str) -> Option<&'static str> {
    [
        jobs::GENERATE_LICENSES,
        jobs::EXPIRE_LICENSES,
        jobs::SEND_EXPIRY_NOTICES,
        jobs::DELIVER_WEBHOOKS,
        jobs::SEND_EMAILS,
    ]
    .into_iter()
    .find(|k| *k == kind)
}

/// Runs a claimed job and records how it ended.
async fn run(state: &AppState, node: &str, job: job::Model) {
    let outcome = match job.kind.as_str() {
        jobs::GENERATE_LICENSES => jobs::run_generation(&state.db, node, &job).await,
        jobs::EXPIRE_LICENSES => sweep(state).await.map(Some),
        jobs::SEND_EXPIRY_NOTICES => reminders::announce_expiring(&state.db)
            .await
            .map(|n| Some(Done { progress: n as i64, result: serde_json::json!({ "notices": n }) })),
        jobs::DELIVER_WEBHOOKS => deliver_webhooks(state).await.map(Some),
        jobs::SEND_EMAILS => email::send_due(&state.db, &state.mailer)
            .await
            .map(|n| Some(Done { progress: n as i64, result: serde_json::json!({ "handled": n }) })),
        _ => return,
    };
    let outcome = match outcome {
        Ok(Some(done)) => Ok(done),
        // The claim was lost to another node, which carries on.
        Ok(None) => return,
        Err(e) => {
            tracing::warn!(job = %job.id, kind = %job.kind, error = %e.detail(), "job failed");
            Err(e.client_message())
        }
    };
    if let Err(e) = jobs::finish(&state.db, &job, node, outcome).await {
        tracing::warn!(job = %job.id, error = %e.detail(), "recording the end of a job failed");
    }
}

/// Expires what is due, then the safety nets: lines left waiting when keys
/// arrived through a node that stopped before filling them, and pools never
/// checked against the exhaustion threshold.
async fn sweep(state: &AppState) -> AppResult<Done> {
    let expired = licenses::expire_due(&state.db).await?;
    if expired > 0 {
        tracing::info!(expired, "expiry sweep");
    }
    let forgotten = crate::services::integrations::forget_handled(&state.db).await?;
    if forgotten > 0 {
        tracing::info!(forgotten, "old integration events forgotten");
    }
    let mut delivered = 0;
    for environment in Environment::iter() {
        delivered += fulfilment::backfill(&state.db, environment).await?.delivered;
        exhaustion::check_all(&state.db, environment).await?;
    }
    Ok(Done { progress: expired as i64, result: serde_json::json!({ "expired": expired, "backfilled": delivered }) })
}

/// Turns new events into deliveries and starts the sends that are due and
/// that this node has room for. The sends go on after the run ends, each
/// recording its own attempt, so a run never waits for a receiver: a slow one
/// delays neither new events nor other endpoints' deliveries.
async fn deliver_webhooks(state: &AppState) -> AppResult<Done> {
    let queued = webhooks::dispatch(&state.db).await?;
    let allow_private = state.webhooks_may_reach_private().await?;
    let retry = state.config.webhook_retry_seconds;
    let started = webhooks::deliver_due(&state.db, &state.webhooks, allow_private, retry).await?;
    Ok(Done { progress: started as i64, result: serde_json::json!({ "queued": queued, "attempts": started }) })
}
