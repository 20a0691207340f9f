//! The memory of answered consent pages (and of finished provider sign-ins).

use dashmap::DashMap;

use crate::login::session::ConsentTicket;
use crate::store::Redis;

/// Consent tickets already answered, kept until they expire: one answer per
/// consent page, so that a form posted again mints no second code. In memory,
/// per instance; in Redis (`SET NX`) when the store is shared, so that a page
/// is answered once whichever instances the posts reach.
#[derive(Debug)]
pub struct UsedTickets {
    map: DashMap<String, u64>,
    max: usize,
    shared: Option<Redis>,
}

/// Answered tickets remembered at most (each lives 10 minutes; ~60 B). Past it,
/// consent pages are refused for a moment rather than a ticket forgotten early
/// (which would let its page be answered twice).
const MAX_USED: usize = 100_000;

impl Default for UsedTickets {
    fn default() -> Self {
        Self::with_capacity(MAX_USED)
    }
}

/// Whether a consent page's answer may count.
#[derive(Debug, PartialEq, Eq)]
pub enum TicketUse {
    First,
    /// This page was already answered.
    Again,
    /// Too many unexpired answers are remembered: try again later.
    Full,
    /// The shared store does not answer: try again later.
    Unavailable,
}

impl UsedTickets {
    fn with_capacity(max: usize) -> Self {
        Self {
            map: DashMap::new(),
            max,
            shared: None,
        }
    }

    /// Answers remembered in Redis, for every instance sharing it.
    pub fn shared(redis: Redis) -> Self {
        Self {
            shared: Some(redis),
            ..Self::default()
        }
    }

    /// Marks the ticket answered.
    pub fn first_use(&self, ticket: &ConsentTicket, now: u64) -> TicketUse {
        self.first_use_of(&ticket.id, ticket.exp, now)
    }

    /// Marks a single-use value (a ticket id, a sign-in attempt's state) used until `exp`.
    pub fn first_use_of(&self, id: &str, exp: u64, now: u64) -> TicketUse {
        if let Some(redis) = &self.shared {
            return match redis.first_use("ticket", id, exp, now) {
                Ok(true) => TicketUse::First,
                Ok(false) => TicketUse::Again,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot record a used ticket");
                    TicketUse::Unavailable
                }
            };
        }
        if self.map.contains_key(id) {
            return TicketUse::Again;
        }
        if self.map.len() >= self.max {
            self.sweep(now);
            if self.map.len() >= self.max {
                return TicketUse::Full;
            }
        }
        match self.map.insert(id.to_string(), exp) {
            None => TicketUse::First,
            Some(_) => TicketUse::Again,
        }
    }

    /// Forgets the tickets that have expired: they are refused as such anyway.
    pub fn sweep(&self, now: u64) {
        self.map.retain(|_, exp| *exp > now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oauth::authorize::AuthorizationRequest;

    fn ticket(id: &str, exp: u64) -> ConsentTicket {
        ConsentTicket {
            id: id.into(),
            request: AuthorizationRequest {
                client_id: "c".into(),
                redirect_uri: "http://127.0.0.1/cb".into(),
                redirect_uri_sent: true,
                state: None,
                code_challenge: "x".into(),
                route: "notes".into(),
                resource: "https://proxy.example/notes/mcp".into(),
                scopes: vec![],
            },
            user: "alice".into(),
            exp,
        }
    }

    #[test]
    fn a_ticket_is_used_once() {
        let used = UsedTickets::default();
        assert_eq!(used.first_use(&ticket("a", 100), 0), TicketUse::First);
        assert_eq!(used.first_use(&ticket("a", 100), 0), TicketUse::Again);
        assert_eq!(
            used.first_use(&ticket("b", 100), 0),
            TicketUse::First,
            "another page"
        );
    }

    #[test]
    fn used_tickets_are_remembered_until_they_expire() {
        let used = UsedTickets::default();
        assert_eq!(used.first_use(&ticket("a", 100), 0), TicketUse::First);
        used.sweep(99);
        assert_eq!(
            used.first_use(&ticket("a", 100), 99),
            TicketUse::Again,
            "still valid: still used"
        );
        used.sweep(100);
        assert_eq!(
            used.first_use(&ticket("a", 100), 100),
            TicketUse::First,
            "expired (refused as such): forgotten"
        );
    }

    #[test]
    fn a_flood_of_answers_is_bounded_and_refused_rather_than_forgotten() {
        let used = UsedTickets::with_capacity(100);
        for i in 0..100 {
            assert_eq!(
                used.first_use(&ticket(&i.to_string(), 600), 0),
                TicketUse::First
            );
        }
        assert_eq!(used.first_use(&ticket("new", 600), 10), TicketUse::Full);
        assert_eq!(used.map.len(), 100);
        assert_eq!(
            used.first_use(&ticket("0", 600), 10),
            TicketUse::Again,
            "none was forgotten early"
        );
        assert_eq!(
            used.first_use(&ticket("new", 600), 600),
            TicketUse::First,
            "expired ones make room"
        );
        assert_eq!(used.map.len(), 1);
    }

    #[test]
    fn a_page_is_answered_once_whichever_instance_gets_the_answers() {
        let mut server = crate::store::test_redis::RedisServer::start();
        let instance =
            || UsedTickets::shared(crate::store::Redis::open(&server.url(), None).unwrap());
        let (a, b) = (instance(), instance());
        assert_eq!(a.first_use_of("t1", 1_000_600, 1_000_000), TicketUse::First);
        assert_eq!(b.first_use_of("t1", 1_000_600, 1_000_000), TicketUse::Again);
        assert_eq!(b.first_use_of("t2", 1_000_600, 1_000_000), TicketUse::First);
        server.stop();
        assert_eq!(
            a.first_use_of("t3", 1_000_600, 1_000_000),
            TicketUse::Unavailable
        );
    }
}
