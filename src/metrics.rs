//! Prometheus metrics (issue 13), served by the admin listener (`admin.listen`)
//! in the text format of `prometheus-client`.
//!
//! Off without `admin`: [`Metrics::off`] holds nothing and every recording call
//! is one branch. On the request path a counter is an atomic: the label sets of
//! a route are resolved once, on the route's first request, and kept with the
//! route itself ([`RouteSlot`], in `config::Route`), so a request costs no map
//! lookup; no label is formatted or allocated per request. Labels are bounded:
//! route names come from the config, the rest are fixed sets; no user, client
//! or token is ever a label.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

/// The `route` label of the proxy's own endpoints (OAuth, login, metadata, health).
pub const OWN_ENDPOINTS: &str = "-";

/// The content type of [`Metrics::encode`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

const METHODS: [&str; 6] = ["GET", "POST", "DELETE", "OPTIONS", "HEAD", "other"];
const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// Why the upstream gave no usable answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamError {
    /// Unreachable: no connection.
    Connect,
    /// The connection failed before an answer.
    Failed,
    Timeout,
    /// The upstream refused the proxy's credential.
    Auth,
    /// The upstream answered 5xx.
    Status5xx,
}

impl UpstreamError {
    const ALL: [&str; 5] = ["connect", "failed", "timeout", "auth", "status_5xx"];

    fn index(self) -> usize {
        self as usize
    }
}

/// A refusal by the route's tool policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyRefusal {
    /// A `tools/call` of a tool outside the route's tools (JSON-RPC error).
    ToolsCall,
    /// A tool the token's scopes do not allow: 403 with a step-up challenge.
    StepUp,
}

impl PolicyRefusal {
    const ALL: [&str; 2] = ["tools_call", "step_up"];
}

/// Why an MCP route refused a request's access token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenRefusal {
    Missing,
    /// A token in the URL, or an `Authorization` header that is not `Bearer <token>`.
    InvalidRequest,
    Malformed,
    Signature,
    Expired,
    Audience,
    Issuer,
    Revoked,
}

impl TokenRefusal {
    const ALL: [&str; 8] = [
        "missing",
        "invalid_request",
        "malformed",
        "signature",
        "expired",
        "audience",
        "issuer",
        "revoked",
    ];
}

/// The grant a token was issued at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant {
    AuthorizationCode,
    RefreshToken,
    ClientCredentials,
    /// The JWT bearer grant with an identity provider's ID-JAG.
    JwtBearer,
}

impl Grant {
    const ALL: [&str; 4] = [
        "authorization_code",
        "refresh_token",
        "client_credentials",
        "jwt_bearer",
    ];
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: Arc<str>,
    method: &'static str,
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: Arc<str>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteKindLabels {
    route: Arc<str>,
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GrantLabels {
    grant: &'static str,
}

/// What a rate limit refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Throttled {
    /// A login attempt (the login throttle).
    Login = 0,
    /// A client registration (per address).
    Registration = 1,
}

impl Throttled {
    /// The labels, in the order of the variants (as `Grant::ALL`).
    const ALL: [&str; 2] = ["login", "registration"];
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WhatLabels {
    what: &'static str,
}

/// How a person logged in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginMethod {
    /// A local account's password.
    Local = 0,
    /// An identity provider.
    Provider = 1,
}

impl LoginMethod {
    /// The labels, in the order of the variants (as `Grant::ALL`).
    const ALL: [&str; 2] = ["local", "provider"];
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LoginLabels {
    method: &'static str,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabels {
    version: &'static str,
}

type HistogramFamily = Family<RouteLabels, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 1 ms to ~33 s: token checks to slow tool calls.
    Histogram::new([
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    ])
}

/// The metrics of the whole process; cheap to share (`Arc` inside).
#[derive(Clone, Default)]
pub struct Metrics {
    inner: Option<Arc<Inner>>,
}

struct Inner {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: HistogramFamily,
    upstream_errors: Family<RouteKindLabels, Counter>,
    policy_refusals: Family<RouteKindLabels, Counter>,
    tokens_issued: [Counter; 4],
    tokens_refused: [Counter; 8],
    /// By [`LoginMethod`], then succeeded/failed.
    logins: [[Counter; 2]; 2],
    registrations: Counter,
    /// By [`Throttled`].
    throttled: [Counter; 2],
    reloads: [Counter; 2],
    config_loaded: Gauge<f64, std::sync::atomic::AtomicU64>,
    connections: Gauge,
    streams: Family<RouteLabels, Gauge>,
    /// The label sets of each route seen so far, by name; the own endpoints' apart.
    routes: RwLock<HashMap<Arc<str>, Arc<RouteMetrics>>>,
    own: RouteMetrics,
}

/// Where a route keeps its metrics (`config::Route::metrics`): its name, and its
/// [`RouteMetrics`] once its first request was counted. A config reload makes new
/// routes with empty slots; they find the same `RouteMetrics` by name.
pub struct RouteSlot {
    name: Box<str>,
    resolved: OnceLock<Arc<RouteMetrics>>,
}

impl RouteSlot {
    pub fn new(route: &str) -> Self {
        RouteSlot {
            name: route.into(),
            resolved: OnceLock::new(),
        }
    }
}

impl std::fmt::Debug for RouteSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouteSlot")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// One route's counters, resolved once per label set.
pub struct RouteMetrics {
    name: Arc<str>,
    requests: [[OnceLock<Counter>; STATUS_CLASSES.len()]; METHODS.len()],
    latency: Histogram,
    upstream_errors: [OnceLock<Counter>; UpstreamError::ALL.len()],
    policy_refusals: [OnceLock<Counter>; PolicyRefusal::ALL.len()],
    streams: OnceLock<Gauge>,
}

impl RouteMetrics {
    fn new(name: Arc<str>, latency: &HistogramFamily) -> Self {
        let latency = latency
            .get_or_create(&RouteLabels {
                route: name.clone(),
            })
            .clone();
        RouteMetrics {
            name,
            requests: Default::default(),
            latency,
            upstream_errors: Default::default(),
            policy_refusals: Default::default(),
            streams: OnceLock::new(),
        }
    }
}

/// Something counted as open (a connection, an event stream) while this lives.
pub struct Open(Gauge);

impl Open {
    fn new(gauge: &Gauge) -> Self {
        gauge.inc();
        Open(gauge.clone())
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl Metrics {
    /// No metrics: every call does nothing.
    pub fn off() -> Self {
        Metrics { inner: None }
    }

    /// Metrics on, with the build's version and no config loaded yet.
    pub fn on() -> Self {
        let mut registry = Registry::with_prefix("mcp_oauth_proxy");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "Requests answered, by route (`-`: the proxy's own endpoints), method and status class",
            requests.clone(),
        );
        let latency: HistogramFamily = Family::new_with_constructor(latency_histogram);
        registry.register_with_unit(
            "http_request_duration",
            "Time to the response's head, by route",
            prometheus_client::registry::Unit::Seconds,
            latency.clone(),
        );
        let upstream_errors = Family::<RouteKindLabels, Counter>::default();
        registry.register(
            "upstream_errors",
            "Upstream failures by route and kind (connect, failed, timeout, auth, status_5xx)",
            upstream_errors.clone(),
        );
        let policy_refusals = Family::<RouteKindLabels, Counter>::default();
        registry.register(
            "policy_refusals",
            "Tool calls refused by the route's policy, by route and kind (tools_call, step_up)",
            policy_refusals.clone(),
        );
        let tokens_issued = Family::<GrantLabels, Counter>::default();
        registry.register(
            "tokens_issued",
            "Access tokens issued, by grant",
            tokens_issued.clone(),
        );
        let tokens_refused = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "tokens_refused",
            "Access tokens refused at MCP routes, by reason",
            tokens_refused.clone(),
        );
        let logins = Family::<LoginLabels, Counter>::default();
        registry.register(
            "logins",
            "Login attempts checked, by method and result",
            logins.clone(),
        );
        let registrations = Counter::default();
        registry.register(
            "registrations",
            "Clients registered (RFC 7591)",
            registrations.clone(),
        );
        let throttled = Family::<WhatLabels, Counter>::default();
        registry.register(
            "throttled",
            "Requests refused by a rate limit, by what was limited",
            throttled.clone(),
        );
        let reloads = Family::<ResultLabels, Counter>::default();
        registry.register(
            "config_reloads",
            "Configuration reloads, by result",
            reloads.clone(),
        );
        let config_loaded = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
        registry.register_with_unit(
            "config_loaded_timestamp",
            "When the configuration in use was loaded (Unix time)",
            prometheus_client::registry::Unit::Seconds,
            config_loaded.clone(),
        );
        let connections = Gauge::default();
        registry.register(
            "open_connections",
            "Client connections open on the public listener",
            connections.clone(),
        );
        let streams = Family::<RouteLabels, Gauge>::default();
        registry.register(
            "open_streams",
            "Event streams (SSE) being sent to clients, by route",
            streams.clone(),
        );
        registry.register(
            "build",
            "The running build",
            Info::new(VersionLabels {
                version: env!("CARGO_PKG_VERSION"),
            }),
        );

        let own = RouteMetrics::new(Arc::from(OWN_ENDPOINTS), &latency);
        let inner = Inner {
            tokens_issued: Grant::ALL
                .map(|grant| tokens_issued.get_or_create(&GrantLabels { grant }).clone()),
            tokens_refused: TokenRefusal::ALL.map(|reason| {
                tokens_refused
                    .get_or_create(&ReasonLabels { reason })
                    .clone()
            }),
            logins: LoginMethod::ALL.map(|method| {
                ["succeeded", "failed"].map(|result| {
                    logins
                        .get_or_create(&LoginLabels { method, result })
                        .clone()
                })
            }),
            reloads: ["ok", "failed"]
                .map(|result| reloads.get_or_create(&ResultLabels { result }).clone()),
            registry,
            requests,
            latency,
            upstream_errors,
            policy_refusals,
            registrations,
            throttled: Throttled::ALL
                .map(|what| throttled.get_or_create(&WhatLabels { what }).clone()),
            config_loaded,
            connections,
            streams,
            routes: RwLock::default(),
            own,
        };
        Metrics {
            inner: Some(Arc::new(inner)),
        }
    }

    pub fn is_on(&self) -> bool {
        self.inner.is_some()
    }

    /// The metrics of a route, kept in its slot after the first call; of the own
    /// endpoints for `None`.
    fn of<'a>(&'a self, route: Option<&'a RouteSlot>) -> Option<(&'a Inner, &'a RouteMetrics)> {
        let inner = self.inner.as_deref()?;
        let Some(slot) = route else {
            return Some((inner, &inner.own));
        };
        let resolved = match slot.resolved.get() {
            Some(r) => r,
            None => {
                let r = self.resolve(&slot.name)?;
                slot.resolved.get_or_init(|| r)
            }
        };
        Some((inner, resolved))
    }

    /// The metrics of the route named `name`, made on its first use (under a lock:
    /// once per route and reload, not per request).
    fn resolve(&self, name: &str) -> Option<Arc<RouteMetrics>> {
        let inner = self.inner.as_ref()?;
        if let Some(found) = inner.routes.read().ok()?.get(name) {
            return Some(found.clone());
        }
        let mut routes = inner.routes.write().ok()?;
        let route = routes
            .entry(Arc::from(name))
            .or_insert_with_key(|name| Arc::new(RouteMetrics::new(name.clone(), &inner.latency)));
        Some(route.clone())
    }

    /// One answered request of a route (`None`: the own endpoints): its method,
    /// status and time to the response head.
    pub fn request(
        &self,
        route: Option<&RouteSlot>,
        method: &http::Method,
        status: u16,
        latency: Duration,
    ) {
        let Some((inner, r)) = self.of(route) else {
            return;
        };
        let m = match *method {
            http::Method::GET => 0,
            http::Method::POST => 1,
            http::Method::DELETE => 2,
            http::Method::OPTIONS => 3,
            http::Method::HEAD => 4,
            _ => 5,
        };
        let s = usize::from((status / 100).clamp(1, 5) - 1);
        r.requests[m][s]
            .get_or_init(|| {
                inner
                    .requests
                    .get_or_create(&RequestLabels {
                        route: r.name.clone(),
                        method: METHODS[m],
                        status: STATUS_CLASSES[s],
                    })
                    .clone()
            })
            .inc();
        r.latency.observe(latency.as_secs_f64());
    }

    pub fn upstream_error(&self, route: &RouteSlot, kind: UpstreamError) {
        let Some((inner, r)) = self.of(Some(route)) else {
            return;
        };
        let i = kind.index();
        r.upstream_errors[i]
            .get_or_init(|| {
                inner
                    .upstream_errors
                    .get_or_create(&RouteKindLabels {
                        route: r.name.clone(),
                        kind: UpstreamError::ALL[i],
                    })
                    .clone()
            })
            .inc();
    }

    /// `count` refusals (one per refused tool) of one request.
    pub fn policy_refusal(&self, route: &RouteSlot, kind: PolicyRefusal, count: u64) {
        let Some((inner, r)) = self.of(Some(route)) else {
            return;
        };
        let i = kind as usize;
        r.policy_refusals[i]
            .get_or_init(|| {
                inner
                    .policy_refusals
                    .get_or_create(&RouteKindLabels {
                        route: r.name.clone(),
                        kind: PolicyRefusal::ALL[i],
                    })
                    .clone()
            })
            .inc_by(count);
    }

    /// A client connection accepted: counted open until the answer is dropped.
    pub fn connection_opened(&self) -> Option<Open> {
        self.inner
            .as_ref()
            .map(|inner| Open::new(&inner.connections))
    }

    /// An event stream of `route` starts: counted open until the answer is dropped.
    pub fn stream_opened(&self, route: &RouteSlot) -> Option<Open> {
        let (inner, r) = self.of(Some(route))?;
        let gauge = r.streams.get_or_init(|| {
            inner
                .streams
                .get_or_create(&RouteLabels {
                    route: r.name.clone(),
                })
                .clone()
        });
        Some(Open::new(gauge))
    }

    pub fn token_refused(&self, reason: TokenRefusal) {
        if let Some(inner) = &self.inner {
            inner.tokens_refused[reason as usize].inc();
        }
    }

    pub fn token_issued(&self, grant: Grant) {
        if let Some(inner) = &self.inner {
            inner.tokens_issued[grant as usize].inc();
        }
    }

    /// A login checked: a password, or a sign-in at an identity provider.
    pub fn login(&self, method: LoginMethod, succeeded: bool) {
        if let Some(inner) = &self.inner {
            inner.logins[method as usize][usize::from(!succeeded)].inc();
        }
    }

    /// A request refused by a rate limit.
    pub fn throttled(&self, what: Throttled) {
        if let Some(inner) = &self.inner {
            inner.throttled[what as usize].inc();
        }
    }

    pub fn registration(&self) {
        if let Some(inner) = &self.inner {
            inner.registrations.inc();
        }
    }

    /// A reload attempt; `now` (Unix seconds) becomes the load time when it succeeded.
    pub fn reload(&self, ok: bool, now: u64) {
        if let Some(inner) = &self.inner {
            inner.reloads[usize::from(!ok)].inc();
            if ok {
                self.config_loaded(now);
            }
        }
    }

    /// The configuration in use was loaded at `now` (Unix seconds).
    pub fn config_loaded(&self, now: u64) {
        if let Some(inner) = &self.inner {
            inner.config_loaded.set(now as f64);
        }
    }

    /// The text exposition of every metric (`None` when off).
    pub fn encode(&self) -> Option<String> {
        let inner = self.inner.as_ref()?;
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &inner.registry).ok()?;
        Some(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(text: &str, line_start: &str) -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(line_start))
            .and_then(|v| v.trim().parse().ok())
    }

    #[test]
    fn metrics_that_are_off_record_nothing_and_encode_nothing() {
        let m = Metrics::off();
        let notes = RouteSlot::new("notes");
        m.request(Some(&notes), &http::Method::GET, 200, Duration::ZERO);
        m.token_issued(Grant::RefreshToken);
        assert!(notes.resolved.get().is_none(), "nothing kept in the route");
        assert!(m.encode().is_none());
    }

    #[test]
    fn requests_are_counted_by_route_method_and_status_class() {
        let m = Metrics::on();
        let ms = Duration::from_millis(3);
        let notes = RouteSlot::new("notes");
        m.request(Some(&notes), &http::Method::POST, 200, ms);
        m.request(Some(&notes), &http::Method::POST, 204, ms);
        m.request(None, &http::Method::PATCH, 404, ms);
        m.request(Some(&notes), &http::Method::GET, 599, ms);
        let text = m.encode().unwrap();
        assert_eq!(
            sample(
                &text,
                "mcp_oauth_proxy_http_requests_total{route=\"notes\",method=\"POST\",status=\"2xx\"}"
            ),
            Some(2.0),
            "{text}"
        );
        assert_eq!(
            sample(
                &text,
                "mcp_oauth_proxy_http_requests_total{route=\"-\",method=\"other\",status=\"4xx\"}"
            ),
            Some(1.0),
            "{text}"
        );
        assert_eq!(
            sample(
                &text,
                "mcp_oauth_proxy_http_request_duration_seconds_count{route=\"notes\"}"
            ),
            Some(3.0),
            "{text}"
        );
    }

    #[test]
    fn open_connections_and_streams_count_while_their_guards_live() {
        let m = Metrics::on();
        let conn = m.connection_opened();
        let notes = RouteSlot::new("notes");
        let streams = [m.stream_opened(&notes), m.stream_opened(&notes)];
        let text = m.encode().unwrap();
        assert_eq!(
            sample(&text, "mcp_oauth_proxy_open_connections "),
            Some(1.0)
        );
        assert_eq!(
            sample(&text, "mcp_oauth_proxy_open_streams{route=\"notes\"} "),
            Some(2.0),
            "{text}"
        );
        drop((conn, streams));
        let text = m.encode().unwrap();
        assert_eq!(
            sample(&text, "mcp_oauth_proxy_open_connections "),
            Some(0.0)
        );
        assert_eq!(
            sample(&text, "mcp_oauth_proxy_open_streams{route=\"notes\"} "),
            Some(0.0)
        );
        assert!(Metrics::off().stream_opened(&notes).is_none());
    }

    #[test]
    fn a_route_resolves_its_label_sets_once_and_a_reloaded_route_shares_them() {
        let m = Metrics::on();
        let (before, after) = (RouteSlot::new("notes"), RouteSlot::new("notes"));
        let ms = Duration::from_millis(1);
        m.request(Some(&before), &http::Method::POST, 200, ms);
        let kept = before.resolved.get().unwrap().clone();
        m.upstream_error(&before, UpstreamError::Timeout);
        assert!(Arc::ptr_eq(before.resolved.get().unwrap(), &kept));
        m.request(Some(&after), &http::Method::POST, 200, ms);
        assert!(
            Arc::ptr_eq(after.resolved.get().unwrap(), &kept),
            "a route of a reloaded config counts on"
        );
        let text = m.encode().unwrap();
        assert_eq!(
            sample(
                &text,
                "mcp_oauth_proxy_http_requests_total{route=\"notes\",method=\"POST\",status=\"2xx\"}"
            ),
            Some(2.0),
            "{text}"
        );
    }

    #[test]
    fn fixed_label_sets_are_exported_at_zero_before_anything_happens() {
        let text = Metrics::on().encode().unwrap();
        for line in [
            "mcp_oauth_proxy_tokens_issued_total{grant=\"refresh_token\"} 0",
            "mcp_oauth_proxy_tokens_refused_total{reason=\"expired\"} 0",
            "mcp_oauth_proxy_logins_total{method=\"local\",result=\"failed\"} 0",
            "mcp_oauth_proxy_config_reloads_total{result=\"failed\"} 0",
            "mcp_oauth_proxy_registrations_total 0",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in {text}");
        }
        assert!(
            text.contains(&format!(
                "mcp_oauth_proxy_build_info{{version=\"{}\"}} 1",
                env!("CARGO_PKG_VERSION")
            )),
            "{text}"
        );
    }

    #[test]
    fn a_successful_reload_sets_the_load_time_and_a_failed_one_keeps_it() {
        let m = Metrics::on();
        m.config_loaded(100);
        m.reload(true, 200);
        m.reload(false, 300);
        let text = m.encode().unwrap();
        assert_eq!(
            sample(&text, "mcp_oauth_proxy_config_loaded_timestamp_seconds "),
            Some(200.0),
            "{text}"
        );
        assert_eq!(
            sample(&text, "mcp_oauth_proxy_config_reloads_total{result=\"ok\"}"),
            Some(1.0)
        );
        assert_eq!(
            sample(
                &text,
                "mcp_oauth_proxy_config_reloads_total{result=\"failed\"}"
            ),
            Some(1.0)
        );
    }
}
