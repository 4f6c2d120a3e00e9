//! A token bucket in tokio time, pacing RunInstances to EC2's request bucket.

use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

/// Token bucket: `burst` tokens, refilled at `per_second`.
#[derive(Debug)]
pub struct TokenBucket {
    burst: f64,
    per_second: f64,
    state: Mutex<(f64, Instant)>,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(burst: u32, per_second: f64) -> Self {
        Self {
            burst: burst as f64,
            per_second,
            state: Mutex::new((burst as f64, Instant::now())),
        }
    }

    /// EC2's RunInstances request bucket: 5 burst, 2 per second.
    pub fn run_instances() -> Self {
        Self::new(5, 2.0)
    }

    /// Waits for and takes one token. Callers queue on the lock, so tokens go in
    /// arrival order.
    pub async fn acquire(&self) {
        let mut state = self.state.lock().await;
        loop {
            let now = Instant::now();
            let (tokens, last) = *state;
            let tokens =
                (tokens + now.duration_since(last).as_secs_f64() * self.per_second).min(self.burst);
            if tokens >= 1.0 {
                *state = (tokens - 1.0, now);
                return;
            }
            *state = (tokens, now);
            tokio::time::sleep(Duration::from_secs_f64((1.0 - tokens) / self.per_second)).await;
        }
    }
}

/// Backoff before retry `attempt` (0-based) after throttling: 0.5 s doubling up
/// to 8 s, with full jitter in its upper half.
pub fn throttle_backoff(attempt: u32) -> Duration {
    let base = 0.5 * 2f64.powi(attempt.min(4) as i32);
    Duration::from_secs_f64(base / 2.0 + fastrand::f64() * base / 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn burst_then_two_per_second() {
        let bucket = TokenBucket::run_instances();
        let start = Instant::now();
        for _ in 0..5 {
            bucket.acquire().await;
        }
        assert!(start.elapsed() < Duration::from_millis(1));
        for _ in 0..4 {
            bucket.acquire().await;
        }
        let elapsed = start.elapsed();
        assert!(
            elapsed >= Duration::from_millis(1999) && elapsed <= Duration::from_millis(2100),
            "{elapsed:?}"
        );
    }

    #[test]
    fn backoff_grows_and_is_bounded() {
        for attempt in 0..10 {
            let d = throttle_backoff(attempt);
            let base = 0.5 * 2f64.powi(attempt.min(4) as i32);
            assert!(
                d.as_secs_f64() >= base / 2.0 && d.as_secs_f64() <= base,
                "{attempt}: {d:?}"
            );
        }
    }
}
