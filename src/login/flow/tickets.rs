//! The memory of answered consent pages.

use dashmap::DashMap;

use crate::login::session::ConsentTicket;

/// Consent tickets already answered, kept until they expire: one answer per
/// consent page, so that a form posted again mints no second code. In memory,
/// per instance.
#[derive(Debug, Default)]
pub struct UsedTickets(DashMap<String, u64>);

impl UsedTickets {
    /// Marks the ticket answered; false if it already was.
    pub fn first_use(&self, ticket: &ConsentTicket) -> bool {
        self.0.insert(ticket.id.clone(), ticket.exp).is_none()
    }

    /// Forgets the tickets that have expired: they are refused as such anyway.
    pub fn sweep(&self, now: u64) {
        self.0.retain(|_, exp| *exp > now);
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
        assert!(used.first_use(&ticket("a", 100)));
        assert!(!used.first_use(&ticket("a", 100)));
        assert!(used.first_use(&ticket("b", 100)), "another page");
    }

    #[test]
    fn used_tickets_are_remembered_until_they_expire() {
        let used = UsedTickets::default();
        assert!(used.first_use(&ticket("a", 100)));
        used.sweep(99);
        assert!(
            !used.first_use(&ticket("a", 100)),
            "still valid: still used"
        );
        used.sweep(100);
        assert!(
            used.first_use(&ticket("a", 100)),
            "expired (refused as such): forgotten"
        );
    }
}
