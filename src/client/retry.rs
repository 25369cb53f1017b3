//! When a failed token request is sent again, and after how long: the [`Resend`] rule of each
//! request, the client's [`RetryPolicy`], and the random spread of its waits.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use http::StatusCode;

use crate::error::{Action, Error, ErrorCode, TransportErrorKind};

/// Whether a failed token request may be sent again (SECURITY.md rule 23). Each grant decides
/// it for its own requests: resending is safe only when the server cannot have acted on the
/// first attempt, or when acting twice does no harm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Resend {
    /// Never: the grant is single use (an authorization code).
    Never,
    /// Only when the server certainly did not act on it: a connection that was never made, or a
    /// 429/503 answer. For refresh tokens, which a server may rotate on receipt.
    IfUnprocessed,
    /// Also after timeouts, resets and other 5xx answers, for grants that can be minted again
    /// (client credentials, password, JWT bearer, token exchange).
    Always,
}

/// How often and how long failed token requests are retried.
///
/// Retries happen only where the request's [`Resend`] rule allows. `Retry-After` is honoured
/// exactly, up to `max_retry_after`; a longer demand is returned to the caller as an error to
/// back off on. Without `Retry-After`, the wait before retry `n` is drawn at random from
/// `[0, min(max_backoff, initial_backoff · 2ⁿ⁻¹)]` ("full jitter"), so that clients that failed
/// together (a fleet, after an outage) do not come back together; each client draws from its
/// own random source (see
/// [`OAuthClientBuilder::jitter_seed`](crate::client::OAuthClientBuilder::jitter_seed)).
///
/// ```
/// use std::time::Duration;
/// use oauth_layer::RetryPolicy;
///
/// let policy = RetryPolicy::default().attempts(5);
/// assert_eq!(policy.max_attempts, 5);
/// assert!(policy.jitter);
/// assert!(!RetryPolicy::default().without_jitter().jitter);
/// # let _ = Duration::ZERO;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// Attempts in all, the first included (default 3; 1 turns retries off).
    pub max_attempts: u32,
    /// The upper bound of the first backoff; each later bound doubles (default 250 ms).
    pub initial_backoff: Duration,
    /// The largest backoff bound (default 5 s).
    pub max_backoff: Duration,
    /// The longest `Retry-After` waited for (default 30 s).
    pub max_retry_after: Duration,
    /// Draw each backoff at random below its bound (default `true`); `false` waits the bound
    /// itself, the same for every client.
    pub jitter: bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(5),
            max_retry_after: Duration::from_secs(30),
            jitter: true,
        }
    }
}

impl RetryPolicy {
    /// No retries at all.
    pub fn none() -> Self {
        Self {
            max_attempts: 1,
            ..Self::default()
        }
    }

    /// The same policy with `max_attempts` attempts.
    pub fn attempts(self, max_attempts: u32) -> Self {
        Self {
            max_attempts: max_attempts.max(1),
            ..self
        }
    }

    /// The same policy waiting each backoff bound in full, without randomness (predictable,
    /// for tests and single clients; a fleet should keep the jitter).
    pub fn without_jitter(self) -> Self {
        Self {
            jitter: false,
            ..self
        }
    }

    /// How long to wait before attempt `attempt + 1`, or `None` to give up.
    pub(crate) fn delay(
        &self,
        err: &Error,
        resend: Resend,
        attempt: u32,
        random: &Jitter,
    ) -> Option<Duration> {
        if attempt >= self.max_attempts || resend == Resend::Never {
            return None;
        }
        // An OAuth error that says the request itself is wrong (`invalid_client`,
        // `invalid_grant`, `invalid_scope`...) gets the same answer however often it is sent,
        // even when the status it came with (429, 503) would otherwise invite a retry.
        if matches!(err, Error::Server(e) if !matches!(e.action(), Action::RetryLater { .. })) {
            return None;
        }
        let status = match err {
            Error::Server(e) => Some(e.status),
            Error::UnexpectedResponse(e) => e.status,
            _ => None,
        };
        let server_declined = matches!(
            status,
            Some(StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE)
        ) || matches!(err, Error::Server(e) if e.code == ErrorCode::TemporarilyUnavailable);
        // Not sent, and worth sending again: a refused connection may be a restarting server, a
        // TLS failure or a refused plain-http URL will fail the same way every time.
        let not_sent =
            matches!(err, Error::Transport(e) if e.kind.request_not_sent()) && err.is_transient();
        let maybe_processed = matches!(
            err,
            Error::Transport(e) if matches!(e.kind, TransportErrorKind::Timeout | TransportErrorKind::Other)
        ) || status.is_some_and(|s| s.is_server_error())
            || matches!(err, Error::Server(e) if e.code == ErrorCode::ServerError);

        let allowed = server_declined || not_sent || (resend == Resend::Always && maybe_processed);
        if !allowed {
            return None;
        }
        if let Some(after) = err.retry_after() {
            return (after <= self.max_retry_after).then_some(after);
        }
        let factor = 2u32.saturating_pow(attempt - 1);
        let bound = self
            .initial_backoff
            .saturating_mul(factor)
            .min(self.max_backoff);
        Some(if self.jitter {
            bound.mul_f64(random.fraction())
        } else {
            bound
        })
    }
}

/// The random source of one client's retry waits (shared by its clones): a SplitMix64 sequence,
/// seeded from the operating system or, for reproducible tests, by the caller. Not for secrets.
#[derive(Debug)]
pub(crate) struct Jitter {
    state: AtomicU64,
}

const GOLDEN_GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

impl Jitter {
    /// A sequence that starts from `seed`: the same seed, the same waits.
    pub(crate) fn seeded(seed: u64) -> Self {
        Self {
            state: AtomicU64::new(seed),
        }
    }

    /// A sequence seeded from the operating system's randomness, or, where that fails, from
    /// the per-process keys of the standard library's hasher and the time.
    pub(crate) fn from_entropy() -> Self {
        let seed = getrandom::u64().unwrap_or_else(|_| {
            use std::hash::{BuildHasher, Hasher};
            let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
            hasher.write_u128(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos())
                    .unwrap_or(0),
            );
            hasher.finish()
        });
        Self::seeded(seed)
    }

    /// The next number of the sequence, uniform in `[0, 1)`.
    pub(crate) fn fraction(&self) -> f64 {
        let mut z = self
            .state
            .fetch_add(GOLDEN_GAMMA, Ordering::Relaxed)
            .wrapping_add(GOLDEN_GAMMA);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        // The top 53 bits fill an f64 mantissa exactly.
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fractions_stay_in_the_unit_interval_and_repeat_per_seed() {
        let a = Jitter::seeded(7);
        let b = Jitter::seeded(7);
        for _ in 0..1000 {
            let x = a.fraction();
            assert!((0.0..1.0).contains(&x));
            assert_eq!(x, b.fraction());
        }
        assert_ne!(Jitter::seeded(1).fraction(), Jitter::seeded(2).fraction());
    }
}
