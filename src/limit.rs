//! A fixed-window rate limit per client IP, for endpoints anyone may call.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use dashmap::DashMap;

pub struct RateLimit {
    max: u32,
    window: Duration,
    seen: DashMap<IpAddr, (Instant, u32)>,
}

impl RateLimit {
    pub fn new(max: u32, window: Duration) -> Self {
        Self {
            max,
            window,
            seen: DashMap::new(),
        }
    }

    /// Counts one call; `Err(seconds)` when the IP is over its limit for this window.
    pub fn check(&self, ip: IpAddr, now: Instant) -> Result<(), u64> {
        if self.seen.len() > 100_000 {
            self.seen
                .retain(|_, (start, _)| now.duration_since(*start) < self.window);
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

    #[test]
    fn limits_per_ip_and_window() {
        let l = RateLimit::new(2, Duration::from_secs(60));
        let t = Instant::now();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        assert!(l.check(a, t).is_ok() && l.check(a, t).is_ok());
        assert_eq!(l.check(a, t + Duration::from_secs(10)), Err(50));
        assert!(l.check(b, t).is_ok());
        assert!(
            l.check(a, t + Duration::from_secs(61)).is_ok(),
            "a new window"
        );
    }
}
