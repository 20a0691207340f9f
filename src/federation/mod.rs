//! Signing people in through the organisation's identity provider: the proxy
//! is a relying party of OpenID Connect providers and of GitHub, while it
//! stays the authorization server for MCP clients (they never see the
//! provider). The rules (ID token checks, who may sign in, the sign-in
//! attempt, when to confirm a person again) are pure; `oidc` and `github` do
//! the provider round trips; `handlers/federated.rs` serves the pages.

pub mod attempt;
pub mod client;
mod github;
pub mod id_jag;
pub mod id_token;
mod oidc;
pub mod person;

use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use serde::{Deserialize, Serialize};

pub use attempt::Attempt;
pub use person::{NotAllowed, Person};

use crate::clock::Clock;
use crate::config::{Config, IdentityProvider, ProviderKind};
use crate::oauth::seal::{self, Signer};
use crate::secret::Secret;
use client::ProviderHttp;
use oidc::OidcProvider;

/// The most a sign-in's (or a confirmation's) round trips to the provider may
/// take together: the person gets an answer within 10 s, whatever the provider does.
pub const BUDGET: Duration = Duration::from_secs(9);

/// Why signing in (or confirming a person) through a provider failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignInError {
    /// The provider sent the browser back with an `error` (the person said no).
    #[error("the provider answered {0}")]
    Cancelled(String),
    /// An answer the proxy refuses (ID token, `iss`, a refused grant): why.
    #[error("{0}")]
    Invalid(String),
    /// The provider knows the person, but they may not sign in here.
    #[error("{0}")]
    NotAllowed(NotAllowed),
    /// The provider is down or slow.
    #[error("the provider did not answer: {0}")]
    Unavailable(String),
}

/// A person the provider vouched for, and the provider's token to confirm
/// them again later (OpenID: its refresh token; GitHub: the access token).
pub struct SignedIn {
    pub person: Person,
    pub token: Option<Secret>,
}

/// What came back to `/oauth/callback/<name>`.
pub struct Callback<'a> {
    pub code: &'a str,
    /// RFC 9207's `iss` parameter, if sent.
    pub iss: Option<&'a str>,
    pub redirect_uri: &'a str,
    pub attempt: &'a Attempt,
}

/// A provider's user as the store keeps them (by user name): who they are at
/// the provider, their groups and when the provider last confirmed them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IdentityRecord {
    pub provider: String,
    pub subject: String,
    pub groups: Vec<String>,
    pub confirmed_at: u64,
    /// The provider's token, sealed (see [`seal_token`]).
    pub token: Option<Vec<u8>>,
}

/// What a refresh at our token endpoint does about a provider's user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recheck {
    /// Confirmed recently enough: nothing to ask.
    NotDue,
    /// Ask the provider now.
    Due,
}

impl IdentityRecord {
    pub fn recheck(&self, now: u64, revalidate_after: Duration) -> Recheck {
        if now.saturating_sub(self.confirmed_at) >= revalidate_after.as_secs() {
            Recheck::Due
        } else {
            Recheck::NotDue
        }
    }

    /// When the provider is down: whether the last confirmation may still
    /// stand (for another `revalidate_after` past when it was due).
    pub fn may_wait(&self, now: u64, revalidate_after: Duration) -> bool {
        now.saturating_sub(self.confirmed_at) < 2 * revalidate_after.as_secs()
    }
}

/// The provider's token, encrypted under a key derived from the proxy's own
/// secret key and the user: the store alone does not give it away.
pub fn seal_token(signer: &Signer, user: &str, token: &Secret) -> Option<Vec<u8>> {
    seal::seal(
        &signer.mac("provider-token", user.as_bytes()),
        user,
        token.expose().as_bytes(),
    )
}

pub fn open_token(signer: &Signer, user: &str, sealed: &[u8]) -> Option<Secret> {
    let plain = seal::open(&signer.mac("provider-token", user.as_bytes()), user, sealed)?;
    String::from_utf8(plain).ok().map(Secret::new)
}

/// The authorization request to a provider: code flow with PKCE S256, the
/// attempt's `state` (and `nonce` for OpenID), then the configured extras.
fn authorization_url(
    endpoint: &str,
    provider: &IdentityProvider,
    redirect_uri: &str,
    attempt: &Attempt,
    nonce: Option<&str>,
) -> String {
    let scope = provider.scopes.join(" ");
    let challenge = attempt.challenge();
    let mut params = vec![
        ("response_type", "code"),
        ("client_id", provider.client_id.as_str()),
        ("redirect_uri", redirect_uri),
        ("scope", scope.as_str()),
        ("state", attempt.state.as_str()),
    ];
    params.extend(nonce.map(|n| ("nonce", n)));
    params.push(("code_challenge", challenge.as_str()));
    params.push(("code_challenge_method", "S256"));
    params.extend(
        provider
            .authorize_params
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str())),
    );
    with_query(endpoint, &params)
}

/// `url` with `params` added to its query.
fn with_query(url: &str, params: &[(&str, &str)]) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            u.query_pairs_mut().extend_pairs(params);
            u.into()
        }
        Err(_) => url.to_string(),
    }
}

/// The providers' connections and caches (discovery documents, key sets).
pub struct Federation {
    http: ProviderHttp,
    clock: Clock,
    /// By provider name; replaced when a reload changes the issuer.
    oidc: DashMap<String, Arc<OidcProvider>>,
}

impl Federation {
    pub fn new(clock: Clock) -> Result<Self, rustls::Error> {
        Ok(Federation {
            http: ProviderHttp::new()?,
            clock,
            oidc: DashMap::new(),
        })
    }

    fn oidc(&self, name: &str, issuer: &str) -> Arc<OidcProvider> {
        if let Some(p) = self.oidc.get(name)
            && p.issuer == issuer
        {
            return p.clone();
        }
        let p = Arc::new(OidcProvider::new(issuer));
        self.oidc.insert(name.to_string(), p.clone());
        p
    }

    /// Fetches each OpenID provider's discovery document in the background, so
    /// that the first sign-in is quick and a provider that is down is logged at
    /// start (it does not stop the proxy: sign-ins retry it).
    pub fn warm_up(self: &Arc<Self>, config: &Config) {
        for p in &config.identity_providers {
            if let ProviderKind::Oidc { issuer, .. } = &p.kind {
                let (me, name, provider) =
                    (self.clone(), p.name.clone(), self.oidc(&p.name, issuer));
                tokio::spawn(async move {
                    if let Err(e) = provider.discovery(&me.http, &me.clock).await {
                        tracing::warn!(provider = %name, error = %e, "identity provider not reachable yet; sign-ins will retry");
                    }
                });
            }
        }
    }

    /// Where to send the browser to sign in.
    pub async fn authorization_url(
        &self,
        config: &Config,
        provider: &IdentityProvider,
        attempt: &Attempt,
    ) -> Result<String, SignInError> {
        let redirect_uri = provider.redirect_uri(&config.public_url);
        within_budget(async {
            match &provider.kind {
                ProviderKind::Oidc { issuer, .. } => {
                    self.oidc(&provider.name, issuer)
                        .authorization_url(
                            &self.http,
                            &self.clock,
                            provider,
                            &redirect_uri,
                            attempt,
                        )
                        .await
                }
                ProviderKind::GitHub { .. } => {
                    github::authorization_url(provider, &redirect_uri, attempt)
                }
            }
        })
        .await
    }

    /// The person the provider's answer signs in.
    pub async fn finish(
        &self,
        provider: &IdentityProvider,
        callback: &Callback<'_>,
    ) -> Result<SignedIn, SignInError> {
        within_budget(async {
            match &provider.kind {
                ProviderKind::Oidc { issuer, .. } => {
                    self.oidc(&provider.name, issuer)
                        .finish(&self.http, &self.clock, provider, callback)
                        .await
                }
                ProviderKind::GitHub { .. } => github::finish(&self.http, provider, callback).await,
            }
        })
        .await
    }

    /// The person confirmed again with the provider.
    pub async fn revalidate(
        &self,
        provider: &IdentityProvider,
        record: &IdentityRecord,
        token: Option<&Secret>,
    ) -> Result<SignedIn, SignInError> {
        within_budget(async {
            match &provider.kind {
                ProviderKind::Oidc { issuer, .. } => {
                    self.oidc(&provider.name, issuer)
                        .revalidate(&self.http, &self.clock, provider, &record.subject, token)
                        .await
                }
                ProviderKind::GitHub { .. } => {
                    github::revalidate(&self.http, provider, &record.subject, token).await
                }
            }
        })
        .await
    }
}

impl Federation {
    /// An ID-JAG's header `typ`, its claims and the provider's stated issuer,
    /// once its signature verifies with the provider's keys.
    pub async fn verify_assertion(
        &self,
        provider: &IdentityProvider,
        assertion: &str,
    ) -> Result<
        (
            Option<String>,
            serde_json::Map<String, serde_json::Value>,
            String,
        ),
        SignInError,
    > {
        let ProviderKind::Oidc { issuer, .. } = &provider.kind else {
            return Err(SignInError::Invalid("not an OpenID provider".into()));
        };
        let oidc = self.oidc(&provider.name, issuer);
        within_budget(oidc.verify_assertion(&self.http, &self.clock, assertion)).await
    }
}

async fn within_budget<T>(
    f: impl Future<Output = Result<T, SignInError>>,
) -> Result<T, SignInError> {
    tokio::time::timeout(BUDGET, f).await.unwrap_or_else(|_| {
        Err(SignInError::Unavailable(format!(
            "no answer within {} seconds",
            BUDGET.as_secs()
        )))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(confirmed_at: u64) -> IdentityRecord {
        IdentityRecord {
            provider: "corp".into(),
            subject: "u1".into(),
            groups: vec![],
            confirmed_at,
            token: None,
        }
    }

    #[test]
    fn a_person_is_confirmed_again_after_revalidate_after_and_may_wait_as_long_again() {
        let hour = Duration::from_secs(3600);
        let r = record(10_000);
        assert_eq!(r.recheck(10_000 + 3599, hour), Recheck::NotDue);
        assert_eq!(r.recheck(10_000 + 3600, hour), Recheck::Due);
        assert!(r.may_wait(10_000 + 7199, hour));
        assert!(!r.may_wait(10_000 + 7200, hour));
    }

    #[test]
    fn a_sealed_token_opens_only_for_its_user_and_key() {
        let signer = Signer::new(b"key");
        let sealed = seal_token(&signer, "corp:a@x.org", &Secret::new("rt-1")).unwrap();
        assert!(!sealed.windows(4).any(|w| w == b"rt-1"));
        assert_eq!(
            open_token(&signer, "corp:a@x.org", &sealed),
            Some(Secret::new("rt-1"))
        );
        assert_eq!(open_token(&signer, "corp:b@x.org", &sealed), None);
        assert_eq!(
            open_token(&Signer::new(b"other"), "corp:a@x.org", &sealed),
            None
        );
    }

    #[test]
    fn query_parameters_are_added_encoded() {
        assert_eq!(
            with_query(
                "https://idp.example/auth?x=1",
                &[("scope", "openid email"), ("s", "a&b")]
            ),
            "https://idp.example/auth?x=1&scope=openid+email&s=a%26b"
        );
    }
}
