//! GitHub (and GitHub Enterprise Server) sign-in: OAuth 2.0 with PKCE, then
//! the REST API for who the person is and which organisations and teams they
//! are in. GitHub is not an OpenID provider: its access token is the only proof,
//! kept (sealed) to confirm the person again later.

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::client::{Auth, ProviderHttp};
use super::oidc::ok_body;
use super::person::{self, GitHubOrg, GitHubTeam, GitHubUser, Person};
use super::{Attempt, Callback, SignInError, SignedIn};
use crate::config::{IdentityProvider, ProviderKind};
use crate::secret::Secret;

const ACCEPT: &str = "application/vnd.github+json";

struct Urls<'a> {
    api: &'a str,
    web: &'a str,
    allowed_organizations: &'a [String],
}

fn urls(provider: &IdentityProvider) -> Result<Urls<'_>, SignInError> {
    match &provider.kind {
        ProviderKind::GitHub {
            api_url,
            web_url,
            allowed_organizations,
        } => Ok(Urls {
            api: api_url,
            web: web_url,
            allowed_organizations,
        }),
        ProviderKind::Oidc { .. } => Err(SignInError::Invalid("not a GitHub provider".into())),
    }
}

pub fn authorization_url(
    provider: &IdentityProvider,
    redirect_uri: &str,
    attempt: &Attempt,
) -> Result<String, SignInError> {
    let u = urls(provider)?;
    Ok(super::authorization_url(
        &format!("{}/login/oauth/authorize", u.web),
        provider,
        redirect_uri,
        attempt,
        None,
    ))
}

pub async fn finish(
    http: &ProviderHttp,
    provider: &IdentityProvider,
    callback: &Callback<'_>,
) -> Result<SignedIn, SignInError> {
    let u = urls(provider)?;
    let answer = http
        .post_form(
            &format!("{}/login/oauth/access_token", u.web),
            Auth::None,
            &[
                ("client_id", &provider.client_id),
                ("client_secret", provider.client_secret.expose()),
                ("code", callback.code),
                ("redirect_uri", callback.redirect_uri),
                ("code_verifier", &callback.attempt.verifier),
            ],
        )
        .await;
    let body = ok_body(answer, "token")?;
    let token = body
        .get("access_token")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| SignInError::Invalid("GitHub sent no access token".into()))?;
    let person = person_for(http, &u, token, None).await?;
    Ok(SignedIn {
        person,
        token: Some(Secret::new(token)),
    })
}

/// The person confirmed again with the token they signed in with: still the
/// same account, still in an allowed organisation.
pub async fn revalidate(
    http: &ProviderHttp,
    provider: &IdentityProvider,
    subject: &str,
    token: Option<&Secret>,
) -> Result<SignedIn, SignInError> {
    let u = urls(provider)?;
    let token = token.ok_or_else(|| SignInError::Invalid("no GitHub token kept".into()))?;
    let person = person_for(http, &u, token.expose(), Some(subject)).await?;
    Ok(SignedIn {
        person,
        token: Some(token.clone()),
    })
}

async fn person_for(
    http: &ProviderHttp,
    u: &Urls<'_>,
    token: &str,
    subject: Option<&str>,
) -> Result<Person, SignInError> {
    let user: GitHubUser = api(http, u.api, "/user", token).await?;
    if subject.is_some_and(|s| s != user.id.to_string()) {
        return Err(SignInError::Invalid(
            "the GitHub token now belongs to another account".into(),
        ));
    }
    let orgs: Vec<GitHubOrg> = api(http, u.api, "/user/orgs?per_page=100", token).await?;
    let teams: Vec<GitHubTeam> = api(http, u.api, "/user/teams?per_page=100", token).await?;
    person::from_github(&user, &orgs, &teams, u.allowed_organizations)
        .map_err(SignInError::NotAllowed)
}

async fn api<T: DeserializeOwned>(
    http: &ProviderHttp,
    base: &str,
    path: &str,
    token: &str,
) -> Result<T, SignInError> {
    let answer = http
        .get(&format!("{base}{path}"), Auth::Bearer(token), ACCEPT)
        .await;
    let body = ok_body(answer, path)?;
    serde_json::from_value(body)
        .map_err(|e| SignInError::Invalid(format!("{path}: an unexpected answer ({e})")))
}
