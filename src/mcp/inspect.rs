//! The inspect phase: what to do with a client's POST body, decided from the
//! JSON-RPC envelope, the 2026-07-28 `Mcp-Method`/`Mcp-Name` headers and the
//! token's tool policy. Pure: no I/O.

use super::jsonrpc::{self, INVALID_PARAMS, INVALID_REQUEST, Message, PARSE_ERROR, ParseError};
use super::policy::{self, ToolPolicy};

#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Send it on. `tools_list`: a `tools/list` result will come back and must be filtered.
    Forward { tools_list: bool },
    /// HTTP 400 with this JSON-RPC error body; the upstream never sees the request.
    BadRequest(String),
    /// HTTP 403 step-up: the token lacks a scope that would allow `tool`.
    /// `scope` is what to ask for: the token's scopes plus the missing one.
    InsufficientScope {
        tool: String,
        missing: String,
        scope: String,
    },
    /// Answer with this JSON-RPC body (errors for unknown tools); nothing is forwarded.
    Refuse { body: String, tools: Vec<String> },
}

/// The headers of the 2026-07-28 transport that mirror the body.
#[derive(Default)]
pub struct MirrorHeaders<'a> {
    pub method: Option<&'a str>,
    pub name: Option<&'a str>,
}

/// Tool names longer than this are cut (with `…`) where the proxy repeats them:
/// refusals, step-up descriptions, audit lines. A client chooses them, up to the
/// body limit.
pub const SHOWN_NAME_MAX: usize = 128;
/// Longer request ids are refused: the proxy echoes ids in its own answers.
pub const MAX_ID_LEN: usize = 256;
/// Larger batches are refused (MCP 2025-06-18 dropped batches; older clients send a few).
pub const MAX_BATCH: usize = 1000;

/// A client-chosen name as the proxy repeats it: at most [`SHOWN_NAME_MAX`] bytes.
pub fn shown(name: &str) -> String {
    if name.len() <= SHOWN_NAME_MAX {
        return name.to_string();
    }
    let mut end = SHOWN_NAME_MAX;
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &name[..end])
}

pub fn inspect(
    body: &[u8],
    headers: &MirrorHeaders,
    route_scopes: Option<&[(String, Vec<String>)]>,
    policy: &ToolPolicy,
    token_scope: &str,
) -> Verdict {
    let (messages, batch) = match jsonrpc::parse(body) {
        Ok(m) => m,
        Err(ParseError::Json) => {
            return Verdict::BadRequest(jsonrpc::error_response(None, PARSE_ERROR, "Parse error"));
        }
        Err(ParseError::NotJsonRpc) => {
            return Verdict::BadRequest(jsonrpc::error_response(
                None,
                INVALID_REQUEST,
                "Invalid Request: not a JSON-RPC 2.0 message",
            ));
        }
    };
    if messages.len() > MAX_BATCH {
        return Verdict::BadRequest(jsonrpc::error_response(
            None,
            INVALID_REQUEST,
            "Invalid Request: batch too large",
        ));
    }
    if messages
        .iter()
        .any(|m| m.id.is_some_and(|id| id.get().len() > MAX_ID_LEN))
    {
        return Verdict::BadRequest(jsonrpc::error_response(
            None,
            INVALID_REQUEST,
            "Invalid Request: id too long",
        ));
    }
    if let Some(err) = check_mirror_headers(&messages, batch, headers) {
        return Verdict::BadRequest(jsonrpc::error_response(
            messages.first().and_then(|m| m.id),
            jsonrpc::HEADER_MISMATCH,
            err,
        ));
    }

    let mut unknown: Vec<&Message> = Vec::new();
    for m in messages
        .iter()
        .filter(|m| m.method.as_deref() == Some("tools/call"))
    {
        let tool = m.target.as_deref().unwrap_or("");
        if policy.allows(tool) {
            continue;
        }
        match policy::scope_for(route_scopes, tool) {
            Some(missing) => {
                let mut scopes: Vec<&str> = token_scope.split_ascii_whitespace().collect();
                if !scopes.contains(&missing) {
                    scopes.push(missing);
                }
                return Verdict::InsufficientScope {
                    tool: shown(tool),
                    missing: missing.to_string(),
                    scope: scopes.join(" "),
                };
            }
            None => unknown.push(m),
        }
    }
    if !unknown.is_empty() {
        let tools = unknown
            .iter()
            .map(|m| shown(m.target.as_deref().unwrap_or_default()))
            .collect();
        return Verdict::Refuse {
            body: refusal(&messages, &unknown, batch),
            tools,
        };
    }
    let tools_list = messages
        .iter()
        .any(|m| m.method.as_deref() == Some("tools/list"));
    Verdict::Forward { tools_list }
}

/// `Mcp-Method` and `Mcp-Name` must say what the (single) message says.
fn check_mirror_headers(
    messages: &[Message],
    batch: bool,
    h: &MirrorHeaders,
) -> Option<&'static str> {
    if h.method.is_none() && h.name.is_none() {
        return None;
    }
    if batch {
        return Some("Mcp-Method and Mcp-Name cannot describe a batch");
    }
    let m = messages.first()?;
    if let Some(method) = h.method
        && m.method.as_deref() != Some(method)
    {
        return Some("the Mcp-Method header does not match the method in the body");
    }
    // Only the methods whose name the proxy knows are compared; others (e.g. the
    // tasks extension's taskId) are the upstream's to check.
    if let (Some(name), Some(target)) = (h.name, m.target.as_deref())
        && decode_mirrored(name).as_deref() != Some(target)
    {
        return Some("the Mcp-Name header does not match the name in the body");
    }
    None
}

/// A mirrored header value: plain, or `=?base64?<standard base64 of UTF-8>?=`
/// for values a header cannot carry as they are (SEP-2243).
fn decode_mirrored(value: &str) -> Option<String> {
    use base64::Engine;
    match value
        .strip_prefix("=?base64?")
        .and_then(|v| v.strip_suffix("?="))
    {
        Some(encoded) => base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .ok()
            .and_then(|b| String::from_utf8(b).ok()),
        None => Some(value.to_string()),
    }
}

/// Errors for every request: the unknown tools get -32602, the rest of a batch
/// is refused with it (a batch is answered whole).
fn refusal(messages: &[Message], unknown: &[&Message], batch: bool) -> String {
    let unknown_error = |m: &Message| {
        let tool = m.target.as_deref().unwrap_or("");
        let tool = shown(tool);
        jsonrpc::error_response(m.id, INVALID_PARAMS, &format!("Unknown tool: {tool}"))
    };
    if !batch {
        return unknown
            .first()
            .map(|m| unknown_error(m))
            .unwrap_or_default();
    }
    let parts: Vec<String> = messages
        .iter()
        .filter(|m| m.id.is_some() && m.method.is_some())
        .map(|m| {
            if unknown.iter().any(|u| std::ptr::eq(*u, m)) {
                unknown_error(m)
            } else {
                jsonrpc::error_response(
                    m.id,
                    INVALID_REQUEST,
                    "batch refused: it calls a tool that does not exist",
                )
            }
        })
        .collect();
    format!("[{}]", parts.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scopes() -> Vec<(String, Vec<String>)> {
        vec![
            (
                "notes:read".into(),
                vec!["read_note".into(), "list_*".into()],
            ),
            ("notes:write".into(), vec!["write_note".into()]),
        ]
    }

    fn run(body: &str, headers: MirrorHeaders) -> Verdict {
        let s = scopes();
        let policy = ToolPolicy::new(Some(&s), "notes:read");
        inspect(body.as_bytes(), &headers, Some(&s), &policy, "notes:read")
    }

    fn call(id: u32, tool: &str) -> String {
        format!(
            r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"{tool}","arguments":{{}}}}}}"#
        )
    }

    #[test]
    fn names_the_proxy_repeats_are_cut_at_a_character_boundary() {
        assert_eq!(shown("read_note"), "read_note");
        let long = "é".repeat(200);
        let cut = shown(&long);
        assert!(
            cut.len() <= SHOWN_NAME_MAX + '…'.len_utf8(),
            "{}",
            cut.len()
        );
        assert!(cut.ends_with('…'));
        let huge = format!("x{}", "y".repeat(1_000_000));
        match run(&call(1, &huge), MirrorHeaders::default()) {
            Verdict::Refuse { body, tools } => {
                assert!(body.len() < 400, "{}", body.len());
                assert!(tools[0].len() <= SHOWN_NAME_MAX + 3);
            }
            other => panic!("{other:?}"),
        }
        match run(&call(1, &format!("list_{huge}")), MirrorHeaders::default()) {
            Verdict::Forward { .. } => {}
            other => panic!("an allowed long name still passes: {other:?}"),
        }
    }

    #[test]
    fn long_ids_and_huge_batches_are_invalid_requests() {
        let long_id = format!(
            r#"{{"jsonrpc":"2.0","id":"{}","method":"ping"}}"#,
            "i".repeat(300)
        );
        assert!(
            matches!(run(&long_id, MirrorHeaders::default()), Verdict::BadRequest(b) if b.contains("id too long"))
        );
        let batch = format!("[{}]", vec![call(1, "read_note"); MAX_BATCH + 1].join(","));
        assert!(
            matches!(run(&batch, MirrorHeaders::default()), Verdict::BadRequest(b) if b.contains("batch too large"))
        );
        let ok = format!("[{}]", vec![call(1, "read_note"); MAX_BATCH].join(","));
        assert!(matches!(
            run(&ok, MirrorHeaders::default()),
            Verdict::Forward { .. }
        ));
    }

    #[test]
    fn allowed_calls_and_lists_are_forwarded() {
        assert_eq!(
            run(&call(1, "read_note"), MirrorHeaders::default()),
            Verdict::Forward { tools_list: false }
        );
        assert_eq!(
            run(
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#,
                MirrorHeaders::default()
            ),
            Verdict::Forward { tools_list: true }
        );
        assert_eq!(
            run(
                r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
                MirrorHeaders::default()
            ),
            Verdict::Forward { tools_list: false }
        );
    }

    #[test]
    fn a_call_another_scope_allows_asks_for_step_up() {
        assert_eq!(
            run(&call(1, "write_note"), MirrorHeaders::default()),
            Verdict::InsufficientScope {
                tool: "write_note".into(),
                missing: "notes:write".into(),
                scope: "notes:read notes:write".into()
            }
        );
    }

    #[test]
    fn a_call_no_scope_allows_is_an_unknown_tool() {
        let Verdict::Refuse { body, tools } = run(&call(9, "rm_rf"), MirrorHeaders::default())
        else {
            panic!()
        };
        assert_eq!(tools, vec!["rm_rf".to_string()]);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            (v["id"].as_u64(), v["error"]["code"].as_i64()),
            (Some(9), Some(-32602))
        );
    }

    #[test]
    fn batches_are_checked_element_by_element() {
        let ok = format!(
            "[{},{}]",
            call(1, "read_note"),
            r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#
        );
        assert_eq!(
            run(&ok, MirrorHeaders::default()),
            Verdict::Forward { tools_list: true }
        );
        let bad = format!("[{},{}]", call(1, "read_note"), call(2, "rm_rf"));
        let Verdict::Refuse { body, .. } = run(&bad, MirrorHeaders::default()) else {
            panic!()
        };
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v[0]["error"]["code"], -32600);
        assert_eq!(v[1]["error"]["code"], -32602);
        let step_up = format!("[{},{}]", call(1, "read_note"), call(2, "write_note"));
        assert!(matches!(
            run(&step_up, MirrorHeaders::default()),
            Verdict::InsufficientScope { .. }
        ));
    }

    #[test]
    fn mirror_headers_must_match_the_body() {
        let body = call(1, "read_note");
        assert_eq!(
            run(
                &body,
                MirrorHeaders {
                    method: Some("tools/call"),
                    name: Some("read_note")
                }
            ),
            Verdict::Forward { tools_list: false }
        );
        for h in [
            MirrorHeaders {
                method: Some("tools/list"),
                name: None,
            },
            MirrorHeaders {
                method: Some("tools/call"),
                name: Some("write_note"),
            },
            MirrorHeaders {
                method: None,
                name: Some("other"),
            },
        ] {
            assert!(matches!(run(&body, h), Verdict::BadRequest(_)));
        }
    }

    #[test]
    fn junk_bodies_are_parse_errors() {
        let Verdict::BadRequest(b) = run("{oops", MirrorHeaders::default()) else {
            panic!()
        };
        assert!(b.contains("-32700"));
        let Verdict::BadRequest(b) = run(r#"{"hello":"world"}"#, MirrorHeaders::default()) else {
            panic!()
        };
        assert!(b.contains("-32600"));
    }
}
