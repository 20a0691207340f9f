//! The proxy as an OpenID Connect relying party: discovery, the authorization
//! request, the code exchange with ID token validation (and userinfo when the
//! ID token lacks a claim), and confirming a person again with the provider's
//! refresh token.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use super::client::{Answer, Auth, ProviderHttp};
use super::id_token::{self, Expected, Unverified};
use super::person::{self, Person};
use super::{SignInError, SignedIn};
use crate::clock::Clock;
use crate::config::IdentityProvider;
use crate::secret::Secret;

/// A discovery document is fetched again after this.
const DISCOVERY_TTL: Duration = Duration::from_secs(3600);
/// The key set is fetched again for an unknown `kid` at most this often.
const JWKS_MIN_INTERVAL: Duration = Duration::from_secs(2);

/// What the proxy reads of a provider's discovery document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discovery {
    /// As the provider states it; may contain `{tenantid}` (Entra ID multi-tenant).
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub jwks_uri: String,
    pub userinfo_endpoint: Option<String>,
    pub algorithms: Vec<String>,
    /// Send the client secret in the form (`client_secret_post`) rather than Basic.
    pub secret_in_form: bool,
    /// RFC 9207: the provider adds `iss` to its answer to the browser.
    pub iss_parameter: bool,
}

impl Discovery {
    /// The document of the provider configured with `issuer` (OpenID Connect
    /// Discovery §4.3: its `issuer` must be that one, or a `{tenantid}` template).
    pub fn parse(body: &Value, issuer: &str) -> Result<Self, String> {
        let text = |k: &str| body.get(k).and_then(Value::as_str).map(String::from);
        let required =
            |k: &str| text(k).ok_or_else(|| format!("its discovery document has no {k}"));
        let list = |k: &str| -> Vec<String> {
            body.get(k)
                .and_then(Value::as_array)
                .map(|l| {
                    l.iter()
                        .filter_map(Value::as_str)
                        .map(String::from)
                        .collect()
                })
                .unwrap_or_default()
        };
        let stated = required("issuer")?;
        if stated.trim_end_matches('/') != issuer && !stated.contains("{tenantid}") {
            return Err(format!(
                "its discovery document names another issuer ({stated})"
            ));
        }
        let mut algorithms = list("id_token_signing_alg_values_supported");
        if algorithms.is_empty() {
            algorithms.push("RS256".into());
        }
        let auth_methods = list("token_endpoint_auth_methods_supported");
        Ok(Discovery {
            issuer: stated,
            authorization_endpoint: required("authorization_endpoint")?,
            token_endpoint: required("token_endpoint")?,
            jwks_uri: required("jwks_uri")?,
            userinfo_endpoint: text("userinfo_endpoint"),
            algorithms,
            secret_in_form: !auth_methods.is_empty()
                && !auth_methods.iter().any(|m| m == "client_secret_basic")
                && auth_methods.iter().any(|m| m == "client_secret_post"),
            iss_parameter: body
                .get("authorization_response_iss_parameter_supported")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        })
    }
}

/// What the proxy keeps of one OpenID provider: its discovery document and key set.
pub struct OidcProvider {
    /// The configured issuer these were fetched for.
    pub issuer: String,
    discovery: Mutex<Option<(Arc<Discovery>, Instant)>>,
    jwks: Mutex<Option<(Arc<Value>, Instant)>>,
    /// One key-set fetch at a time.
    jwks_fetch: tokio::sync::Mutex<()>,
}

/// What the provider's token endpoint said.
struct Tokens {
    id_token: Option<String>,
    access_token: Option<String>,
    refresh_token: Option<String>,
}

impl OidcProvider {
    pub fn new(issuer: &str) -> Self {
        OidcProvider {
            issuer: issuer.to_string(),
            discovery: Mutex::new(None),
            jwks: Mutex::new(None),
            jwks_fetch: tokio::sync::Mutex::new(()),
        }
    }

    /// The discovery document, from the cache or fetched now.
    pub async fn discovery(
        &self,
        http: &ProviderHttp,
        clock: &Clock,
    ) -> Result<Arc<Discovery>, SignInError> {
        let now = clock.instant();
        if let Some((d, at)) = &*self
            .discovery
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            && now.duration_since(*at) < DISCOVERY_TTL
        {
            return Ok(d.clone());
        }
        let url = format!("{}/.well-known/openid-configuration", self.issuer);
        let answer = http.get(&url, Auth::None, "application/json").await;
        let body = ok_body(answer, "discovery")?;
        let d = Arc::new(Discovery::parse(&body, &self.issuer).map_err(SignInError::Invalid)?);
        *self
            .discovery
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some((d.clone(), now));
        Ok(d)
    }

    /// The authorization request's URL.
    pub async fn authorization_url(
        &self,
        http: &ProviderHttp,
        clock: &Clock,
        provider: &IdentityProvider,
        redirect_uri: &str,
        attempt: &super::Attempt,
    ) -> Result<String, SignInError> {
        let d = self.discovery(http, clock).await?;
        Ok(super::authorization_url(
            &d.authorization_endpoint,
            provider,
            redirect_uri,
            attempt,
            Some(&attempt.nonce),
        ))
    }

    /// The callback's code exchanged and the person it signs in.
    pub async fn finish(
        &self,
        http: &ProviderHttp,
        clock: &Clock,
        provider: &IdentityProvider,
        callback: &super::Callback<'_>,
    ) -> Result<SignedIn, SignInError> {
        let d = self.discovery(http, clock).await?;
        // RFC 9207: the answer must say who sent it when the provider says it will
        // (with several providers, an answer from another one is a mix-up attack).
        if (d.iss_parameter || callback.iss.is_some())
            && callback.iss.map(|i| i.trim_end_matches('/')) != Some(d.issuer.trim_end_matches('/'))
        {
            return Err(SignInError::Invalid(
                "the answer's iss parameter is not the provider's".into(),
            ));
        }
        let tokens = self
            .token_request(
                http,
                provider,
                &d,
                &[
                    ("grant_type", "authorization_code"),
                    ("code", callback.code),
                    ("redirect_uri", callback.redirect_uri),
                    ("code_verifier", &callback.attempt.verifier),
                ],
            )
            .await?;
        let id_token = tokens
            .id_token
            .as_deref()
            .ok_or_else(|| SignInError::Invalid("the provider sent no ID token".into()))?;
        let expected = Expected {
            issuer: &d.issuer,
            client_id: &provider.client_id,
            nonce: Some(&callback.attempt.nonce),
            subject: None,
            now: clock.unix(),
        };
        let claims = self
            .id_token_claims(http, clock, &d, id_token, &expected)
            .await?;
        let person = self
            .person(http, provider, &d, claims, tokens.access_token.as_deref())
            .await?;
        Ok(SignedIn {
            person,
            token: tokens.refresh_token.map(Secret::new),
        })
    }

    /// The person confirmed again: the provider's refresh token still works,
    /// and what it says of the person still lets them in.
    pub async fn revalidate(
        &self,
        http: &ProviderHttp,
        clock: &Clock,
        provider: &IdentityProvider,
        subject: &str,
        refresh_token: Option<&Secret>,
    ) -> Result<SignedIn, SignInError> {
        let refresh_token = refresh_token.ok_or_else(|| {
            SignInError::Invalid(
                "the provider gave no refresh token to confirm the person with".into(),
            )
        })?;
        let d = self.discovery(http, clock).await?;
        let tokens = self
            .token_request(
                http,
                provider,
                &d,
                &[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", refresh_token.expose()),
                ],
            )
            .await?;
        let mut claims = Map::new();
        if let Some(id_token) = tokens.id_token.as_deref() {
            let expected = Expected {
                issuer: &d.issuer,
                client_id: &provider.client_id,
                nonce: None,
                subject: Some(subject),
                now: clock.unix(),
            };
            claims = self
                .id_token_claims(http, clock, &d, id_token, &expected)
                .await?;
        } else {
            claims.insert("sub".into(), Value::String(subject.to_string()));
        }
        if tokens.id_token.is_none()
            && (d.userinfo_endpoint.is_none() || tokens.access_token.is_none())
        {
            return Err(SignInError::Invalid(
                "the provider's refresh answer says nothing of the person".into(),
            ));
        }
        let person = self
            .person(http, provider, &d, claims, tokens.access_token.as_deref())
            .await?;
        Ok(SignedIn {
            person,
            token: Some(
                tokens
                    .refresh_token
                    .map(Secret::new)
                    .unwrap_or_else(|| refresh_token.clone()),
            ),
        })
    }

    async fn token_request(
        &self,
        http: &ProviderHttp,
        provider: &IdentityProvider,
        d: &Discovery,
        params: &[(&str, &str)],
    ) -> Result<Tokens, SignInError> {
        let secret = provider.client_secret.expose();
        let mut form = params.to_vec();
        let auth = if d.secret_in_form {
            form.push(("client_id", &provider.client_id));
            form.push(("client_secret", secret));
            Auth::None
        } else {
            Auth::Basic {
                id: &provider.client_id,
                secret,
            }
        };
        let answer = http.post_form(&d.token_endpoint, auth, &form).await;
        let body = ok_body(answer, "token")?;
        let text = |k: &str| body.get(k).and_then(Value::as_str).map(String::from);
        Ok(Tokens {
            id_token: text("id_token"),
            access_token: text("access_token"),
            refresh_token: text("refresh_token"),
        })
    }

    /// The claims of an ID token that verifies and passes the ID token checks.
    async fn id_token_claims(
        &self,
        http: &ProviderHttp,
        clock: &Clock,
        d: &Discovery,
        token: &str,
        expected: &Expected<'_>,
    ) -> Result<Map<String, Value>, SignInError> {
        let (_, claims) = self.verified(http, clock, d, token).await?;
        id_token::check_claims(&claims, expected)
            .map_err(|e| SignInError::Invalid(e.to_string()))?;
        Ok(claims)
    }

    /// A JWT this provider signed (an ID-JAG): its header's `typ` and its claims,
    /// checked by the caller.
    pub async fn verify_assertion(
        &self,
        http: &ProviderHttp,
        clock: &Clock,
        token: &str,
    ) -> Result<(Option<String>, Map<String, Value>, String), SignInError> {
        let d = self.discovery(http, clock).await?;
        let (typ, claims) = self.verified(http, clock, &d, token).await?;
        Ok((typ, claims, d.issuer.clone()))
    }

    /// The `typ` and claims of a JWT whose signature verifies with the
    /// provider's keys (fetched again once if it names a key not yet known:
    /// the provider rotated), made with an algorithm the provider announces.
    async fn verified(
        &self,
        http: &ProviderHttp,
        clock: &Clock,
        d: &Discovery,
        token: &str,
    ) -> Result<(Option<String>, Map<String, Value>), SignInError> {
        let invalid = |e: id_token::IdTokenError| SignInError::Invalid(e.to_string());
        let parsed = Unverified::parse(token).map_err(invalid)?;
        parsed.check_algorithm(&d.algorithms).map_err(invalid)?;
        let mut jwks = self.cached_jwks();
        if !jwks.as_ref().is_some_and(|k| parsed.key_known(k)) {
            jwks = Some(self.fetch_jwks(http, clock, d, jwks).await?);
        }
        let typ = parsed.typ.clone();
        let claims = parsed
            .verify(jwks.as_deref().unwrap_or(&Value::Null))
            .map_err(invalid)?;
        Ok((typ, claims))
    }

    fn cached_jwks(&self) -> Option<Arc<Value>> {
        self.jwks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map(|(k, _)| k.clone())
    }

    /// The key set fetched now, unless another request just did (then theirs);
    /// at most once per [`JWKS_MIN_INTERVAL`].
    async fn fetch_jwks(
        &self,
        http: &ProviderHttp,
        clock: &Clock,
        d: &Discovery,
        seen: Option<Arc<Value>>,
    ) -> Result<Arc<Value>, SignInError> {
        let _one = self.jwks_fetch.lock().await;
        let last = self
            .jwks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if let Some((keys, at)) = last {
            if seen.as_ref().is_none_or(|s| !Arc::ptr_eq(s, &keys)) {
                return Ok(keys);
            }
            let since = clock.instant().duration_since(at);
            if since < JWKS_MIN_INTERVAL {
                tokio::time::sleep(JWKS_MIN_INTERVAL - since).await;
            }
        }
        let answer = http.get(&d.jwks_uri, Auth::None, "application/json").await;
        let body = ok_body(answer, "key set")?;
        if !body.get("keys").is_some_and(Value::is_array) {
            return Err(SignInError::Invalid("its key set has no keys".into()));
        }
        let keys = Arc::new(body);
        *self.jwks.lock().unwrap_or_else(PoisonError::into_inner) =
            Some((keys.clone(), clock.instant()));
        Ok(keys)
    }

    /// The person in `claims`, completed from userinfo when the ID token lacks
    /// the email or the groups claim.
    async fn person(
        &self,
        http: &ProviderHttp,
        provider: &IdentityProvider,
        d: &Discovery,
        mut claims: Map<String, Value>,
        access_token: Option<&str>,
    ) -> Result<Person, SignInError> {
        let crate::config::ProviderKind::Oidc {
            allowed_email_domains,
            groups_claim,
            ..
        } = &provider.kind
        else {
            return Err(SignInError::Invalid("not an OpenID provider".into()));
        };
        let subject = claims
            .get("sub")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let wanted = ["email", "email_verified"]
            .into_iter()
            .chain(groups_claim.as_deref());
        let missing = wanted.into_iter().any(|k| !claims.contains_key(k));
        if let (true, Some(url), Some(token)) = (missing, &d.userinfo_endpoint, access_token) {
            let answer = http.get(url, Auth::Bearer(token), "application/json").await;
            let info = ok_body(answer, "userinfo")?;
            // OpenID Connect Core §5.3.2: userinfo must be about the same person.
            if info.get("sub").and_then(Value::as_str) != Some(subject.as_str()) {
                return Err(SignInError::Invalid(
                    "userinfo is about another person (sub)".into(),
                ));
            }
            if let Value::Object(info) = info {
                for (k, v) in info {
                    claims.entry(k).or_insert(v);
                }
            }
        }
        person::from_claims(
            &claims,
            &subject,
            allowed_email_domains,
            groups_claim.as_deref(),
        )
        .map_err(SignInError::NotAllowed)
    }
}

/// The JSON object of a 200 answer; an OAuth error answer is the provider's
/// refusal; no answer, or a 5xx, means it is unavailable.
pub(super) fn ok_body(
    answer: Result<Answer, super::client::HttpError>,
    what: &str,
) -> Result<Value, SignInError> {
    let answer = answer.map_err(|e| {
        if e.is_unavailable() {
            SignInError::Unavailable(format!("{what}: {e}"))
        } else {
            SignInError::Invalid(format!("{what}: {e}"))
        }
    })?;
    if answer.status.is_server_error() {
        return Err(SignInError::Unavailable(format!(
            "{what}: it answered {}",
            answer.status
        )));
    }
    if !answer.status.is_success() || answer.body.get("error").is_some() {
        let error = answer
            .body
            .get("error")
            .and_then(Value::as_str)
            .unwrap_or("no error code");
        return Err(SignInError::Invalid(format!(
            "{what}: it refused ({}, {error})",
            answer.status
        )));
    }
    if !answer.body.is_object() && !answer.body.is_array() {
        return Err(SignInError::Invalid(format!("{what}: not a JSON object")));
    }
    Ok(answer.body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc(extra: Value) -> Value {
        let mut d = json!({
            "issuer": "https://idp.example",
            "authorization_endpoint": "https://idp.example/auth",
            "token_endpoint": "https://idp.example/token",
            "jwks_uri": "https://idp.example/jwks",
        });
        for (k, v) in extra.as_object().unwrap() {
            d[k] = v.clone();
        }
        d
    }

    #[test]
    fn discovery_defaults_and_choices() {
        let d = Discovery::parse(&doc(json!({})), "https://idp.example").unwrap();
        assert_eq!(d.algorithms, ["RS256"]);
        assert!(!d.secret_in_form);
        assert!(!d.iss_parameter);
        assert_eq!(d.userinfo_endpoint, None);
        let d = Discovery::parse(
            &doc(json!({
                "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt"],
                "authorization_response_iss_parameter_supported": true,
                "id_token_signing_alg_values_supported": ["ES256"],
                "userinfo_endpoint": "https://idp.example/me",
            })),
            "https://idp.example",
        )
        .unwrap();
        assert!(d.secret_in_form);
        assert!(d.iss_parameter);
        assert_eq!(d.algorithms, ["ES256"]);
        assert_eq!(
            d.userinfo_endpoint.as_deref(),
            Some("https://idp.example/me")
        );
    }

    #[test]
    fn discovery_must_name_the_configured_issuer_and_its_endpoints() {
        assert!(Discovery::parse(&doc(json!({})), "https://other.example").is_err());
        let mut d = doc(json!({}));
        d.as_object_mut().unwrap().remove("token_endpoint");
        assert!(Discovery::parse(&d, "https://idp.example").is_err());
        // Entra ID's multi-tenant document states a template.
        let d = doc(json!({"issuer": "https://login.microsoftonline.com/{tenantid}/v2.0"}));
        let parsed = Discovery::parse(&d, "https://login.microsoftonline.com/common/v2.0").unwrap();
        assert!(parsed.issuer.contains("{tenantid}"));
    }

    #[test]
    fn provider_answers_are_sorted_into_refusals_and_outages() {
        let answer = |status: u16, body: Value| {
            Ok(Answer {
                status: http::StatusCode::from_u16(status).unwrap(),
                body,
            })
        };
        assert!(ok_body(answer(200, json!({"a":1})), "x").is_ok());
        assert!(matches!(
            ok_body(answer(400, json!({"error":"invalid_grant"})), "x"),
            Err(SignInError::Invalid(m)) if m.contains("invalid_grant")
        ));
        // GitHub answers errors with 200.
        assert!(matches!(
            ok_body(answer(200, json!({"error":"bad_verification_code"})), "x"),
            Err(SignInError::Invalid(_))
        ));
        assert!(matches!(
            ok_body(answer(503, json!({})), "x"),
            Err(SignInError::Unavailable(_))
        ));
        assert!(matches!(
            ok_body(Err(super::super::client::HttpError::Timeout), "x"),
            Err(SignInError::Unavailable(_))
        ));
    }
}
