//! `identity_providers`: OpenID Connect providers and GitHub.

use std::collections::HashSet;
use std::time::Duration;

use super::Checker;
use crate::config::raw::{RawIdentityProvider, S, Str};
use crate::config::{IdentityProvider, ProviderKind};
use crate::secret::Secret;

const GITHUB_API: &str = "https://api.github.com";
/// Parameters of the authorization request that the flow sets itself.
const RESERVED_PARAMS: [&str; 9] = [
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
    "resource",
];

pub(super) fn providers(c: &mut Checker, raw: &[S<RawIdentityProvider>]) -> Vec<IdentityProvider> {
    let mut out = Vec::new();
    let mut names = HashSet::new();
    for (i, p) in raw.iter().enumerate() {
        let key = format!("identity_providers[{i}]");
        if let Some(provider) = provider(c, &key, &p.value) {
            if !names.insert(provider.name.clone()) {
                c.error(
                    p.value.name.referenced,
                    &format!("{key}.name"),
                    format!("duplicate identity provider {:?}", provider.name),
                );
            }
            out.push(provider);
        }
    }
    out
}

fn provider(c: &mut Checker, key: &str, p: &RawIdentityProvider) -> Option<IdentityProvider> {
    let name_key = format!("{key}.name");
    let name = c.non_empty(&p.name, &name_key)?;
    let name_ok = name.len() <= 32
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !name_ok {
        c.error(
            p.name.referenced,
            &name_key,
            "must be 1 to 32 of `a-z`, `0-9` and `-`",
        );
    } else if name == super::machine_clients::PREFIX {
        c.error(
            p.name.referenced,
            &name_key,
            "`service` names the machine clients of `clients`",
        );
    }
    let github = match &p.kind {
        None => false,
        Some(t) => match c.text(t, &format!("{key}.type")).as_deref() {
            Some("oidc") => false,
            Some("github") => true,
            _ => {
                c.error(
                    t.referenced,
                    &format!("{key}.type"),
                    "must be `oidc` or `github`",
                );
                return None;
            }
        },
    };
    let display_name = match &p.display_name {
        Some(d) => c.non_empty(d, &format!("{key}.display_name"))?,
        None => name.clone(),
    };
    let client_id = c.non_empty(&p.client_id, &format!("{key}.client_id"))?;
    let client_secret = match (&p.client_secret, &p.client_secret_file) {
        (Some(s), None) => c.non_empty(s, &format!("{key}.client_secret"))?,
        (None, Some(f)) => c.secret_file(f, &format!("{key}.client_secret_file"))?,
        (s, f) => {
            let at = s
                .as_ref()
                .or(f.as_ref())
                .map_or(p.name.referenced, |v| v.referenced);
            c.error(
                at,
                key,
                "set exactly one of `client_secret` or `client_secret_file`",
            );
            return None;
        }
    };
    let scopes = match &p.scopes {
        None if github => vec!["read:org".to_string()],
        None => ["openid", "email", "profile"].map(String::from).to_vec(),
        Some(list) => {
            let scopes: Vec<String> = list
                .value
                .iter()
                .filter_map(|s| c.non_empty(s, &format!("{key}.scopes")))
                .collect();
            if !github && !scopes.iter().any(|s| s == "openid") {
                c.error(
                    list.referenced,
                    &format!("{key}.scopes"),
                    "must include `openid`",
                );
            }
            scopes
        }
    };
    let revalidate_after = c.duration(
        p.revalidate_after.as_ref(),
        &format!("{key}.revalidate_after"),
        Duration::from_secs(3600),
    );
    let authorize_params = authorize_params(c, key, p);

    let id_jag = p.id_jag.unwrap_or(false);
    if id_jag && github {
        c.error(
            p.name.referenced,
            &format!("{key}.id_jag"),
            "GitHub issues no identity assertions: only an OpenID provider can have `id_jag`",
        );
    }
    let kind = if github {
        github_kind(c, key, p)?
    } else {
        oidc_kind(c, key, p)?
    };
    Some(IdentityProvider {
        name,
        display_name,
        client_id,
        client_secret: Secret::new(client_secret),
        scopes,
        revalidate_after,
        authorize_params,
        id_jag,
        kind,
    })
}

fn authorize_params(c: &mut Checker, key: &str, p: &RawIdentityProvider) -> Vec<(String, String)> {
    let Some(map) = &p.authorize_params else {
        return Vec::new();
    };
    let key = format!("{key}.authorize_params");
    let mut out = Vec::new();
    for (k, v) in &map.value {
        let (Some(name), Some(value)) = (c.non_empty(k, &key), c.text(v, &key)) else {
            continue;
        };
        if RESERVED_PARAMS.contains(&name.as_str()) {
            c.error(
                k.referenced,
                &key,
                format!("{name:?} is set by the proxy itself"),
            );
            continue;
        }
        out.push((name, value));
    }
    out
}

/// Keys that only the other kind of provider has.
fn refuse(c: &mut Checker, key: &str, kind: &str, given: &[(&str, Option<&Str>)]) {
    for (name, value) in given {
        if let Some(v) = value {
            c.error(
                v.referenced,
                &format!("{key}.{name}"),
                format!("is not used by a provider of type `{kind}`"),
            );
        }
    }
}

fn oidc_kind(c: &mut Checker, key: &str, p: &RawIdentityProvider) -> Option<ProviderKind> {
    refuse(
        c,
        key,
        "oidc",
        &[
            ("api_url", p.api_url.as_ref()),
            ("allowed_organizations", p.allowed_organizations.first()),
        ],
    );
    let Some(issuer) = &p.issuer else {
        c.error(
            p.name.referenced,
            &format!("{key}.issuer"),
            "is required (or set `type: github`)",
        );
        return None;
    };
    let issuer_key = format!("{key}.issuer");
    // `{tenantid}` (Entra ID's multi-tenant issuers) is not a valid host character: check the URL without it.
    let checked = S {
        value: issuer.value.replace("{tenantid}", "tenant"),
        referenced: issuer.referenced,
        defined: issuer.defined,
    };
    c.url(&checked, &issuer_key, true)?;
    let issuer = c.text(issuer, &issuer_key)?;
    let allowed_email_domains = p
        .allowed_email_domains
        .iter()
        .filter_map(|d| c.non_empty(d, &format!("{key}.allowed_email_domains")))
        .map(|d| d.trim().trim_start_matches('@').to_ascii_lowercase())
        .collect();
    let groups_claim = match &p.groups_claim {
        Some(g) => Some(c.non_empty(g, &format!("{key}.groups_claim"))?),
        None => None,
    };
    Some(ProviderKind::Oidc {
        issuer: issuer.trim_end_matches('/').to_string(),
        allowed_email_domains,
        groups_claim,
    })
}

fn github_kind(c: &mut Checker, key: &str, p: &RawIdentityProvider) -> Option<ProviderKind> {
    refuse(
        c,
        key,
        "github",
        &[
            ("issuer", p.issuer.as_ref()),
            ("allowed_email_domains", p.allowed_email_domains.first()),
            ("groups_claim", p.groups_claim.as_ref()),
        ],
    );
    let api_url = match &p.api_url {
        Some(u) => c
            .url(u, &format!("{key}.api_url"), true)?
            .as_str()
            .trim_end_matches('/')
            .to_string(),
        None => GITHUB_API.to_string(),
    };
    let allowed_organizations = p
        .allowed_organizations
        .iter()
        .filter_map(|o| c.non_empty(o, &format!("{key}.allowed_organizations")))
        .map(|o| o.to_ascii_lowercase())
        .collect();
    Some(ProviderKind::GitHub {
        web_url: github_web_url(&api_url),
        api_url,
        allowed_organizations,
    })
}

/// Where GitHub's OAuth pages are for its API at `api_url`: github.com for
/// api.github.com, the host for GitHub Enterprise Server's `https://HOST/api/v3`,
/// else the API's own origin (a server that answers both).
fn github_web_url(api_url: &str) -> String {
    if api_url == GITHUB_API {
        return "https://github.com".into();
    }
    if let Some(host) = api_url.strip_suffix("/api/v3") {
        return host.to_string();
    }
    match url::Url::parse(api_url) {
        Ok(u) => u.origin().ascii_serialization(),
        Err(_) => api_url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::github_web_url;

    #[test]
    fn github_web_pages_are_found_from_the_api_url() {
        assert_eq!(
            github_web_url("https://api.github.com"),
            "https://github.com"
        );
        assert_eq!(
            github_web_url("https://git.example.com/api/v3"),
            "https://git.example.com"
        );
        assert_eq!(
            github_web_url("http://127.0.0.1:4000/api"),
            "http://127.0.0.1:4000"
        );
    }
}
