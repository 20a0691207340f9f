//! `clients`: machine clients registered in the file, for `client_credentials`.

use std::collections::HashSet;
use std::sync::Arc;

use super::Checker;
use crate::config::raw::{RawMachineClient, S};
use crate::config::{MachineClient, MachineCredential, Route};
use crate::secret::Secret;

/// A machine client's name in logs, tokens and policy: `service:<name>`.
pub(super) const PREFIX: &str = "service";

pub(super) fn machine_clients(
    c: &mut Checker,
    raw: &[S<RawMachineClient>],
    routes: &[Arc<Route>],
) -> Vec<MachineClient> {
    let mut out = Vec::new();
    let mut ids = HashSet::new();
    for (i, m) in raw.iter().enumerate() {
        let key = format!("clients[{i}]");
        let Some(client) = machine_client(c, &key, &m.value, routes) else {
            continue;
        };
        if !ids.insert(client.client_id.clone()) {
            c.error(
                m.value.client_id.referenced,
                &format!("{key}.client_id"),
                format!("duplicate client {:?}", client.client_id),
            );
        }
        out.push(client);
    }
    out
}

fn machine_client(
    c: &mut Checker,
    key: &str,
    m: &RawMachineClient,
    routes: &[Arc<Route>],
) -> Option<MachineClient> {
    let id_key = format!("{key}.client_id");
    let client_id = c.non_empty(&m.client_id, &id_key)?;
    if client_id.contains("://") || client_id.len() > 128 {
        c.error(
            m.client_id.referenced,
            &id_key,
            "must be a plain identifier of at most 128 bytes (a URL would be a metadata document)",
        );
    }
    let name = match &m.name {
        Some(n) => c.non_empty(n, &format!("{key}.name"))?,
        None => client_id.clone(),
    };
    let name = format!(
        "{PREFIX}:{}",
        name.strip_prefix("service:").unwrap_or(&name)
    );
    let credential = match (&m.client_secret_hash, &m.jwks, &m.jwks_uri) {
        (Some(h), None, None) => {
            let hkey = format!("{key}.client_secret_hash");
            let hash = c.non_empty(h, &hkey)?;
            if !argon2::PasswordHash::new(&hash)
                .is_ok_and(|p| p.algorithm.as_str().starts_with("argon2"))
            {
                c.error(
                    h.referenced,
                    &hkey,
                    "must be an argon2 PHC string (make one with `mcp-oauth-proxy hash-password`)",
                );
                return None;
            }
            MachineCredential::SecretHash(Secret::new(hash))
        }
        (None, Some(j), None) => {
            if !j.value.get("keys").is_some_and(serde_json::Value::is_array) {
                c.error(
                    j.referenced,
                    &format!("{key}.jwks"),
                    "must be a JWK set: {keys: [...]}",
                );
                return None;
            }
            MachineCredential::Jwks(j.value.clone())
        }
        (None, None, Some(u)) => {
            let url = c.url(u, &format!("{key}.jwks_uri"), true)?;
            MachineCredential::JwksUri(url.to_string())
        }
        _ => {
            c.error(
                m.client_id.referenced,
                key,
                "set exactly one of `client_secret_hash`, `jwks` or `jwks_uri`",
            );
            return None;
        }
    };
    let mut names = Vec::new();
    let mut given: Vec<&Arc<Route>> = Vec::new();
    for r in &m.routes.value {
        let Some(route) = c.non_empty(r, &format!("{key}.routes")) else {
            continue;
        };
        match routes.iter().find(|x| x.name == route) {
            Some(found) => given.push(found),
            None => c.error(
                r.referenced,
                &format!("{key}.routes"),
                format!("no route named {route:?}"),
            ),
        }
        names.push(route);
    }
    if names.is_empty() {
        c.error(
            m.routes.referenced,
            &format!("{key}.routes"),
            "list at least one route",
        );
    }
    let mut scopes = Vec::new();
    for s in &m.scopes {
        let Some(scope) = c.non_empty(s, &format!("{key}.scopes")) else {
            continue;
        };
        let defined = given
            .iter()
            .any(|r| r.scopes.iter().flatten().any(|(n, _)| *n == scope));
        if !defined {
            c.error(
                s.referenced,
                &format!("{key}.scopes"),
                format!("no route of this client defines scope {scope:?}"),
            );
        }
        scopes.push(scope);
    }
    Some(MachineClient {
        client_id,
        name,
        credential,
        routes: names,
        scopes,
    })
}
