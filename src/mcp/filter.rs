//! Filtering `tools/list` results: tools the token may not use are removed.
//! Only the `tools` array is rewritten; every other member keeps its bytes
//! and order. A message that cannot be read but might carry tools is replaced
//! by a JSON-RPC internal error (fail closed).
//!
//! A list is read in one pass that borrows from the message (members stay raw
//! slices of it, the `tools` array becomes slices of its tools), then each
//! tool's `name` is read, and the rewrite is written once: besides the message
//! itself, only the filtered copy is held.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use bytes::Bytes;
use indexmap::IndexMap;
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};
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

#[derive(Deserialize)]
struct NameOnly<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
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
        let Ok(items) = serde_json::from_slice::<Vec<&RawValue>>(data) else {
            return fail_closed();
        };
        let mut changed = false;
        let mut out: Vec<Cow<[u8]>> = Vec::with_capacity(items.len());
        for item in items {
            let text = item.get().as_bytes();
            match filter_object(text, allows) {
                Ok(None) => out.push(Cow::Borrowed(text)),
                Ok(Some(new)) => {
                    changed = true;
                    out.push(Cow::Owned(new));
                }
                Err(()) => return fail_closed(),
            }
        }
        if !changed {
            return Filtered::Unchanged;
        }
        // What serializing the raw items as an array writes.
        let mut batch = Vec::with_capacity(data.len());
        batch.push(b'[');
        batch.extend_from_slice(&out.join(&b','));
        batch.push(b']');
        return Filtered::Rewritten(Bytes::from(batch));
    }
    match filter_object(data, allows) {
        Ok(None) => Filtered::Unchanged,
        Ok(Some(new)) => Filtered::Rewritten(Bytes::from(new)),
        Err(()) => fail_closed(),
    }
}

/// A JSON object as read: every member keeps its raw text except the one named
/// `S::KEY`, which is read further. A repeated name keeps its first position and
/// its last value.
struct Object<'a, S>(IndexMap<String, Member<'a, S>>);

enum Member<'a, S> {
    Raw(&'a RawValue),
    Read(S),
}

/// The member of an [`Object`] that is read in the same pass, and how.
trait Special<'de>: Sized {
    const KEY: &'static str;
    fn read<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error>;
}

impl<'a, S> Object<'a, S> {
    fn get(&self, key: &str) -> Option<&Member<'a, S>> {
        self.0.get(key)
    }
}

impl<'de, S: Special<'de>> Object<'de, S> {
    fn read_members<A: MapAccess<'de>>(mut map: A) -> Result<Self, A::Error> {
        let mut members = IndexMap::new();
        while let Some(key) = map.next_key::<String>()? {
            let member = if key == S::KEY {
                Member::Read(map.next_value_seed(SpecialSeed::<S>(PhantomData))?)
            } else {
                Member::Raw(map.next_value()?)
            };
            members.insert(key, member);
        }
        Ok(Self(members))
    }
}

struct SpecialSeed<S>(PhantomData<S>);

impl<'de, S: Special<'de>> DeserializeSeed<'de> for SpecialSeed<S> {
    type Value = S;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<S, D::Error> {
        S::read(d)
    }
}

/// A JSON-RPC message: must be an object.
impl<'de, S: Special<'de>> Deserialize<'de> for Object<'de, S> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<S>(PhantomData<S>);
        impl<'de, S: Special<'de>> Visitor<'de> for V<S> {
            type Value = Object<'de, S>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                Object::read_members(map)
            }
        }
        d.deserialize_map(V(PhantomData))
    }
}

/// What a JSON value turned out to be, when only one shape matters.
enum Shape<T> {
    Expected(T),
    /// Some other JSON value (read and skipped).
    Other,
}

/// Accepts any JSON value; `visit_map`/`visit_seq` decide what the expected shape is.
macro_rules! other_values_are_skipped {
    () => {
        fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
            Ok(Shape::Other)
        }
        fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
            Ok(Shape::Other)
        }
        fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
            Ok(Shape::Other)
        }
        fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
            Ok(Shape::Other)
        }
        fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
            Ok(Shape::Other)
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(Shape::Other)
        }
    };
}

/// A message's `result`: a tool list only if it is an object.
type ResultValue<'a> = Shape<Object<'a, ToolsValue<'a>>>;
/// A result's `tools`: readable only if it is an array.
type ToolsValue<'a> = Shape<Vec<&'a RawValue>>;

impl<'de> Special<'de> for ResultValue<'de> {
    const KEY: &'static str = "result";
    fn read<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ResultValue<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                Object::read_members(map).map(Shape::Expected)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Shape::Other)
            }
            other_values_are_skipped!();
        }
        d.deserialize_any(V)
    }
}

impl<'de> Special<'de> for ToolsValue<'de> {
    const KEY: &'static str = "tools";
    fn read<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ToolsValue<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut tools = Vec::with_capacity(seq.size_hint().unwrap_or(0));
                while let Some(tool) = seq.next_element::<&RawValue>()? {
                    tools.push(tool);
                }
                Ok(Shape::Expected(tools))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Shape::Other)
            }
            other_values_are_skipped!();
        }
        d.deserialize_any(V)
    }
}

/// A JSON-RPC message, read down to its result's tools.
type Message<'a> = Object<'a, ResultValue<'a>>;

/// `Ok(None)`: leave the message alone. `Ok(Some)`: its new text. `Err`: unreadable.
fn filter_object(data: &[u8], allows: &dyn Fn(&str) -> bool) -> Result<Option<Vec<u8>>, ()> {
    if !may_carry_tools(data) {
        return Ok(None);
    }
    let message = match serde_json::from_slice::<Message>(data) {
        Ok(m) => m,
        Err(_) => read_by_levels(data)?,
    };
    rewrite(&message, allows)
}

/// The same reading, level by level from raw text (one pass per level): slower, but
/// it takes the valid JSON that the one-pass reader refuses where it reads values
/// itself (numbers beyond `f64`, strings with lone surrogates) and that must not
/// change the outcome (`"result": 1e400` is simply not a tool list).
fn read_by_levels(data: &[u8]) -> Result<Message<'_>, ()> {
    let members: IndexMap<String, &RawValue> = serde_json::from_slice(data).map_err(|_| ())?;
    let mut message = IndexMap::with_capacity(members.len());
    for (key, raw) in members {
        let member = if key == ResultValue::KEY {
            Member::Read(result_by_levels(raw)?)
        } else {
            Member::Raw(raw)
        };
        message.insert(key, member);
    }
    Ok(Object(message))
}

fn result_by_levels(raw: &RawValue) -> Result<ResultValue<'_>, ()> {
    if !raw.get().starts_with('{') {
        return Ok(Shape::Other);
    }
    let members: IndexMap<String, &RawValue> = serde_json::from_str(raw.get()).map_err(|_| ())?;
    let mut result = IndexMap::with_capacity(members.len());
    for (key, raw) in members {
        let member = if key == ToolsValue::KEY {
            Member::Read(serde_json::from_str(raw.get()).map_or(Shape::Other, Shape::Expected))
        } else {
            Member::Raw(raw)
        };
        result.insert(key, member);
    }
    Ok(Shape::Expected(Object(result)))
}

fn rewrite(message: &Message, allows: &dyn Fn(&str) -> bool) -> Result<Option<Vec<u8>>, ()> {
    // Requests and notifications (notifications/tools/list_changed…) are not tool lists.
    if message.get("method").is_some() {
        return Ok(None);
    }
    let Some(Member::Read(Shape::Expected(result))) = message.get(ResultValue::KEY) else {
        return Ok(None);
    };
    let tools = match result.get(ToolsValue::KEY) {
        None => return Ok(None),
        Some(Member::Read(Shape::Expected(tools))) => tools,
        Some(_) => return Err(()),
    };
    let before = tools.len();
    // A tool without a readable name is not shown (fail closed).
    let kept: Vec<&RawValue> = tools
        .iter()
        .copied()
        .filter(|t| serde_json::from_str::<NameOnly>(t.get()).is_ok_and(|n| allows(&n.name)))
        .collect();
    let has_cache_fields = result.get("ttlMs").is_some() || result.get("cacheScope").is_some();
    if kept.len() == before && !has_cache_fields {
        return Ok(None);
    }
    let rewritten = Rewritten {
        message,
        result,
        kept: &kept,
        // The list depends on who asks (2026-07-28 caching fields).
        private: has_cache_fields,
    };
    serde_json::to_vec(&rewritten).map(Some).map_err(|_| ())
}

/// The message with its result's `tools` replaced by `kept` (and `cacheScope` set to
/// `"private"`); every other member as it came, in its place.
struct Rewritten<'r, 'a> {
    message: &'r Message<'a>,
    result: &'r Object<'a, ToolsValue<'a>>,
    kept: &'r [&'a RawValue],
    private: bool,
}

struct RewrittenResult<'r, 'a>(&'r Rewritten<'r, 'a>);

impl Serialize for Rewritten<'_, '_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.message.0.len()))?;
        for (key, member) in &self.message.0 {
            match member {
                Member::Raw(raw) => map.serialize_entry(key, raw)?,
                Member::Read(_) => map.serialize_entry(key, &RewrittenResult(self))?,
            }
        }
        map.end()
    }
}

impl Serialize for RewrittenResult<'_, '_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let Rewritten {
            result,
            kept,
            private,
            ..
        } = self.0;
        let mut map = s.serialize_map(None)?;
        for (key, member) in &result.0 {
            match member {
                Member::Read(_) => map.serialize_entry(key, kept)?,
                Member::Raw(_) if *private && key == "cacheScope" => {
                    map.serialize_entry(key, "private")?
                }
                Member::Raw(raw) => map.serialize_entry(key, raw)?,
            }
        }
        if *private && result.get("cacheScope").is_none() {
            map.serialize_entry("cacheScope", "private")?;
        }
        map.end()
    }
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
