//! Streamable HTTP sessions belong to the user and client that opened them:
//! every user reaches the upstream with the same credential, so the proxy
//! keeps another user from continuing a session whose id leaked.

use std::time::{Duration, Instant};

use dashmap::DashMap;

use crate::clock::Clock;

/// Sessions untouched this long are forgotten (their owner check lapses).
const IDLE: Duration = Duration::from_secs(24 * 3600);
const MAX: usize = 200_000;

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
        if self.map.len() >= MAX {
            self.sweep();
        }
        if self.map.len() < MAX {
            self.map
                .entry(session.to_string())
                .or_insert_with(|| (user.to_string(), client.to_string(), self.clock.instant()));
        }
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
