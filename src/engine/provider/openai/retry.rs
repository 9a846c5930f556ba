//! When and how long to wait before trying a model call again: exponential
//! backoff with full jitter, or the server's own `Retry-After`, capped.
//!
//! Pure functions (and the thread-local random generator); no I/O.

use std::time::Duration;

use rand::Rng;
use reqwest::StatusCode;
use reqwest::header::HeaderMap;

/// The longest wait we accept, whatever the server asks for.
pub(super) const MAX_DELAY: Duration = Duration::from_secs(30);

/// Whether an answer with this status is worth another try.
pub(super) fn is_retryable_status(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error()
}

/// The wait the server asks for: `retry-after-ms` (OpenAI) or `Retry-After`
/// in seconds, capped at [`MAX_DELAY`]. HTTP dates are not honoured.
pub(super) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let number = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|v| v.is_finite() && *v >= 0.0)
    };
    let wait = number("retry-after-ms").map(|ms| ms / 1000.0).or_else(|| number("retry-after"))?;
    Some(Duration::from_secs_f64(wait.min(MAX_DELAY.as_secs_f64())))
}

/// The wait before retry number `retry` (0 for the first retry): a uniformly
/// random time between zero and `base · 2^retry`, capped at [`MAX_DELAY`].
pub(super) fn backoff(base: Duration, retry: u32) -> Duration {
    let ceiling = base.saturating_mul(2u32.saturating_pow(retry.min(20))).min(MAX_DELAY);
    let millis = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
    Duration::from_millis(rand::rng().random_range(0..=millis))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(name: &'static str, value: &'static str) -> HeaderMap {
        let mut map = HeaderMap::new();
        map.insert(name, HeaderValue::from_static(value));
        map
    }

    #[test]
    fn retry_after_seconds_are_honoured_and_capped() {
        assert_eq!(retry_after(&headers("retry-after", "2")), Some(Duration::from_secs(2)));
        assert_eq!(retry_after(&headers("retry-after", "3600")), Some(MAX_DELAY));
        assert_eq!(retry_after(&headers("retry-after-ms", "250")), Some(Duration::from_millis(250)));
        assert_eq!(retry_after(&headers("retry-after", "Wed, 21 Oct 2015 07:28:00 GMT")), None);
        assert_eq!(retry_after(&headers("retry-after", "-1")), None);
        assert_eq!(retry_after(&HeaderMap::new()), None);
    }

    #[test]
    fn backoff_stays_within_its_ceiling() {
        let base = Duration::from_millis(100);
        for retry in 0..6 {
            let ceiling = (base * 2u32.pow(retry)).min(MAX_DELAY);
            assert!(backoff(base, retry) <= ceiling);
        }
        assert!(backoff(Duration::from_secs(10), 100) <= MAX_DELAY);
    }

    #[test]
    fn only_rate_limits_and_server_errors_are_retried() {
        assert!(is_retryable_status(StatusCode::TOO_MANY_REQUESTS));
        assert!(is_retryable_status(StatusCode::INTERNAL_SERVER_ERROR));
        assert!(is_retryable_status(StatusCode::SERVICE_UNAVAILABLE));
        assert!(!is_retryable_status(StatusCode::BAD_REQUEST));
        assert!(!is_retryable_status(StatusCode::UNAUTHORIZED));
    }
}
