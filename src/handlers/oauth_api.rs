//! The authorization server's JSON endpoints: metadata, JWKS, registration,
//! token, revocation. Each handler translates HTTP to `Authority` calls.

use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;

use super::{clients, federated};
use crate::authority::{TokenParams, TokenResponse};
use crate::config::Config;
use crate::federation::id_jag;
use crate::login::LoginUser;
use crate::metrics::Grant;
use crate::oauth::client::{ClientRecord, RegistrationRequest};
use crate::oauth::form as forms;
use crate::oauth::refresh::IdentityVerdict;
use crate::oauth::{ErrorCode, OAuthError, metadata};
use crate::state::AppState;
use crate::telemetry::AccessInfo;
use crate::telemetry::audit::{self, Event};
use crate::wire::ConnInfo;
use crate::wire::{self, Body, MAX_FORM_BODY, json, read_body};

/// The one place an OAuth error becomes a response (RFC 6749 §5.2).
pub fn error_response(e: &OAuthError) -> Response<Body> {
    let status = match e.code {
        ErrorCode::InvalidClient => StatusCode::UNAUTHORIZED,
        ErrorCode::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
        ErrorCode::TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::BAD_REQUEST,
    };
    let mut res = json(
        status,
        &serde_json::json!({ "error": e.code.as_str(), "error_description": e.description }),
    );
    if e.code == ErrorCode::TemporarilyUnavailable {
        res.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("30"));
    }
    if e.code == ErrorCode::InvalidClient {
        res.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"mcp-oauth-proxy\""),
        );
    }
    no_store(res)
}

pub fn no_store(mut res: Response<Body>) -> Response<Body> {
    let h = res.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    res
}

/// Browser-based clients (MCP Inspector) call these endpoints cross-origin; they carry no cookies.
pub fn cors(mut res: Response<Body>) -> Response<Body> {
    let h = res.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, POST, OPTIONS"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("authorization, content-type, mcp-protocol-version"),
    );
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("86400"),
    );
    res
}

pub fn preflight() -> Response<Body> {
    let mut res = Response::new(wire::empty());
    *res.status_mut() = StatusCode::NO_CONTENT;
    cors(res)
}

pub fn document(req: &Request<Incoming>, doc: serde_json::Value) -> Response<Body> {
    if let Some(res) = wire::check_method(req, &[Method::GET, Method::HEAD]) {
        return cors(res);
    }
    let mut res = json(StatusCode::OK, &doc);
    res.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    cors(res)
}

pub fn authorization_server_metadata(req: &Request<Incoming>, config: &Config) -> Response<Body> {
    document(req, metadata::authorization_server(config))
}

pub async fn register(state: &AppState, req: Request<Incoming>, conn: ConnInfo) -> Response<Body> {
    let (authority, limit) = (&state.authority, &state.registrations);
    if let Some(res) = wire::check_method(&req, &[Method::POST]) {
        return cors(res);
    }
    let counted = tokio::task::block_in_place(|| limit.check(conn.peer.ip()));
    if let Err(wait) = counted {
        state
            .metrics
            .throttled(crate::metrics::Throttled::Registration);
        let mut res = wire::json_error(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_requests",
            "too many registrations from this address; try later",
        );
        if let Ok(v) = HeaderValue::from_str(&wait.to_string()) {
            res.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return cors(res);
    }
    let (parts, body) = req.into_parts();
    let bytes = match read_body(&parts.headers, body, MAX_FORM_BODY).await {
        Ok(b) => b,
        Err(e) => return cors(e.into_response()),
    };
    let result = if !forms::is_json(&parts.headers) {
        Err(OAuthError::invalid_client_metadata(
            "send the client metadata as application/json",
        ))
    } else {
        serde_json::from_slice::<RegistrationRequest>(&bytes)
            .map_err(|e| {
                OAuthError::invalid_client_metadata(format!("invalid client metadata: {e}"))
            })
            .and_then(|r| tokio::task::block_in_place(|| authority.register(r)))
    };
    let res = match result {
        Ok(doc) => {
            state.metrics.registration();
            let client = doc["client_id"].as_str().map(str::to_string);
            audit::event(Event::ClientRegistered {
                client: client.as_deref().unwrap_or_default(),
                ip: conn.peer.ip(),
            });
            let mut res = no_store(json(StatusCode::CREATED, &doc));
            res.extensions_mut().insert(AccessInfo {
                client,
                ..Default::default()
            });
            res
        }
        Err(e) => error_response(&e),
    };
    cors(res)
}

/// Reads a form-encoded POST body of the token or revocation endpoint.
async fn oauth_form(
    req: Request<Incoming>,
) -> Result<
    (
        http::request::Parts,
        std::collections::HashMap<String, String>,
    ),
    Response<Body>,
> {
    if let Some(res) = wire::check_method(&req, &[Method::POST]) {
        return Err(cors(res));
    }
    let (parts, body) = req.into_parts();
    let bytes = read_body(&parts.headers, body, MAX_FORM_BODY)
        .await
        .map_err(|e| cors(e.into_response()))?;
    if !forms::is_form(&parts.headers) {
        let e =
            OAuthError::invalid_request("send the request as application/x-www-form-urlencoded");
        return Err(cors(error_response(&e)));
    }
    let form = forms::parse(&bytes).map_err(|e| cors(error_response(&e)))?;
    Ok((parts, form))
}

pub async fn token(
    state: &AppState,
    config: &Config,
    req: Request<Incoming>,
    conn: ConnInfo,
) -> Response<Body> {
    let peer = conn.peer.ip();
    let (parts, form) = match oauth_form(req).await {
        Ok(f) => f,
        Err(res) => return res,
    };
    let get = |k: &str| form.get(k).map(String::as_str);
    let authenticated = clients::authenticate(state, config, &parts.headers, &form, peer).await;
    let grant = get("grant_type");
    // What needs the network first: a provider's user confirmed with the provider
    // (when due) before a refresh; an ID-JAG checked with its provider's keys.
    let prepared = match (&authenticated, grant) {
        (Ok(_), Some("refresh_token")) => federated::recheck(state, config, get("refresh_token"))
            .await
            .map(Prepared::Refresh),
        (Ok(c), Some(id_jag::GRANT_TYPE)) => {
            federated::id_jag_grant(state, config, &c.client_id, get("assertion"), get("scope"))
                .await
                .map(|(user, resource, scopes)| Prepared::Assertion(user, resource, scopes))
        }
        _ => Ok(Prepared::Nothing),
    };
    let result = match authenticated.and_then(|c| prepared.map(|p| (c, p))) {
        Err(e) => Err(e),
        // The store is synchronous (fsync): let the runtime move other tasks off this thread.
        Ok((client, prepared)) => tokio::task::block_in_place(|| {
            let authority = &state.authority;
            let (identity, asserted) = match prepared {
                Prepared::Refresh(identity) => (identity, None),
                Prepared::Assertion(user, resource, scopes) => {
                    (None, Some((user, resource, scopes)))
                }
                Prepared::Nothing => (None, None),
            };
            let params = TokenParams {
                peer: Some(peer),
                code: get("code"),
                redirect_uri: get("redirect_uri"),
                code_verifier: get("code_verifier"),
                refresh_token: get("refresh_token"),
                scope: get("scope"),
                resource: get("resource"),
                identity,
            };
            let (response, kind) = match (grant, asserted) {
                (Some("authorization_code"), _) => (
                    authority.exchange_code(config, &client, &params)?,
                    Grant::AuthorizationCode,
                ),
                (Some("refresh_token"), _) => (
                    authority.refresh(config, &client, &params)?,
                    Grant::RefreshToken,
                ),
                (Some("client_credentials"), _) => (
                    client_credentials(state, config, &client, &params)?,
                    Grant::ClientCredentials,
                ),
                (Some(id_jag::GRANT_TYPE), Some((user, resource, scopes))) => (
                    authority.issue_access(config, &client.client_id, &user, &resource, &scopes)?,
                    Grant::JwtBearer,
                ),
                (Some(_), _) => Err(OAuthError::unsupported_grant_type(
                    "grant_type must be authorization_code, refresh_token, client_credentials \
                     or urn:ietf:params:oauth:grant-type:jwt-bearer",
                ))?,
                (None, _) => Err(OAuthError::invalid_request("grant_type is required"))?,
            };
            let (user, client_id, route) = (
                response.user.as_str(),
                client.client_id.as_str(),
                config.route_name(&response.resource),
            );
            state.metrics.token_issued(kind);
            audit::event(if kind == Grant::RefreshToken {
                Event::TokenRefreshed {
                    user,
                    client: client_id,
                    route,
                    ip: peer,
                }
            } else {
                Event::TokenIssued {
                    user,
                    client: client_id,
                    route,
                    ip: peer,
                }
            });
            Ok((client.client_id, response))
        }),
    };
    answer(result.map(|(client, response)| {
        let body = json(
            StatusCode::OK,
            &serde_json::to_value(&response).unwrap_or_default(),
        );
        (client, body)
    }))
}

/// What a grant needed from the network before the store is touched.
enum Prepared {
    Nothing,
    /// At a refresh: what the identity provider said of the person, if asked.
    Refresh(Option<IdentityVerdict>),
    /// A checked ID-JAG: the person, the route's resource, the scopes.
    Assertion(LoginUser, String, Vec<String>),
}

/// `client_credentials`: a machine client of `clients:` gets a token for
/// itself, for a route and scopes it was given.
fn client_credentials(
    state: &AppState,
    config: &Config,
    client: &ClientRecord,
    params: &TokenParams,
) -> Result<TokenResponse, OAuthError> {
    let machine = config.machine_client(&client.client_id).ok_or_else(|| {
        OAuthError::unauthorized_client(
            "only clients of the configuration's `clients` may use client_credentials",
        )
    })?;
    let resource = params
        .resource
        .ok_or_else(|| OAuthError::invalid_request("resource is required"))?;
    let route = crate::oauth::resource::canonical(resource)
        .and_then(|r| config.routes.iter().find(|x| x.resource == r))
        .ok_or_else(|| OAuthError::invalid_target("resource is not served here"))?;
    let scopes = crate::oauth::machine::scopes(machine, route, params.scope)?;
    let user = LoginUser {
        name: machine.name.clone(),
        groups: Vec::new(),
    };
    state
        .authority
        .issue_access(config, &client.client_id, &user, &route.resource, &scopes)
}

/// The response of the token and revocation endpoints: `no-store`, CORS, and the client in the access log.
fn answer(result: Result<(String, Response<Body>), OAuthError>) -> Response<Body> {
    let res = match result {
        Ok((client, res)) => {
            let mut res = no_store(res);
            res.extensions_mut().insert(AccessInfo {
                client: Some(client),
                ..Default::default()
            });
            res
        }
        Err(e) => error_response(&e),
    };
    cors(res)
}

pub async fn revoke(
    state: &AppState,
    config: &Config,
    req: Request<Incoming>,
    conn: ConnInfo,
) -> Response<Body> {
    let peer = conn.peer.ip();
    let (parts, form) = match oauth_form(req).await {
        Ok(f) => f,
        Err(res) => return res,
    };
    let result = match clients::authenticate(state, config, &parts.headers, &form, peer).await {
        Err(e) => Err(e),
        Ok(client) => tokio::task::block_in_place(|| {
            let token = form
                .get("token")
                .filter(|t| !t.is_empty())
                .ok_or_else(|| OAuthError::invalid_request("token is required"))?;
            let known = state.authority.revoke(&client, token)?;
            if let Some((user, resource)) = &known {
                audit::event(Event::TokenRevoked {
                    user: Some(user),
                    client: &client.client_id,
                    route: config.route_name(resource),
                    ip: peer,
                });
                // Revoking the grant also ends the user's upstream account connection.
                state
                    .upstream_oauth
                    .grant_ended(&state.authority, config, user, resource);
            }
            Ok(client.client_id)
        }),
    };
    answer(result.map(|client| (client, Response::new(wire::empty()))))
}
