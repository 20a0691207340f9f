//! The HTML pages people see: login, consent and messages. Plain forms that
//! work without JavaScript; every value is escaped.

use std::fmt::Write;

use crate::paths;

/// Escapes text for HTML content and double-quoted attributes.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;background:#f4f5f7;color:#1d2330;margin:0}\
main{max-width:26rem;margin:8vh auto;background:#fff;border-radius:10px;box-shadow:0 2px 12px rgba(0,0,0,.08);padding:2rem}\
h1{font-size:1.3rem;margin:0 0 1rem}label{display:block;font-weight:600;margin:.8rem 0 .3rem}\
input[type=text],input[type=password]{width:100%;box-sizing:border-box;padding:.6rem;border:1px solid #c5cad3;border-radius:6px;font-size:1rem}\
button,a.provider{display:inline-block;text-decoration:none;margin-top:1.2rem;padding:.6rem 1.2rem;border:0;border-radius:6px;font-size:1rem;cursor:pointer;background:#2f5bd3;color:#fff}\
button.secondary{background:#e6e8ec;color:#1d2330;margin-left:.5rem}.error{background:#fdecec;color:#8a1f1f;padding:.6rem;border-radius:6px}\
.muted{color:#5b6373;font-size:.9rem}ul{padding-left:1.2rem}code{background:#f0f1f4;padding:0 .25rem;border-radius:4px}";

fn layout(title: &str, body: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>{}</title><style>{STYLE}</style></head><body><main>{body}</main></body></html>\n",
        esc(title)
    )
}

/// The login page: a button per identity provider (`(name, display name)`),
/// above the local form when there are local accounts (`local`).
pub fn login(
    csrf: &str,
    next: &str,
    username: &str,
    message: Option<&str>,
    providers: &[(&str, &str)],
    local: bool,
) -> String {
    let mut body = String::from("<h1>Sign in</h1>");
    if let Some(m) = message {
        let _ = write!(body, "<p class=\"error\" role=\"alert\">{}</p>", esc(m));
    }
    // Links, not forms: the login page's CSP allows forms to post only here, and
    // Chromium applies that to the redirect to the provider too.
    for (name, display) in providers {
        let mut href = format!("{}{name}", paths::PROVIDER_LOGIN_PREFIX);
        if !next.is_empty() {
            href.push_str("?next=");
            href.extend(url::form_urlencoded::byte_serialize(next.as_bytes()));
        }
        let _ = write!(
            body,
            "<p><a class=\"provider\" role=\"button\" href=\"{}\">Sign in with {}</a></p>",
            esc(&href),
            esc(display)
        );
    }
    if local {
        if !providers.is_empty() {
            body.push_str("<p class=\"muted\">Or with a local account:</p>");
        }
        let _ = write!(
            body,
            "<form method=\"post\" action=\"{}\">\
<input type=\"hidden\" name=\"csrf\" value=\"{}\"><input type=\"hidden\" name=\"next\" value=\"{}\">\
<label for=\"username\">Username</label>\
<input id=\"username\" name=\"username\" type=\"text\" autocomplete=\"username\" autocapitalize=\"none\" required value=\"{}\">\
<label for=\"password\">Password</label>\
<input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" required>\
<button type=\"submit\">Sign in</button></form>",
            paths::LOGIN,
            esc(csrf),
            esc(next),
            esc(username)
        );
    }
    layout("Sign in", &body)
}

/// What the consent page shows.
pub struct Consent<'a> {
    pub client_name: Option<&'a str>,
    pub client_id: &'a str,
    pub redirect_host: &'a str,
    pub route_name: &'a str,
    pub resource: &'a str,
    pub user: &'a str,
    /// Each granted scope with the tool patterns it unlocks; empty: every tool.
    pub scopes: Vec<(&'a str, &'a [String])>,
    pub ticket: &'a str,
    pub csrf: &'a str,
    /// The route's upstream takes the user's own OAuth token and theirs is not
    /// connected: where to connect it.
    pub connect: Option<&'a str>,
}

pub fn consent(c: &Consent) -> String {
    let name = c.client_name.unwrap_or("An unnamed application");
    let mut body = format!(
        "<h1>Allow {} to use {}?</h1>\
<p><strong>{}</strong> <span class=\"muted\">(client <code>{}</code>)</span> asks to use the MCP server \
<strong>{}</strong> (<code>{}</code>) as <strong>{}</strong>.</p>\
<p>After you decide, you will be sent to <strong>{}</strong>.</p>",
        esc(name),
        esc(c.route_name),
        esc(name),
        esc(c.client_id),
        esc(c.route_name),
        esc(c.resource),
        esc(c.user),
        esc(c.redirect_host),
    );
    if c.scopes.is_empty() {
        body.push_str("<p>It will be able to use <strong>every tool</strong> of this server.</p>");
    } else {
        body.push_str("<p>It asks for:</p><ul>");
        for (scope, tools) in &c.scopes {
            let tools: Vec<String> = tools
                .iter()
                .map(|t| format!("<code>{}</code>", esc(t)))
                .collect();
            let _ = write!(
                body,
                "<li><strong>{}</strong>: tools {}</li>",
                esc(scope),
                tools.join(", ")
            );
        }
        body.push_str("</ul>");
    }
    if let Some(url) = c.connect {
        let _ = write!(
            body,
            "<p>{} also needs your own account at the server behind it, which is not connected yet: \
<a href=\"{}\" target=\"_blank\" rel=\"noopener\">connect it</a> (in a new tab), before or after you decide.</p>",
            esc(c.route_name),
            esc(url),
        );
    }
    let _ = write!(
        body,
        "<form method=\"post\" action=\"{}\">\
<input type=\"hidden\" name=\"csrf\" value=\"{}\"><input type=\"hidden\" name=\"ticket\" value=\"{}\">\
<button type=\"submit\" name=\"decision\" value=\"allow\">Allow</button>\
<button type=\"submit\" name=\"decision\" value=\"deny\" class=\"secondary\">Deny</button></form>",
        paths::CONSENT,
        esc(c.csrf),
        esc(c.ticket)
    );
    layout("Allow access?", &body)
}

/// A page that only says something: errors, refusals, confirmations.
pub fn message(title: &str, text: &str) -> String {
    layout(
        title,
        &format!("<h1>{}</h1><p>{}</p>", esc(title), esc(text)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_escaped() {
        assert_eq!(
            esc("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        let page = login(
            "c",
            "/oauth/authorize?a=1&b=\"2\"",
            "<script>",
            Some("<b>bad</b>"),
            &[],
            true,
        );
        assert!(!page.contains("<script>"));
        assert!(!page.contains("<b>bad"));
        assert!(page.contains("value=\"/oauth/authorize?a=1&amp;b=&quot;2&quot;\""));
    }

    #[test]
    fn login_has_the_labels_and_button_of_the_contract() {
        let page = login("c", "/", "", None, &[], true);
        assert!(page.contains("<label for=\"username\">Username</label>"));
        assert!(page.contains("<label for=\"password\">Password</label>"));
        assert!(page.contains(">Sign in</button>"));
    }

    #[test]
    fn providers_come_first_and_without_local_users_there_is_no_password_form() {
        let next = "/oauth/authorize?client_id=a&x=<b>";
        let page = login("c", next, "", None, &[("corp", "Corp <SSO>")], true);
        let button = page.find("Sign in with Corp &lt;SSO&gt;</a>").unwrap();
        assert!(button < page.find("Password").unwrap());
        assert!(page.contains(
            "href=\"/oauth/login/corp?next=%2Foauth%2Fauthorize%3Fclient_id%3Da%26x%3D%3Cb%3E\""
        ));
        let page = login("c", next, "", None, &[("corp", "Corp")], false);
        assert!(page.contains("Sign in with Corp"));
        assert!(!page.contains("Password"));
        assert!(!page.contains("<form"));
    }

    #[test]
    fn consent_names_client_route_scopes_and_tools() {
        let tools = vec!["read_note".to_string(), "list_*".to_string()];
        let page = consent(&Consent {
            client_name: Some("Evil <Corp>"),
            client_id: "cid",
            redirect_host: "claude.ai",
            route_name: "notes",
            resource: "https://p/notes/mcp",
            user: "alice",
            scopes: vec![("notes:read", &tools)],
            ticket: "t",
            csrf: "c",
            connect: None,
        });
        assert!(!page.contains("connect it"));
        for needle in [
            "Evil &lt;Corp&gt;",
            "notes",
            "claude.ai",
            "notes:read",
            "read_note",
            "list_*",
            ">Allow</button>",
            ">Deny</button>",
            "alice",
        ] {
            assert!(page.contains(needle), "{needle} missing");
        }
    }

    #[test]
    fn consent_offers_to_connect_an_upstream_account_not_connected_yet() {
        let page = consent(&Consent {
            client_name: None,
            client_id: "cid",
            redirect_host: "claude.ai",
            route_name: "github",
            resource: "https://p/github/mcp",
            user: "alice",
            scopes: vec![],
            ticket: "t",
            csrf: "c",
            connect: Some("https://p/oauth/connect/github?a=<b>"),
        });
        assert!(
            page.contains("href=\"https://p/oauth/connect/github?a=&lt;b&gt;\""),
            "{page}"
        );
        assert!(page.contains("connect it"));
    }
}
