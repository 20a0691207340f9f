//! `/oauth/login`: whether a posted login form may have its password checked
//! (form, throttle), and what the check's answer means. The check itself
//! (argon2, on the blocking pool) is the handler's, between the two.

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::IpAddr;

use http::StatusCode;

use crate::login::LoginUser;
use crate::login::throttle::Throttle;
use crate::oauth::seal;
use crate::paths;

/// The longest user name whose password is checked, in bytes: a longer one is
/// refused before anything about it is kept.
pub const MAX_USERNAME: usize = 256;

/// The page to continue to after login: only the authorization endpoint or an
/// upstream's connect page (anything else would make the login page an open
/// redirector); "" for none.
pub fn next_after_login(next: Option<&str>) -> &str {
    next.filter(|n| {
        (n.starts_with(&format!("{}?", paths::AUTHORIZE))
            || (n.starts_with(paths::CONNECT_PREFIX) && !n.contains(['?', '#', '%'])))
            && !n.contains(['\r', '\n', '\\'])
    })
    .unwrap_or("")
}

/// A posted login form.
#[derive(Debug, Clone, Copy)]
pub struct LoginPost<'a> {
    /// Whether the form's CSRF token matches this browser's cookie.
    pub csrf_ok: bool,
    pub username: &'a str,
    pub password: &'a str,
}

impl<'a> LoginPost<'a> {
    /// The form's fields; the user name without the spaces around it.
    pub fn read(form: &'a HashMap<String, String>, csrf_ok: bool) -> Self {
        LoginPost {
            csrf_ok,
            username: form.get("username").map_or("", |u| u.trim()),
            password: form.get("password").map_or("", String::as_str),
        }
    }

    /// The user name to show again in the form: none if it is too long.
    pub fn username_to_show(&self) -> &'a str {
        if self.username.len() > MAX_USERNAME {
            ""
        } else {
            self.username
        }
    }
}

/// Why the login form is shown again, with a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginRefusal {
    /// The CSRF token does not match this browser's cookie.
    FormExpired,
    /// The user name or the password is empty.
    Incomplete,
    /// The user name is longer than [`MAX_USERNAME`].
    UsernameTooLong,
    /// Too many failures for this user name or from this address: wait this many seconds.
    Throttled {
        wait: u64,
    },
    /// Too many password checks are running.
    Busy,
    /// The shared store, where failures are counted, does not answer.
    Unavailable,
    WrongPassword,
}

impl LoginRefusal {
    pub fn status(self) -> StatusCode {
        match self {
            LoginRefusal::FormExpired => StatusCode::FORBIDDEN,
            LoginRefusal::Incomplete | LoginRefusal::UsernameTooLong => StatusCode::BAD_REQUEST,
            LoginRefusal::Throttled { .. } => StatusCode::TOO_MANY_REQUESTS,
            LoginRefusal::Busy | LoginRefusal::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            LoginRefusal::WrongPassword => StatusCode::UNAUTHORIZED,
        }
    }

    pub fn message(self) -> Cow<'static, str> {
        match self {
            LoginRefusal::FormExpired => "This form expired. Please sign in again.".into(),
            LoginRefusal::Incomplete => "Enter your username and password.".into(),
            LoginRefusal::UsernameTooLong => {
                format!("That username is too long (at most {MAX_USERNAME} bytes).").into()
            }
            LoginRefusal::Throttled { wait } => {
                format!("Too many failed attempts. Try again in {wait} seconds.").into()
            }
            LoginRefusal::Busy => "The server is busy. Try again in a moment.".into(),
            LoginRefusal::Unavailable => {
                "Signing in is not possible at the moment. Try again in a moment.".into()
            }
            LoginRefusal::WrongPassword => "Wrong username or password.".into(),
        }
    }

    /// Seconds for `Retry-After`.
    pub fn retry_after(self) -> Option<u64> {
        match self {
            LoginRefusal::Throttled { wait } => Some(wait),
            LoginRefusal::Busy => Some(2),
            LoginRefusal::Unavailable => Some(5),
            _ => None,
        }
    }
}

/// A login attempt whose password may be checked, holding its password-check
/// slot `S`. It counts as failed from the start, so that parallel guesses
/// cannot all slip in before the first one fails; `finish` takes it back when
/// the password was right.
#[derive(Debug)]
#[must_use = "an attempt stays counted as failed until it is finished"]
pub struct Attempt<'a, S> {
    pub username: &'a str,
    pub password: &'a str,
    key: String,
    peer: IpAddr,
    _slot: S,
}

/// Decides whether the password of a posted login form may be checked.
/// `take_slot` is asked for a password-check slot once the throttle lets the
/// attempt through; only an attempt that got one is counted as a failure.
pub fn login<'a, S>(
    post: &LoginPost<'a>,
    peer: IpAddr,
    throttle: &Throttle,
    now: u64,
    take_slot: impl FnOnce() -> Option<S>,
) -> Result<Attempt<'a, S>, LoginRefusal> {
    if !post.csrf_ok {
        return Err(LoginRefusal::FormExpired);
    }
    if post.username.is_empty() || post.password.is_empty() {
        return Err(LoginRefusal::Incomplete);
    }
    if post.username.len() > MAX_USERNAME {
        return Err(LoginRefusal::UsernameTooLong);
    }
    let key = throttle_key(post.username);
    let unavailable = |e| {
        tracing::warn!(error = %e, "cannot read the login throttle");
        LoginRefusal::Unavailable
    };
    let wait = throttle.wait(&key, peer, now).map_err(unavailable)?;
    if wait > 0 {
        return Err(LoginRefusal::Throttled { wait });
    }
    let slot = take_slot().ok_or(LoginRefusal::Busy)?;
    throttle.failed(&key, peer, now).map_err(unavailable)?;
    Ok(Attempt {
        username: post.username,
        password: post.password,
        key,
        peer,
        _slot: slot,
    })
}

impl<S> Attempt<'_, S> {
    /// The password check's answer: the signed-in user, whose failures are
    /// forgotten; or the refusal, and the attempt stays a failure.
    pub fn finish(
        self,
        checked: Option<LoginUser>,
        throttle: &Throttle,
    ) -> Result<LoginUser, LoginRefusal> {
        let user = checked.ok_or(LoginRefusal::WrongPassword)?;
        throttle.succeeded(&self.key, self.peer);
        Ok(user)
    }
}

/// What the throttle counts a user name's failures under: its hash, so that
/// an entry's size does not depend on what was typed.
fn throttle_key(username: &str) -> String {
    seal::hash(username)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::login::flow::testing::alice;

    const PEER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
    const NOW: u64 = 1_000_000;

    /// A free password-check slot.
    fn slot() -> Option<()> {
        Some(())
    }

    fn post<'a>(username: &'a str, password: &'a str) -> LoginPost<'a> {
        LoginPost {
            csrf_ok: true,
            username,
            password,
        }
    }

    /// `n` attempts for alice at `now` whose passwords were wrong.
    fn fail(throttle: &Throttle, n: usize, now: u64) {
        for _ in 0..n {
            let attempt = login(&post("alice", "wrong"), PEER, throttle, now, slot).unwrap();
            assert_eq!(
                attempt.finish(None, throttle).unwrap_err(),
                LoginRefusal::WrongPassword
            );
        }
    }

    #[test]
    fn a_form_whose_csrf_token_does_not_match_is_refused_as_expired_and_not_counted() {
        let throttle = Throttle::default();
        let forged = LoginPost {
            csrf_ok: false,
            ..post("alice", "secret")
        };
        for _ in 0..10 {
            let refusal = login(&forged, PEER, &throttle, NOW, slot).unwrap_err();
            assert_eq!(refusal, LoginRefusal::FormExpired);
            assert_eq!(refusal.status(), 403);
            assert_eq!(
                refusal.message(),
                "This form expired. Please sign in again."
            );
        }
        assert!(login(&post("alice", "secret"), PEER, &throttle, NOW, slot).is_ok());
    }

    #[test]
    fn an_empty_username_or_password_asks_for_both() {
        let throttle = Throttle::default();
        for (u, p) in [("", "secret"), ("alice", ""), ("", "")] {
            let refusal = login(&post(u, p), PEER, &throttle, NOW, slot).unwrap_err();
            assert_eq!(refusal, LoginRefusal::Incomplete);
            assert_eq!(refusal.status(), 400);
            assert_eq!(refusal.message(), "Enter your username and password.");
        }
    }

    #[test]
    fn the_username_is_read_without_the_spaces_around_it() {
        let form: HashMap<String, String> = [("username", "  alice "), ("password", " pw ")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let post = LoginPost::read(&form, true);
        assert_eq!((post.username, post.password), ("alice", " pw "));
        let empty = HashMap::new();
        let blank = LoginPost::read(&empty, true);
        assert_eq!((blank.username, blank.password), ("", ""));
    }

    #[test]
    fn five_wrong_passwords_make_the_sixth_attempt_wait_with_a_429_and_retry_after() {
        let throttle = Throttle::default();
        fail(&throttle, 5, NOW);
        let refusal = login(&post("alice", "secret"), PEER, &throttle, NOW, slot).unwrap_err();
        assert_eq!(refusal, LoginRefusal::Throttled { wait: 1 });
        assert_eq!(refusal.status(), 429);
        assert_eq!(refusal.retry_after(), Some(1));
        assert_eq!(
            refusal.message(),
            "Too many failed attempts. Try again in 1 seconds."
        );
        assert!(
            login(&post("alice", "secret"), PEER, &throttle, NOW + 1, slot).is_ok(),
            "after the wait"
        );
    }

    #[test]
    fn an_attempt_counts_as_failed_until_it_finishes() {
        let throttle = Throttle::default();
        // Five parallel guesses, none answered yet: the sixth must wait.
        let running: Vec<_> = (0..5)
            .map(|_| login(&post("alice", "guess"), PEER, &throttle, NOW, slot).unwrap())
            .collect();
        assert_eq!(
            login(&post("alice", "guess"), PEER, &throttle, NOW, slot).unwrap_err(),
            LoginRefusal::Throttled { wait: 1 }
        );
        drop(running);
    }

    #[test]
    fn a_right_password_signs_in_and_clears_the_failures() {
        let throttle = Throttle::default();
        fail(&throttle, 4, NOW);
        let attempt = login(&post("alice", "secret"), PEER, &throttle, NOW, slot).unwrap();
        assert_eq!((attempt.username, attempt.password), ("alice", "secret"));
        assert_eq!(attempt.finish(Some(alice()), &throttle), Ok(alice()));
        fail(&throttle, 4, NOW);
        assert!(
            login(&post("alice", "secret"), PEER, &throttle, NOW, slot).is_ok(),
            "the count started again"
        );
    }

    #[test]
    fn a_username_over_256_bytes_is_refused_and_not_counted() {
        let throttle = Throttle::default();
        let long = "a".repeat(MAX_USERNAME + 1);
        for _ in 0..30 {
            let refusal = login(&post(&long, "pw"), PEER, &throttle, NOW, slot).unwrap_err();
            assert_eq!(refusal, LoginRefusal::UsernameTooLong);
            assert_eq!(refusal.status(), 400);
            assert_eq!(
                refusal.message(),
                "That username is too long (at most 256 bytes)."
            );
        }
        assert_eq!(post(&long, "pw").username_to_show(), "", "not shown again");
        let longest = "a".repeat(MAX_USERNAME);
        assert_eq!(post(&longest, "pw").username_to_show(), longest);
        assert!(
            login(&post(&longest, "pw"), PEER, &throttle, NOW, slot).is_ok(),
            "256 bytes are fine, and nothing was counted for this address"
        );
    }

    #[test]
    fn an_attempt_without_a_free_password_check_slot_is_busy_and_not_counted() {
        let throttle = Throttle::default();
        for _ in 0..30 {
            let refusal =
                login(&post("alice", "guess"), PEER, &throttle, NOW, || None::<()>).unwrap_err();
            assert_eq!(refusal, LoginRefusal::Busy);
        }
        fail(&throttle, 4, NOW);
        assert!(
            login(&post("alice", "secret"), PEER, &throttle, NOW, slot).is_ok(),
            "only the four checked attempts count"
        );
    }

    #[test]
    fn a_throttled_attempt_does_not_take_a_password_check_slot() {
        let throttle = Throttle::default();
        fail(&throttle, 5, NOW);
        let refusal = login(
            &post("alice", "guess"),
            PEER,
            &throttle,
            NOW,
            || -> Option<()> { panic!("a slot taken for a throttled attempt") },
        )
        .unwrap_err();
        assert_eq!(refusal, LoginRefusal::Throttled { wait: 1 });
    }

    #[test]
    fn the_throttle_counts_a_username_under_its_hash() {
        let key = throttle_key(&"x".repeat(MAX_USERNAME));
        assert_eq!(key.len(), 43);
        assert_ne!(throttle_key("alice"), throttle_key("alice "));
        assert_eq!(throttle_key("alice"), throttle_key("alice"));
    }

    #[test]
    fn a_wrong_password_is_a_401() {
        let refusal = LoginRefusal::WrongPassword;
        assert_eq!(refusal.status(), 401);
        assert_eq!(refusal.message(), "Wrong username or password.");
        assert_eq!(refusal.retry_after(), None);
    }

    #[test]
    fn a_busy_server_is_a_503_with_retry_after_two_seconds() {
        let refusal = LoginRefusal::Busy;
        assert_eq!(refusal.status(), 503);
        assert_eq!(refusal.retry_after(), Some(2));
        assert_eq!(
            refusal.message(),
            "The server is busy. Try again in a moment."
        );
    }

    #[test]
    fn after_login_only_the_authorization_endpoint_is_a_next_page() {
        let authorize = format!("{}?client_id=c", paths::AUTHORIZE);
        assert_eq!(next_after_login(Some(&authorize)), authorize);
        for bad in [
            "https://evil.example/",
            "//evil.example/",
            paths::AUTHORIZE,
            "/oauth/authorize?x=1\r\nSet-Cookie: a=b",
            "/oauth/authorize?\\evil",
        ] {
            assert_eq!(next_after_login(Some(bad)), "", "{bad}");
        }
        assert_eq!(next_after_login(None), "");
        assert_eq!(
            next_after_login(Some("/oauth/connect/github")),
            "/oauth/connect/github"
        );
        assert_eq!(next_after_login(Some("/oauth/connect/x?y=//evil")), "");
    }
}
