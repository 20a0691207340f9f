//! Header rewriting between client and upstream, as pure functions.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use crate::config::UpstreamAuth;
use crate::wire::is_hop_by_hop;

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const X_ACCEL_BUFFERING: HeaderName = HeaderName::from_static("x-accel-buffering");

/// What the proxy knows about the client connection, for `X-Forwarded-*`.
pub struct ClientInfo<'a> {
    /// The peer's IP address as text.
    pub ip: &'a str,
    pub https: bool,
    /// The host the client asked for (`Host`, or the authority of an HTTP/2 request).
    pub host: Option<HeaderValue>,
}

/// Who calls, as the upstream is told: the credential chosen for them
/// (`upstream_auth`), and what the route says to tell (`identity_headers`,
/// `identity_token`).
#[derive(Default)]
pub struct Caller<'a> {
    pub credential: Option<&'a UpstreamAuth>,
    /// A client's own copies of these are dropped: every header a credential
    /// rule or the identity token of the route uses.
    pub strip: &'a [HeaderName],
    pub identity: Option<Identity<'a>>,
    /// The identity token's header and value.
    pub identity_token: Option<(&'a HeaderName, &'a str)>,
}

/// The caller for `X-Forwarded-User`, `-Email`, `-Groups`, `-Scopes`, `-Client-Id`.
pub struct Identity<'a> {
    pub user: &'a str,
    pub groups: &'a [String],
    /// Space-separated.
    pub scope: &'a str,
    pub client_id: &'a str,
}

const X_FORWARDED_USER: HeaderName = HeaderName::from_static("x-forwarded-user");
const X_FORWARDED_EMAIL: HeaderName = HeaderName::from_static("x-forwarded-email");
const X_FORWARDED_GROUPS: HeaderName = HeaderName::from_static("x-forwarded-groups");
const X_FORWARDED_SCOPES: HeaderName = HeaderName::from_static("x-forwarded-scopes");
const X_FORWARDED_CLIENT_ID: HeaderName = HeaderName::from_static("x-forwarded-client-id");

/// A value as a header carries it: visible ASCII and spaces as they are,
/// anything else (CR, LF, other controls, non-ASCII) and `%` percent-encoded,
/// and `,` too in list items (`list`).
fn header_text(out: &mut Vec<u8>, value: &str, list: bool) {
    for &b in value.as_bytes() {
        if (b == b' ' || b.is_ascii_graphic()) && b != b'%' && !(list && b == b',') {
            out.push(b);
        } else {
            out.extend_from_slice(format!("%{b:02X}").as_bytes());
        }
    }
}

impl Identity<'_> {
    fn emit(&self, emit: &mut impl FnMut(&HeaderName, &[u8])) {
        let mut buf = Vec::new();
        let mut one = |name: &HeaderName, value: &str, emit: &mut dyn FnMut(&HeaderName, &[u8])| {
            buf.clear();
            header_text(&mut buf, value, false);
            emit(name, &buf);
        };
        one(&X_FORWARDED_USER, self.user, emit);
        // A provider's user is `<provider>:<email>`; local users have no email.
        if let Some((_, email)) = self.user.split_once(':').filter(|(_, e)| e.contains('@')) {
            one(&X_FORWARDED_EMAIL, email, emit);
        }
        one(&X_FORWARDED_SCOPES, self.scope, emit);
        one(&X_FORWARDED_CLIENT_ID, self.client_id, emit);
        let mut groups = Vec::new();
        for (i, g) in self.groups.iter().enumerate() {
            if i > 0 {
                groups.push(b',');
            }
            header_text(&mut groups, g, true);
        }
        emit(&X_FORWARDED_GROUPS, &groups);
    }
}

/// Headers that upstreams behind other auth proxies (oauth2-proxy, Pomerium,
/// Apache/nginx auth modules) trust to name the caller. Only the proxy may
/// state who calls, so a client's own are never forwarded: every
/// `X-Forwarded-*` (the proxy sets `-For`, `-Proto` and `-Host` itself), every
/// `X-Auth-Request-*` and `X-Pomerium-*`, and these names.
const IDENTITY_PREFIXES: [&str; 3] = ["x-forwarded-", "x-auth-request-", "x-pomerium-"];
const IDENTITY_NAMES: [&str; 6] = [
    "remote-user",
    "x-remote-user",
    "x-remote-email",
    "x-remote-groups",
    "x-real-ip",
    "gap-auth",
];

/// Whether a client-sent header would claim an identity or an address (see [`IDENTITY_PREFIXES`]).
pub fn is_identity_header(name: &HeaderName) -> bool {
    let name = name.as_str();
    (name.starts_with("x-")
        && IDENTITY_PREFIXES
            .iter()
            .any(|prefix| name.starts_with(prefix)))
        || IDENTITY_NAMES.contains(&name)
}

/// The client's request headers as the upstream gets them, passed to `emit` one by
/// one: connection headers, the client's credentials and cookies, and headers that
/// claim an identity ([`is_identity_header`]) go; the route's own credential and
/// `X-Forwarded-*` come in. Everything else (MCP headers included)
/// passes. `Host` and the body's framing are the transport's to write; `Expect` was
/// the proxy's to answer (the body is read or streamed without waiting for the
/// upstream). Nothing is copied: the headers are written as they are read.
pub fn to_upstream(
    headers: &HeaderMap,
    client: &ClientInfo,
    caller: &Caller,
    mut emit: impl FnMut(&HeaderName, &[u8]),
) {
    // Headers the `Connection` header names are connection-specific too (rare in requests).
    let named: Vec<HeaderName> = match headers.get(header::CONNECTION) {
        None => Vec::new(),
        Some(_) => connection_named(headers),
    };
    for (name, value) in headers {
        let dropped = is_hop_by_hop(name)
            || *name == header::AUTHORIZATION
            || *name == header::COOKIE
            || *name == header::HOST
            || *name == header::CONTENT_LENGTH
            || *name == header::EXPECT
            || *name == header::FORWARDED
            || is_identity_header(name)
            || caller.strip.contains(name)
            || named.contains(name);
        if !dropped {
            emit(name, value.as_bytes());
        }
    }
    if let Some(auth) = caller.credential {
        emit(&auth.name, auth.value.as_bytes());
    }
    if let Some(id) = &caller.identity {
        id.emit(&mut emit);
    }
    if let Some((name, token)) = caller.identity_token {
        emit(name, token.as_bytes());
    }
    // The proxy is the edge: it states what it saw rather than trusting the client.
    emit(&X_FORWARDED_FOR, client.ip.as_bytes());
    let proto: &[u8] = if client.https { b"https" } else { b"http" };
    emit(&X_FORWARDED_PROTO, proto);
    if let Some(host) = &client.host {
        emit(&X_FORWARDED_HOST, host.as_bytes());
    }
}

fn connection_named(headers: &HeaderMap) -> Vec<HeaderName> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|n| !n.eq_ignore_ascii_case("keep-alive") && !n.eq_ignore_ascii_case("close"))
        .filter_map(|n| HeaderName::from_bytes(n.as_bytes()).ok())
        .collect()
}

/// Whether a response is an event stream, judged by its content type.
pub fn is_event_stream(headers: &HeaderMap) -> bool {
    headers.get(header::CONTENT_TYPE).is_some_and(|v| {
        let essence = v
            .as_bytes()
            .split(|b| *b == b';')
            .next()
            .unwrap_or_default();
        essence
            .trim_ascii()
            .eq_ignore_ascii_case(b"text/event-stream")
    })
}

/// Turns the upstream's response headers into the client's. Cookies stay
/// behind: the proxy's origin is also the authorization server's. (Connection
/// headers never get this far: `h1::parse_response` reads them and keeps them out.)
pub fn to_client(headers: &mut HeaderMap) {
    headers.remove(header::SET_COOKIE);
    if is_event_stream(headers) {
        headers.insert(X_ACCEL_BUFFERING, HeaderValue::from_static("no"));
        headers.remove(header::CONTENT_LENGTH);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth() -> UpstreamAuth {
        let mut value = HeaderValue::from_static("Bearer upstream-secret");
        value.set_sensitive(true);
        UpstreamAuth {
            name: header::AUTHORIZATION,
            value,
            kind: "bearer",
        }
    }

    /// What `to_upstream` emits, as a map.
    fn upstream(h: &HeaderMap, auth: Option<&UpstreamAuth>) -> HeaderMap {
        let strip: Vec<HeaderName> = auth.iter().map(|a| a.name.clone()).collect();
        let caller = Caller {
            credential: auth,
            strip: &strip,
            ..Caller::default()
        };
        let mut out = HeaderMap::new();
        to_upstream(h, &client(), &caller, |n, v| {
            out.append(n.clone(), HeaderValue::from_bytes(v).unwrap());
        });
        out
    }

    fn client() -> ClientInfo<'static> {
        ClientInfo {
            ip: "10.1.2.3",
            https: true,
            host: Some(HeaderValue::from_static("mcp.example.com")),
        }
    }

    #[test]
    fn client_credentials_are_replaced_by_the_upstreams() {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer client-token"),
        );
        h.insert(header::COOKIE, HeaderValue::from_static("session=abc"));
        h.insert("mcp-session-id", HeaderValue::from_static("s1"));
        h.insert(
            "mcp-protocol-version",
            HeaderValue::from_static("2025-06-18"),
        );
        h.insert("last-event-id", HeaderValue::from_static("42"));
        h.insert("mcp-param-foo", HeaderValue::from_static("bar"));
        h.insert("x-forwarded-for", HeaderValue::from_static("6.6.6.6"));
        h.insert(header::HOST, HeaderValue::from_static("proxy.example"));
        h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("12"));
        h.insert(header::CONNECTION, HeaderValue::from_static("x-hop"));
        h.insert("x-hop", HeaderValue::from_static("1"));
        h.insert(header::TE, HeaderValue::from_static("trailers"));
        h.insert(header::EXPECT, HeaderValue::from_static("100-continue"));
        let h = upstream(&h, Some(&auth()));
        assert_eq!(h[header::AUTHORIZATION], "Bearer upstream-secret");
        assert!(h.get(header::COOKIE).is_none());
        for kept in [
            "mcp-session-id",
            "mcp-protocol-version",
            "last-event-id",
            "mcp-param-foo",
        ] {
            assert!(h.contains_key(kept), "{kept} must pass");
        }
        assert_eq!(h["x-forwarded-for"], "10.1.2.3");
        assert_eq!(h["x-forwarded-proto"], "https");
        assert_eq!(h["x-forwarded-host"], "mcp.example.com");
        for gone in [
            "host",
            "content-length",
            "connection",
            "x-hop",
            "te",
            "expect",
        ] {
            assert!(!h.contains_key(gone), "{gone} must not pass");
        }
        assert_eq!(h.len(), 8, "{h:?}");
    }

    #[test]
    fn identity_headers_from_clients_never_reach_the_upstream() {
        let mut h = HeaderMap::new();
        for spoof in [
            "x-forwarded-user",
            "x-forwarded-email",
            "x-forwarded-groups",
            "x-forwarded-preferred-username",
            "x-forwarded-scopes",
            "x-forwarded-client-id",
            "x-forwarded-access-token",
            "x-forwarded-port",
            "x-auth-request-user",
            "x-auth-request-email",
            "x-auth-request-groups",
            "x-pomerium-claim-email",
            "x-pomerium-jwt-assertion",
            "remote-user",
            "x-remote-user",
            "x-real-ip",
            "gap-auth",
        ] {
            h.insert(spoof, HeaderValue::from_static("admin"));
        }
        h.insert("x-forwardedness", HeaderValue::from_static("kept"));
        h.insert("x-user-agent-extra", HeaderValue::from_static("kept"));
        let h = upstream(&h, None);
        let names: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        assert_eq!(
            names,
            [
                "x-forwardedness",
                "x-user-agent-extra",
                "x-forwarded-for",
                "x-forwarded-proto",
                "x-forwarded-host"
            ]
        );
        assert!(h.values().all(|v| v != "admin"), "{h:?}");
    }

    #[test]
    fn a_credential_header_of_the_clients_own_is_replaced() {
        let mut h = HeaderMap::new();
        h.insert("x-api-key", HeaderValue::from_static("client-guess"));
        let key = UpstreamAuth {
            name: HeaderName::from_static("x-api-key"),
            value: HeaderValue::from_static("upstream-key"),
            kind: "header",
        };
        let h = upstream(&h, Some(&key));
        let values: Vec<_> = h.get_all("x-api-key").iter().collect();
        assert_eq!(values, ["upstream-key"]);
    }

    #[test]
    fn no_upstream_auth_means_no_authorization_at_all() {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer client-token"),
        );
        let h = upstream(&h, None);
        assert!(h.get(header::AUTHORIZATION).is_none());
    }

    #[test]
    fn event_streams_are_marked_unbuffered() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream; charset=utf-8"),
        );
        to_client(&mut h);
        assert_eq!(h["x-accel-buffering"], "no");
        let mut json = HeaderMap::new();
        json.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        to_client(&mut json);
        assert!(json.get("x-accel-buffering").is_none());
    }

    #[test]
    fn the_sensitive_credential_does_not_print() {
        assert!(!format!("{:?}", auth()).contains("upstream-secret"));
    }

    #[test]
    fn identity_headers_are_the_proxys_and_stay_one_line() {
        let groups = vec!["ops,eu".to_string(), "na\r\nX-Evil: 1".to_string()];
        let caller = Caller {
            identity: Some(Identity {
                user: "corp:Ann\u{e9}@x.org",
                groups: &groups,
                scope: "notes:read notes:write",
                client_id: "c%1",
            }),
            ..Caller::default()
        };
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-user", HeaderValue::from_static("mallory"));
        let mut out = HeaderMap::new();
        to_upstream(&h, &client(), &caller, |n, v| {
            out.append(n.clone(), HeaderValue::from_bytes(v).unwrap());
        });
        let get = |n: &str| {
            out.get_all(n)
                .iter()
                .map(|v| v.to_str().unwrap().to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(get("x-forwarded-user"), ["corp:Ann%C3%A9@x.org"]);
        assert_eq!(get("x-forwarded-email"), ["Ann%C3%A9@x.org"]);
        assert_eq!(get("x-forwarded-groups"), ["ops%2Ceu,na%0D%0AX-Evil: 1"]);
        assert_eq!(get("x-forwarded-scopes"), ["notes:read notes:write"]);
        assert_eq!(get("x-forwarded-client-id"), ["c%251"]);
    }
}
