//! Filtering `tools/list` results: tools the token may not use are removed.
//! Only the `tools` array is rewritten; every other member keeps its bytes
//! and order. A message that cannot be read but might carry tools is replaced
//! by a JSON-RPC internal error (fail closed).

use bytes::Bytes;
use indexmap::IndexMap;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::jsonrpc::{INTERNAL_ERROR, error_response};

#[derive(Debug, PartialEq, Eq)]
pub enum Filtered {
    /// Not a tool list (or nothing removed and nothing to mark): forward as is.
    Unchanged,
    Rewritten(Bytes),
}

/// Cheap test before any parsing: a message without `"tools"` carries no tool list.
pub fn may_carry_tools(data: &[u8]) -> bool {
    data.windows(7).any(|w| w == b"\"tools\"")
}

type Object = IndexMap<String, Box<RawValue>>;

#[derive(Deserialize)]
struct NameOnly {
    name: String,
}

/// Filters one JSON-RPC message or batch (the text of a JSON body or of an SSE event's data).
pub fn filter(data: &[u8], allows: &dyn Fn(&str) -> bool) -> Filtered {
    if !may_carry_tools(data) {
        return Filtered::Unchanged;
    }
    let fail_closed = || {
        Filtered::Rewritten(Bytes::from(error_response(
            None,
            INTERNAL_ERROR,
            "the upstream sent a tool list the proxy could not read",
        )))
    };
    let trimmed = data.trim_ascii_start();
    if trimmed.first() == Some(&b'[') {
        let Ok(items) = serde_json::from_slice::<Vec<Box<RawValue>>>(data) else {
            return fail_closed();
        };
        let mut changed = false;
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            match filter_object(item.get().as_bytes(), allows) {
                Ok(None) => out.push(item),
                Ok(Some(new)) => {
                    changed = true;
                    out.push(new);
                }
                Err(()) => return fail_closed(),
            }
        }
        if !changed {
            return Filtered::Unchanged;
        }
        return serde_json::to_vec(&out)
            .map_or_else(|_| fail_closed(), |v| Filtered::Rewritten(Bytes::from(v)));
    }
    match filter_object(data, allows) {
        Ok(None) => Filtered::Unchanged,
        Ok(Some(new)) => Filtered::Rewritten(Bytes::from(new.get().to_string())),
        Err(()) => fail_closed(),
    }
}

/// `Ok(None)`: leave the message alone. `Ok(Some)`: its new text. `Err`: unreadable.
fn filter_object(data: &[u8], allows: &dyn Fn(&str) -> bool) -> Result<Option<Box<RawValue>>, ()> {
    if !may_carry_tools(data) {
        return Ok(None);
    }
    let mut message: Object = serde_json::from_slice(data).map_err(|_| ())?;
    // Requests and notifications (notifications/tools/list_changed…) are not tool lists.
    if message.contains_key("method") {
        return Ok(None);
    }
    let Some(result) = message.get("result") else {
        return Ok(None);
    };
    if !result.get().trim_start().starts_with('{') {
        return Ok(None);
    }
    let mut result: Object = serde_json::from_str(result.get()).map_err(|_| ())?;
    let Some(tools) = result.get("tools") else {
        return Ok(None);
    };
    let tools: Vec<Box<RawValue>> = serde_json::from_str(tools.get()).map_err(|_| ())?;
    let before = tools.len();
    // A tool without a readable name is not shown (fail closed).
    let kept: Vec<Box<RawValue>> = tools
        .into_iter()
        .filter(|t| serde_json::from_str::<NameOnly>(t.get()).is_ok_and(|n| allows(&n.name)))
        .collect();
    let has_cache_fields = result.contains_key("ttlMs") || result.contains_key("cacheScope");
    if kept.len() == before && !has_cache_fields {
        return Ok(None);
    }
    result.insert("tools".into(), to_raw(&kept)?);
    if has_cache_fields {
        // The list depends on who asks (2026-07-28 caching fields).
        result.insert("cacheScope".into(), to_raw(&"private")?);
    }
    message.insert("result".into(), to_raw(&result)?);
    to_raw(&message).map(Some)
}

fn to_raw<T: serde::Serialize>(v: &T) -> Result<Box<RawValue>, ()> {
    serde_json::value::to_raw_value(v).map_err(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn only_read(name: &str) -> bool {
        name.starts_with("read")
    }

    fn text(f: Filtered) -> String {
        match f {
            Filtered::Rewritten(b) => String::from_utf8(b.to_vec()).unwrap(),
            Filtered::Unchanged => panic!("expected a rewrite"),
        }
    }

    #[test]
    fn tools_are_removed_and_the_rest_keeps_its_bytes() {
        let msg = br#"{"jsonrpc":"2.0","id":3,"result":{"tools":[{"name":"read_a","inputSchema":{"type":"object"}},{"name":"write_b"}],"nextCursor":"c2","_meta":{"z":1,"a":2}}}"#;
        let out = text(filter(msg, &only_read));
        assert_eq!(
            out,
            r#"{"jsonrpc":"2.0","id":3,"result":{"tools":[{"name":"read_a","inputSchema":{"type":"object"}}],"nextCursor":"c2","_meta":{"z":1,"a":2}}}"#
        );
    }

    #[test]
    fn everything_else_is_left_alone() {
        for msg in [
            &br#"{"jsonrpc":"2.0","id":1,"result":{"content":[]}}"#[..],
            br#"{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}"#,
            br#"{"jsonrpc":"2.0","id":2,"result":{"tools":[{"name":"read_x"}]}}"#,
            br#"{"jsonrpc":"2.0","id":2,"result":"tools"}"#,
            br#"{"jsonrpc":"2.0","id":2,"error":{"code":1,"message":"\"tools\""}}"#,
            b"not json and no tool list",
        ] {
            assert_eq!(
                filter(msg, &only_read),
                Filtered::Unchanged,
                "{}",
                String::from_utf8_lossy(msg)
            );
        }
    }

    #[test]
    fn unreadable_messages_that_may_carry_tools_fail_closed() {
        let out = text(filter(
            br#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"write"#,
            &only_read,
        ));
        assert!(out.contains("-32603"), "{out}");
        let out = text(filter(
            br#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"nom":"write_x"}]}}"#,
            &only_read,
        ));
        assert_eq!(
            out, r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[]}}"#,
            "nameless tools are dropped"
        );
    }

    #[test]
    fn batches_are_filtered_element_by_element() {
        let msg = br#"[{"jsonrpc":"2.0","id":1,"result":{}},{"jsonrpc":"2.0","id":2,"result":{"tools":[{"name":"write_x"},{"name":"read_y"}]}}]"#;
        let out = text(filter(msg, &only_read));
        assert_eq!(
            out,
            r#"[{"jsonrpc":"2.0","id":1,"result":{}},{"jsonrpc":"2.0","id":2,"result":{"tools":[{"name":"read_y"}]}}]"#
        );
    }

    #[test]
    fn cached_lists_become_private() {
        let msg = br#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"read_x"}],"ttlMs":60000,"cacheScope":"public"}}"#;
        let out = text(filter(msg, &only_read));
        assert_eq!(
            out,
            r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"read_x"}],"ttlMs":60000,"cacheScope":"private"}}"#
        );
    }
}
