//! A fixed-window rate limit per client IP, for endpoints anyone may call.
//! Counted in this instance's memory, or in Redis for all instances sharing
//! it (falling back to this instance's count while Redis does not answer).

use std::net::IpAddr;
use std::time::{Duration, Instant};

use dashmap::DashMap;

use crate::clock::Clock;
use crate::store::Redis;

pub struct RateLimit {
    max: u32,
    window: Duration,
    clock: Clock,
    seen: DashMap<IpAddr, (Instant, u32)>,
    keys: usize,
    /// Redis, and the name the counts are kept under there.
    shared: Option<(Redis, &'static str)>,
}

/// Addresses counted at most (~60 B each). When that many have live windows, a
/// new address is refused until windows end: a flood of addresses cannot grow
/// the table, nor reset anyone's count by pushing it out.
const MAX_KEYS: usize = 100_000;

impl RateLimit {
    pub fn new(max: u32, window: Duration, clock: Clock) -> Self {
        Self {
            max,
            window,
            clock,
            seen: DashMap::new(),
            keys: MAX_KEYS,
            shared: None,
        }
    }

    /// Counts in Redis under `name`, for every instance sharing it.
    pub fn shared(mut self, redis: Redis, name: &'static str) -> Self {
        self.shared = Some((redis, name));
        self
    }

    #[cfg(test)]
    fn with_keys(mut self, keys: usize) -> Self {
        self.keys = keys;
        self
    }

    /// Counts one call; `Err(seconds)` when the IP is over its limit for this window.
    pub fn check(&self, ip: IpAddr) -> Result<(), u64> {
        if let Some((redis, name)) = &self.shared {
            match redis.count_in_window(&format!("{name}:{ip}"), self.window) {
                Ok(w) if w.count > u64::from(self.max) => return Err(w.left.as_secs().max(1)),
                Ok(_) => return Ok(()),
                Err(e) => tracing::warn!(error = %e, "rate limit counted here only"),
            }
        }
        self.check_here(ip)
    }

    /// Counts one call in this instance's memory.
    fn check_here(&self, ip: IpAddr) -> Result<(), u64> {
        let now = self.clock.instant();
        if self.seen.len() >= self.keys && !self.seen.contains_key(&ip) {
            self.seen
                .retain(|_, (start, _)| now.duration_since(*start) < self.window);
            if self.seen.len() >= self.keys {
                let oldest = self.seen.iter().map(|e| e.0).min().unwrap_or(now);
                return Err((self.window.saturating_sub(now.duration_since(oldest)))
                    .as_secs()
                    .max(1));
            }
        }
        let mut entry = self.seen.entry(ip).or_insert((now, 0));
        let (start, count) = &mut *entry;
        if now.duration_since(*start) >= self.window {
            *start = now;
            *count = 0;
        }
        if *count >= self.max {
            return Err((self.window - now.duration_since(*start)).as_secs().max(1));
        }
        *count += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    #[test]
    fn limits_per_ip_and_window() {
        let time = ManualClock::new(0);
        let l = RateLimit::new(2, Duration::from_secs(60), time.clock());
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        assert!(l.check(a).is_ok() && l.check(a).is_ok());
        time.advance(Duration::from_secs(10));
        assert_eq!(l.check(a), Err(50));
        assert!(l.check(b).is_ok(), "another IP has its own count");
        time.advance(Duration::from_secs(49));
        assert_eq!(l.check(a), Err(1), "a second left");
        time.advance(Duration::from_secs(1));
        assert!(l.check(a).is_ok(), "the window rolled over");
        assert!(l.check(a).is_ok());
        assert_eq!(l.check(a), Err(60), "a full new window");
        assert!(l.check(b).is_ok());
        assert_eq!(l.check(b), Err(10), "b's window started 10 s later");
    }

    #[test]
    fn a_flood_of_addresses_is_bounded_and_new_ones_wait_for_a_window_to_end() {
        let time = ManualClock::new(0);
        let l = RateLimit::new(5, Duration::from_secs(60), time.clock()).with_keys(100);
        for i in 0..100u32 {
            assert!(l.check(IpAddr::from(i.to_be_bytes())).is_ok());
        }
        let known: IpAddr = "0.0.0.7".parse().unwrap();
        let new: IpAddr = "10.9.9.9".parse().unwrap();
        time.advance(Duration::from_secs(20));
        assert_eq!(l.check(new), Err(40), "full: a new address waits");
        assert!(l.check(known).is_ok(), "counted addresses keep their count");
        assert_eq!(l.seen.len(), 100);
        time.advance(Duration::from_secs(40));
        assert!(l.check(new).is_ok(), "ended windows make room");
        assert_eq!(l.seen.len(), 1);
    }

    #[test]
    fn instances_sharing_redis_count_together() {
        let server = crate::store::test_redis::RedisServer::start();
        let time = ManualClock::new(0);
        let instance = || {
            let redis = crate::store::Redis::open(&server.url(), None).unwrap();
            RateLimit::new(2, Duration::from_secs(60), time.clock()).shared(redis, "test")
        };
        let (a, b) = (instance(), instance());
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        assert!(a.check(ip).is_ok() && b.check(ip).is_ok());
        let wait = a.check(ip).unwrap_err();
        assert!((1..=60).contains(&wait), "{wait}");
        assert!(
            b.check(ip).is_err(),
            "the third call is refused on either instance"
        );
        assert!(a.check("10.0.0.2".parse().unwrap()).is_ok());
    }
}
