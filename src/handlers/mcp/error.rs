//! Why an MCP request ended before (or instead of) the upstream's answer, and
//! the one place each reason becomes a response: HTTP errors in OAuth's JSON
//! shape, JSON-RPC errors where the client expects a JSON-RPC answer.

use std::borrow::Cow;

use http::{HeaderValue, Method, Response, StatusCode, header};

use super::authenticate::challenge;
use crate::config::{Config, Route};
use crate::mcp::jsonrpc;
use crate::oauth::metadata;
use crate::proxy::ProxyError;
use crate::stdio::StdioError;
use crate::wire::{self, Body, BodyError};

#[derive(Debug, thiserror::Error)]
pub enum McpError {
    /// A browser from an origin that may not use MCP routes (DNS-rebinding defence).
    #[error("this Origin may not use this MCP server")]
    InvalidOrigin,
    #[error("method not allowed here")]
    MethodNotAllowed(&'static [Method]),
    /// No valid bearer token: 401 with the route's challenge. `None`: no token at all.
    #[error("an access token is required")]
    Unauthorized(Option<(&'static str, Cow<'static, str>)>),
    /// An `Mcp-Session-Id` that is not this user's and client's (or unknown).
    #[error("Session not found")]
    ForeignSession,
    /// More than one `Mcp-Session-Id` header.
    #[error("Invalid Request: one Mcp-Session-Id header at most")]
    RepeatedSession,
    /// A legacy message for no open event stream of this user's.
    #[error(
        "no open event stream with this session on this instance: the session has ended, \
         or its stream is held by another instance of the proxy (legacy HTTP+SSE needs \
         session affinity at the load balancer)"
    )]
    UnknownLegacySession,
    /// A session this instance does not know, whose owner the shared store
    /// cannot tell now.
    #[error("the session's owner cannot be checked at the moment; try again later")]
    SessionUnverifiable,
    /// A legacy client that does not read its event stream, where refusals go:
    /// its session was ended.
    #[error("the event stream of this session is not being read: the session was ended")]
    StalledStream,
    #[error(transparent)]
    Body(#[from] BodyError),
    /// Not a usable JSON-RPC message: 400 with this JSON-RPC error body.
    #[error("bad JSON-RPC request")]
    BadRequest(String),
    /// The token lacks a scope that would allow a tool: 403 step-up.
    #[error("insufficient scope")]
    InsufficientScope(Box<StepUp>),
    /// Tools that are not the route's: answered with these JSON-RPC errors.
    #[error("tool call refused")]
    Refused { body: String, tools: Vec<String> },
    /// As `Refused`, on a legacy route: the answer went to the client's event stream.
    #[error("tool call refused")]
    RefusedOnStream { tools: Vec<String> },
    #[error(transparent)]
    Upstream(#[from] ProxyError),
    #[error("the upstream's tool list could not be read")]
    UnreadableToolList,
    /// A stdio route's process could not answer.
    #[error(transparent)]
    Stdio(#[from] StdioError),
    /// The route's upstream takes each user's own OAuth token, and this user has
    /// none (never connected, or the refresh was refused): they visit `url`.
    #[error("connect your account at {url}")]
    UpstreamNotConnected {
        url: String,
        /// The request's JSON-RPC id (`None`: a notification, a GET).
        id: Option<Box<serde_json::value::RawValue>>,
    },
    /// The upstream's authorization server cannot be used now.
    #[error(transparent)]
    UpstreamOAuth(crate::upstream_oauth::UpstreamOAuthError),
}

/// MCP 2025-11-25's `URLElicitationRequiredError`: the request needs the
/// user to visit a URL first (clients without URL elicitation show the message).
pub const URL_ELICITATION_REQUIRED: i64 = -32042;

/// What a step-up challenge says (RFC 6750 §3.1, MCP 2025-11-25).
#[derive(Debug)]
pub struct StepUp {
    pub tool: String,
    /// The scope that would allow `tool`.
    pub missing: String,
    /// What to ask for: the token's scopes plus the missing one.
    pub scope: String,
}

impl McpError {
    pub(super) fn invalid_request(description: &'static str) -> Self {
        McpError::Unauthorized(Some(("invalid_request", Cow::Borrowed(description))))
    }

    /// The one place an MCP route's refusal becomes a response.
    pub(super) fn into_response(self, config: &Config, route: &Route) -> Response<Body> {
        match self {
            McpError::InvalidOrigin => {
                wire::json_error(StatusCode::FORBIDDEN, "invalid_origin", &self.to_string())
            }
            McpError::MethodNotAllowed(methods) => wire::method_not_allowed(methods),
            McpError::Unauthorized(error) => {
                let prm = metadata::protected_resource_url(config, route);
                let error = error.as_ref().map(|(c, d)| (*c, d.as_ref()));
                let value = challenge(&prm, &route.default_scopes.join(" "), error);
                let (code, description) =
                    error.unwrap_or(("invalid_token", "an access token is required"));
                let res = wire::json_error(StatusCode::UNAUTHORIZED, code, description);
                with_challenge(res, &value)
            }
            McpError::ForeignSession => jsonrpc_response(
                StatusCode::NOT_FOUND,
                jsonrpc::error_response(None, -32001, "Session not found"),
            ),
            McpError::RepeatedSession => jsonrpc_response(
                StatusCode::BAD_REQUEST,
                jsonrpc::error_response(None, jsonrpc::INVALID_REQUEST, &self.to_string()),
            ),
            McpError::SessionUnverifiable => {
                let mut res = jsonrpc_response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    jsonrpc::error_response(None, jsonrpc::INTERNAL_ERROR, &self.to_string()),
                );
                res.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
                res
            }
            McpError::UnknownLegacySession => {
                wire::json_error(StatusCode::NOT_FOUND, "unknown_session", &self.to_string())
            }
            McpError::StalledStream => {
                wire::json_error(StatusCode::NOT_FOUND, "session_ended", &self.to_string())
            }
            McpError::Body(e) => e.into_response(),
            McpError::BadRequest(body) => jsonrpc_response(StatusCode::BAD_REQUEST, body),
            McpError::InsufficientScope(step_up) => {
                let StepUp {
                    tool,
                    missing,
                    scope,
                } = *step_up;
                let prm = metadata::protected_resource_url(config, route);
                let value = format!(
                    "Bearer error=\"insufficient_scope\", scope=\"{scope}\", resource_metadata=\"{prm}\""
                );
                let description = format!("calling {tool} needs scope {missing}");
                let res =
                    wire::json_error(StatusCode::FORBIDDEN, "insufficient_scope", &description);
                with_challenge(res, &value)
            }
            McpError::Refused { body, .. } => jsonrpc_response(StatusCode::OK, body),
            McpError::RefusedOnStream { .. } => {
                let mut res = Response::new(wire::empty());
                *res.status_mut() = StatusCode::ACCEPTED;
                res
            }
            McpError::Upstream(e) => e.into_response(),
            McpError::UnreadableToolList => {
                wire::json_error(StatusCode::BAD_GATEWAY, "bad_gateway", &self.to_string())
            }
            McpError::Stdio(e) => e.into_response(),
            McpError::UpstreamNotConnected { url, id } => {
                let message = format!(
                    "{} needs your own account there: open {url} in a browser to connect it, then try again",
                    route.name
                );
                match id {
                    Some(id) => {
                        let body = serde_json::json!({
                            "jsonrpc": "2.0",
                            "id": id,
                            "error": {
                                "code": URL_ELICITATION_REQUIRED,
                                "message": message,
                                "data": {"elicitations": [{
                                    "mode": "url",
                                    "elicitationId": format!("connect-{}", route.name),
                                    "url": url,
                                    "message": format!("Connect your {} account", route.name),
                                }]},
                            },
                        });
                        jsonrpc_response(StatusCode::OK, body.to_string())
                    }
                    None => {
                        wire::json_error(StatusCode::FORBIDDEN, "upstream_not_connected", &message)
                    }
                }
            }
            McpError::UpstreamOAuth(e) => {
                let status = match e {
                    crate::upstream_oauth::UpstreamOAuthError::Unavailable(_) => {
                        StatusCode::GATEWAY_TIMEOUT
                    }
                    _ => StatusCode::BAD_GATEWAY,
                };
                wire::json_error(
                    status,
                    "upstream_auth_failed",
                    "the upstream's authorization server cannot be used now",
                )
            }
        }
    }
}

fn jsonrpc_response(status: StatusCode, body: String) -> Response<Body> {
    let mut res = Response::new(wire::full(body));
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    res
}

fn with_challenge(mut res: Response<Body>, value: &str) -> Response<Body> {
    if let Ok(v) = HeaderValue::from_str(value) {
        res.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    res
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn config() -> Config {
        let yaml = "listen: \"127.0.0.1:8080\"\npublic_url: \"https://proxy.example\"\nstate:\n  dir: /tmp\nroutes:\n  - name: notes\n    path: /notes/mcp\n    upstream: \"http://127.0.0.1:1/mcp\"\n    scopes:\n      \"notes:read\": [\"read_*\"]\n    default_scopes: [\"notes:read\"]\n";
        Config::from_yaml(yaml, Path::new("/"), &|_| None).unwrap()
    }

    fn render(e: McpError) -> (StatusCode, Option<String>, String) {
        let config = config();
        let res = e.into_response(&config, &config.routes[0]);
        let challenge = res
            .headers()
            .get(header::WWW_AUTHENTICATE)
            .map(|v| v.to_str().unwrap().to_string());
        let status = res.status();
        let body = futures_util::FutureExt::now_or_never(http_body_util::BodyExt::collect(
            res.into_body(),
        ))
        .unwrap()
        .unwrap()
        .to_bytes();
        (status, challenge, String::from_utf8(body.to_vec()).unwrap())
    }

    #[test]
    fn a_missing_token_gets_401_with_the_routes_metadata_and_default_scope() {
        let (status, challenge, body) = render(McpError::Unauthorized(None));
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            challenge.unwrap(),
            "Bearer resource_metadata=\"https://proxy.example/.well-known/oauth-protected-resource/notes/mcp\", scope=\"notes:read\""
        );
        assert!(body.contains("\"invalid_token\""), "{body}");
    }

    #[test]
    fn a_bad_token_names_the_error_in_the_challenge_and_the_body() {
        let (status, challenge, body) = render(McpError::Unauthorized(Some((
            "invalid_token",
            "token expired".into(),
        ))));
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(
            challenge
                .unwrap()
                .ends_with("error=\"invalid_token\", error_description=\"token expired\"")
        );
        assert!(body.contains("token expired"), "{body}");
    }

    #[test]
    fn a_missing_scope_gets_403_with_a_step_up_challenge() {
        let (status, challenge, body) = render(McpError::InsufficientScope(Box::new(StepUp {
            tool: "write_note".into(),
            missing: "notes:write".into(),
            scope: "notes:read notes:write".into(),
        })));
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert_eq!(
            challenge.unwrap(),
            "Bearer error=\"insufficient_scope\", scope=\"notes:read notes:write\", resource_metadata=\"https://proxy.example/.well-known/oauth-protected-resource/notes/mcp\""
        );
        assert!(body.contains("calling write_note needs scope notes:write"));
    }

    #[test]
    fn refusals_answer_in_json_rpc_or_on_the_legacy_stream() {
        let (status, _, body) = render(McpError::Refused {
            body: "{\"jsonrpc\":\"2.0\"}".into(),
            tools: vec!["x".into()],
        });
        assert_eq!(
            (status, body.as_str()),
            (StatusCode::OK, "{\"jsonrpc\":\"2.0\"}")
        );
        let (status, _, body) = render(McpError::RefusedOnStream { tools: vec![] });
        assert_eq!((status, body.as_str()), (StatusCode::ACCEPTED, ""));
        let (status, _, body) = render(McpError::RepeatedSession);
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(body.contains("-32600"), "{body}");
        let (status, _, body) = render(McpError::ForeignSession);
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(body.contains("-32001"), "{body}");
    }

    #[test]
    fn an_unconnected_upstream_account_names_the_connect_page() {
        let url = "https://proxy.example/oauth/connect/notes".to_string();
        let id = serde_json::value::RawValue::from_string("\"a\"".into()).unwrap();
        let (status, _, body) = render(McpError::UpstreamNotConnected {
            url: url.clone(),
            id: Some(id),
        });
        assert_eq!(status, StatusCode::OK);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["id"], "a");
        assert_eq!(v["error"]["code"], URL_ELICITATION_REQUIRED);
        assert!(v["error"]["message"].as_str().unwrap().contains(&url));
        assert_eq!(v["error"]["data"]["elicitations"][0]["mode"], "url");
        assert_eq!(v["error"]["data"]["elicitations"][0]["url"], url.as_str());
        // A notification or a GET: no JSON-RPC id to answer.
        let (status, _, body) = render(McpError::UpstreamNotConnected {
            url: url.clone(),
            id: None,
        });
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert!(
            body.contains("upstream_not_connected") && body.contains(&url),
            "{body}"
        );
        // The authorization server down: 504, and nothing of its answer.
        let (status, _, body) = render(McpError::UpstreamOAuth(
            crate::upstream_oauth::UpstreamOAuthError::Unavailable("secret detail".into()),
        ));
        assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
        assert!(!body.contains("secret detail"));
    }

    #[test]
    fn transport_failures_keep_their_http_status() {
        assert_eq!(render(McpError::InvalidOrigin).0, StatusCode::FORBIDDEN);
        assert_eq!(
            render(McpError::Body(BodyError::TooLarge)).0,
            StatusCode::PAYLOAD_TOO_LARGE
        );
        assert_eq!(
            render(McpError::Upstream(ProxyError::Timeout)).0,
            StatusCode::GATEWAY_TIMEOUT
        );
        assert_eq!(
            render(McpError::UnreadableToolList).0,
            StatusCode::BAD_GATEWAY
        );
        assert_eq!(
            render(McpError::MethodNotAllowed(&[Method::GET])).0,
            StatusCode::METHOD_NOT_ALLOWED
        );
    }
}
