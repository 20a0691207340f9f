//! Streamable HTTP sessions belong to the user and client that opened them:
//! every user reaches the upstream with the same credential, so the proxy
//! keeps another user from continuing a session whose id leaked.

use std::time::{Duration, Instant};

use dashmap::DashMap;

use crate::clock::Clock;

/// Sessions untouched this long are forgotten (their owner check lapses).
const IDLE: Duration = Duration::from_secs(24 * 3600);
/// Owners kept at most; past it the least recently used are forgotten first
/// (never a new session left unbound).
const MAX: usize = 200_000;
/// How many are forgotten at once when full: one scan of the map per this many new sessions.
const EVICT: usize = MAX / 100;

pub struct Owners {
    map: DashMap<String, (String, String, Instant)>,
    clock: Clock,
}

impl Owners {
    pub fn new(clock: Clock) -> Self {
        Self {
            map: DashMap::new(),
            clock,
        }
    }

    /// Whether `owner` (user, client) may use the session: unknown sessions are the upstream's to judge.
    pub fn permits(&self, session: &str, user: &str, client: &str) -> bool {
        match self.map.get_mut(session) {
            None => true,
            Some(mut e) => {
                let ok = e.0 == user && e.1 == client;
                if ok {
                    e.2 = self.clock.instant();
                }
                ok
            }
        }
    }

    /// Records the owner of a session the upstream just created.
    pub fn record(&self, session: &str, user: &str, client: &str) {
        self.record_bounded(session, user, client, MAX, EVICT);
    }

    fn record_bounded(&self, session: &str, user: &str, client: &str, max: usize, evict: usize) {
        if self.map.len() >= max {
            self.sweep();
        }
        if self.map.len() >= max {
            self.evict_least_recent(evict);
        }
        self.map
            .entry(session.to_string())
            .or_insert_with(|| (user.to_string(), client.to_string(), self.clock.instant()));
    }

    /// Forgets the `n` sessions used least recently.
    fn evict_least_recent(&self, n: usize) {
        let mut used: Vec<Instant> = self.map.iter().map(|e| e.2).collect();
        if used.is_empty() {
            return;
        }
        let n = n.clamp(1, used.len());
        let (_, cutoff, _) = used.select_nth_unstable(n - 1);
        let cutoff = *cutoff;
        let mut left = n;
        self.map.retain(|_, e| {
            if left > 0 && e.2 <= cutoff {
                left -= 1;
                return false;
            }
            true
        });
    }

    pub fn forget(&self, session: &str) {
        self.map.remove(session);
    }

    /// Forgets sessions untouched for a day.
    pub fn sweep(&self) {
        let now = self.clock.instant();
        self.map.retain(|_, e| now.duration_since(e.2) < IDLE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, ManualClock};

    #[test]
    fn a_full_table_forgets_the_least_recently_used_not_the_new_session() {
        let clock = ManualClock::starting_now();
        let o = Owners::new(clock.clock());
        for i in 0..10 {
            o.record_bounded(&format!("s{i}"), "mallory", "m", 10, 3);
            clock.advance(Duration::from_secs(1));
        }
        // alice's session is used; mallory's oldest are not.
        o.record_bounded("s9", "x", "x", 10, 3);
        assert!(o.permits("s5", "mallory", "m"));
        o.record_bounded("alice-session", "alice", "c1", 10, 3);
        assert!(o.map.len() <= 10, "{}", o.map.len());
        assert!(
            !o.permits("alice-session", "mallory", "m"),
            "the new session is bound to its owner"
        );
        assert!(
            !o.permits("s5", "alice", "c1"),
            "a recently used one is kept"
        );
        for old in ["s0", "s1", "s2"] {
            assert!(
                !o.map.contains_key(old),
                "{old} was the least recently used"
            );
        }
    }

    #[test]
    fn only_the_owner_may_continue_a_session() {
        let o = Owners::new(Clock::system());
        assert!(o.permits("s1", "alice", "c1"), "unknown sessions pass");
        o.record("s1", "alice", "c1");
        o.record("s1", "bob", "c2");
        assert!(o.permits("s1", "alice", "c1"));
        assert!(!o.permits("s1", "bob", "c2"));
        assert!(!o.permits("s1", "alice", "other-client"));
        o.forget("s1");
        assert!(o.permits("s1", "bob", "c2"));
    }

    #[test]
    fn an_owner_is_forgotten_a_day_after_the_sessions_last_use() {
        let time = ManualClock::new(0);
        let o = Owners::new(time.clock());
        o.record("s1", "alice", "c1");
        time.advance(IDLE - Duration::from_secs(1));
        assert!(o.permits("s1", "alice", "c1"), "used again: idle from here");
        time.advance(IDLE - Duration::from_secs(1));
        o.sweep();
        assert!(
            !o.permits("s1", "bob", "c2"),
            "idle a second less than a day: kept"
        );
        time.advance(Duration::from_secs(1));
        o.sweep();
        assert!(o.permits("s1", "bob", "c2"), "idle a day: forgotten");
    }
}
