//! RFC 8707 resource indicators: a client's `resource` parameter, canonicalised,
//! names exactly one route.

use url::Url;

/// The canonical form of a resource URI: lower-case scheme and host, default
/// port dropped, no trailing slash. `None` for anything that is not an
/// absolute http(s) URI without a fragment.
pub fn canonical(resource: &str) -> Option<String> {
    let url = Url::parse(resource.trim()).ok()?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() || url.fragment().is_some()
    {
        return None;
    }
    let mut s = url.as_str().to_string();
    if url.query().is_none() {
        while s.ends_with('/') {
            s.pop();
        }
    }
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_and_trailing_slash_do_not_matter() {
        let want = Some("https://mcp.example.com/notes/mcp".to_string());
        for r in [
            "https://mcp.example.com/notes/mcp",
            "https://mcp.example.com/notes/mcp/",
            "HTTPS://MCP.Example.COM/notes/mcp",
            "https://mcp.example.com:443/notes/mcp",
            " https://mcp.example.com/notes/mcp ",
        ] {
            assert_eq!(canonical(r), want, "{r}");
        }
        assert_eq!(
            canonical("http://127.0.0.1:8080/mcp/"),
            Some("http://127.0.0.1:8080/mcp".to_string())
        );
        assert_eq!(
            canonical("https://mcp.example.com/"),
            Some("https://mcp.example.com".to_string())
        );
    }

    #[test]
    fn the_path_keeps_its_case_and_junk_is_refused() {
        assert_ne!(
            canonical("https://mcp.example.com/Notes/mcp"),
            canonical("https://mcp.example.com/notes/mcp")
        );
        for bad in ["", "notes/mcp", "ftp://x/y", "https://x/y#f", "urn:x:y"] {
            assert_eq!(canonical(bad), None, "{bad}");
        }
    }
}
