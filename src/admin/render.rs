//! What the admin commands print: aligned tables for people, or the admin API's
//! JSON (`--json`) for scripts. Names come from outside (anyone may register a
//! client with any name), so control characters in a cell are escaped and a
//! table cannot be made to print terminal escape sequences.

use crate::authority::admin::{ApiKeyInfo, ClientInfo, ClientKind, GrantInfo, Outcome};
use crate::telemetry::utc_seconds;

/// The outcome as the admin API answers it, pretty-printed, with a final newline.
pub fn json(outcome: &Outcome) -> String {
    let mut text = serde_json::to_string_pretty(outcome).unwrap_or_default();
    text.push('\n');
    text
}

/// The outcome as a table (or a sentence) for people.
pub fn table(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Clients { clients } if clients.is_empty() => "no clients\n".into(),
        Outcome::Clients { clients } => clients_table(clients),
        Outcome::Grants { grants } if grants.is_empty() => "no grants\n".into(),
        Outcome::Grants { grants } => grants_table(grants),
        Outcome::Revoked { revoked } if revoked.is_empty() => "no grants to revoke\n".into(),
        Outcome::Revoked { revoked } => {
            format!(
                "revoked {}:\n{}",
                count(revoked.len()),
                grants_table(revoked)
            )
        }
        Outcome::ApiKeyCreated { api_key, key } => format!(
            "{api_key}\n\nThis is the only time the key is shown. It works as a bearer token on route {} for {}:\n{}",
            cell(&key.route),
            cell(&key.user),
            api_keys_table(std::slice::from_ref(key))
        ),
        Outcome::ApiKeys { api_keys } if api_keys.is_empty() => "no API keys\n".into(),
        Outcome::ApiKeys { api_keys } => api_keys_table(api_keys),
        Outcome::ApiKeyRevoked { revoked_api_key } => format!(
            "revoked API key:\n{}",
            api_keys_table(std::slice::from_ref(revoked_api_key))
        ),
        Outcome::Deleted(d) => {
            let mut text = if d.registration_deleted {
                format!(
                    "deleted the registration of client {}\n",
                    cell(&d.client_id)
                )
            } else {
                format!(
                    "client {} has no registration (a metadata-document client: it can sign in again)\n",
                    cell(&d.client_id)
                )
            };
            if d.revoked.is_empty() {
                text.push_str("it had no grants\n");
            } else {
                text.push_str(&format!(
                    "revoked {}:\n{}",
                    count(d.revoked.len()),
                    grants_table(&d.revoked)
                ));
            }
            text
        }
    }
}

fn count(n: usize) -> String {
    if n == 1 {
        "1 grant".into()
    } else {
        format!("{n} grants")
    }
}

fn time(t: Option<u64>) -> String {
    t.map_or_else(|| "-".into(), utc_seconds)
}

fn clients_table(clients: &[ClientInfo]) -> String {
    let rows = clients.iter().map(|c| {
        let redirects = match c.kind {
            ClientKind::Registered => c.redirect_uris.join(" "),
            ClientKind::MetadataDocument => "(metadata document)".into(),
        };
        vec![
            c.client_id.clone(),
            c.name.clone().unwrap_or_else(|| "-".into()),
            redirects,
            c.grants.to_string(),
            time(c.last_used),
        ]
    });
    render(
        &["CLIENT ID", "NAME", "REDIRECT URIS", "GRANTS", "LAST USED"],
        rows,
    )
}

fn grants_table(grants: &[GrantInfo]) -> String {
    let rows = grants.iter().map(|g| {
        vec![
            g.id.clone(),
            g.user.clone(),
            g.client_id.clone(),
            g.route.clone(),
            if g.scopes.is_empty() {
                "-".into()
            } else {
                g.scopes.join(" ")
            },
            time(Some(g.created_at)),
            time(Some(g.last_used)),
        ]
    });
    render(
        &[
            "GRANT",
            "USER",
            "CLIENT",
            "ROUTE",
            "SCOPES",
            "CREATED",
            "LAST USED",
        ],
        rows,
    )
}

fn api_keys_table(keys: &[ApiKeyInfo]) -> String {
    let rows = keys.iter().map(|k| {
        vec![
            k.id.clone(),
            k.user.clone(),
            k.route.clone(),
            if k.scopes.is_empty() {
                "-".into()
            } else {
                k.scopes.join(" ")
            },
            time(Some(k.created_at)),
            k.expires_at.map_or("never".into(), |e| time(Some(e))),
        ]
    });
    render(
        &["API KEY", "USER", "ROUTE", "SCOPES", "CREATED", "EXPIRES"],
        rows,
    )
}

/// A value with control characters (and the escape character) written as `\u{…}`.
fn cell(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            let escaped: Vec<char> = if c.is_control() {
                c.escape_unicode().collect()
            } else {
                vec![c]
            };
            escaped
        })
        .collect()
}

/// Columns padded to their widest cell, two spaces apart.
fn render(head: &[&str], rows: impl Iterator<Item = Vec<String>>) -> String {
    let rows: Vec<Vec<String>> = rows.map(|r| r.iter().map(|c| cell(c)).collect()).collect();
    let mut widths: Vec<usize> = head.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    let head: Vec<String> = head.iter().map(|h| h.to_string()).collect();
    for row in std::iter::once(&head).chain(&rows) {
        let mut line = String::new();
        for (i, (c, w)) in row.iter().zip(&widths).enumerate() {
            if i + 1 == row.len() {
                line.push_str(c);
            } else {
                line.push_str(c);
                line.push_str(&" ".repeat(w - c.chars().count() + 2));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authority::admin::DeletedClient;

    fn grant(id: &str, user: &str) -> GrantInfo {
        GrantInfo {
            id: id.into(),
            user: user.into(),
            client_id: "c1".into(),
            route: "notes".into(),
            scopes: vec!["notes:read".into(), "notes:write".into()],
            created_at: 1_800_000_000,
            last_used: 1_800_000_060,
        }
    }

    #[test]
    fn grants_print_as_an_aligned_table() {
        let text = table(&Outcome::Grants {
            grants: vec![grant("g1", "alice"), grant("grant-2", "bob")],
        });
        assert_eq!(
            text,
            "GRANT    USER   CLIENT  ROUTE  SCOPES                  CREATED               LAST USED\n\
             g1       alice  c1      notes  notes:read notes:write  2027-01-15T08:00:00Z  2027-01-15T08:01:00Z\n\
             grant-2  bob    c1      notes  notes:read notes:write  2027-01-15T08:00:00Z  2027-01-15T08:01:00Z\n"
        );
    }

    #[test]
    fn a_client_name_cannot_print_terminal_escapes() {
        let text = table(&Outcome::Clients {
            clients: vec![ClientInfo {
                client_id: "c1".into(),
                kind: ClientKind::Registered,
                name: Some("evil\u{1b}[2J\nname".into()),
                redirect_uris: vec!["https://a.example/cb".into()],
                registered_at: Some(1),
                last_used: None,
                grants: 0,
            }],
        });
        assert!(!text.contains('\u{1b}'), "{text}");
        assert!(text.contains("evil\\u{1b}[2J\\u{a}name"), "{text}");
        assert_eq!(text.lines().count(), 2, "{text}");
        assert!(
            text.lines().nth(1).unwrap().ends_with("  0       -"),
            "{text}"
        );
    }

    #[test]
    fn empty_outcomes_and_deletions_read_as_sentences() {
        assert_eq!(
            table(&Outcome::Revoked { revoked: vec![] }),
            "no grants to revoke\n"
        );
        let text = table(&Outcome::Deleted(DeletedClient {
            client_id: "c1".into(),
            registration_deleted: true,
            revoked: vec![grant("g1", "alice")],
        }));
        assert!(
            text.starts_with("deleted the registration of client c1\nrevoked 1 grant:\nGRANT"),
            "{text}"
        );
    }

    #[test]
    fn json_is_the_admin_apis_answer() {
        let outcome = Outcome::Revoked {
            revoked: vec![grant("g1", "alice")],
        };
        let back: Outcome = serde_json::from_str(&json(&outcome)).unwrap();
        assert_eq!(back, outcome);
        let deleted = Outcome::Deleted(DeletedClient {
            client_id: "c1".into(),
            registration_deleted: false,
            revoked: vec![],
        });
        let back: Outcome = serde_json::from_str(&json(&deleted)).unwrap();
        assert_eq!(back, deleted, "not read back as a revocation");
    }
}
