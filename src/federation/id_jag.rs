//! Identity Assertion JWT Authorization Grants (ID-JAG): the MCP
//! "enterprise-managed authorization" extension, on
//! `draft-ietf-oauth-identity-assertion-authz-grant`. The organisation's
//! identity provider signs a short-lived JWT saying "this person may use this
//! client with this MCP server"; the client presents it at our token endpoint
//! with the RFC 7523 JWT bearer grant. These are the claim rules (pure); the
//! signature is checked with the provider's keys as for ID tokens.

use serde_json::{Map, Value};

use super::id_token::SKEW;

pub const GRANT_TYPE: &str = crate::oauth::metadata::JWT_BEARER;
/// The JWT `typ` an ID-JAG must have (RFC 8725 explicit typing).
pub const TYP: &str = "oauth-id-jag+jwt";
/// The longest an ID-JAG may live (`exp` − `iat`).
pub const MAX_LIFETIME: u64 = 300;
/// The longest `jti` remembered.
const MAX_JTI: usize = 256;

/// Why an ID-JAG is refused (`invalid_grant`): one variant per check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IdJagError {
    #[error("the assertion's typ is not oauth-id-jag+jwt")]
    WrongType,
    #[error("the assertion was issued by another issuer (iss)")]
    WrongIssuer,
    #[error("the assertion is not addressed to this authorization server (aud)")]
    WrongAudience,
    #[error("the assertion was issued to another client (client_id)")]
    OtherClient,
    #[error("the assertion names no resource")]
    NoResource,
    #[error("the assertion has no subject")]
    NoSubject,
    #[error("the assertion has expired")]
    Expired,
    #[error("the assertion has no iat, or one in the future")]
    BadIssuedAt,
    #[error("the assertion lives longer than 5 minutes")]
    TooLong,
    #[error("the assertion has no jti, or one longer than 256 bytes")]
    BadJti,
}

/// What the claims must say.
pub struct Expected<'a> {
    /// The provider's issuer.
    pub issuer: &'a str,
    /// Our issuer (`public_url`).
    pub audience: &'a str,
    /// The client that authenticated the token request.
    pub client_id: &'a str,
    pub now: u64,
}

/// An ID-JAG that passed the checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub subject: String,
    pub resource: String,
    /// The `scope` claim, if any: the scopes the organisation allows.
    pub scope: Option<String>,
    pub jti: String,
    pub exp: u64,
}

fn same_url(a: &str, b: &str) -> bool {
    a.trim_end_matches('/') == b.trim_end_matches('/')
}

/// `typ` is the JWT header's; `claims` its verified payload.
pub fn check(
    typ: Option<&str>,
    claims: &Map<String, Value>,
    e: &Expected,
) -> Result<Grant, IdJagError> {
    use IdJagError as E;
    let text = |k: &str| claims.get(k).and_then(Value::as_str);
    let seconds = |k: &str| claims.get(k).and_then(Value::as_u64);
    // A media type: case-insensitive, `application/` may be left out (RFC 7515 §4.1.9).
    let typ = typ.map(str::to_ascii_lowercase);
    let typ = typ
        .as_deref()
        .map(|t| t.strip_prefix("application/").unwrap_or(t));
    if typ != Some(TYP) {
        return Err(E::WrongType);
    }
    if !text("iss").is_some_and(|i| same_url(i, e.issuer)) {
        return Err(E::WrongIssuer);
    }
    let aud_ok = match claims.get("aud") {
        Some(Value::String(a)) => same_url(a, e.audience),
        Some(Value::Array(list)) => list
            .iter()
            .filter_map(Value::as_str)
            .any(|a| same_url(a, e.audience)),
        _ => false,
    };
    if !aud_ok {
        return Err(E::WrongAudience);
    }
    if text("client_id") != Some(e.client_id) {
        return Err(E::OtherClient);
    }
    let resource = text("resource")
        .filter(|r| !r.is_empty())
        .ok_or(E::NoResource)?;
    let subject = text("sub").filter(|s| !s.is_empty()).ok_or(E::NoSubject)?;
    let exp = seconds("exp").ok_or(E::Expired)?;
    if exp + SKEW <= e.now {
        return Err(E::Expired);
    }
    let iat = seconds("iat")
        .filter(|iat| *iat <= e.now + SKEW)
        .ok_or(E::BadIssuedAt)?;
    if exp.saturating_sub(iat) > MAX_LIFETIME {
        return Err(E::TooLong);
    }
    let jti = text("jti")
        .filter(|j| !j.is_empty() && j.len() <= MAX_JTI)
        .ok_or(E::BadJti)?;
    Ok(Grant {
        subject: subject.to_string(),
        resource: resource.to_string(),
        scope: text("scope").map(String::from),
        jti: jti.to_string(),
        exp,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: u64 = 1_800_000_000;

    fn expected() -> Expected<'static> {
        Expected {
            issuer: "https://idp.example",
            audience: "https://proxy.example",
            client_id: "claude",
            now: NOW,
        }
    }

    fn claims(extra: Value) -> Map<String, Value> {
        let mut c = json!({
            "iss": "https://idp.example", "sub": "u1", "aud": "https://proxy.example/",
            "resource": "https://proxy.example/notes/mcp", "client_id": "claude",
            "jti": "j1", "iat": NOW, "exp": NOW + 300, "scope": "notes:read",
        });
        for (k, v) in extra.as_object().unwrap() {
            if v.is_null() {
                c.as_object_mut().unwrap().remove(k);
            } else {
                c[k] = v.clone();
            }
        }
        c.as_object().unwrap().clone()
    }

    #[test]
    fn a_good_id_jag_gives_subject_resource_scope_and_jti() {
        let g = check(Some("oauth-id-jag+jwt"), &claims(json!({})), &expected()).unwrap();
        assert_eq!(
            g,
            Grant {
                subject: "u1".into(),
                resource: "https://proxy.example/notes/mcp".into(),
                scope: Some("notes:read".into()),
                jti: "j1".into(),
                exp: NOW + 300,
            }
        );
        assert!(
            check(
                Some("application/OAuth-ID-JAG+JWT"),
                &claims(json!({"aud":["x","https://proxy.example"]})),
                &expected()
            )
            .is_ok()
        );
    }

    #[test]
    fn each_check_refuses() {
        use IdJagError as E;
        let typed = |typ: Option<&str>| check(typ, &claims(json!({})), &expected()).unwrap_err();
        assert_eq!(typed(Some("JWT")), E::WrongType);
        assert_eq!(typed(None), E::WrongType);
        let cases = [
            (json!({"iss": "https://evil.example"}), E::WrongIssuer),
            (json!({"aud": "https://other.example"}), E::WrongAudience),
            (json!({"aud": null}), E::WrongAudience),
            (json!({"client_id": "cursor"}), E::OtherClient),
            (json!({"client_id": null}), E::OtherClient),
            (json!({"resource": null}), E::NoResource),
            (json!({"sub": ""}), E::NoSubject),
            (json!({"exp": NOW - 61, "iat": NOW - 200}), E::Expired),
            (json!({"exp": null}), E::Expired),
            (json!({"iat": null}), E::BadIssuedAt),
            (json!({"iat": NOW + 61, "exp": NOW + 100}), E::BadIssuedAt),
            (json!({"exp": NOW + 301}), E::TooLong),
            (json!({"jti": null}), E::BadJti),
            (json!({"jti": "x".repeat(257)}), E::BadJti),
        ];
        for (extra, error) in cases {
            assert_eq!(
                check(Some(TYP), &claims(extra.clone()), &expected()),
                Err(error),
                "{extra}"
            );
        }
    }
}
