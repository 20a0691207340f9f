//! The admin listener (`admin.listen`): `/metrics` (Prometheus text),
//! `/readyz` and the admin API (`/admin/…`, `handlers::admin`: this machine
//! only, with the admin token), beside the public listener and never on it.
//! Plain HTTP/1.1 with the public listener's header timeout; meant for a
//! loopback or private address.

use std::sync::Arc;

use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

use crate::admin::api;
use crate::handlers;
use crate::metrics;
use crate::state::AppState;
use crate::wire::{self, Body};

pub const METRICS: &str = "/metrics";
pub const READYZ: &str = "/readyz";

/// Accepts admin connections until the task is dropped.
pub(super) async fn run(listener: TcpListener, state: Arc<AppState>) {
    if let Ok(local) = listener.local_addr() {
        tracing::info!(listen = %local, "admin listener (metrics, readiness, admin API)");
    }
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "admin accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(local) = tcp.local_addr() else {
            continue;
        };
        let state = state.clone();
        let timeout = state.config.load().server.header_read_timeout;
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, std::convert::Infallible>(handle(&state, req, peer, local).await) }
            });
            let served = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(timeout)
                .serve_connection(TokioIo::new(tcp), service)
                .await;
            if let Err(e) = served {
                tracing::debug!(peer = %peer, error = %e, "admin connection ended with an error");
            }
        });
    }
}

async fn handle(
    state: &AppState,
    req: Request<Incoming>,
    peer: std::net::SocketAddr,
    local: std::net::SocketAddr,
) -> Response<Body> {
    let path = req.uri().path();
    if path.starts_with(api::PREFIX) {
        return handlers::admin::handle(state, req, peer, local).await;
    }
    if path != METRICS && path != READYZ {
        return wire::json_error(StatusCode::NOT_FOUND, "not_found", "no such endpoint");
    }
    if let Some(res) = wire::check_method(&req, &[Method::GET, Method::HEAD]) {
        return res;
    }
    if path == READYZ {
        return readyz(state);
    }
    match state.metrics.encode() {
        Some(text) => {
            let mut res = Response::new(wire::full(text));
            res.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(metrics::CONTENT_TYPE),
            );
            res
        }
        None => wire::json_error(StatusCode::NOT_FOUND, "not_found", "metrics are off"),
    }
}

/// 200 when a config is loaded and the store answers a read, else 503.
fn readyz(state: &AppState) -> Response<Body> {
    let config_loaded = !state.config.load().routes.is_empty();
    let store = tokio::task::block_in_place(|| state.authority.client("readyz-probe"));
    match (config_loaded, store) {
        (true, Ok(_)) => wire::json(StatusCode::OK, &serde_json::json!({"status": "ready"})),
        (_, Err(e)) => {
            tracing::warn!(error = %e, "not ready: the store does not answer");
            wire::json_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "not_ready",
                "the store does not answer",
            )
        }
        (false, _) => wire::json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            "no configuration loaded",
        ),
    }
}
