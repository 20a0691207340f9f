//! Finding and authenticating OAuth clients: registered ones (the store) and
//! those described by a client ID metadata document (fetched).

use std::collections::HashMap;
use std::net::IpAddr;

use http::HeaderMap;

use crate::cimd::CimdError;
use crate::cimd::rules as cimd;
use crate::config::{Config, MachineClient, MachineCredential};
use crate::oauth::client::{self, AuthMethod, ClientRecord};
use crate::oauth::form::ClientCredentials;
use crate::oauth::{OAuthError, assertion};
use crate::paths;
use crate::state::AppState;

fn is_document(state: &AppState, config: &Config, client_id: &str) -> bool {
    config.cimd.enabled && cimd::is_document_url(client_id, state.fetcher.allows_http())
}

/// Logs why a client's document (or key set) cannot be used, in full: what the
/// network did goes here, not to the client. Both texts are escaped (`?`): the
/// URL and the failure come from outside.
fn log_refusal(client_id: &str, what: &str, reason: &CimdError) {
    tracing::info!(client = ?client_id, reason = ?reason.to_string(), "client {what} refused");
}

/// The client named by `client_id`, or `None` if there is no such client. A
/// metadata document fetched now counts against `peer`'s fetch limit.
pub async fn resolve(
    state: &AppState,
    config: &Config,
    client_id: &str,
    peer: IpAddr,
) -> Result<Option<ClientRecord>, OAuthError> {
    if let Some(machine) = config.machine_client(client_id) {
        return Ok(Some(machine_record(machine)));
    }
    if is_document(state, config, client_id) {
        return match state.fetcher.client(client_id, peer).await {
            Ok(c) => Ok(Some((*c).clone())),
            Err(reason) => {
                log_refusal(client_id, "metadata document", &reason);
                Err(cimd::unusable(&reason))
            }
        };
    }
    tokio::task::block_in_place(|| state.authority.client(client_id))
}

/// A machine client of `clients:` as the token endpoint sees it.
fn machine_record(m: &MachineClient) -> ClientRecord {
    let (auth_method, jwks, jwks_uri) = match &m.credential {
        // Checked against its argon2 hash in `authenticate`.
        MachineCredential::SecretHash(_) => (AuthMethod::ClientSecretBasic, None, None),
        MachineCredential::Jwks(keys) => (AuthMethod::PrivateKeyJwt, Some(keys.clone()), None),
        MachineCredential::JwksUri(uri) => (AuthMethod::PrivateKeyJwt, None, Some(uri.clone())),
    };
    ClientRecord {
        client_id: m.client_id.clone(),
        secret_hash: None,
        auth_method,
        redirect_uris: Vec::new(),
        client_name: Some(m.name.clone()),
        client_uri: None,
        logo_uri: None,
        grant_types: vec!["client_credentials".into()],
        application_type: "service".into(),
        scope: None,
        software_id: None,
        software_version: None,
        issued_at: 0,
        jwks,
        jwks_uri,
    }
}

/// A machine client's secret against its argon2 hash, on the blocking pool and
/// within the password-check limit (argon2 is memory- and CPU-heavy).
async fn check_machine_secret(
    state: &AppState,
    hash: &crate::secret::Secret,
    secret: Option<&str>,
) -> Result<(), ()> {
    let secret = secret.ok_or(())?.to_string();
    let _slot = state
        .password_checks
        .clone()
        .acquire_owned()
        .await
        .map_err(|_| ())?;
    let hash = hash.expose().to_string();
    let ok = tokio::task::spawn_blocking(move || crate::password::verify(&secret, &hash))
        .await
        .unwrap_or(false);
    ok.then_some(()).ok_or(())
}

/// Authenticates the client of a token or revocation request: a secret (Basic
/// or form), a `private_key_jwt` assertion, or none for public clients.
pub async fn authenticate(
    state: &AppState,
    config: &Config,
    headers: &HeaderMap,
    form: &HashMap<String, String>,
    peer: IpAddr,
) -> Result<ClientRecord, OAuthError> {
    let creds = ClientCredentials::from_request(headers, form)?;
    let fail =
        |why: &str| OAuthError::invalid_client(format!("client authentication failed: {why}"));
    let assertion = form.get("client_assertion");
    let client_id = match (&creds.client_id, assertion) {
        (Some(id), _) => id.clone(),
        (None, Some(a)) => assertion::issuer(a).ok_or_else(|| fail("no client_id"))?,
        (None, None) => return Err(fail("no client_id")),
    };
    let client = resolve(state, config, &client_id, peer)
        .await?
        .ok_or_else(|| fail("unknown client"))?;

    let Some(assertion) = assertion else {
        if client.auth_method == AuthMethod::PrivateKeyJwt {
            return Err(fail("this client authenticates with private_key_jwt"));
        }
        if let Some(MachineCredential::SecretHash(hash)) =
            config.machine_client(&client_id).map(|m| &m.credential)
        {
            check_machine_secret(state, hash, creds.secret.as_deref())
                .await
                .map_err(|()| fail("wrong client secret"))?;
            return Ok(client);
        }
        client::authenticate(&client, &creds.presented())?;
        return Ok(client);
    };
    if form.get("client_assertion_type").map(String::as_str) != Some(assertion::ASSERTION_TYPE) {
        return Err(OAuthError::invalid_request(
            "client_assertion_type must be urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        ));
    }
    if client.auth_method != AuthMethod::PrivateKeyJwt || creds.secret.is_some() {
        return Err(fail("this client does not use private_key_jwt"));
    }
    let fetched;
    let jwks = match (&client.jwks, &client.jwks_uri) {
        (Some(j), _) => j,
        (None, Some(uri)) => {
            fetched = state.fetcher.key_set(uri, peer).await.map_err(|e| {
                log_refusal(&client.client_id, "key set (jwks_uri)", &e);
                fail(&format!("its jwks_uri: {}", cimd::shown(&e)))
            })?;
            &*fetched
        }
        (None, None) => return Err(fail("the client has no keys")),
    };
    let token_endpoint = config.public_url.join(paths::TOKEN);
    let audiences = [token_endpoint.as_str(), config.public_url.as_str()];
    let verified = assertion::verify(
        assertion,
        jwks,
        &client.client_id,
        &audiences,
        state.authority.now(),
    )
    .map_err(|e| fail(&e.to_string()))?;
    let first_use = tokio::task::block_in_place(|| {
        state
            .authority
            .first_use_of_assertion(&client.client_id, &verified.jti, verified.exp)
    });
    first_use.map_err(|e| match e {
        assertion::SeenError::Unavailable => OAuthError::temporarily_unavailable(e.to_string()),
        _ => fail(&e.to_string()),
    })?;
    Ok(client)
}
