//! Client-side pacing of ECS calls (token buckets) and jittered backoff on throttling.

use std::future::Future;
use std::time::Duration;

use jenkins_cloud_core::ErrorClass;
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::api::ApiError;

/// A token bucket: `rate` calls per second on average, bursts of `burst`.
#[derive(Debug)]
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    state: Mutex<(f64, Instant)>,
}

impl RateLimiter {
    /// A full bucket.
    pub fn new(rate_per_sec: f64, burst: u32) -> Self {
        let burst = f64::from(burst.max(1));
        Self {
            rate: rate_per_sec.max(0.001),
            burst,
            state: Mutex::new((burst, Instant::now())),
        }
    }

    /// Waits for one token.
    pub async fn acquire(&self) {
        loop {
            let wait = {
                let mut state = self.state.lock().await;
                let now = Instant::now();
                let (tokens, last) = *state;
                let tokens =
                    (tokens + now.duration_since(last).as_secs_f64() * self.rate).min(self.burst);
                if tokens >= 1.0 {
                    *state = (tokens - 1.0, now);
                    return;
                }
                *state = (tokens, now);
                Duration::from_secs_f64((1.0 - tokens) / self.rate)
            };
            tokio::time::sleep(wait).await;
        }
    }
}

/// Backoff settings for throttled calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Retries after the first throttled attempt.
    pub retries: u32,
    /// First delay ceiling; doubles per retry.
    pub base: Duration,
    /// Largest delay ceiling.
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            retries: 4,
            base: Duration::from_millis(250),
            max: Duration::from_secs(5),
        }
    }
}

impl Backoff {
    /// Full-jitter delay before retry number `attempt` (0-based).
    fn delay(&self, attempt: u32) -> Duration {
        let ceiling = self
            .base
            .saturating_mul(1u32 << attempt.min(16))
            .min(self.max);
        ceiling.mul_f64(fastrand::f64())
    }
}

/// Calls `call` after taking a token from `limiter`; on throttling waits a
/// jittered, growing delay and tries again, up to `backoff.retries` times.
/// Other errors return at once.
pub async fn paced<T, F, Fut>(
    limiter: &RateLimiter,
    backoff: Backoff,
    mut call: F,
) -> Result<T, ApiError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, ApiError>>,
{
    let mut attempt = 0;
    loop {
        limiter.acquire().await;
        match call().await {
            Err(err) if err.class() == ErrorClass::Throttled && attempt < backoff.retries => {
                let delay = backoff.delay(attempt);
                tracing::debug!(
                    operation = err.operation,
                    attempt,
                    ?delay,
                    "throttled; backing off"
                );
                tokio::time::sleep(delay).await;
                attempt += 1;
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn bucket_allows_burst_then_paces() {
        let limiter = RateLimiter::new(10.0, 5);
        let start = Instant::now();
        for _ in 0..5 {
            limiter.acquire().await;
        }
        assert_eq!(start.elapsed(), Duration::ZERO, "the burst is free");
        for _ in 0..10 {
            limiter.acquire().await;
        }
        let elapsed = start.elapsed();
        assert!(
            elapsed >= Duration::from_millis(990) && elapsed <= Duration::from_millis(1010),
            "{elapsed:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn throttled_calls_are_retried_with_backoff_then_give_up() {
        let limiter = RateLimiter::new(1000.0, 1000);
        let calls = AtomicU32::new(0);
        let backoff = Backoff {
            retries: 3,
            ..Backoff::default()
        };
        let result: Result<(), ApiError> = paced(&limiter, backoff, || {
            calls.fetch_add(1, Ordering::SeqCst);
            async {
                Err(ApiError::service(
                    "RunTask",
                    "ThrottlingException",
                    "Rate exceeded",
                ))
            }
        })
        .await;
        assert_eq!(calls.load(Ordering::SeqCst), 4, "first attempt + 3 retries");
        assert_eq!(result.unwrap_err().class(), ErrorClass::Throttled);

        let calls = AtomicU32::new(0);
        let result = paced(&limiter, backoff, || {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            async move {
                if n < 2 {
                    Err(ApiError::service(
                        "RunTask",
                        "ThrottlingException",
                        "Rate exceeded",
                    ))
                } else {
                    Ok(n)
                }
            }
        })
        .await;
        assert_eq!(result.unwrap(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn permanent_errors_are_not_retried() {
        let limiter = RateLimiter::new(1000.0, 1000);
        let calls = AtomicU32::new(0);
        let result: Result<(), ApiError> = paced(&limiter, Backoff::default(), || {
            calls.fetch_add(1, Ordering::SeqCst);
            async { Err(ApiError::service("RunTask", "AccessDeniedException", "no")) }
        })
        .await;
        assert!(result.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }
}
