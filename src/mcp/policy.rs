//! Which tools a token may see and call: the union of the tool-name patterns
//! of its scopes. A route without `scopes` allows every tool.

/// Matches `name` against a pattern where `*` stands for any run of characters.
pub fn glob(pattern: &str, name: &str) -> bool {
    let (p, n) = (pattern.as_bytes(), name.as_bytes());
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ni));
            pi += 1;
        } else if pi < p.len() && p[pi] == n[ni] {
            pi += 1;
            ni += 1;
        } else if let Some((sp, sn)) = star {
            pi = sp + 1;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

/// The tools a token's scopes unlock on one route.
#[derive(Debug, Clone)]
pub struct ToolPolicy {
    /// `None`: the route has no `scopes`, every tool is allowed.
    patterns: Option<Vec<String>>,
}

impl ToolPolicy {
    pub fn new(route_scopes: Option<&[(String, Vec<String>)]>, token_scope: &str) -> Self {
        let patterns = route_scopes.map(|defined| {
            let granted: Vec<&str> = token_scope.split_ascii_whitespace().collect();
            defined
                .iter()
                .filter(|(name, _)| granted.contains(&name.as_str()))
                .flat_map(|(_, patterns)| patterns.iter().cloned())
                .collect()
        });
        Self { patterns }
    }

    pub fn is_unrestricted(&self) -> bool {
        self.patterns.is_none()
    }

    pub fn allows(&self, tool: &str) -> bool {
        match &self.patterns {
            None => true,
            Some(p) => p.iter().any(|pat| glob(pat, tool)),
        }
    }
}

/// The first scope of the route (file order) that would allow `tool`.
pub fn scope_for<'a>(
    route_scopes: Option<&'a [(String, Vec<String>)]>,
    tool: &str,
) -> Option<&'a str> {
    route_scopes?
        .iter()
        .find(|(_, patterns)| patterns.iter().any(|p| glob(p, tool)))
        .map(|(name, _)| name.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_patterns() {
        for (p, n) in [
            ("read_note", "read_note"),
            ("list_*", "list_notes"),
            ("list_*", "list_"),
            ("*", "x"),
            ("*_note", "write_note"),
            ("a*b*c", "a_b_c"),
            ("a*b*c", "abbbc"),
            ("**", ""),
        ] {
            assert!(glob(p, n), "{p} should match {n}");
        }
        for (p, n) in [
            ("read_note", "read_notes"),
            ("list_*", "lis"),
            ("*_note", "note"),
            ("a*b*c", "acb"),
            ("", "x"),
            ("x", ""),
        ] {
            assert!(!glob(p, n), "{p} should not match {n}");
        }
    }

    fn route() -> Vec<(String, Vec<String>)> {
        vec![
            (
                "notes:read".into(),
                vec!["read_note".into(), "list_*".into()],
            ),
            (
                "notes:write".into(),
                vec!["write_note".into(), "delete_note".into()],
            ),
        ]
    }

    #[test]
    fn a_tokens_tools_are_the_union_of_its_scopes() {
        let r = route();
        let read = ToolPolicy::new(Some(&r), "notes:read");
        assert!(read.allows("read_note") && read.allows("list_notes"));
        assert!(!read.allows("write_note"));
        let both = ToolPolicy::new(Some(&r), "notes:write notes:read");
        assert!(both.allows("write_note") && both.allows("list_all"));
        let none = ToolPolicy::new(Some(&r), "");
        assert!(!none.allows("read_note"));
        let unknown = ToolPolicy::new(Some(&r), "admin");
        assert!(!unknown.allows("read_note"));
        assert!(
            ToolPolicy::new(None, "").allows("anything"),
            "a route without scopes allows every tool"
        );
    }

    #[test]
    fn the_scope_that_would_allow_a_tool() {
        let r = route();
        assert_eq!(scope_for(Some(&r), "delete_note"), Some("notes:write"));
        assert_eq!(scope_for(Some(&r), "list_x"), Some("notes:read"));
        assert_eq!(scope_for(Some(&r), "rm_rf"), None);
        assert_eq!(scope_for(None, "x"), None);
    }
}
