//! Staff passwords, hashed with Argon2id (PHC strings). Hashing is CPU-heavy
//! and takes about 19 MiB of memory per check, so checks run on the blocking
//! pool, a few per core at most: a flood of sign-ins waits briefly for a turn
//! and is then answered `RATE_LIMITED`, instead of growing the process by
//! 19 MiB per concurrent attempt. Checks work in memory kept for them and
//! reused (one region per turn), not in a fresh allocation each time: the
//! system allocator keeps large freed regions per thread, so allocating per
//! check let a flood leave hundreds of MiB behind.

use crate::error::AppError;
use argon2::password_hash::PasswordHasher;
use argon2::password_hash::phc::{Output, PasswordHash};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::sync::Semaphore;

/// Password checks in flight per core.
const CHECKS_PER_CORE: usize = 2;
/// How long a check waits for its turn before the caller is told to retry.
const WAIT_FOR_TURN: Duration = Duration::from_secs(2);

/// The turns password checks take: a few per core, for the whole process.
fn turns() -> &'static Arc<Semaphore> {
    static TURNS: OnceLock<Arc<Semaphore>> = OnceLock::new();
    TURNS.get_or_init(|| Arc::new(Semaphore::new(max_in_flight())))
}

/// How many password hashes or checks run at once, at most.
pub fn max_in_flight() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from).max(1) * CHECKS_PER_CORE
}

/// Runs `work` on the blocking pool once a turn is free; after
/// [`WAIT_FOR_TURN`] without one the caller is answered `RATE_LIMITED`.
async fn in_turn<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T, AppError> {
    in_turn_of(turns(), work).await
}

async fn in_turn_of<T: Send + 'static>(
    turns: &Arc<Semaphore>,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, AppError> {
    let permit = tokio::time::timeout(WAIT_FOR_TURN, turns.clone().acquire_owned())
        .await
        .map_err(|_| AppError::RateLimited { retry_after_secs: 1 })?
        .map_err(AppError::internal)?;
    // The turn goes with the work: a caller that gives up (a client that
    // hangs up) does not free it while the check still runs.
    tokio::task::spawn_blocking(move || {
        let result = work();
        drop(permit);
        result
    })
    .await
    .map_err(AppError::internal)
}

pub async fn hash(password: String) -> Result<String, AppError> {
    in_turn(move || {
        Argon2::default()
            .hash_password(password.as_bytes())
            .map(|h| h.to_string())
            .map_err(|e| AppError::internal(format!("hashing a password: {e}")))
    })
    .await?
}

/// Whether `password` matches `stored`. With no stored hash (unknown account)
/// a dummy hash is checked anyway, so that the answer takes as long either way.
/// `RATE_LIMITED` when too many checks are waiting already.
pub async fn verify(password: String, stored: Option<String>) -> Result<bool, AppError> {
    in_turn(move || {
        let known = stored.is_some();
        let phc = stored.unwrap_or_else(|| dummy_hash().to_string());
        let Ok(parsed) = PasswordHash::new(&phc) else {
            return false;
        };
        let matches = matches(password.as_bytes(), &parsed);
        known && matches
    })
    .await
}

/// Argon2 working memory kept between checks: at most one region per turn.
fn kept_memory() -> &'static Mutex<Vec<Vec<Block>>> {
    static KEPT: OnceLock<Mutex<Vec<Vec<Block>>>> = OnceLock::new();
    KEPT.get_or_init(Mutex::default)
}

/// Runs `work` with `blocks` blocks of working memory, reusing a kept region.
fn with_memory<T>(blocks: usize, work: impl FnOnce(&mut [Block]) -> T) -> T {
    let kept = kept_memory().lock().ok().and_then(|mut kept| kept.pop());
    let mut memory = match kept {
        Some(memory) if memory.len() == blocks => memory,
        _ => vec![Block::default(); blocks],
    };
    let result = work(&mut memory);
    if let Ok(mut kept) = kept_memory().lock()
        && kept.len() < max_in_flight()
    {
        kept.push(memory);
    }
    result
}

/// Whether `password` hashes to `stored` under the stored salt and parameters
/// (the output compared in constant time).
fn matches(password: &[u8], stored: &PasswordHash) -> bool {
    let (Some(salt), Some(expected)) = (&stored.salt, &stored.hash) else {
        return false;
    };
    let Ok(algorithm) = Algorithm::try_from(stored.algorithm.as_str()) else {
        return false;
    };
    let Ok(version) = stored.version.map(Version::try_from).transpose() else {
        return false;
    };
    let Ok(params) = Params::try_from(stored) else {
        return false;
    };
    let blocks = params.block_count();
    let argon2 = Argon2::new(algorithm, version.unwrap_or_default(), params);
    let mut computed = vec![0u8; expected.len()];
    let hashed =
        with_memory(blocks, |memory| argon2.hash_password_into_with_memory(password, salt, &mut computed, memory));
    hashed.is_ok() && Output::new(&computed).is_ok_and(|computed| &computed == expected)
}

fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        Argon2::default().hash_password(b"keysmith timing equaliser").map(|h| h.to_string()).unwrap_or_default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_wrong_passwords_do_not() {
        let h = hash("correct horse battery".into()).await.unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify("correct horse battery".into(), Some(h.clone())).await.unwrap());
        assert!(!verify("wrong horse battery".into(), Some(h)).await.unwrap());
        assert!(!verify("keysmith timing equaliser".into(), None).await.unwrap());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_flood_of_checks_runs_a_few_at_a_time_and_the_rest_are_told_to_retry() {
        let h = hash("correct horse battery".into()).await.unwrap();
        let running = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let most = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        // The same turns as the process's, apart from them so other tests are not slowed.
        let turns = Arc::new(Semaphore::new(max_in_flight()));
        let mut checks = tokio::task::JoinSet::new();
        for _ in 0..(max_in_flight() * 40) {
            let (running, most, h, turns) = (running.clone(), most.clone(), h.clone(), turns.clone());
            checks.spawn(async move {
                in_turn_of(&turns, move || {
                    let now = running.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                    most.fetch_max(now, std::sync::atomic::Ordering::SeqCst);
                    let parsed = PasswordHash::new(&h).unwrap();
                    let ok = matches(b"wrong horse battery", &parsed);
                    running.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                    ok
                })
                .await
            });
        }
        let (mut answered, mut limited) = (0, 0);
        while let Some(outcome) = checks.join_next().await {
            match outcome.unwrap() {
                Ok(matched) => {
                    assert!(!matched);
                    answered += 1;
                }
                Err(AppError::RateLimited { .. }) => limited += 1,
                Err(other) => panic!("unexpected {other:?}"),
            }
        }
        assert!(most.load(std::sync::atomic::Ordering::SeqCst) <= max_in_flight());
        assert!(answered >= max_in_flight(), "some checks ran ({answered})");
        assert_eq!(answered + limited, max_in_flight() * 40);
    }
}
