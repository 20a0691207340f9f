//! Slowing down password guessing, per user name and per client IP.
//! User names come in as keys of a fixed size (`login::flow` hashes them),
//! so an entry's size does not depend on what was typed.
//!
//! The rule: failures are counted per user name and per IP over a 15-minute
//! window. From the 5th failure for a user name (or the 20th for an IP), each
//! further attempt must wait 2^(n−5) seconds (doubling, capped at 5 minutes)
//! after the last failure; earlier attempts are refused with the time left.
//! An attempt counts as a failure from the moment it starts (so that a burst
//! of parallel guesses cannot all slip in before the first one fails); a
//! success then clears the user name's count and takes its attempt off the IP's.
//!
//! The counts live in this instance's memory ([`Counts`]), or in Redis when
//! the store is shared, so that failures made through any instance count.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use crate::store::redis::Failures;
use crate::store::{Redis, StoreError};

const WINDOW: u64 = 15 * 60;
const FREE_PER_USER: u32 = 5;
const FREE_PER_IP: u32 = 20;
const MAX_DELAY: u64 = 300;
/// User names and IPs counted at most (~100 B each). Windows that are over go
/// first; if the live ones are still more, those closest to their end (the
/// oldest first failure) are forgotten, a hundredth at a time.
const MAX_ENTRIES: usize = 100_000;

/// The failures that count at `now`: none once the window is over.
fn current(f: &Failures, now: u64) -> Failures {
    if now >= f.first + WINDOW {
        Failures::default()
    } else {
        *f
    }
}

/// Seconds to wait after these failures, when `free` of them cost nothing.
fn wait_after(f: &Failures, free: u32, now: u64) -> u64 {
    let f = current(f, now);
    if f.count < free {
        return 0;
    }
    let delay = 1u64
        .checked_shl(f.count - free)
        .unwrap_or(MAX_DELAY)
        .min(MAX_DELAY);
    (f.last + delay).saturating_sub(now)
}

/// The login throttle of this instance, or of all instances sharing Redis.
#[derive(Debug)]
pub enum Throttle {
    Local(Mutex<Counts>),
    Shared(Redis),
}

impl Default for Throttle {
    fn default() -> Self {
        Throttle::Local(Mutex::default())
    }
}

/// The keys of a user name's and an address's counts in Redis.
fn shared_ids(user: &str, ip: IpAddr) -> [String; 2] {
    [format!("user:{user}"), format!("ip:{ip}")]
}

impl Throttle {
    fn local(m: &Mutex<Counts>) -> std::sync::MutexGuard<'_, Counts> {
        // Nothing panics while holding it: a poisoned lock is still consistent.
        m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Seconds the caller must wait before trying this user name from this IP; 0: go ahead.
    pub fn wait(&self, user: &str, ip: IpAddr, now: u64) -> Result<u64, StoreError> {
        match self {
            Throttle::Local(m) => Ok(Self::local(m).wait(user, ip, now)),
            Throttle::Shared(redis) => {
                let [u, i] = shared_ids(user, ip);
                let found = redis.failures(&[&u, &i])?;
                let user = found
                    .first()
                    .map_or(0, |f| wait_after(f, FREE_PER_USER, now));
                let ip = found.get(1).map_or(0, |f| wait_after(f, FREE_PER_IP, now));
                Ok(user.max(ip))
            }
        }
    }

    /// Counts a failure of this user name and of this IP.
    pub fn failed(&self, user: &str, ip: IpAddr, now: u64) -> Result<(), StoreError> {
        match self {
            Throttle::Local(m) => {
                Self::local(m).failed(user, ip, now);
                Ok(())
            }
            Throttle::Shared(redis) => {
                let [u, i] = shared_ids(user, ip);
                redis.count_failure(&[&u, &i], now, WINDOW)
            }
        }
    }

    /// A right password: the user name's failures are forgotten, the IP's attempt taken back.
    pub fn succeeded(&self, user: &str, ip: IpAddr) {
        match self {
            Throttle::Local(m) => Self::local(m).succeeded(user, ip),
            Throttle::Shared(redis) => {
                let [u, i] = shared_ids(user, ip);
                if let Err(e) = redis.count_success(&u, &i) {
                    // Only costs the user a little more waiting later.
                    tracing::warn!(error = %e, "cannot clear a user's login failures");
                }
            }
        }
    }
}

/// The counts in this instance's memory.
#[derive(Debug, Default)]
pub struct Counts {
    users: HashMap<String, Failures>,
    ips: HashMap<IpAddr, Failures>,
}

impl Counts {
    /// Seconds the caller must wait before trying this user name from this IP; 0: go ahead.
    pub fn wait(&self, user: &str, ip: IpAddr, now: u64) -> u64 {
        let u = self
            .users
            .get(user)
            .map_or(0, |f| wait_after(f, FREE_PER_USER, now));
        let i = self
            .ips
            .get(&ip)
            .map_or(0, |f| wait_after(f, FREE_PER_IP, now));
        u.max(i)
    }

    pub fn failed(&mut self, user: &str, ip: IpAddr, now: u64) {
        for f in [
            self.users.entry(user.to_string()).or_default(),
            self.ips.entry(ip).or_default(),
        ] {
            let mut cur = current(f, now);
            if cur.count == 0 {
                cur.first = now;
            }
            cur.count += 1;
            cur.last = now;
            *f = cur;
        }
        self.bound(now, MAX_ENTRIES);
    }

    fn bound(&mut self, now: u64, max: usize) {
        if self.users.len() + self.ips.len() <= max {
            return;
        }
        self.users.retain(|_, f| now < f.first + WINDOW);
        self.ips.retain(|_, f| now < f.first + WINDOW);
        let keep = max - max / 100;
        if self.users.len() + self.ips.len() > max {
            let share = |n: usize| n * keep / (self.users.len() + self.ips.len()).max(1);
            let (users, ips) = (share(self.users.len()), share(self.ips.len()));
            keep_newest(&mut self.users, users);
            keep_newest(&mut self.ips, ips);
        }
    }

    pub fn succeeded(&mut self, user: &str, ip: IpAddr) {
        self.users.remove(user);
        if let Some(f) = self.ips.get_mut(&ip) {
            f.count = f.count.saturating_sub(1);
        }
    }
}

/// Keeps the `n` entries whose window started last.
fn keep_newest<K: Eq + std::hash::Hash>(map: &mut HashMap<K, Failures>, n: usize) {
    if map.len() <= n {
        return;
    }
    let mut firsts: Vec<u64> = map.values().map(|f| f.first).collect();
    let drop = map.len() - n;
    let (_, cutoff, _) = firsts.select_nth_unstable(drop - 1);
    let cutoff = *cutoff;
    let mut dropped = 0;
    map.retain(|_, f| {
        if dropped < drop && f.first <= cutoff {
            dropped += 1;
            return false;
        }
        true
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    type Throttle = Counts;

    const IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    #[test]
    fn the_first_failures_are_free_then_delays_double() {
        let mut t = Throttle::default();
        for i in 0..5 {
            assert_eq!(t.wait("alice", IP, 100 + i), 0);
            t.failed("alice", IP, 100 + i);
        }
        // 5 failures, the last at 104: wait 1 s.
        assert_eq!(t.wait("alice", IP, 104), 1);
        assert_eq!(t.wait("alice", IP, 105), 0);
        t.failed("alice", IP, 105);
        assert_eq!(t.wait("alice", IP, 105), 2);
        t.failed("alice", IP, 107);
        assert_eq!(t.wait("alice", IP, 107), 4);
        assert_eq!(
            t.wait("bob", IP, 107),
            0,
            "other users are not slowed by alice's failures"
        );
    }

    #[test]
    fn success_and_the_window_reset_the_count() {
        let mut t = Throttle::default();
        for i in 0..8 {
            t.failed("alice", IP, 100 + i);
        }
        assert!(t.wait("alice", IP, 108) > 0);
        assert_eq!(t.wait("alice", IP, 108 + WINDOW), 0, "window over");
        t.succeeded("alice", IP);
        assert_eq!(t.wait("alice", IP, 108), 0);
    }

    #[test]
    fn an_ip_guessing_many_names_is_slowed() {
        let mut t = Throttle::default();
        for i in 0..20u64 {
            t.failed(&format!("user{i}"), IP, 100);
        }
        assert_eq!(t.wait("someone-new", IP, 100), 1);
        let other: IpAddr = "10.0.0.1".parse().unwrap();
        assert_eq!(t.wait("someone-new", other, 100), 0);
    }

    #[test]
    fn delays_are_capped() {
        let mut t = Throttle::default();
        for _ in 0..100 {
            t.failed("alice", IP, 100);
        }
        assert_eq!(t.wait("alice", IP, 100), MAX_DELAY);
    }

    #[test]
    fn a_flood_of_names_and_addresses_stays_within_the_bound_and_keeps_the_newest() {
        let mut t = Throttle::default();
        for i in 0..1000u32 {
            t.failed(
                &format!("name{i}"),
                IpAddr::from(i.to_be_bytes()),
                u64::from(i),
            );
            t.bound(u64::from(i), 100);
            assert!(t.users.len() + t.ips.len() <= 100, "{i}");
        }
        assert!(t.users.contains_key("name999"), "the newest are kept");
        assert!(!t.users.contains_key("name0"), "the oldest went first");
    }
}
