//! The origin phase: a browser from a foreign origin is refused (DNS-rebinding
//! defence); allowed origins get CORS headers and their preflights answered;
//! methods the endpoint does not take are refused.

use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};

use super::{Context, McpError};
use crate::config::Config;
use crate::wire::{self, Body};

const CORS_ALLOW_HEADERS: &str = "authorization, content-type, accept, last-event-id, mcp-session-id, mcp-protocol-version, mcp-method, mcp-name";
const CORS_EXPOSE_HEADERS: &str = "mcp-session-id, mcp-protocol-version, www-authenticate";

/// Checks the request's `Origin` and method. `Ok(Some(_))`: a preflight, answered.
pub(super) fn check<B>(
    cx: &mut Context<'_>,
    req: &Request<B>,
) -> Result<Option<Response<Body>>, McpError> {
    cx.origin = allowed_origin(cx.config, req.headers())?;
    let methods = cx.endpoint.methods();
    if *req.method() == Method::OPTIONS && cx.origin.is_some() {
        return Ok(Some(preflight(methods)));
    }
    if !methods.contains(req.method()) {
        return Err(McpError::MethodNotAllowed(methods));
    }
    Ok(None)
}

/// The request's `Origin`, if it is one that may use MCP routes: the proxy's
/// own or an allowed one. `Ok(None)`: no `Origin` (not a browser).
fn allowed_origin(config: &Config, headers: &HeaderMap) -> Result<Option<HeaderValue>, McpError> {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(None);
    };
    let text = origin.to_str().map_err(|_| McpError::InvalidOrigin)?;
    let allowed = text.eq_ignore_ascii_case(config.public_url.as_str())
        || config
            .server
            .allowed_origins
            .iter()
            .any(|o| o.eq_ignore_ascii_case(text));
    if allowed {
        Ok(Some(origin.clone()))
    } else {
        Err(McpError::InvalidOrigin)
    }
}

fn preflight(methods: &[Method]) -> Response<Body> {
    let mut res = Response::new(wire::empty());
    *res.status_mut() = StatusCode::NO_CONTENT;
    let allow = methods
        .iter()
        .map(Method::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    let h = res.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&allow) {
        h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, v);
    }
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static(CORS_ALLOW_HEADERS),
    );
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("600"),
    );
    res
}

/// Adds the CORS headers for an allowed browser origin to any answer.
pub(super) fn with_cors(mut res: Response<Body>, origin: Option<HeaderValue>) -> Response<Body> {
    if let Some(origin) = origin {
        let h = res.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        h.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static(CORS_EXPOSE_HEADERS),
        );
        h.append(header::VARY, HeaderValue::from_static("origin"));
    }
    res
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn config() -> Config {
        let yaml = "listen: \"127.0.0.1:8080\"\npublic_url: \"https://proxy.example\"\nstate:\n  dir: /tmp\nserver:\n  allowed_origins: [\"http://localhost:6274\"]\nroutes:\n  - name: notes\n    path: /notes/mcp\n    upstream: \"http://127.0.0.1:1/mcp\"\n";
        Config::from_yaml(yaml, Path::new("/"), &|_| None).unwrap()
    }

    fn origin(value: &str) -> Result<Option<HeaderValue>, McpError> {
        let mut headers = HeaderMap::new();
        headers.insert(header::ORIGIN, HeaderValue::from_str(value).unwrap());
        allowed_origin(&config(), &headers)
    }

    #[test]
    fn requests_without_an_origin_are_not_browsers_and_pass() {
        assert!(
            allowed_origin(&config(), &HeaderMap::new())
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn the_proxys_own_and_allowed_origins_get_cors_in_any_case() {
        assert!(origin("https://proxy.example").unwrap().is_some());
        assert!(origin("HTTP://LOCALHOST:6274").unwrap().is_some());
    }

    #[test]
    fn foreign_origins_are_refused() {
        for foreign in ["https://evil.example", "https://proxy.example.evil", "null"] {
            assert!(
                matches!(origin(foreign), Err(McpError::InvalidOrigin)),
                "{foreign}"
            );
        }
    }

    #[test]
    fn preflights_name_the_endpoints_methods() {
        let res = preflight(&[Method::GET, Method::POST]);
        assert_eq!(res.status(), StatusCode::NO_CONTENT);
        assert_eq!(
            res.headers()[header::ACCESS_CONTROL_ALLOW_METHODS],
            "GET, POST"
        );
    }
}
