//! The `scope` parameter and what a route grants for it.
//!
//! Rules (one place, applied everywhere): scopes are split on any whitespace;
//! empty and repeated entries are ignored; scopes the route does not define
//! (`offline_access` included) are dropped, never an error; if nothing known
//! remains, the route's `default_scopes` are granted. A route without
//! `scopes` grants the empty scope, which unlocks every tool.

/// The distinct scope tokens of a `scope` parameter, in order.
pub fn parse(param: Option<&str>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for s in param.unwrap_or("").split_ascii_whitespace() {
        if !out.iter().any(|x| x == s) {
            out.push(s.to_string());
        }
    }
    out
}

/// The scopes granted for a request, in the route's order.
pub fn grant(
    requested: &[String],
    route_scopes: Option<&[(String, Vec<String>)]>,
    defaults: &[String],
) -> Vec<String> {
    let Some(defined) = route_scopes else {
        return Vec::new();
    };
    let known: Vec<String> = defined
        .iter()
        .map(|(name, _)| name)
        .filter(|name| requested.contains(name))
        .cloned()
        .collect();
    if known.is_empty() {
        defaults.to_vec()
    } else {
        known
    }
}

/// A refresh may ask for a subset of what was granted, never more. As at the
/// authorization endpoint, scopes that were not granted are dropped; if nothing
/// granted remains (or nothing was asked), the whole grant is kept.
pub fn narrow(granted: &[String], requested: Option<&str>) -> Vec<String> {
    let asked = parse(requested);
    let kept: Vec<String> = granted
        .iter()
        .filter(|g| asked.contains(g))
        .cloned()
        .collect();
    if kept.is_empty() {
        granted.to_vec()
    } else {
        kept
    }
}

pub fn join(scopes: &[String]) -> String {
    scopes.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route() -> Vec<(String, Vec<String>)> {
        vec![
            ("notes:read".into(), vec!["read_note".into()]),
            ("notes:write".into(), vec!["write_note".into()]),
        ]
    }

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn parsing_tolerates_odd_spacing() {
        assert_eq!(parse(None), Vec::<String>::new());
        assert_eq!(parse(Some("")), Vec::<String>::new());
        assert_eq!(parse(Some("  a \t b  a\n")), s(&["a", "b"]));
    }

    #[test]
    fn unknown_scopes_are_dropped_and_defaults_fill_in() {
        let defaults = s(&["notes:read"]);
        let r = route();
        assert_eq!(
            grant(
                &s(&["notes:write", "offline_access", "x"]),
                Some(&r),
                &defaults
            ),
            s(&["notes:write"])
        );
        assert_eq!(
            grant(&s(&["notes:write", "notes:read"]), Some(&r), &defaults),
            s(&["notes:read", "notes:write"])
        );
        assert_eq!(grant(&[], Some(&r), &defaults), defaults);
        assert_eq!(
            grant(&s(&["offline_access"]), Some(&r), &defaults),
            defaults
        );
        assert_eq!(grant(&s(&["notes:read"]), None, &[]), Vec::<String>::new());
    }

    #[test]
    fn refresh_can_only_narrow() {
        let granted = s(&["notes:read", "notes:write"]);
        assert_eq!(narrow(&granted, None), granted);
        assert_eq!(narrow(&granted, Some(" ")), granted);
        assert_eq!(
            narrow(&granted, Some("offline_access")),
            granted,
            "offline_access alone asks for nothing"
        );
        assert_eq!(
            narrow(&granted, Some("notes:read offline_access")),
            s(&["notes:read"])
        );
        assert_eq!(
            narrow(&s(&["notes:read"]), Some("notes:write")),
            s(&["notes:read"]),
            "never widened"
        );
        assert_eq!(
            narrow(&granted, Some("notes:write admin")),
            s(&["notes:write"])
        );
    }
}
