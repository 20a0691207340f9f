//! The admin API's wire form, both ways: which request asks for which
//! [`Action`] (the commands send it, the admin listener reads it back).
//!
//! | action | request |
//! | --- | --- |
//! | clients | `GET /admin/clients` |
//! | grants | `GET /admin/grants[?user=U][&client=C]` |
//! | revoke | `POST /admin/revoke` `{"user": U}`, `{"client": C}` or `{"grant": ID}` |
//! | delete-client | `POST /admin/delete-client` `{"client": C}` |
//! | api-key create | `POST /admin/api-keys` `{"user": U, "route": R, "scopes": [...], "expires_in": SECONDS}` |
//! | api-key list | `GET /admin/api-keys` |
//! | api-key revoke | `POST /admin/api-keys/revoke` `{"id": ID}` |
//!
//! Every request carries `Authorization: Bearer <admin token>`; every answer is
//! JSON: an [`Outcome`](crate::authority::admin::Outcome), or
//! `{"error", "error_description"}`.

use http::Method;
use serde::{Deserialize, Serialize};

use crate::authority::admin::{Action, Selector};
use crate::oauth::form;

/// Every admin API path starts with this.
pub const PREFIX: &str = "/admin/";
pub const CLIENTS: &str = "/admin/clients";
pub const GRANTS: &str = "/admin/grants";
pub const REVOKE: &str = "/admin/revoke";
pub const DELETE_CLIENT: &str = "/admin/delete-client";
pub const API_KEYS: &str = "/admin/api-keys";
pub const REVOKE_API_KEY: &str = "/admin/api-keys/revoke";

/// The body of `POST /admin/api-keys`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewApiKey {
    user: String,
    route: String,
    #[serde(default)]
    scopes: Vec<String>,
    expires_in: Option<u64>,
}

/// The body of `POST /admin/api-keys/revoke`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyId {
    id: String,
}

/// The body of `POST /admin/delete-client`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeleteClient {
    client: String,
}

/// A request as the commands send it: method, path with query, JSON body.
#[derive(Debug, PartialEq, Eq)]
pub struct Request {
    pub method: Method,
    pub path_and_query: String,
    pub body: Option<String>,
}

/// The request that asks for `action`.
pub fn request(action: &Action) -> Request {
    let (method, path_and_query, body) = match action {
        Action::Clients => (Method::GET, CLIENTS.to_string(), None),
        Action::Grants { user, client } => {
            let mut query = url::form_urlencoded::Serializer::new(String::new());
            if let Some(u) = user {
                query.append_pair("user", u);
            }
            if let Some(c) = client {
                query.append_pair("client", c);
            }
            let query = query.finish();
            let path = if query.is_empty() {
                GRANTS.to_string()
            } else {
                format!("{GRANTS}?{query}")
            };
            (Method::GET, path, None)
        }
        Action::Revoke(selector) => (
            Method::POST,
            REVOKE.to_string(),
            Some(serde_json::json!(selector).to_string()),
        ),
        Action::DeleteClient(client) => (
            Method::POST,
            DELETE_CLIENT.to_string(),
            Some(
                serde_json::json!(DeleteClient {
                    client: client.clone()
                })
                .to_string(),
            ),
        ),
        Action::CreateApiKey {
            user,
            route,
            scopes,
            expires_in,
        } => (
            Method::POST,
            API_KEYS.to_string(),
            Some(
                serde_json::json!(NewApiKey {
                    user: user.clone(),
                    route: route.clone(),
                    scopes: scopes.clone(),
                    expires_in: *expires_in,
                })
                .to_string(),
            ),
        ),
        Action::ApiKeys => (Method::GET, API_KEYS.to_string(), None),
        Action::RevokeApiKey(id) => (
            Method::POST,
            REVOKE_API_KEY.to_string(),
            Some(serde_json::json!(KeyId { id: id.clone() }).to_string()),
        ),
    };
    Request {
        method,
        path_and_query,
        body,
    }
}

/// Why a request names no action.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    #[error("no such admin endpoint")]
    NotFound,
    #[error("method not allowed here")]
    Method(Method),
    #[error("{0}")]
    BadRequest(String),
}

/// The action a request asks for.
pub fn action(
    method: &Method,
    path: &str,
    query: Option<&str>,
    body: &[u8],
) -> Result<Action, ApiError> {
    let expect = |m: Method| {
        if *method == m {
            Ok(())
        } else {
            Err(ApiError::Method(m))
        }
    };
    let json = |what: &str| -> Result<serde_json::Value, ApiError> {
        serde_json::from_slice(body)
            .map_err(|e| ApiError::BadRequest(format!("the body must be {what} ({e})")))
    };
    match path {
        CLIENTS => {
            expect(Method::GET)?;
            Ok(Action::Clients)
        }
        GRANTS => {
            expect(Method::GET)?;
            let mut params = form::parse(query.unwrap_or_default().as_bytes())
                .map_err(|e| ApiError::BadRequest(e.description))?;
            let (user, client) = (params.remove("user"), params.remove("client"));
            if let Some(other) = params.keys().next() {
                return Err(ApiError::BadRequest(format!(
                    "unknown parameter {other:?}: only user and client"
                )));
            }
            Ok(Action::Grants { user, client })
        }
        REVOKE => {
            expect(Method::POST)?;
            let what = r#"one of {"user": …}, {"client": …} or {"grant": …}"#;
            let selector: Selector = serde_json::from_value(json(what)?)
                .map_err(|e| ApiError::BadRequest(format!("the body must be {what} ({e})")))?;
            Ok(Action::Revoke(selector))
        }
        DELETE_CLIENT => {
            expect(Method::POST)?;
            let what = r#"{"client": …}"#;
            let d: DeleteClient = serde_json::from_value(json(what)?)
                .map_err(|e| ApiError::BadRequest(format!("the body must be {what} ({e})")))?;
            Ok(Action::DeleteClient(d.client))
        }
        API_KEYS if *method == Method::GET => Ok(Action::ApiKeys),
        API_KEYS => {
            expect(Method::POST)?;
            let what = r#"{"user": …, "route": …, "scopes": […], "expires_in": seconds}"#;
            let k: NewApiKey = serde_json::from_value(json(what)?)
                .map_err(|e| ApiError::BadRequest(format!("the body must be {what} ({e})")))?;
            Ok(Action::CreateApiKey {
                user: k.user,
                route: k.route,
                scopes: k.scopes,
                expires_in: k.expires_in,
            })
        }
        REVOKE_API_KEY => {
            expect(Method::POST)?;
            let what = r#"{"id": …}"#;
            let k: KeyId = serde_json::from_value(json(what)?)
                .map_err(|e| ApiError::BadRequest(format!("the body must be {what} ({e})")))?;
            Ok(Action::RevokeApiKey(k.id))
        }
        _ => Err(ApiError::NotFound),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(action: Action) {
        let req = request(&action);
        let (path, query) = match req.path_and_query.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (req.path_and_query.as_str(), None),
        };
        let body = req.body.unwrap_or_default();
        assert_eq!(
            super::action(&req.method, path, query, body.as_bytes()),
            Ok(action)
        );
    }

    #[test]
    fn every_action_reads_back_from_the_request_that_asks_for_it() {
        round_trip(Action::Clients);
        round_trip(Action::Grants {
            user: None,
            client: None,
        });
        round_trip(Action::Grants {
            user: Some("al ice&x=1".into()),
            client: Some("https://app.example/client.json?a=b".into()),
        });
        round_trip(Action::Revoke(Selector::User("alice".into())));
        round_trip(Action::Revoke(Selector::Client("c1".into())));
        round_trip(Action::Revoke(Selector::Grant("g1".into())));
        round_trip(Action::DeleteClient("https://app.example/c.json".into()));
        round_trip(Action::CreateApiKey {
            user: "alice".into(),
            route: "notes".into(),
            scopes: vec!["notes:read".into()],
            expires_in: Some(3600),
        });
        round_trip(Action::ApiKeys);
        round_trip(Action::RevokeApiKey("k1".into()));
    }

    #[test]
    fn bad_requests_say_what_is_wrong() {
        let post = Method::POST;
        assert_eq!(
            action(&Method::GET, "/admin/nope", None, b""),
            Err(ApiError::NotFound)
        );
        assert_eq!(
            action(&post, CLIENTS, None, b""),
            Err(ApiError::Method(Method::GET))
        );
        assert_eq!(
            action(&Method::GET, REVOKE, None, b""),
            Err(ApiError::Method(Method::POST))
        );
        for body in [
            &b""[..],
            b"[]",
            br#"{"user": "a", "grant": "b"}"#,
            br#"{"group": "staff"}"#,
            br#"{"user": 5}"#,
        ] {
            let e = action(&post, REVOKE, None, body).unwrap_err();
            assert!(
                matches!(&e, ApiError::BadRequest(m) if m.starts_with("the body must be one of")),
                "{e:?}"
            );
        }
        assert!(matches!(
            action(&post, DELETE_CLIENT, None, br#"{"client_id": "c"}"#),
            Err(ApiError::BadRequest(_))
        ));
        assert!(matches!(
            action(&Method::GET, GRANTS, Some("user=a&user=b"), b""),
            Err(ApiError::BadRequest(_))
        ));
        assert_eq!(
            action(&Method::GET, GRANTS, Some("group=staff"), b""),
            Err(ApiError::BadRequest(
                "unknown parameter \"group\": only user and client".into()
            ))
        );
    }
}
