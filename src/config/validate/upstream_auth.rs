//! `routes[].upstream_auth`: the credential the upstream gets, one for
//! everybody or chosen by rules (first match wins) from the caller's user
//! name, groups and scopes; and the checks that every rule can match and that
//! no allowed user is left without a credential.

use http::{HeaderName, HeaderValue};
use serde_saphyr::Location;

use super::Checker;
use crate::config::raw::{
    RawCredentialRule, RawUpstreamAuth, RawUpstreamAuthForm, RawUpstreamOAuth, S,
};
use crate::config::{
    Allow, CredentialRule, IdentityProvider, UpstreamAuth, UpstreamOAuth, User, When,
};
use crate::secret::Secret;

/// What decides who can reach a route's rules.
pub(super) struct Reach<'a> {
    pub users: &'a [User],
    pub providers: &'a [IdentityProvider],
    pub allow: Option<&'a Allow>,
    pub scopes: Option<&'a [(String, Vec<String>)]>,
}

pub(super) fn rules(
    c: &mut Checker,
    key: &str,
    raw: &S<RawUpstreamAuthForm>,
    reach: &Reach,
) -> Vec<CredentialRule> {
    let list = match &raw.value {
        // The per-user form: see [`oauth`].
        RawUpstreamAuthForm::One(one)
            if one.oauth.is_some()
                && one.bearer.is_none()
                && one.bearer_file.is_none()
                && one.header.is_none() =>
        {
            return Vec::new();
        }
        RawUpstreamAuthForm::One(one) => {
            return credential(c, key, one, raw.referenced)
                .map(|auth| CredentialRule {
                    label: None,
                    when: None,
                    auth,
                })
                .into_iter()
                .collect();
        }
        RawUpstreamAuthForm::Rules(list) => list,
    };
    let mut rules: Vec<CredentialRule> = Vec::new();
    for (i, r) in list.iter().enumerate() {
        let rkey = format!("{key}[{i}]");
        if rules.iter().any(|x| x.when.is_none()) {
            c.error(
                r.referenced,
                &rkey,
                "comes after the default rule: it can never match",
            );
            continue;
        }
        if let Some(rule) = rule(c, &rkey, i, r, reach) {
            rules.push(rule);
        }
    }
    if list.is_empty() {
        c.error(
            raw.referenced,
            key,
            "list at least one rule, or none: omit `upstream_auth`",
        );
    } else if rules.len() == list.len() && !rules.iter().any(|r| r.when.is_none()) {
        // (Only when every rule is valid: a broken one would make this a second error.)
        if let Some(who) = uncovered(&rules, reach) {
            c.error(
                raw.referenced,
                key,
                format!("no rule gives {who} a credential: add `- default: {{...}}`"),
            );
        }
    }
    rules
}

fn rule(
    c: &mut Checker,
    key: &str,
    index: usize,
    r: &S<RawCredentialRule>,
    reach: &Reach,
) -> Option<CredentialRule> {
    let v = &r.value;
    let label = match &v.name {
        Some(n) => c.non_empty(n, &format!("{key}.name"))?,
        None => index.to_string(),
    };
    let inline = RawUpstreamAuth {
        bearer: v.bearer.clone(),
        bearer_file: v.bearer_file.clone(),
        header: v.header.clone(),
        oauth: None,
    };
    let has_inline =
        inline.bearer.is_some() || inline.bearer_file.is_some() || inline.header.is_some();
    match (&v.when, &v.default) {
        (None, Some(d)) if !has_inline => Some(CredentialRule {
            label: Some(label),
            when: None,
            auth: credential(c, &format!("{key}.default"), &d.value, d.referenced)?,
        }),
        (Some(w), None) => {
            let when = when(c, &format!("{key}.when"), w, reach)?;
            Some(CredentialRule {
                label: Some(label),
                when: Some(when),
                auth: credential(c, key, &inline, r.referenced)?,
            })
        }
        _ => {
            c.error(
                r.referenced,
                key,
                "a rule is `when: {...}` with a credential, or `default: {...}` alone",
            );
            None
        }
    }
}

fn when(
    c: &mut Checker,
    key: &str,
    w: &S<crate::config::raw::RawWhen>,
    reach: &Reach,
) -> Option<When> {
    let list = |c: &mut Checker, items: &[crate::config::raw::Str], k: &str| -> Vec<String> {
        items
            .iter()
            .filter_map(|s| c.non_empty(s, &format!("{key}.{k}")))
            .collect()
    };
    let out = When {
        users: list(c, &w.value.users, "users"),
        groups: list(c, &w.value.groups, "groups"),
        scopes: list(c, &w.value.scopes, "scopes"),
    };
    if out.users.is_empty() && out.groups.is_empty() && out.scopes.is_empty() {
        c.error(
            w.referenced,
            key,
            "name `users`, `groups` or `scopes` (or make it the `default`)",
        );
        return None;
    }
    for (s, raw) in out.scopes.iter().zip(&w.value.scopes) {
        let defined = reach.scopes.is_some_and(|d| d.iter().any(|(n, _)| n == s));
        if !defined {
            c.error(
                raw.referenced,
                &format!("{key}.scopes"),
                format!("the route defines no scope {s:?}: the rule can never match"),
            );
        }
    }
    for (u, raw) in out.users.iter().zip(&w.value.users) {
        if !may_reach(u, reach) {
            c.error(
                raw.referenced,
                &format!("{key}.users"),
                format!("{u:?} is not a user allowed on this route: the rule can never match"),
            );
        }
    }
    Some(out)
}

/// Whether user `name` may get tokens for the route.
fn may_reach(name: &str, reach: &Reach) -> bool {
    if let Some((provider, _)) = name.split_once(':') {
        return reach.providers.iter().any(|p| p.name == provider)
            && reach
                .allow
                .is_none_or(|a| !a.groups.is_empty() || a.users.iter().any(|u| u == name));
    }
    let Some(user) = reach.users.iter().find(|u| u.name == name) else {
        return false;
    };
    reach.allow.is_none_or(|a| {
        a.users.contains(&user.name) || a.groups.iter().any(|g| user.groups.contains(g))
    })
}

/// Someone allowed on the route whom no rule gives a credential, if any: a local
/// user with one of the route's scopes (or none), or anybody of an identity provider.
fn uncovered(rules: &[CredentialRule], reach: &Reach) -> Option<String> {
    let scope_sets: Vec<String> = match reach.scopes {
        Some(defined) if !defined.is_empty() => defined.iter().map(|(n, _)| n.clone()).collect(),
        _ => vec![String::new()],
    };
    for user in reach.users.iter().filter(|u| may_reach(&u.name, reach)) {
        for scope in &scope_sets {
            if !rules
                .iter()
                .any(|r| r.matches(&user.name, &user.groups, scope))
            {
                let with = if scope.is_empty() {
                    String::new()
                } else {
                    format!(" with scope {scope:?}")
                };
                return Some(format!("user {:?}{with}", user.name));
            }
        }
    }
    if let Some(p) = reach.providers.first() {
        return Some(format!(
            "users of identity provider {:?} (their names and groups are not known in advance)",
            p.name
        ));
    }
    None
}

/// `upstream_auth: {oauth: {...}}`, if that is the route's form (and valid).
pub(super) fn oauth(
    c: &mut Checker,
    key: &str,
    raw: &S<RawUpstreamAuthForm>,
) -> Option<UpstreamOAuth> {
    let RawUpstreamAuthForm::One(one) = &raw.value else {
        return None;
    };
    if one.bearer.is_some() || one.bearer_file.is_some() || one.header.is_some() {
        return None; // `credential` reports it.
    }
    let o: &S<RawUpstreamOAuth> = one.oauth.as_ref()?;
    let key = format!("{key}.oauth");
    let v = &o.value;
    let authorization_server = match &v.authorization_server {
        Some(s) => Some(
            c.url(s, &format!("{key}.authorization_server"), true)?
                .as_str()
                .trim_end_matches('/')
                .to_string(),
        ),
        None => None,
    };
    let client_id = match &v.client_id {
        Some(s) => Some(c.non_empty(s, &format!("{key}.client_id"))?),
        None => None,
    };
    let client_secret = match (&v.client_secret, &v.client_secret_file) {
        (None, None) => None,
        (Some(s), None) => Some(c.non_empty(s, &format!("{key}.client_secret"))?),
        (None, Some(f)) => Some(c.secret_file(f, &format!("{key}.client_secret_file"))?),
        (Some(_), Some(_)) => {
            c.error(
                o.referenced,
                &key,
                "set `client_secret` or `client_secret_file`, not both",
            );
            return None;
        }
    };
    if client_secret.is_some() && client_id.is_none() {
        c.error(
            o.referenced,
            &key,
            "a client secret needs its `client_id` (without both, the proxy registers itself)",
        );
        return None;
    }
    let scopes = v
        .scopes
        .iter()
        .filter_map(|s| c.non_empty(s, &format!("{key}.scopes")))
        .collect::<Vec<_>>();
    for (s, raw) in scopes.iter().zip(&v.scopes) {
        if s.contains(|ch: char| ch.is_whitespace() || ch == '"' || ch == '\\') {
            c.error(
                raw.referenced,
                &format!("{key}.scopes"),
                format!("{s:?} is not a scope token (RFC 6749 §3.3)"),
            );
        }
    }
    Some(UpstreamOAuth {
        authorization_server,
        client_id,
        client_secret: client_secret.map(Secret::new),
        scopes,
    })
}

/// Every header name some rule sets: a client's own copy of any of them is dropped.
pub(super) fn header_names(rules: &[CredentialRule]) -> Vec<HeaderName> {
    let mut names: Vec<HeaderName> = Vec::new();
    for r in rules {
        if !names.contains(&r.auth.name) {
            names.push(r.auth.name.clone());
        }
    }
    names
}

/// One credential: `bearer`, `bearer_file` or `header` (exactly one).
fn credential(
    c: &mut Checker,
    key: &str,
    v: &RawUpstreamAuth,
    at: Location,
) -> Option<UpstreamAuth> {
    if let Some(o) = &v.oauth {
        c.error(
            o.referenced,
            &format!("{key}.oauth"),
            "`oauth` is a route's only credential: `upstream_auth: {oauth: {...}}` alone, not in a rule nor beside another credential",
        );
        return None;
    }
    let given = [
        v.bearer.is_some(),
        v.bearer_file.is_some(),
        v.header.is_some(),
    ];
    if given.iter().filter(|g| **g).count() != 1 {
        c.error(
            at,
            key,
            "set exactly one of `bearer`, `bearer_file` or `header`",
        );
        return None;
    }
    let (name, value, kind, at) = if let Some(b) = &v.bearer {
        let token = c.non_empty(b, &format!("{key}.bearer"))?;
        (
            http::header::AUTHORIZATION,
            format!("Bearer {}", token.trim()),
            "bearer",
            b.referenced,
        )
    } else if let Some(f) = &v.bearer_file {
        let token = c.secret_file(f, &format!("{key}.bearer_file"))?;
        (
            http::header::AUTHORIZATION,
            format!("Bearer {token}"),
            "bearer_file",
            f.referenced,
        )
    } else {
        let h = v.header.as_ref()?;
        let nkey = format!("{key}.header.name");
        let name_text = c.non_empty(&h.value.name, &nkey)?;
        let value = c.non_empty(&h.value.value, &format!("{key}.header.value"))?;
        let Ok(name) = HeaderName::from_bytes(name_text.as_bytes()) else {
            c.error(
                h.value.name.referenced,
                &nkey,
                format!("{name_text:?} is not a valid header name"),
            );
            return None;
        };
        if crate::wire::is_hop_by_hop(&name) || name == http::header::HOST {
            c.error(
                h.value.name.referenced,
                &nkey,
                format!("{name_text:?} cannot carry a credential"),
            );
            return None;
        }
        (name, value, "header", h.value.value.referenced)
    };
    match HeaderValue::from_str(&value) {
        Ok(mut hv) => {
            hv.set_sensitive(true);
            Some(UpstreamAuth {
                name,
                value: hv,
                kind,
            })
        }
        Err(_) => {
            c.error(
                at,
                key,
                "the credential contains characters not allowed in a header",
            );
            None
        }
    }
}
