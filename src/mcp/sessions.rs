//! Streamable HTTP sessions belong to the user and client that opened them:
//! every user reaches the upstream with the same credential, so the proxy
//! keeps another user from continuing a session whose id leaked.
//!
//! With a shared store the owners are in Redis too: a session opened through
//! one instance is looked up there by another on its first request, then
//! served from memory like the sessions it opened itself.

use std::time::{Duration, Instant};

use dashmap::DashMap;

use crate::clock::Clock;
use crate::store::{Redis, StoreError};

/// Sessions untouched this long are forgotten (their owner check lapses).
const IDLE: Duration = Duration::from_secs(24 * 3600);
/// Owners kept at most; past it the least recently used are forgotten first
/// (never a new session left unbound).
const MAX: usize = 200_000;
/// How many are forgotten at once when full: one scan of the map per this many new sessions.
const EVICT: usize = MAX / 100;
/// How often a session in use has its owner's Redis expiry pushed back (in the
/// background: a request never waits for it).
const TOUCH: Duration = Duration::from_secs(3600);

pub struct Owners {
    /// Session → (user, client, last used, when its Redis expiry was last pushed back).
    map: DashMap<String, (String, String, Instant, Instant)>,
    clock: Clock,
    shared: Option<Redis>,
}

impl Owners {
    pub fn new(clock: Clock) -> Self {
        Self {
            map: DashMap::new(),
            clock,
            shared: None,
        }
    }

    /// Owners kept in Redis as well, for every instance sharing it.
    pub fn shared(clock: Clock, redis: Redis) -> Self {
        Self {
            shared: Some(redis),
            ..Self::new(clock)
        }
    }

    /// Whether the owners are shared (then [`Owners::look_up`] may ask Redis).
    pub fn is_shared(&self) -> bool {
        self.shared.is_some()
    }

    /// Whether `owner` (user, client) may use the session: unknown sessions are
    /// the upstream's to judge (this instance's view only).
    #[cfg(test)]
    fn permits(&self, session: &str, user: &str, client: &str) -> bool {
        self.known(session, user, client).unwrap_or(true)
    }

    /// Whether `owner` may use the session, if this instance knows the session.
    pub fn known(&self, session: &str, user: &str, client: &str) -> Option<bool> {
        let mut e = self.map.get_mut(session)?;
        let ok = e.0 == user && e.1 == client;
        if ok {
            let now = self.clock.instant();
            e.2 = now;
            if let Some(redis) = &self.shared
                && now.duration_since(e.3) >= TOUCH
                && let Ok(runtime) = tokio::runtime::Handle::try_current()
            {
                e.3 = now;
                let (redis, session) = (redis.clone(), session.to_string());
                runtime.spawn_blocking(move || {
                    if let Err(e) = redis.touch_session(&session, IDLE.as_secs()) {
                        tracing::debug!(error = %e, "a session's owner expiry was not pushed back");
                    }
                });
            }
        }
        Some(ok)
    }

    /// For a session this instance does not know: asks Redis who opened it
    /// (and remembers the answer). Unknown there too: the upstream's to judge.
    pub fn look_up(&self, session: &str, user: &str, client: &str) -> Result<bool, StoreError> {
        let Some(redis) = &self.shared else {
            return Ok(true);
        };
        let Some((owner, owner_client)) = redis.session_owner(session)? else {
            return Ok(true);
        };
        self.record(session, &owner, &owner_client);
        Ok(owner == user && owner_client == client)
    }

    /// Records the owner of a session the upstream just created; true if it was new here.
    pub fn record(&self, session: &str, user: &str, client: &str) -> bool {
        self.record_bounded(session, user, client, MAX, EVICT)
    }

    /// Records a new session's owner in Redis, for the other instances.
    /// A failure is logged: the session still works through this instance.
    /// While Redis is known to be down this does not wait for it: MCP traffic
    /// goes on through this instance.
    pub fn share(&self, session: &str, user: &str, client: &str) {
        let Some(redis) = &self.shared else {
            return;
        };
        if !redis.is_up() {
            tracing::warn!("a session's owner is known to this instance only (the store is down)");
            return;
        }
        if let Err(e) = redis.record_session(session, user, client, IDLE.as_secs()) {
            tracing::warn!(error = %e, "a session's owner is known to this instance only");
        }
    }

    fn record_bounded(
        &self,
        session: &str,
        user: &str,
        client: &str,
        max: usize,
        evict: usize,
    ) -> bool {
        if self.map.len() >= max {
            self.sweep();
        }
        if self.map.len() >= max {
            self.evict_least_recent(evict);
        }
        let mut new = false;
        self.map.entry(session.to_string()).or_insert_with(|| {
            new = true;
            let now = self.clock.instant();
            (user.to_string(), client.to_string(), now, now)
        });
        new
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

    /// Forgets an ended session (in Redis too).
    pub fn forget(&self, session: &str) {
        self.map.remove(session);
        if let Some(redis) = &self.shared
            && let Err(e) = redis.forget_session(session)
        {
            tracing::warn!(error = %e, "an ended session stays recorded until it expires");
        }
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
