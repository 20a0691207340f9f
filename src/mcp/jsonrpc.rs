//! The JSON-RPC envelope of MCP messages, read without re-encoding: only the
//! fields the proxy decides on are parsed; everything else stays raw.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

/// What a client message is, as far as the policy cares.
#[derive(Debug)]
pub struct Message<'a> {
    /// The request id, raw (number or string); `None` for notifications.
    pub id: Option<&'a RawValue>,
    /// `None` for a response (client answering a server request).
    pub method: Option<Cow<'a, str>>,
    /// `params.name` (tools/call, prompts/get) or `params.uri` (resources/read,
    /// subscribe, unsubscribe); `None` for other methods.
    pub target: Option<Cow<'a, str>>,
}

/// Whether a protocol version is 2026-07-28 or later (revisions are dates):
/// one without `initialize`, whose requests carry the mirror headers.
pub fn is_modern(version: &str) -> bool {
    version.len() == 10
        && version.bytes().all(|b| b.is_ascii_digit() || b == b'-')
        && version >= "2026-07-28"
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow)]
    jsonrpc: Option<Str<'a>>,
    #[serde(borrow, default, deserialize_with = "raw_present")]
    id: Option<&'a RawValue>,
    #[serde(borrow)]
    method: Option<Str<'a>>,
    #[serde(borrow)]
    params: Option<Params<'a>>,
    #[serde(borrow)]
    result: Option<&'a RawValue>,
    #[serde(borrow)]
    error: Option<&'a RawValue>,
}

/// Keeps `"id": null` as a present id (JSON `null`), unlike `Option`'s default.
fn raw_present<'de: 'a, 'a, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<&'a RawValue>, D::Error> {
    <&RawValue>::deserialize(d).map(Some)
}

#[derive(Deserialize)]
struct Params<'a> {
    #[serde(default, borrow)]
    name: Text<'a>,
    #[serde(default, borrow)]
    uri: Text<'a>,
}

/// A JSON string, borrowed from the body unless it has escapes. (`serde(borrow)`
/// does not borrow through `Option<Cow<str>>`: it would allocate every time.)
struct Str<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Str<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = d.deserialize_str(StrVisitor(std::marker::PhantomData))?;
        Ok(Str(s.unwrap_or_default()))
    }
}

/// A JSON string's value; any other JSON value is skipped (it is the upstream's to refuse).
#[derive(Default)]
struct Text<'a>(Option<Cow<'a, str>>);

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrVisitor(std::marker::PhantomData))
            .map(Text)
    }
}

/// A string, borrowed where it can be; any other value (read with `deserialize_any`) is `None`.
struct StrVisitor<'a>(std::marker::PhantomData<&'a ()>);

impl<'de: 'a, 'a> serde::de::Visitor<'de> for StrVisitor<'a> {
    type Value = Option<Cow<'a, str>>;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a string")
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Some(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Some(Cow::Owned(v.to_string())))
    }
    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
        while a.next_element::<serde::de::IgnoredAny>()?.is_some() {}
        Ok(None)
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
        while a
            .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
            .is_some()
        {}
        Ok(None)
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum ParseError {
    /// Not JSON at all: JSON-RPC -32700.
    Json,
    /// JSON, but not a JSON-RPC 2.0 message or batch: -32600.
    NotJsonRpc,
}

/// The messages of a request body, and whether it was a batch.
pub fn parse(body: &[u8]) -> Result<(Vec<Message<'_>>, bool), ParseError> {
    // Fields the proxy skips are not checked for UTF-8 by the envelope's reader.
    std::str::from_utf8(body).map_err(|_| ParseError::Json)?;
    let trimmed = body.trim_ascii_start();
    if trimmed.first() == Some(&b'[') {
        let items: Vec<&RawValue> = serde_json::from_slice(body).map_err(|_| ParseError::Json)?;
        if items.is_empty() {
            return Err(ParseError::NotJsonRpc);
        }
        let msgs = items
            .iter()
            .map(|raw| one(raw.get().as_bytes()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((msgs, true))
    } else {
        // One pass when it is a message; a second one tells "not JSON" from
        // "JSON but not JSON-RPC" when it is not.
        match one(body) {
            Ok(message) => Ok((vec![message], false)),
            Err(e) => {
                let _: &RawValue = serde_json::from_slice(body).map_err(|_| ParseError::Json)?;
                Err(e)
            }
        }
    }
}

fn one(bytes: &[u8]) -> Result<Message<'_>, ParseError> {
    let env: Envelope = serde_json::from_slice(bytes).map_err(|_| ParseError::NotJsonRpc)?;
    if env.jsonrpc.as_ref().map(|s| &*s.0) != Some("2.0") {
        return Err(ParseError::NotJsonRpc);
    }
    let is_response = env.result.is_some() || env.error.is_some();
    let method = env.method.map(|m| m.0);
    if method.is_none() && !(is_response && env.id.is_some()) {
        return Err(ParseError::NotJsonRpc);
    }
    // What `Mcp-Name` mirrors (2026-07-28): the tool or prompt name, or the resource URI.
    let target = env.params.and_then(|p| {
        let field = match method.as_deref()? {
            "tools/call" | "prompts/get" => p.name,
            "resources/read" | "resources/subscribe" | "resources/unsubscribe" => p.uri,
            _ => Text(None),
        };
        field.0
    });
    Ok(Message {
        id: env.id,
        method,
        target,
    })
}

/// A JSON-RPC result response; `result` is JSON text, passed as it is.
pub fn result_response(id: Option<&RawValue>, result: &str) -> String {
    let id = id.map_or("null", RawValue::get);
    format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{result}}}"#)
}

/// A JSON-RPC error response, for the proxy's own refusals.
pub fn error_response(id: Option<&RawValue>, code: i64, message: &str) -> String {
    error_response_with(id, code, message, None)
}

/// The same with the error's `data` (JSON text).
pub fn error_response_with(
    id: Option<&RawValue>,
    code: i64,
    message: &str,
    data: Option<&str>,
) -> String {
    let id = id.map_or("null", RawValue::get);
    let message = serde_json::to_string(message).unwrap_or_else(|_| "\"error\"".into());
    let data = data.map(|d| format!(r#","data":{d}"#)).unwrap_or_default();
    format!(r#"{{"jsonrpc":"2.0","id":{id},"error":{{"code":{code},"message":{message}{data}}}}}"#)
}

pub const PARSE_ERROR: i64 = -32700;
pub const INVALID_REQUEST: i64 = -32600;
pub const METHOD_NOT_FOUND: i64 = -32601;
pub const INVALID_PARAMS: i64 = -32602;
pub const INTERNAL_ERROR: i64 = -32603;
/// 2026-07-28 (SEP-2243): an `Mcp-Method`/`Mcp-Name` header disagrees with the body.
pub const HEADER_MISMATCH: i64 = -32020;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_messages() {
        let (m, batch) = parse(br#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo","arguments":{}}}"#).unwrap();
        assert!(!batch);
        assert_eq!(m[0].id.as_ref().map(|r| r.get()), Some("7"));
        assert_eq!(m[0].method.as_deref(), Some("tools/call"));
        assert_eq!(m[0].target.as_deref(), Some("echo"));

        let (m, _) = parse(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#).unwrap();
        assert!(m[0].id.is_none());
        let (m, _) = parse(br#"{"jsonrpc":"2.0","id":"a","result":{}}"#).unwrap();
        assert!(
            m[0].method.is_none(),
            "a client's response to a server request"
        );
        let (m, _) = parse(
            br#"{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"file:///x"}}"#,
        )
        .unwrap();
        assert_eq!(m[0].target.as_deref(), Some("file:///x"));
    }

    #[test]
    fn batches_are_read_element_by_element() {
        let (m, batch) = parse(br#" [{"jsonrpc":"2.0","id":1,"method":"tools/list"},{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"x"}}]"#).unwrap();
        assert!(batch);
        assert_eq!(m.len(), 2);
        assert_eq!(m[1].target.as_deref(), Some("x"));
    }

    #[test]
    fn junk_is_told_apart_from_non_json_rpc() {
        assert_eq!(parse(b"{nope").unwrap_err(), ParseError::Json);
        assert_eq!(parse(b"").unwrap_err(), ParseError::Json);
        assert_eq!(parse(b"[1,").unwrap_err(), ParseError::Json);
        assert_eq!(parse(b"42").unwrap_err(), ParseError::NotJsonRpc);
        assert_eq!(parse(b"[]").unwrap_err(), ParseError::NotJsonRpc);
        assert_eq!(
            parse(br#"{"jsonrpc":"1.0","id":1,"method":"x"}"#).unwrap_err(),
            ParseError::NotJsonRpc
        );
        assert_eq!(
            parse(br#"{"jsonrpc":"2.0","id":1}"#).unwrap_err(),
            ParseError::NotJsonRpc
        );
        assert_eq!(
            parse(br#"{"jsonrpc":"2.0","id":1,"method":5,"result":{}}"#).unwrap_err(),
            ParseError::NotJsonRpc,
            "a method must be a string"
        );
        assert_eq!(
            parse(br#"{"jsonrpc":2.0,"id":1,"method":"x"}"#).unwrap_err(),
            ParseError::NotJsonRpc
        );
        let (m, _) =
            parse(br#"{"jsonrpc":"2.0","id":1,"method":"tools\/call","params":{"name":"x"}}"#)
                .unwrap();
        assert_eq!(
            m[0].method.as_deref(),
            Some("tools/call"),
            "escapes are read"
        );
        assert_eq!(m[0].target.as_deref(), Some("x"));
        assert_eq!(
            parse(br#"[{"jsonrpc":"2.0","method":"a"}, 5]"#).unwrap_err(),
            ParseError::NotJsonRpc
        );
    }

    #[test]
    fn names_that_are_not_strings_are_no_names() {
        for params in [
            r#"{"name":7}"#,
            r#"{"name":{"a":[1,{"b":null}]}}"#,
            r#"{"name":[true]}"#,
            r#"{"name":null}"#,
            "{}",
        ] {
            let body =
                format!(r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{params}}}"#);
            let (m, _) = parse(body.as_bytes()).unwrap();
            assert_eq!(m[0].target, None, "{params}");
        }
        let (m, _) = parse(
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a\u0062\"c"}}"#,
        )
        .unwrap();
        assert_eq!(m[0].target.as_deref(), Some("ab\"c"));
    }

    #[test]
    fn skipped_fields_are_still_checked() {
        // Invalid UTF-8 or a broken escape in a field the proxy does not read is not JSON.
        let mut bad = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","arguments":{"a":"#.to_vec();
        bad.extend_from_slice(b"\"\xff\"}}}");
        assert_eq!(parse(&bad).unwrap_err(), ParseError::Json);
        assert_eq!(
            parse(br#"{"jsonrpc":"2.0","id":1,"method":"x","params":{"y":"\q"}}"#).unwrap_err(),
            ParseError::Json
        );
        assert_eq!(
            parse(br#"{"jsonrpc":"2.0","id":1,"method":"x"} {}"#).unwrap_err(),
            ParseError::Json
        );
    }

    #[test]
    fn error_responses_keep_the_raw_id() {
        let (m, _) = parse(br#"{"jsonrpc":"2.0","id":"abc","method":"x"}"#).unwrap();
        let e = error_response(m[0].id, INVALID_PARAMS, "Unknown tool: \"x\"");
        let v: serde_json::Value = serde_json::from_str(&e).unwrap();
        assert_eq!(v["id"], "abc");
        assert_eq!(v["error"]["code"], -32602);
        assert_eq!(v["error"]["message"], "Unknown tool: \"x\"");
        assert!(error_response(None, PARSE_ERROR, "Parse error").contains("\"id\":null"));
    }
}
