//! The one clock the proxy reads: wall time (Unix seconds: token and code
//! expiry, store records) and monotonic time (`Instant`: rate-limit windows,
//! caches, idle connections), from the system or, in tests, a manual clock
//! that only moves when told to.
//!
//! Timers and timeouts are not read from here: they use `tokio::time`, which
//! a test can pause on its own.
//!
//! [`Clock`] is an enum, not a trait object: the upstream client reads it for
//! every pooled connection it takes or gives back, and the system case is an
//! inlined branch around `Instant::now()` (no indirect call, no allocation).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;

/// Where time comes from. Cloning is cheap (the manual case shares one counter).
/// No `Default`: every holder is given the clock it should read.
#[derive(Clone, Debug)]
pub struct Clock(Source);

#[derive(Clone, Debug)]
enum Source {
    System,
    Manual(Arc<Manual>),
}

impl Clock {
    /// The system's clocks.
    pub fn system() -> Self {
        Self(Source::System)
    }

    /// Wall time in whole seconds since the Unix epoch.
    #[inline]
    pub fn unix(&self) -> u64 {
        match &self.0 {
            Source::System => SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            Source::Manual(m) => m.unix(),
        }
    }

    /// Monotonic time.
    #[inline]
    pub fn instant(&self) -> Instant {
        match &self.0 {
            Source::System => Instant::now(),
            Source::Manual(m) => m.instant(),
        }
    }

    /// Each time a manual clock is advanced; never for the system clock.
    pub fn advances(&self) -> Advances {
        match &self.0 {
            Source::System => Advances(None),
            Source::Manual(m) => Advances(Some(m.moved.subscribe())),
        }
    }
}

/// Waits for a manual clock to be advanced, so that periodic work (the
/// sweeper) also runs when a test moves time; never completes on the system clock.
pub struct Advances(Option<watch::Receiver<()>>);

impl Advances {
    /// Completes when the clock was advanced since the last time this completed
    /// (or since [`Clock::advances`]).
    pub async fn next(&mut self) {
        if let Some(moved) = &mut self.0
            && moved.changed().await.is_ok()
        {
            return;
        }
        std::future::pending().await
    }
}

/// A clock that stands still until [`advance`](ManualClock::advance)d: wall and
/// monotonic time move together. For tests; [`clock`](ManualClock::clock) is what
/// the code under test gets.
#[derive(Clone, Debug)]
pub struct ManualClock(Arc<Manual>);

#[derive(Debug)]
struct Manual {
    /// The wall time at creation, in Unix seconds.
    unix_start: u64,
    /// The monotonic time at creation.
    start: Instant,
    /// Nanoseconds advanced since creation.
    advanced: AtomicU64,
    /// Told each time the clock is advanced (see [`Clock::advances`]).
    moved: watch::Sender<()>,
}

impl Manual {
    fn elapsed(&self) -> Duration {
        Duration::from_nanos(self.advanced.load(Ordering::Relaxed))
    }

    #[cold]
    fn unix(&self) -> u64 {
        self.unix_start + self.elapsed().as_secs()
    }

    #[cold]
    fn instant(&self) -> Instant {
        self.start + self.elapsed()
    }
}

impl ManualClock {
    /// A clock showing `unix_secs` as wall time.
    pub fn new(unix_secs: u64) -> Self {
        Self(Arc::new(Manual {
            unix_start: unix_secs,
            start: Instant::now(),
            advanced: AtomicU64::new(0),
            moved: watch::Sender::new(()),
        }))
    }

    /// A clock showing the system's wall time now (whole seconds), standing still from here.
    pub fn starting_now() -> Self {
        Self::new(Clock::system().unix())
    }

    /// Moves wall and monotonic time forward by `by`.
    pub fn advance(&self, by: Duration) {
        let nanos = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        self.0.advanced.fetch_add(nanos, Ordering::Relaxed);
        self.0.moved.send_modify(|()| {});
    }

    /// The clock to hand to the code under test.
    pub fn clock(&self) -> Clock {
        Clock(Source::Manual(self.0.clone()))
    }

    /// Wall time in whole seconds since the Unix epoch.
    pub fn unix(&self) -> u64 {
        self.0.unix()
    }

    /// Monotonic time.
    pub fn instant(&self) -> Instant {
        self.0.instant()
    }
}

impl From<&ManualClock> for Clock {
    fn from(m: &ManualClock) -> Self {
        m.clock()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_system_clock_moves_and_is_near_the_systems() {
        let c = Clock::system();
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        assert!(c.unix().abs_diff(wall) <= 1);
        let a = c.instant();
        assert!(c.instant() >= a);
    }

    #[test]
    fn a_manual_clock_moves_only_when_advanced_and_clones_share_it() {
        let m = ManualClock::new(1_000);
        let c = m.clock();
        let c2 = c.clone();
        let start = c.instant();
        std::thread::sleep(Duration::from_millis(2));
        assert_eq!((c.unix(), c.instant()), (1_000, start), "stands still");

        m.advance(Duration::from_millis(1_500));
        assert_eq!(c.unix(), 1_001, "whole seconds");
        assert_eq!(c2.instant() - start, Duration::from_millis(1_500));
        m.advance(Duration::from_millis(500));
        assert_eq!((c2.unix(), m.unix()), (1_002, 1_002));
        assert_eq!(m.instant(), c.instant());
    }

    #[tokio::test]
    async fn advancing_a_manual_clock_wakes_who_waits_for_advances() {
        let m = ManualClock::new(1_000);
        let mut advances = m.clock().advances();
        m.advance(Duration::from_secs(1));
        tokio::time::timeout(Duration::from_secs(10), advances.next())
            .await
            .expect("an advance made before waiting is not lost");
        let waiting = tokio::spawn(async move { advances.next().await });
        m.advance(Duration::from_secs(1));
        tokio::time::timeout(Duration::from_secs(10), waiting)
            .await
            .expect("a waiter is woken")
            .unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn the_system_clock_never_reports_an_advance() {
        let mut advances = Clock::system().advances();
        let waited = tokio::time::timeout(Duration::from_secs(3600), advances.next()).await;
        assert!(waited.is_err());
    }
}
