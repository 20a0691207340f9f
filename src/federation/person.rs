//! Who signed in, from what the provider said: the rules that turn claims
//! (OpenID) or the GitHub API's answers into a user name and groups, and
//! refuse people outside the allowed domains or organisations. Pure.

use serde::Deserialize;
use serde_json::{Map, Value};

/// Groups taken from a provider at most, and the longest group name kept.
const MAX_GROUPS: usize = 256;
const MAX_GROUP_LEN: usize = 256;

/// A person the provider vouches for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    /// The provider's stable id for them (`sub`, GitHub's numeric id).
    pub subject: String,
    /// What their user name is made of: the verified email (lowercase) or the GitHub login.
    pub id: String,
    pub groups: Vec<String>,
}

/// Why a person the provider knows may not sign in here.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotAllowed {
    #[error("The identity provider did not give an email address for your account.")]
    NoEmail,
    #[error("Your email address is not verified at the identity provider.")]
    EmailNotVerified,
    #[error("Accounts of {0} may not sign in here.")]
    Domain(String),
    #[error("Your account is not a member of an organisation allowed here.")]
    Organization,
}

fn verified(claims: &Map<String, Value>) -> bool {
    let yes = |v: Option<&Value>| {
        matches!(v, Some(Value::Bool(true))) || v.and_then(Value::as_str) == Some("true")
    };
    // Microsoft Entra ID sends no `email_verified`; its optional claim `xms_edov`
    // says the email's domain is verified by the tenant.
    yes(claims.get("email_verified")) || yes(claims.get("xms_edov"))
}

/// The groups in claim `name`: a string (one group) or an array of strings.
fn groups(claims: &Map<String, Value>, name: Option<&str>) -> Vec<String> {
    let keep = |g: &&str| !g.is_empty() && g.len() <= MAX_GROUP_LEN;
    let mut out: Vec<String> = match name.and_then(|n| claims.get(n)) {
        Some(Value::String(g)) => [g.as_str()]
            .into_iter()
            .filter(keep)
            .map(String::from)
            .collect(),
        Some(Value::Array(list)) => list
            .iter()
            .filter_map(Value::as_str)
            .filter(keep)
            .take(MAX_GROUPS)
            .map(String::from)
            .collect(),
        _ => Vec::new(),
    };
    out.sort();
    out.dedup();
    out
}

/// An OpenID Connect person: the verified email names them, its domain must be
/// allowed, and `groups_claim` gives their groups.
pub fn from_claims(
    claims: &Map<String, Value>,
    subject: &str,
    allowed_domains: &[String],
    groups_claim: Option<&str>,
) -> Result<Person, NotAllowed> {
    let email = claims
        .get("email")
        .and_then(Value::as_str)
        .map(|e| e.trim().to_ascii_lowercase())
        .filter(|e| e.contains('@'))
        .ok_or(NotAllowed::NoEmail)?;
    if !verified(claims) {
        return Err(NotAllowed::EmailNotVerified);
    }
    let domain = email.rsplit('@').next().unwrap_or_default().to_string();
    if !allowed_domains.is_empty() && !allowed_domains.contains(&domain) {
        return Err(NotAllowed::Domain(domain));
    }
    Ok(Person {
        subject: subject.to_string(),
        id: email,
        groups: groups(claims, groups_claim),
    })
}

/// `GET /user`, as much as is read of it.
#[derive(Debug, Clone, Deserialize)]
pub struct GitHubUser {
    pub login: String,
    pub id: u64,
}

/// An entry of `GET /user/orgs`.
#[derive(Debug, Clone, Deserialize)]
pub struct GitHubOrg {
    pub login: String,
}

/// An entry of `GET /user/teams`.
#[derive(Debug, Clone, Deserialize)]
pub struct GitHubTeam {
    pub slug: String,
    pub organization: GitHubOrg,
}

/// A GitHub person: their login names them; their groups are their
/// organisations (`acme`) and teams (`acme/platform`), lowercase; they must be
/// in an allowed organisation when some are listed.
pub fn from_github(
    user: &GitHubUser,
    orgs: &[GitHubOrg],
    teams: &[GitHubTeam],
    allowed_organizations: &[String],
) -> Result<Person, NotAllowed> {
    let mut groups: Vec<String> = orgs
        .iter()
        .map(|o| o.login.to_ascii_lowercase())
        .chain(teams.iter().map(|t| {
            format!(
                "{}/{}",
                t.organization.login.to_ascii_lowercase(),
                t.slug.to_ascii_lowercase()
            )
        }))
        .filter(|g| g.len() <= MAX_GROUP_LEN)
        .take(MAX_GROUPS)
        .collect();
    groups.sort();
    groups.dedup();
    if !allowed_organizations.is_empty()
        && !allowed_organizations.iter().any(|o| groups.contains(o))
    {
        return Err(NotAllowed::Organization);
    }
    Ok(Person {
        subject: user.id.to_string(),
        id: user.login.to_ascii_lowercase(),
        groups,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn a_verified_email_names_the_person_and_the_claim_gives_groups() {
        let c = claims(
            json!({"email":"Alice@Example.com","email_verified":true,"groups":["staff","admins","staff"]}),
        );
        let p = from_claims(&c, "u1", &["example.com".into()], Some("groups")).unwrap();
        assert_eq!(p.id, "alice@example.com");
        assert_eq!(p.subject, "u1");
        assert_eq!(p.groups, ["admins", "staff"]);
        // A single group as a string; no groups_claim: no groups.
        let c = claims(json!({"email":"a@x.org","email_verified":"true","role":"ops"}));
        assert_eq!(
            from_claims(&c, "u", &[], Some("role")).unwrap().groups,
            ["ops"]
        );
        assert!(from_claims(&c, "u", &[], None).unwrap().groups.is_empty());
        // Entra's domain-verified claim counts as verified.
        let c = claims(json!({"email":"a@x.org","xms_edov":true}));
        assert!(from_claims(&c, "u", &[], None).is_ok());
    }

    #[test]
    fn unverified_missing_or_foreign_emails_are_refused() {
        let c = claims(json!({"email":"a@example.com","email_verified":false}));
        assert_eq!(
            from_claims(&c, "u", &[], None),
            Err(NotAllowed::EmailNotVerified)
        );
        let c = claims(json!({"email":"a@example.com"}));
        assert_eq!(
            from_claims(&c, "u", &[], None),
            Err(NotAllowed::EmailNotVerified)
        );
        let c = claims(json!({"email_verified":true}));
        assert_eq!(from_claims(&c, "u", &[], None), Err(NotAllowed::NoEmail));
        let c = claims(json!({"email":"a@evil.example.com","email_verified":true}));
        assert_eq!(
            from_claims(&c, "u", &["example.com".into()], None),
            Err(NotAllowed::Domain("evil.example.com".into()))
        );
    }

    #[test]
    fn github_orgs_and_teams_are_groups_and_an_allowed_org_is_required() {
        let user = GitHubUser {
            login: "OctoCat".into(),
            id: 583231,
        };
        let orgs = [GitHubOrg {
            login: "Acme".into(),
        }];
        let teams = [GitHubTeam {
            slug: "platform".into(),
            organization: GitHubOrg {
                login: "acme".into(),
            },
        }];
        let p = from_github(&user, &orgs, &teams, &["acme".into()]).unwrap();
        assert_eq!(p.id, "octocat");
        assert_eq!(p.subject, "583231");
        assert_eq!(p.groups, ["acme", "acme/platform"]);
        assert_eq!(
            from_github(&user, &orgs, &teams, &["other".into()]),
            Err(NotAllowed::Organization)
        );
        assert!(from_github(&user, &[], &[], &[]).is_ok());
    }
}
