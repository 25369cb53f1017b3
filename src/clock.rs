//! The one place the crate reads time from, so tests can control it.
//!
//! In-memory expiry uses a monotonic [`Instant`]; persisted expiry uses UTC [`SystemTime`]
//! (SECURITY.md rule 27). Three clocks come with the crate:
//!
//! - [`SystemClock`], the default: the operating system's clock. The check every request makes
//!   ("is the cached token still fresh?") reads it through [`Clock::now_fast`], which on Linux
//!   is the kernel's coarse monotonic clock: a few nanoseconds instead of some thirty, at most a
//!   few milliseconds ahead and never behind.
//! - [`TokioClock`]: tokio's clock, for tests under `#[tokio::test(start_paused = true)]` that
//!   move time with `tokio::time::advance` (the system clock does not see tokio's pause).
//! - [`ManualClock`]: moved by hand; its `sleep` returns at once after moving itself forward,
//!   which makes retries and backoff testable without waiting.
//!
//! Give a clock to [`OAuthClientBuilder::clock`](crate::OAuthClientBuilder::clock); everything
//! built from that client measures time with it.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

/// A boxed, `Send` future returned by [`Clock::sleep`].
pub type Sleep = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// A source of time.
pub trait Clock: fmt::Debug + Send + Sync + 'static {
    /// Monotonic now, for in-memory expiry.
    fn now(&self) -> Instant;
    /// Monotonic now, read cheaply for the freshness check every request makes. It may run ahead
    /// of [`now`](Self::now) by a few milliseconds, so a token is at worst renewed a few
    /// milliseconds early; on a virtual machine whose timer ticks are delayed it can also fall
    /// a little behind, so instants compared with it keep a margin (an invalidated token is
    /// made stale a second in the past). The default reads `now`.
    fn now_fast(&self) -> Instant {
        self.now()
    }
    /// Wall-clock now, for persisted expiry.
    fn now_utc(&self) -> SystemTime;
    /// Waits for `duration`.
    fn sleep(&self, duration: Duration) -> Sleep;
}

/// `at + by`, saturating: when the sum cannot be represented (a `Retry-After` of 2^64 - 1
/// seconds, a `Duration::MAX` in the configuration), the latest instant within reach, at least
/// half as far away as asked, which is centuries in any case. Never panics (SECURITY.md rule 46).
pub(crate) fn instant_after(at: Instant, by: Duration) -> Instant {
    let mut by = by;
    loop {
        if let Some(later) = at.checked_add(by) {
            return later;
        }
        by /= 2;
    }
}

/// Seconds since the Unix epoch on `clock`'s wall time (0 before the epoch).
#[cfg(feature = "dpop")]
pub(crate) fn unix_seconds(clock: &dyn Clock) -> u64 {
    clock
        .now_utc()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `at + by` on the wall clock, saturating like [`instant_after`].
pub(crate) fn time_after(at: SystemTime, by: Duration) -> SystemTime {
    let mut by = by;
    loop {
        if let Some(later) = at.checked_add(by) {
            return later;
        }
        by /= 2;
    }
}

/// The operating system's clock, the default. [`now_fast`](Clock::now_fast) reads the kernel's
/// coarse monotonic clock on Linux and Android, and [`Instant::now`] elsewhere.
///
/// It does not see tokio's paused time; tests that pause and advance tokio's clock use
/// [`TokioClock`].
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }

    #[inline]
    fn now_fast(&self) -> Instant {
        coarse::now()
    }

    fn now_utc(&self) -> SystemTime {
        SystemTime::now()
    }

    fn sleep(&self, duration: Duration) -> Sleep {
        Box::pin(tokio::time::sleep(duration))
    }
}

/// Tokio's clock: under `#[tokio::test(start_paused = true)]` it stands still until
/// `tokio::time::advance` (or tokio's auto-advance) moves it, and expiry follows it. Outside a
/// paused runtime it reads the system's clock, a little more slowly than [`SystemClock`].
///
/// ```
/// use oauth_layer::{OAuthClient, clock::TokioClock};
///
/// let client = OAuthClient::builder("my-client").clock(TokioClock).build()?;
/// # let _ = client;
/// # Ok::<(), oauth_layer::Error>(())
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioClock;

impl Clock for TokioClock {
    fn now(&self) -> Instant {
        tokio::time::Instant::now().into_std()
    }

    fn now_utc(&self) -> SystemTime {
        SystemTime::now()
    }

    fn sleep(&self, duration: Duration) -> Sleep {
        Box::pin(tokio::time::sleep(duration))
    }
}

/// The kernel's coarse monotonic clock (`CLOCK_MONOTONIC_COARSE`): the time of the last timer
/// tick, read without a system call or a counter read, so some thirty nanoseconds cheaper than
/// [`Instant::now`] on a virtual machine.
///
/// It counts the same time as [`Instant`] (`CLOCK_MONOTONIC`), a tick behind at most. One anchor
/// pair, a coarse reading followed by a precise one, maps it onto [`Instant`]; the mapping is
/// within a tick either way, and one tick is added, so the result is never behind
/// [`Instant::now`] and at most two ticks ahead (8 ms with the usual 250 Hz tick).
#[cfg(any(target_os = "linux", target_os = "android"))]
mod coarse {
    use std::sync::OnceLock;
    use std::time::{Duration, Instant};

    use rustix::time::{ClockId, Timespec, clock_getres, clock_gettime};

    /// Ticks longer than this are not worth the error; such a system reads [`Instant::now`].
    const LONGEST_TICK: Duration = Duration::from_millis(20);

    struct Anchor {
        /// A precise reading plus one tick: the instant a coarse reading of `coarse` maps to.
        precise_ahead: Instant,
        coarse: Duration,
    }

    static ANCHOR: OnceLock<Option<Anchor>> = OnceLock::new();

    fn duration(t: Timespec) -> Option<Duration> {
        Some(Duration::new(
            u64::try_from(t.tv_sec).ok()?,
            u32::try_from(t.tv_nsec).ok()?,
        ))
    }

    fn read() -> Option<Duration> {
        duration(clock_gettime(ClockId::MonotonicCoarse))
    }

    fn anchor() -> Option<Anchor> {
        let tick = duration(clock_getres(ClockId::MonotonicCoarse))?;
        if tick.is_zero() || tick > LONGEST_TICK {
            return None;
        }
        // Coarse first: the precise reading taken after it is never earlier.
        let coarse = read()?;
        let precise = Instant::now();
        Some(Anchor {
            precise_ahead: precise.checked_add(tick)?,
            coarse,
        })
    }

    #[inline]
    pub(super) fn now() -> Instant {
        let Some(anchor) = ANCHOR.get_or_init(anchor) else {
            return Instant::now();
        };
        match read().and_then(|c| c.checked_sub(anchor.coarse)) {
            Some(since) => anchor.precise_ahead + since,
            None => Instant::now(),
        }
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
mod coarse {
    pub(super) fn now() -> std::time::Instant {
        std::time::Instant::now()
    }
}

/// A clock that moves only when told to. `sleep` moves it forward by the requested time and
/// returns at once, so code that backs off or polls runs instantly in tests and the time it
/// would have waited can be read back with [`ManualClock::elapsed`].
///
/// ```
/// use std::time::Duration;
/// use oauth_layer::clock::{Clock, ManualClock};
///
/// let clock = ManualClock::new();
/// let t0 = clock.now();
/// clock.advance(Duration::from_secs(90));
/// assert_eq!(clock.now() - t0, Duration::from_secs(90));
/// ```
#[derive(Debug, Clone)]
pub struct ManualClock {
    inner: Arc<ManualInner>,
}

#[derive(Debug)]
struct ManualInner {
    base: Instant,
    base_utc: SystemTime,
    offset_nanos: AtomicU64,
}

impl ManualClock {
    /// A clock standing at the real current time.
    pub fn new() -> Self {
        Self {
            inner: Arc::new(ManualInner {
                base: Instant::now(),
                base_utc: SystemTime::now(),
                offset_nanos: AtomicU64::new(0),
            }),
        }
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        let nanos = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        // Saturates at some 584 years rather than wrapping back to the start.
        let _ =
            self.inner
                .offset_nanos
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |offset| {
                    Some(offset.saturating_add(nanos))
                });
    }

    /// How far the clock has moved since it was made.
    pub fn elapsed(&self) -> Duration {
        Duration::from_nanos(self.inner.offset_nanos.load(Ordering::SeqCst))
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        instant_after(self.inner.base, self.elapsed())
    }

    fn now_utc(&self) -> SystemTime {
        time_after(self.inner.base_utc, self.elapsed())
    }

    fn sleep(&self, duration: Duration) -> Sleep {
        self.advance(duration);
        Box::pin(std::future::ready(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fast reading is never behind a precise one taken before it, and not far ahead of one
    /// taken after it (two ticks of the coarsest clock allowed, 20 ms each, and some slack for a
    /// descheduled thread).
    #[test]
    fn fast_reading_is_never_behind() {
        let clock = SystemClock;
        for _ in 0..200_000 {
            let before = Instant::now();
            let fast = clock.now_fast();
            let after = Instant::now();
            assert!(fast >= before, "fast reading behind by {:?}", before - fast);
            assert!(
                fast <= after + Duration::from_millis(50),
                "fast reading ahead by {:?}",
                fast - after
            );
        }
    }

    /// It moves with time.
    #[test]
    fn fast_reading_advances() {
        let clock = SystemClock;
        let first = clock.now_fast();
        std::thread::sleep(Duration::from_millis(60));
        assert!(clock.now_fast() >= first + Duration::from_millis(30));
    }

    /// Tokio's clock follows a paused runtime; the system's does not.
    #[tokio::test(start_paused = true)]
    async fn tokio_clock_follows_paused_time() {
        let (tokio0, system0) = (TokioClock.now(), SystemClock.now());
        tokio::time::advance(Duration::from_secs(3600)).await;
        assert!(TokioClock.now() - tokio0 >= Duration::from_secs(3600));
        assert!(SystemClock.now() - system0 < Duration::from_secs(60));
    }
}
