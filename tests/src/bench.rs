//! What the benchmarks share: many concurrent clients making numbered
//! requests, and what one side of a comparison measured (a rate per round,
//! every request's latency).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// What one side of a comparison measured.
#[derive(Default)]
pub struct Side {
    /// Requests per second, one figure per round.
    pub rates: Vec<f64>,
    pub latencies: Vec<Duration>,
    /// The process's CPU time per request (clients and server), one figure per round.
    pub cpu: Vec<Duration>,
    /// The process's context switches per request (all its threads), one figure per round.
    pub switches: Vec<f64>,
}

impl Side {
    pub fn median_rate(&self) -> f64 {
        let mut r = self.rates.clone();
        r.sort_by(f64::total_cmp);
        r[r.len() / 2]
    }

    pub fn percentile(&mut self, p: f64) -> Duration {
        self.latencies.sort();
        self.latencies[((self.latencies.len() as f64 - 1.0) * p).round() as usize]
    }
}

/// `calls` requests from `clients` concurrent clients, one round of `side`;
/// `call(i)` makes request `i` and checks its answer.
pub async fn load<F, Fut>(side: &mut Side, clients: usize, calls: usize, call: F)
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send,
{
    let call = Arc::new(call);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let cpu = process_cpu();
    let switched = process_switches();
    let mut running = tokio::task::JoinSet::new();
    for _ in 0..clients {
        let (call, next) = (call.clone(), next.clone());
        running.spawn(async move {
            let mut mine = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= calls {
                    return mine;
                }
                let t = Instant::now();
                call(i).await;
                mine.push(t.elapsed());
            }
        });
    }
    while let Some(done) = running.join_next().await {
        side.latencies.extend(done.expect("a client"));
    }
    side.rates.push(calls as f64 / started.elapsed().as_secs_f64());
    side.cpu.push(process_cpu().saturating_sub(cpu) / calls.max(1) as u32);
    side.switches.push(process_switches().saturating_sub(switched) as f64 / calls.max(1) as f64);
}

/// The context switches, voluntary and not, of this process's live threads
/// (Linux; zero elsewhere): thread hand-offs per request show where a path
/// waits on another thread (a database driver's, a blocking pool's).
pub fn process_switches() -> u64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return 0 };
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("status")).ok())
        .flat_map(|status| {
            status
                .lines()
                .filter(|l| l.contains("ctxt_switches:"))
                .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
                .collect::<Vec<_>>()
        })
        .sum()
}

/// The CPU time this process has used, user and system (Linux; zero elsewhere).
pub fn process_cpu() -> Duration {
    cpu_of("self")
}

/// The CPU time the process `pid` (or `self`) has used, user and system
/// (Linux; zero elsewhere).
pub fn cpu_of(pid: &str) -> Duration {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return Duration::ZERO };
    // The fields after the command name (which ends at the last ')'): utime and stime are the 12th and 13th.
    let fields: Vec<&str> =
        stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
    let ticks: u64 = [11, 12].iter().filter_map(|&i| fields.get(i)?.parse::<u64>().ok()).sum();
    // The kernel reports in USER_HZ ticks, 100 a second on Linux.
    Duration::from_millis(ticks * 10)
}
