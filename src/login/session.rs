//! Session and CSRF cookies, and the consent ticket: values the proxy signs,
//! hands to the browser and checks when they come back. Nothing is stored.

use http::{HeaderMap, HeaderValue, header};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use crate::login::LoginUser;
use crate::oauth::authorize::AuthorizationRequest;
use crate::oauth::seal::{self, Signer};

/// How long a login lasts.
pub const SESSION_TTL: u64 = 8 * 3600;
/// How long a consent page can be answered.
pub const TICKET_TTL: u64 = 10 * 60;

/// Cookie names: `__Host-` (Secure, Path=/, no Domain) when served over https.
pub struct CookieNames {
    pub secure: bool,
}

impl CookieNames {
    pub fn session(&self) -> &'static str {
        if self.secure {
            "__Host-mcp_session"
        } else {
            "mcp_session"
        }
    }

    pub fn csrf(&self) -> &'static str {
        if self.secure {
            "__Host-mcp_csrf"
        } else {
            "mcp_csrf"
        }
    }

    /// A `Set-Cookie` value: HttpOnly, SameSite=Lax, Path=/, Secure over https.
    pub fn set(&self, name: &str, value: &str, max_age: u64) -> HeaderValue {
        let secure = if self.secure { "; Secure" } else { "" };
        let v =
            format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}");
        HeaderValue::from_str(&v)
            .unwrap_or_else(|_| HeaderValue::from_static("invalid=1; Max-Age=0"))
    }
}

/// The value of cookie `name` in the request.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

#[derive(Serialize, Deserialize)]
struct SessionData {
    user: LoginUser,
    exp: u64,
}

pub fn issue_session(signer: &Signer, user: &LoginUser, now: u64) -> String {
    let data = SessionData {
        user: user.clone(),
        exp: now + SESSION_TTL,
    };
    signer.sign("session", &serde_json::to_vec(&data).unwrap_or_default())
}

pub fn verify_session(signer: &Signer, value: &str, now: u64) -> Option<LoginUser> {
    let data: SessionData = serde_json::from_slice(&signer.verify("session", value)?).ok()?;
    (now < data.exp).then_some(data.user)
}

/// The CSRF nonce of this browser, or a new one (then the caller sets the cookie).
pub fn csrf_nonce(headers: &HeaderMap, names: &CookieNames) -> (String, bool) {
    match cookie(headers, names.csrf()).filter(|n| n.len() >= 20 && n.len() <= 64) {
        Some(n) => (n.to_string(), false),
        None => (seal::random_token(24), true),
    }
}

/// The token a form carries: a MAC of the browser's nonce, which an attacker's page can neither read nor make.
pub fn csrf_token(signer: &Signer, nonce: &str) -> String {
    signer.mac("csrf", nonce.as_bytes())
}

pub fn csrf_ok(
    signer: &Signer,
    headers: &HeaderMap,
    names: &CookieNames,
    form_token: Option<&str>,
) -> bool {
    match (cookie(headers, names.csrf()), form_token) {
        (Some(nonce), Some(token)) => {
            bool::from(csrf_token(signer, nonce).as_bytes().ct_eq(token.as_bytes()))
        }
        _ => false,
    }
}

/// The validated authorization request, bound to the user who saw the consent page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentTicket {
    /// Makes each ticket single-use.
    pub id: String,
    pub request: AuthorizationRequest,
    pub user: String,
    pub exp: u64,
}

pub fn issue_ticket(
    signer: &Signer,
    request: &AuthorizationRequest,
    user: &str,
    now: u64,
) -> String {
    let t = ConsentTicket {
        id: seal::random_token(12),
        request: request.clone(),
        user: user.to_string(),
        exp: now + TICKET_TTL,
    };
    signer.sign("consent", &serde_json::to_vec(&t).unwrap_or_default())
}

pub fn verify_ticket(signer: &Signer, value: &str, now: u64) -> Option<ConsentTicket> {
    let t: ConsentTicket = serde_json::from_slice(&signer.verify("consent", value)?).ok()?;
    (now < t.exp).then_some(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user() -> LoginUser {
        LoginUser {
            name: "alice".into(),
            groups: vec!["staff".into()],
        }
    }

    #[test]
    fn sessions_expire_and_cannot_be_forged() {
        let s = Signer::new(b"k");
        let v = issue_session(&s, &user(), 100);
        assert_eq!(verify_session(&s, &v, 101), Some(user()));
        assert_eq!(verify_session(&s, &v, 100 + SESSION_TTL), None);
        assert_eq!(verify_session(&Signer::new(b"other"), &v, 101), None);
        assert_eq!(verify_session(&s, "garbage", 101), None);
    }

    #[test]
    fn csrf_token_must_match_the_cookie() {
        let s = Signer::new(b"k");
        let names = CookieNames { secure: false };
        let mut h = HeaderMap::new();
        let (nonce, new) = csrf_nonce(&h, &names);
        assert!(new);
        h.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("other=1; mcp_csrf={nonce}")).unwrap(),
        );
        assert_eq!(csrf_nonce(&h, &names), (nonce.clone(), false));
        let token = csrf_token(&s, &nonce);
        assert!(csrf_ok(&s, &h, &names, Some(&token)));
        assert!(!csrf_ok(&s, &h, &names, Some("forged")));
        assert!(!csrf_ok(&s, &h, &names, None));
        assert!(!csrf_ok(&s, &HeaderMap::new(), &names, Some(&token)));
    }

    #[test]
    fn secure_cookies_use_the_host_prefix() {
        let names = CookieNames { secure: true };
        assert_eq!(names.session(), "__Host-mcp_session");
        let v = names.set(names.session(), "x", 10);
        let v = v.to_str().unwrap();
        assert!(
            v.contains("Secure")
                && v.contains("HttpOnly")
                && v.contains("SameSite=Lax")
                && v.contains("Path=/"),
            "{v}"
        );
    }
}
