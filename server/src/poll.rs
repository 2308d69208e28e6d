//! Waiting until something holds, and retrying what may fail for a while: the one helper for such
//! loops (async sleeps only: never a blocking sleep on a runtime thread).
use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

/// Calls `probe` every `every` until it answers `Some`, for at most `timeout` (it is always called
/// once, and once more at the deadline); `None` when time ran out.
pub async fn until<T, F, Fut>(timeout: Duration, every: Duration, mut probe: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = probe().await {
            return Some(v);
        }
        let now = Instant::now();
        if now >= deadline {
            return None;
        }
        tokio::time::sleep(every.min(deadline - now)).await;
    }
}

/// Runs `op` up to `attempts` times while it fails with an error `retryable` accepts, waiting
/// `backoff × n` before the n-th retry. Returns the first success or the last error.
pub async fn retry<T, E, F, Fut>(
    attempts: u32,
    backoff: Duration,
    retryable: impl Fn(&E) -> bool,
    mut op: F,
) -> Result<T, E>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut n = 0;
    loop {
        match op().await {
            Ok(v) => return Ok(v),
            Err(e) if n + 1 < attempts.max(1) && retryable(&e) => {
                n += 1;
                tokio::time::sleep(backoff * n).await;
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn until_answers_as_soon_as_the_probe_does_or_none_at_the_deadline() {
        let calls = Cell::new(0);
        let got = until(Duration::from_secs(1), Duration::from_millis(10), || async {
            calls.set(calls.get() + 1);
            (calls.get() == 3).then_some("ready")
        })
        .await;
        assert_eq!((got, calls.get()), (Some("ready"), 3));
        let t0 = Instant::now();
        let never: Option<()> = until(Duration::from_millis(95), Duration::from_millis(10), || async { None }).await;
        assert_eq!(never, None);
        assert_eq!(t0.elapsed(), Duration::from_millis(95), "the last probe is at the deadline, not past it");
    }

    #[tokio::test(start_paused = true)]
    async fn retry_stops_at_success_at_the_limit_or_at_an_error_it_must_not_retry() {
        let calls = Cell::new(0);
        let r: Result<u32, &str> = retry(
            5,
            Duration::from_millis(100),
            |_| true,
            || async {
                calls.set(calls.get() + 1);
                if calls.get() < 3 { Err("busy") } else { Ok(calls.get()) }
            },
        )
        .await;
        assert_eq!(r, Ok(3));
        calls.set(0);
        let r: Result<(), &str> = retry(
            4,
            Duration::from_millis(1),
            |_| true,
            || async {
                calls.set(calls.get() + 1);
                Err("busy")
            },
        )
        .await;
        assert_eq!((r, calls.get()), (Err("busy"), 4));
        calls.set(0);
        let r: Result<(), &str> = retry(
            4,
            Duration::from_millis(1),
            |e| *e == "busy",
            || async {
                calls.set(calls.get() + 1);
                Err("gone")
            },
        )
        .await;
        assert_eq!((r, calls.get()), (Err("gone"), 1));
    }
}
