//! The `client_credentials` grant for machine clients of `clients:`: which
//! routes and scopes one may get. Pure.

use super::error::OAuthError;
use super::scope;
use crate::config::{MachineClient, Route};

/// The scopes a machine client gets on `route` for the `scope` parameter:
/// what it asks for, each of which it must have been given; or, asking for
/// nothing, all it was given there. A route without scopes grants every tool.
pub fn scopes(
    client: &MachineClient,
    route: &Route,
    requested: Option<&str>,
) -> Result<Vec<String>, OAuthError> {
    if !client.routes.contains(&route.name) {
        return Err(OAuthError::invalid_target(
            "this client may not get tokens for this resource",
        ));
    }
    let Some(defined) = &route.scopes else {
        return Ok(Vec::new());
    };
    let given: Vec<String> = defined
        .iter()
        .map(|(name, _)| name)
        .filter(|name| client.scopes.contains(name))
        .cloned()
        .collect();
    let asked = scope::parse(requested);
    if let Some(refused) = asked.iter().find(|s| !given.contains(s)) {
        return Err(OAuthError::invalid_scope(format!(
            "this client may not get scope {refused:?} for this resource"
        )));
    }
    let granted: Vec<String> = if asked.is_empty() {
        given
    } else {
        given.into_iter().filter(|s| asked.contains(s)).collect()
    };
    if granted.is_empty() {
        return Err(OAuthError::invalid_scope(
            "this client was given no scope of this resource",
        ));
    }
    Ok(granted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::MachineCredential;
    use crate::oauth::ErrorCode;

    fn client() -> MachineClient {
        MachineClient {
            client_id: "ci".into(),
            name: "service:ci".into(),
            credential: MachineCredential::JwksUri("https://x".into()),
            routes: vec!["notes".into(), "open".into()],
            scopes: vec!["notes:read".into(), "notes:admin".into()],
        }
    }

    /// A route named `name` with these scopes (none: a route without `scopes`).
    fn route(name: &str, scopes: Option<&[&str]>) -> std::sync::Arc<Route> {
        let scopes = scopes.map_or(String::new(), |list| {
            let lines: String = list
                .iter()
                .map(|s| format!("      \"{s}\": [\"*\"]\n"))
                .collect();
            format!("    scopes:\n{lines}")
        });
        let yaml = format!(
            "listen: \"127.0.0.1:1\"\npublic_url: \"http://127.0.0.1:1\"\nstate: {{dir: /tmp}}\nroutes:\n  - name: {name}\n    path: /mcp\n    upstream: \"http://127.0.0.1:2/mcp\"\n{scopes}"
        );
        let config =
            crate::config::Config::from_yaml(&yaml, std::path::Path::new("/"), &|_| None).unwrap();
        config.routes[0].clone()
    }

    #[test]
    fn a_machine_client_gets_what_it_was_given_and_asked_for() {
        let notes = route("notes", Some(&["notes:read", "notes:write", "notes:admin"]));
        assert_eq!(
            scopes(&client(), &notes, None).unwrap(),
            ["notes:read", "notes:admin"]
        );
        assert_eq!(
            scopes(&client(), &notes, Some("notes:admin")).unwrap(),
            ["notes:admin"]
        );
        // A route without scopes: every tool.
        assert!(
            scopes(&client(), &route("open", None), None)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn another_route_or_scope_is_refused() {
        let notes = route("notes", Some(&["notes:read", "notes:write"]));
        let e = scopes(&client(), &notes, Some("notes:read notes:write")).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidScope);
        let e = scopes(&client(), &route("other", None), None).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidTarget);
        let bare = route("notes", Some(&["notes:write"]));
        assert_eq!(
            scopes(&client(), &bare, None).unwrap_err().code,
            ErrorCode::InvalidScope
        );
    }
}
