//! JSON responses: the proxy's own errors in OAuth's shape, and 405s.

use http::{HeaderValue, Response, StatusCode, header};

use super::body::{Body, full};

pub fn json(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    let mut res = Response::new(full(value.to_string()));
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    res
}

/// `{"error": code, "error_description": description}`, the shape OAuth uses,
/// and the one the proxy uses for its own non-OAuth errors too.
pub fn json_error(status: StatusCode, code: &str, description: &str) -> Response<Body> {
    json(
        status,
        &serde_json::json!({ "error": code, "error_description": description }),
    )
}

/// `None` if the request's method is one of `allowed`, else the 405 (JSON, with `Allow`).
pub fn check_method<B>(req: &http::Request<B>, allowed: &[http::Method]) -> Option<Response<Body>> {
    if allowed.contains(req.method()) {
        return None;
    }
    Some(method_not_allowed(allowed))
}

pub fn method_not_allowed(allowed: &[http::Method]) -> Response<Body> {
    let allow = allowed
        .iter()
        .map(http::Method::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    let mut res = json_error(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "method not allowed here",
    );
    if let Ok(v) = HeaderValue::from_str(&allow) {
        res.headers_mut().insert(header::ALLOW, v);
    }
    res
}
