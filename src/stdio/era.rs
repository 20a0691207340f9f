//! The 2026-07-28 ("modern") revision on a stdio route: what a modern request
//! says of itself, the era of a child, and the rewriting that lets a modern
//! client use a legacy child (one that needs `initialize`). Pure: bytes in,
//! bytes out; `modern.rs` does the I/O.
//!
//! A modern request carries its protocol version in `MCP-Protocol-Version` and
//! in `params._meta["io.modelcontextprotocol/protocolVersion"]`; no session, no
//! `initialize`. A legacy child is driven the way a dual-era client drives it
//! (MCP 2026-07-28, stdio: Backward Compatibility): the proxy probes with
//! `server/discover`, and on anything but a modern answer initializes it
//! itself; it then answers `server/discover` from the `initialize` result,
//! gives results the fields the modern revision requires, and turns the
//! child's requests to the client into `input_required` results (MRTR).

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

/// The modern revisions the proxy serves on a stdio route.
pub const MODERN_VERSIONS: &[&str] = &["2026-07-28"];
/// The revisions a client reaches with `initialize` (named in -32022's `supported`).
const LEGACY_VERSIONS: &[&str] = &["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];
/// What the proxy asks a legacy child for when it initializes it.
const LEGACY_VERSION: &str = "2025-11-25";
/// The `_meta` keys of the modern revision, which a legacy child does not know.
const MODERN_META_PREFIX: &str = "io.modelcontextprotocol/";
const VERSION_KEY: &str = "io.modelcontextprotocol/protocolVersion";
const CAPABILITIES_KEY: &str = "io.modelcontextprotocol/clientCapabilities";
const CLIENT_INFO_KEY: &str = "io.modelcontextprotocol/clientInfo";
const SERVER_INFO_KEY: &str = "io.modelcontextprotocol/serverInfo";

/// MCP's `UnsupportedProtocolVersionError`.
pub const UNSUPPORTED_PROTOCOL_VERSION: i64 = -32022;
/// MCP's `MissingRequiredClientCapabilityError`.
const MISSING_REQUIRED_CLIENT_CAPABILITY: i64 = -32021;

/// Why a modern request is refused before any process sees it.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// `MCP-Protocol-Version` and the body's `_meta` disagree, or one is missing.
    #[error("Header mismatch: {0}")]
    Mismatch(&'static str),
    /// `_meta` lacks what every request of the revision carries.
    #[error("Invalid params: {0}")]
    InvalidMeta(&'static str),
    #[error("Unsupported protocol version")]
    Unsupported { requested: Box<str> },
}

/// Every revision a stdio route serves: the modern ones per request, the
/// others through `initialize` (`server/discover` and -32022 say the same).
pub fn supported() -> Vec<&'static str> {
    MODERN_VERSIONS
        .iter()
        .chain(LEGACY_VERSIONS)
        .copied()
        .collect()
}

impl Refusal {
    /// The `data` of the error: for -32022, what the route supports.
    pub fn data(&self) -> Option<Value> {
        match self {
            Refusal::Mismatch(_) | Refusal::InvalidMeta(_) => None,
            Refusal::Unsupported { requested } => Some(json!({
                "supported": supported(),
                "requested": requested,
            })),
        }
    }
}

/// Which of the mirror headers a request has (`Mcp-Method`, `Mcp-Name`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Mirrors {
    pub method: bool,
    pub name: bool,
}

/// A modern request, as far as the proxy reads it.
#[derive(Debug, Clone)]
pub struct ModernRequest {
    /// The request's id as the client wrote it; `None` for a notification.
    pub id: Option<Box<RawValue>>,
    /// Empty for an answer (a message without a method).
    pub method: String,
    /// `params.name` or `params.uri` (what `Mcp-Name` mirrors).
    pub name: Option<String>,
    /// `params._meta`, for the probe and the `initialize` the proxy sends.
    pub meta: Map<String, Value>,
    /// An MRTR retry: `params.requestState` and `params.inputResponses` (raw).
    pub request_state: Option<String>,
    pub input_responses: HashMap<String, Box<RawValue>>,
}

impl ModernRequest {
    /// The client declared the capability a request from the server needs
    /// (`sampling`, `elicitation`, `roots`); other requests need none.
    pub fn declares_for(&self, method: &str) -> bool {
        let Some(capability) = capability_for(method) else {
            return true;
        };
        self.meta
            .get(CAPABILITIES_KEY)
            .and_then(|c| c.get(capability))
            .is_some()
    }
}

/// The capability a request from the server to the client needs.
fn capability_for(method: &str) -> Option<&'static str> {
    match method {
        "sampling/createMessage" => Some("sampling"),
        "elicitation/create" => Some("elicitation"),
        "roots/list" => Some("roots"),
        _ => None,
    }
}

/// The requests on which the modern revision lets a server answer `input_required`.
pub fn takes_input(method: &str) -> bool {
    matches!(method, "tools/call" | "prompts/get" | "resources/read")
}

/// Methods this revision removed: a legacy child still knows them, so the
/// bridge answers for it (-32601, HTTP 404).
pub fn removed(method: &str) -> bool {
    matches!(
        method,
        "initialize"
            | "ping"
            | "logging/setLevel"
            | "resources/subscribe"
            | "resources/unsubscribe"
    )
}

/// The HTTP status of a modern answer: the revision's errors that say the
/// request itself was wrong are 400, an unknown method 404, the rest 200.
pub fn status_of(answer: &[u8]) -> u16 {
    #[derive(serde::Deserialize)]
    struct Answer {
        error: Option<Code>,
    }
    #[derive(serde::Deserialize)]
    struct Code {
        code: i64,
    }
    match serde_json::from_slice::<Answer>(answer) {
        Ok(Answer {
            error: Some(Code { code }),
        }) => match code {
            crate::mcp::jsonrpc::METHOD_NOT_FOUND => 404,
            UNSUPPORTED_PROTOCOL_VERSION
            | MISSING_REQUIRED_CLIENT_CAPABILITY
            | crate::mcp::jsonrpc::HEADER_MISMATCH => 400,
            _ => 200,
        },
        _ => 200,
    }
}

/// The answer to a removed method.
pub fn method_not_found(id: Option<&RawValue>, method: &str) -> Vec<u8> {
    crate::mcp::jsonrpc::error_response(
        id,
        crate::mcp::jsonrpc::METHOD_NOT_FOUND,
        &format!(
            "Method not found: {} is not part of the 2026-07-28 revision",
            crate::mcp::inspect::shown(method)
        ),
    )
    .into_bytes()
}

/// Results that must say how long they may be cached (`CacheableResult`).
fn cacheable(method: &str) -> bool {
    matches!(
        method,
        "server/discover"
            | "tools/list"
            | "prompts/list"
            | "resources/list"
            | "resources/templates/list"
            | "resources/read"
    )
}

/// Reads a POST without a session: `Ok(None)` if it is not a modern request
/// (a legacy client's), `Ok(Some)` if it is, `Err` if it is one that is refused.
/// `header` is `MCP-Protocol-Version`.
pub fn modern_request(
    header: Option<&str>,
    mirrors: Mirrors,
    body: &[u8],
) -> Result<Option<ModernRequest>, Refusal> {
    // One pass over the body; the members are read from their raw text (a
    // member of another type is left out, as if absent).
    #[derive(Deserialize)]
    struct Incoming<'a> {
        #[serde(borrow, default, deserialize_with = "super::routing::present")]
        id: Option<&'a RawValue>,
        #[serde(borrow)]
        method: Option<&'a RawValue>,
        #[serde(borrow)]
        params: Option<&'a RawValue>,
    }
    #[derive(Deserialize, Default)]
    struct Params<'a> {
        #[serde(borrow)]
        name: Option<&'a RawValue>,
        #[serde(borrow)]
        uri: Option<&'a RawValue>,
        #[serde(borrow, rename = "requestState")]
        request_state: Option<&'a RawValue>,
        #[serde(borrow, rename = "_meta")]
        meta: Option<&'a RawValue>,
        #[serde(borrow, rename = "inputResponses")]
        input_responses: Option<&'a RawValue>,
    }
    fn read<'a, T: Deserialize<'a>>(raw: Option<&'a RawValue>) -> Option<T> {
        serde_json::from_str(raw?.get()).ok()
    }
    // Not one message (a batch): not this path's to answer.
    let Ok(msg) = serde_json::from_slice::<Incoming>(body) else {
        return Ok(None);
    };
    let params: Params = msg
        .params
        .filter(|p| p.get().starts_with('{'))
        .and_then(|p| serde_json::from_str(p.get()).ok())
        .unwrap_or_default();
    let meta: Map<String, Value> = read(params.meta).unwrap_or_default();
    let in_body = meta
        .get(VERSION_KEY)
        .map(|v| v.as_str().unwrap_or("").to_string());
    if in_body.is_none() && !header.is_some_and(crate::mcp::jsonrpc::is_modern) {
        return Ok(None);
    }
    let request = ModernRequest {
        id: msg.id.map(ToOwned::to_owned),
        method: read(msg.method).unwrap_or_default(),
        name: read(params.name).or_else(|| read(params.uri)),
        request_state: read(params.request_state),
        input_responses: read(params.input_responses).unwrap_or_default(),
        meta,
    };
    // No header or `_meta` rules are defined for notifications: they are taken (202).
    if request.id.is_none() {
        return Ok(Some(request));
    }
    let meta = &request.meta;
    let Some(in_body) = in_body else {
        return Err(Refusal::InvalidMeta(
            "_meta[\"io.modelcontextprotocol/protocolVersion\"] is required",
        ));
    };
    let Some(header) = header else {
        return Err(Refusal::Mismatch(
            "the MCP-Protocol-Version header is required",
        ));
    };
    // The inspect phase compared those present with the body; here: present at all.
    if !mirrors.method {
        return Err(Refusal::Mismatch("the Mcp-Method header is required"));
    }
    if !mirrors.name && request.name.is_some() && takes_input(&request.method) {
        return Err(Refusal::Mismatch(
            "the Mcp-Name header is required for this method",
        ));
    }
    if header != in_body {
        return Err(Refusal::Mismatch(
            "the MCP-Protocol-Version header does not match the protocol version in _meta",
        ));
    }
    if !MODERN_VERSIONS.contains(&in_body.as_str()) {
        return Err(Refusal::Unsupported {
            requested: in_body.into(),
        });
    }
    if !meta.get(CAPABILITIES_KEY).is_some_and(Value::is_object) {
        return Err(Refusal::InvalidMeta(
            "_meta[\"io.modelcontextprotocol/clientCapabilities\"] is required (an object)",
        ));
    }
    Ok(Some(request))
}

/// The proxy's `server/discover` probe of a new child, with the client's `_meta`.
pub fn probe(meta: &Map<String, Value>) -> Vec<u8> {
    request("server/discover", json!({ "_meta": meta }))
}

/// What a child's answer to the probe says of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Era {
    /// It speaks the modern revision: requests pass through.
    Modern,
    /// Anything else: it needs `initialize` (the proxy bridges).
    Legacy,
}

/// A `DiscoverResult` or a modern error (-32022) means a modern child; any
/// other answer, a legacy one (the rule is the spec's: never one error code).
pub fn verdict(answer: &[u8]) -> Era {
    let v: Value = serde_json::from_slice(answer).unwrap_or(Value::Null);
    let discovered = v
        .pointer("/result/supportedVersions")
        .is_some_and(Value::is_array);
    let modern_error =
        v.pointer("/error/code").and_then(Value::as_i64) == Some(UNSUPPORTED_PROTOCOL_VERSION);
    if discovered || modern_error {
        Era::Modern
    } else {
        Era::Legacy
    }
}

/// The `initialize` the proxy sends a legacy child on behalf of the first
/// modern client: that client's identity and capabilities, plus `sampling`
/// and `elicitation`, which the bridge carries for every client that declares
/// them per request (and refuses with -32021 for one that does not), so that
/// the child offers what needs them whoever came first.
pub fn initialize(meta: &Map<String, Value>) -> Vec<u8> {
    // Only what a child can take: an identity with a name, capabilities that are objects.
    let client_info = meta
        .get(CLIENT_INFO_KEY)
        .filter(|i| i.get("name").is_some_and(Value::is_string))
        .cloned()
        .unwrap_or_else(
            || json!({"name": "mcp-oauth-proxy", "version": env!("CARGO_PKG_VERSION")}),
        );
    let mut capabilities = meta
        .get(CAPABILITIES_KEY)
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    capabilities.retain(|k, v| v.is_object() && k != "extensions");
    for carried in ["sampling", "elicitation"] {
        capabilities.entry(carried).or_insert_with(|| json!({}));
    }
    request(
        "initialize",
        json!({
            "protocolVersion": LEGACY_VERSION,
            "capabilities": capabilities,
            "clientInfo": client_info,
        }),
    )
}

pub const INITIALIZED: &[u8] = br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;

fn request(method: &str, params: Value) -> Vec<u8> {
    // The id is the routing's to choose: this one is replaced.
    json!({"jsonrpc": "2.0", "id": 0, "method": method, "params": params})
        .to_string()
        .into_bytes()
}

/// The answer to `server/discover` for a legacy child, from its `initialize` result.
pub fn discover(id: Option<&RawValue>, init: &RawValue) -> Vec<u8> {
    let init: Value = serde_json::from_str(init.get()).unwrap_or(Value::Null);
    // 2025-11-25's `tasks` is an extension now, and the bridge does not carry it.
    let mut capabilities = init
        .get("capabilities")
        .cloned()
        .unwrap_or_else(|| json!({}));
    if let Some(c) = capabilities.as_object_mut() {
        c.remove("tasks");
    }
    let mut result = json!({
        "resultType": "complete",
        "supportedVersions": supported(),
        "capabilities": capabilities,
        "ttlMs": 0,
        "cacheScope": "private",
    });
    if let Some(info) = init.get("serverInfo") {
        result["_meta"] = json!({ SERVER_INFO_KEY: info });
    }
    if let Some(instructions) = init.get("instructions").filter(|i| i.is_string()) {
        result["instructions"] = instructions.clone();
    }
    answer(id, result)
}

fn answer(id: Option<&RawValue>, result: Value) -> Vec<u8> {
    crate::mcp::jsonrpc::result_response(id, &result.to_string()).into_bytes()
}

/// An object's members in their order, the values as they were written.
struct Members<'a>(Vec<(String, &'a RawValue)>);

impl<'de: 'a, 'a> Deserialize<'de> for Members<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for Visitor<'a> {
            type Value = Members<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<M: serde::de::MapAccess<'de>>(
                self,
                mut m: M,
            ) -> Result<Members<'a>, M::Error> {
                let mut members = Vec::new();
                while let Some((k, v)) = m.next_entry::<String, &'a RawValue>()? {
                    members.push((k, v));
                }
                Ok(Members(members))
            }
        }
        d.deserialize_map(Visitor(std::marker::PhantomData))
    }
}

impl Members<'_> {
    fn parse(text: &str) -> Option<Members<'_>> {
        serde_json::from_str(text).ok()
    }

    fn has(&self, key: &str) -> bool {
        self.0.iter().any(|(k, _)| k == key)
    }

    /// The object again, with `edit` deciding each member: kept as it was
    /// (`Some(None)`), replaced (`Some(Some(text))`), or left out (`None`).
    fn rewrite(&self, mut edit: impl FnMut(&str, &RawValue) -> Option<Option<String>>) -> String {
        let mut out = String::from("{");
        for (k, v) in &self.0 {
            let Some(replaced) = edit(k, v) else { continue };
            if out.len() > 1 {
                out.push(',');
            }
            out.push_str(&serde_json::to_string(k).unwrap_or_default());
            out.push(':');
            out.push_str(replaced.as_deref().unwrap_or(v.get()));
        }
        out.push('}');
        out
    }
}

/// A modern request as a legacy child reads it: without the modern `_meta`
/// keys and the MRTR members (the proxy answers those itself). Everything else
/// is passed as the client wrote it (order, numbers).
pub fn to_legacy(body: &[u8]) -> Vec<u8> {
    let Some(msg) = std::str::from_utf8(body).ok().and_then(Members::parse) else {
        return body.to_vec();
    };
    let legacy_meta = |meta: &RawValue| -> Option<Option<String>> {
        let Some(members) = Members::parse(meta.get()) else {
            return Some(None);
        };
        let kept = members.rewrite(|k, _| (!k.starts_with(MODERN_META_PREFIX)).then_some(None));
        (kept != "{}").then_some(Some(kept))
    };
    let legacy_params = |params: &RawValue| -> Option<String> {
        let members = Members::parse(params.get())?;
        Some(members.rewrite(|k, v| match k {
            "requestState" | "inputResponses" => None,
            "_meta" => legacy_meta(v),
            _ => Some(None),
        }))
    };
    msg.rewrite(|k, v| match k {
        "params" => Some(legacy_params(v)),
        _ => Some(None),
    })
    .into_bytes()
}

/// A legacy child's answer as the modern revision words it: `resultType`, and
/// for cacheable results `ttlMs: 0` and `cacheScope: "private"` (the proxy
/// cannot know for how long, and the answer came from this user's process).
/// The members are inserted at the start of the result; the rest is passed
/// byte for byte.
pub fn to_modern_result(answer: &[u8], method: &str) -> Vec<u8> {
    #[derive(Deserialize)]
    struct Answer<'a> {
        #[serde(borrow)]
        result: Option<&'a RawValue>,
    }
    let Some(result) = serde_json::from_slice::<Answer>(answer)
        .ok()
        .and_then(|a| a.result)
    else {
        return answer.to_vec();
    };
    let Some(members) = Members::parse(result.get()) else {
        return answer.to_vec();
    };
    let mut added = Vec::new();
    if !members.has("resultType") {
        added.push(r#""resultType":"complete""#);
    }
    if cacheable(method) {
        if !members.has("ttlMs") {
            added.push(r#""ttlMs":0"#);
        }
        if !members.has("cacheScope") {
            added.push(r#""cacheScope":"private""#);
        }
    }
    // The result's text lies inside the answer (borrowed): after its `{` go the new members.
    let Some(at) = (result.get().as_ptr() as usize)
        .checked_sub(answer.as_ptr() as usize)
        .map(|start| start + 1)
        .filter(|at| *at <= answer.len())
    else {
        return answer.to_vec();
    };
    if added.is_empty() {
        return answer.to_vec();
    }
    let mut out = Vec::with_capacity(answer.len() + 64);
    out.extend_from_slice(&answer[..at]);
    out.extend_from_slice(added.join(",").as_bytes());
    if !members.0.is_empty() {
        out.push(b',');
    }
    out.extend_from_slice(&answer[at..]);
    out
}

/// What a `subscriptions/listen` stream carries: what the client asked for
/// that the child can send (`listChanged`, `subscribe` in its capabilities).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    pub tools: bool,
    pub prompts: bool,
    pub resources: bool,
    pub uris: Vec<String>,
}

pub fn listen_filter(body: &[u8], init: &RawValue) -> Filter {
    let msg: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let init: Value = serde_json::from_str(init.get()).unwrap_or(Value::Null);
    let asked = |k: &str| msg.pointer(&format!("/params/notifications/{k}")) == Some(&json!(true));
    let can = |p: &str| init.pointer(&format!("/capabilities/{p}")) == Some(&json!(true));
    let uris = match msg.pointer("/params/notifications/resourceSubscriptions") {
        Some(Value::Array(uris)) if can("resources/subscribe") => uris
            .iter()
            .filter_map(Value::as_str)
            .take(MAX_LISTEN_URIS)
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    };
    Filter {
        tools: asked("toolsListChanged") && can("tools/listChanged"),
        prompts: asked("promptsListChanged") && can("prompts/listChanged"),
        resources: asked("resourcesListChanged") && can("resources/listChanged"),
        uris,
    }
}

/// Resources one `subscriptions/listen` may follow.
const MAX_LISTEN_URIS: usize = 100;

/// The first message of a listen stream: what it will carry.
pub fn acknowledged(id: &RawValue, f: &Filter) -> Vec<u8> {
    let mut notifications = Map::new();
    for (key, on) in [
        ("toolsListChanged", f.tools),
        ("promptsListChanged", f.prompts),
        ("resourcesListChanged", f.resources),
    ] {
        if on {
            notifications.insert(key.into(), json!(true));
        }
    }
    if !f.uris.is_empty() {
        notifications.insert("resourceSubscriptions".into(), json!(f.uris));
    }
    let id: Value = serde_json::from_str(id.get()).unwrap_or(Value::Null);
    json!({"jsonrpc": "2.0", "method": "notifications/subscriptions/acknowledged",
           "params": {"_meta": {SUBSCRIPTION_KEY: id}, "notifications": notifications}})
    .to_string()
    .into_bytes()
}

const SUBSCRIPTION_KEY: &str = "io.modelcontextprotocol/subscriptionId";

/// A legacy child's notification for the listen stream `id`, if its filter takes it.
pub fn for_listener(notification: &[u8], f: &Filter, id: &RawValue) -> Option<Vec<u8>> {
    let mut msg: Value = serde_json::from_slice(notification).ok()?;
    let wanted = match msg.get("method")?.as_str()? {
        "notifications/tools/list_changed" => f.tools,
        "notifications/prompts/list_changed" => f.prompts,
        "notifications/resources/list_changed" => f.resources,
        "notifications/resources/updated" => msg
            .pointer("/params/uri")
            .and_then(Value::as_str)
            .is_some_and(|uri| f.uris.iter().any(|u| u == uri)),
        _ => false,
    };
    if !wanted {
        return None;
    }
    let id: Value = serde_json::from_str(id.get()).ok()?;
    let params = msg
        .as_object_mut()?
        .entry("params")
        .or_insert_with(|| json!({}));
    let meta = params
        .as_object_mut()?
        .entry("_meta")
        .or_insert_with(|| json!({}));
    meta.as_object_mut()?.insert(SUBSCRIPTION_KEY.into(), id);
    Some(msg.to_string().into_bytes())
}

/// The last message of a listen stream the proxy ends (the process stopped).
pub fn listen_closed(id: &RawValue) -> Vec<u8> {
    let sub: Value = serde_json::from_str(id.get()).unwrap_or(Value::Null);
    answer(
        Some(id),
        json!({"resultType": "complete", "_meta": {SUBSCRIPTION_KEY: sub}}),
    )
}

/// The proxy's `resources/subscribe` for a listen stream's resource.
pub fn subscribe(uri: &str) -> Vec<u8> {
    request("resources/subscribe", json!({ "uri": uri }))
}

/// A request from a legacy child, read for MRTR: its id and params as written.
#[derive(Debug)]
pub struct ServerRequest {
    /// The child's id, as JSON text (the routing's key for it).
    pub id: Box<RawValue>,
    pub method: String,
    pub params: Option<Box<RawValue>>,
}

pub fn server_request(msg: &[u8]) -> Option<ServerRequest> {
    #[derive(Deserialize)]
    struct Request {
        id: Box<RawValue>,
        method: String,
        params: Option<Box<RawValue>>,
    }
    let r: Request = serde_json::from_slice(msg).ok()?;
    Some(ServerRequest {
        id: r.id,
        method: r.method,
        params: r.params,
    })
}

/// The `inputRequests` key of a child's request (its id, as a string).
pub fn input_key(request: &ServerRequest) -> String {
    serde_json::from_str::<String>(request.id.get())
        .unwrap_or_else(|_| request.id.get().to_string())
}

/// The `input_required` answer to the client's request `id`, asking for `request`.
pub fn input_required(id: Option<&RawValue>, request: &ServerRequest, state: &str) -> Vec<u8> {
    let key = serde_json::to_string(&input_key(request)).unwrap_or_default();
    let method = serde_json::to_string(&request.method).unwrap_or_default();
    let params = request
        .params
        .as_ref()
        .map(|p| format!(r#","params":{}"#, p.get()))
        .unwrap_or_default();
    let state = serde_json::to_string(state).unwrap_or_default();
    let result = format!(
        r#"{{"resultType":"input_required","inputRequests":{{{key}:{{"method":{method}{params}}}}},"requestState":{state}}}"#
    );
    crate::mcp::jsonrpc::result_response(id, &result).into_bytes()
}

/// The answer for the child's request: the client's input for it, as written;
/// `None` if the retry does not carry it.
pub fn input_answer(
    request: &ServerRequest,
    responses: &HashMap<String, Box<RawValue>>,
) -> Option<Vec<u8>> {
    let result = responses.get(&input_key(request))?;
    Some(crate::mcp::jsonrpc::result_response(Some(&request.id), result.get()).into_bytes())
}

/// The answer to the client's request when the child needs a capability the
/// client did not declare (MCP's `MissingRequiredClientCapabilityError`).
pub fn missing_capability(id: Option<&RawValue>, method: &str) -> Vec<u8> {
    let capability = capability_for(method).unwrap_or("sampling");
    crate::mcp::jsonrpc::error_response_with(
        id,
        MISSING_REQUIRED_CLIENT_CAPABILITY,
        &format!("the server requires the {capability} capability for this request"),
        Some(&json!({"requiredCapabilities": {capability: {}}}).to_string()),
    )
    .into_bytes()
}

/// The answer to a retry whose `requestState` names no waiting request of
/// this user and client (unknown, expired, used, or another request's).
pub fn stale_state(id: Option<&RawValue>) -> Vec<u8> {
    crate::mcp::jsonrpc::error_response(
        id,
        crate::mcp::jsonrpc::INVALID_PARAMS,
        "Invalid params: requestState is unknown, expired, already used, or not this request's",
    )
    .into_bytes()
}

/// An error answer for the child's request.
pub fn refuse(request: &ServerRequest, why: &str) -> Vec<u8> {
    crate::mcp::jsonrpc::error_response(Some(&request.id), crate::mcp::jsonrpc::INTERNAL_ERROR, why)
        .into_bytes()
}

/// An empty result for the child's `ping` (the proxy keeps the child company).
pub fn pong(request: &ServerRequest) -> Vec<u8> {
    crate::mcp::jsonrpc::result_response(Some(&request.id), "{}").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(meta_version: Option<&str>) -> Vec<u8> {
        let mut meta = json!({"io.modelcontextprotocol/clientCapabilities": {"sampling": {}}, "progressToken": 7});
        if let Some(v) = meta_version {
            meta["io.modelcontextprotocol/protocolVersion"] = json!(v);
        }
        json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
               "params": {"name": "echo", "arguments": {}, "_meta": meta}})
        .to_string()
        .into_bytes()
    }

    const BOTH: Mirrors = Mirrors {
        method: true,
        name: true,
    };

    #[test]
    fn a_request_is_modern_when_header_or_body_says_so_and_both_must_agree() {
        let modern = Some("2026-07-28");
        let body_modern = body(Some("2026-07-28"));
        for (mirrors, why) in [
            (
                Mirrors {
                    method: false,
                    name: true,
                },
                "Mcp-Method",
            ),
            (
                Mirrors {
                    method: true,
                    name: false,
                },
                "Mcp-Name",
            ),
        ] {
            assert!(
                matches!(modern_request(modern, mirrors, &body_modern), Err(Refusal::Mismatch(m)) if m.contains(why)),
                "{why}"
            );
        }
        assert!(matches!(
            modern_request(Some("2025-06-18"), BOTH, &body(None)),
            Ok(None)
        ));
        assert!(matches!(modern_request(None, BOTH, &body(None)), Ok(None)));
        let m = modern_request(Some("2026-07-28"), BOTH, &body(Some("2026-07-28")))
            .unwrap()
            .unwrap();
        assert_eq!(
            (m.method.as_str(), m.name.as_deref()),
            ("tools/call", Some("echo"))
        );
        assert!(m.declares_for("sampling/createMessage"));
        assert!(!m.declares_for("elicitation/create"));
        assert!(m.declares_for("ping"));
        assert!(matches!(
            modern_request(Some("2026-07-28"), BOTH, &body(None)),
            Err(Refusal::InvalidMeta(_))
        ));
        let mut no_capabilities: Value = serde_json::from_slice(&body(Some("2026-07-28"))).unwrap();
        no_capabilities["params"]["_meta"]
            .as_object_mut()
            .unwrap()
            .remove(CAPABILITIES_KEY);
        assert!(matches!(
            modern_request(
                Some("2026-07-28"),
                BOTH,
                no_capabilities.to_string().as_bytes()
            ),
            Err(Refusal::InvalidMeta(_))
        ));
        assert!(matches!(
            modern_request(None, BOTH, &body(Some("2026-07-28"))),
            Err(Refusal::Mismatch(_))
        ));
        assert!(matches!(
            modern_request(Some("2025-11-25"), BOTH, &body(Some("2026-07-28"))),
            Err(Refusal::Mismatch(_))
        ));
        let unsupported =
            modern_request(Some("2099-01-01"), BOTH, &body(Some("2099-01-01"))).unwrap_err();
        assert_eq!(
            unsupported.data().unwrap()["supported"][0],
            json!("2026-07-28")
        );
    }

    #[test]
    fn the_probe_verdict_is_modern_only_on_a_modern_answer() {
        assert_eq!(
            verdict(br#"{"jsonrpc":"2.0","id":1,"result":{"supportedVersions":["2026-07-28"],"capabilities":{}}}"#),
            Era::Modern
        );
        assert_eq!(
            verdict(br#"{"jsonrpc":"2.0","id":1,"error":{"code":-32022,"message":"x","data":{"supported":["2027-01-01"]}}}"#),
            Era::Modern
        );
        for legacy in [
            &br#"{"jsonrpc":"2.0","id":1,"error":{"code":-32601,"message":"Method not found"}}"#[..],
            br#"{"jsonrpc":"2.0","id":1,"error":{"code":-32602,"message":"x"}}"#,
            br#"{"jsonrpc":"2.0","id":1,"result":{}}"#,
            b"",
        ] {
            assert_eq!(verdict(legacy), Era::Legacy);
        }
    }

    #[test]
    fn the_initialize_for_a_legacy_child_carries_the_clients_capabilities_and_identity() {
        let m = modern_request(Some("2026-07-28"), BOTH, &body(Some("2026-07-28")))
            .unwrap()
            .unwrap();
        let init: Value = serde_json::from_slice(&initialize(&m.meta)).unwrap();
        assert_eq!(init["params"]["protocolVersion"], json!(LEGACY_VERSION));
        assert_eq!(
            init["params"]["capabilities"],
            json!({"sampling": {}, "elicitation": {}}),
            "what the bridge carries, declared or not"
        );
        assert_eq!(
            init["params"]["clientInfo"]["name"],
            json!("mcp-oauth-proxy")
        );
    }

    #[test]
    fn discover_is_answered_from_the_initialize_result() {
        let init = RawValue::from_string(
            r#"{"protocolVersion":"2025-06-18","capabilities":{"tools":{"listChanged":true},"tasks":{"list":{}}},"serverInfo":{"name":"everything","version":"1"},"instructions":"hi"}"#.into(),
        )
        .unwrap();
        let id = RawValue::from_string("\"d\"".into()).unwrap();
        let v: Value = serde_json::from_slice(&discover(Some(&id), &init)).unwrap();
        assert_eq!(v["id"], json!("d"));
        let r = &v["result"];
        assert_eq!(r["supportedVersions"], json!(supported()));
        assert_eq!(r["supportedVersions"][0], json!("2026-07-28"));
        assert_eq!(r["capabilities"], json!({"tools": {"listChanged": true}}));
        assert_eq!(r["_meta"][SERVER_INFO_KEY]["name"], json!("everything"));
        assert_eq!(
            (
                r["resultType"].clone(),
                r["ttlMs"].clone(),
                r["cacheScope"].clone(),
                r["instructions"].clone()
            ),
            (json!("complete"), json!(0), json!("private"), json!("hi"))
        );
    }

    #[test]
    fn a_legacy_child_gets_neither_modern_meta_nor_mrtr_members() {
        let mut b: Value = serde_json::from_slice(&body(Some("2026-07-28"))).unwrap();
        b["params"]["requestState"] = json!("s");
        b["params"]["inputResponses"] = json!({"1": {}});
        let out: Value = serde_json::from_slice(&to_legacy(b.to_string().as_bytes())).unwrap();
        assert_eq!(out["params"]["_meta"], json!({"progressToken": 7}));
        assert!(out["params"].get("requestState").is_none());
        assert!(out["params"].get("inputResponses").is_none());
        assert_eq!(out["params"]["name"], json!("echo"));
        let bare = br#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}"#;
        let out: Value = serde_json::from_slice(&to_legacy(bare)).unwrap();
        assert_eq!(out["params"], json!({}));
        // The rest as the client wrote it: member order, numbers no f64 can hold.
        let exact = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"n","arguments":{"z":1,"a":123456789012345678901234567890,"f":1.50},"_meta":{"progressToken":1,"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}"#;
        assert_eq!(
            String::from_utf8(to_legacy(exact)).unwrap(),
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"n","arguments":{"z":1,"a":123456789012345678901234567890,"f":1.50},"_meta":{"progressToken":1}}}"#
        );
    }

    #[test]
    fn legacy_results_get_the_fields_the_modern_revision_requires() {
        let list: Value = serde_json::from_slice(&to_modern_result(
            br#"{"jsonrpc":"2.0","id":1,"result":{"tools":[]}}"#,
            "tools/list",
        ))
        .unwrap();
        assert_eq!(
            list["result"],
            json!({"tools": [], "resultType": "complete", "ttlMs": 0, "cacheScope": "private"})
        );
        let call: Value = serde_json::from_slice(&to_modern_result(
            br#"{"jsonrpc":"2.0","id":1,"result":{"content":[],"ttlMs":5}}"#,
            "tools/call",
        ))
        .unwrap();
        assert_eq!(call["result"]["resultType"], json!("complete"));
        assert!(call["result"].get("cacheScope").is_none());
        let error = br#"{"jsonrpc":"2.0","id":1,"error":{"code":-1,"message":"x"}}"#;
        assert_eq!(to_modern_result(error, "tools/list"), error.to_vec());
        // Inserted at the start of the result; the rest byte for byte.
        assert_eq!(
            String::from_utf8(to_modern_result(br#"{"jsonrpc":"2.0","id":1,"result": {"tools":[{"name":"b","inputSchema":{"properties":{"z":{},"a":{}}}}]}}"#, "tools/list")).unwrap(),
            r#"{"jsonrpc":"2.0","id":1,"result": {"resultType":"complete","ttlMs":0,"cacheScope":"private","tools":[{"name":"b","inputSchema":{"properties":{"z":{},"a":{}}}}]}}"#
        );
        assert_eq!(
            String::from_utf8(to_modern_result(br#"{"id":1,"result":{}}"#, "tools/call")).unwrap(),
            r#"{"id":1,"result":{"resultType":"complete"}}"#
        );
    }

    #[test]
    fn a_listen_stream_carries_what_was_asked_and_the_child_can_send_tagged_with_its_id() {
        let init = RawValue::from_string(
            r#"{"capabilities":{"tools":{"listChanged":true},"prompts":{},"resources":{"subscribe":true}}}"#.into(),
        )
        .unwrap();
        let body = br#"{"jsonrpc":"2.0","id":"l","method":"subscriptions/listen","params":{"notifications":{"toolsListChanged":true,"promptsListChanged":true,"resourceSubscriptions":["a://1"]}}}"#;
        let f = listen_filter(body, &init);
        assert_eq!(
            f,
            Filter {
                tools: true,
                prompts: false,
                resources: false,
                uris: vec!["a://1".into()]
            },
            "prompts: the child never said listChanged"
        );
        let id = RawValue::from_string("\"l\"".into()).unwrap();
        let ack: Value = serde_json::from_slice(&acknowledged(&id, &f)).unwrap();
        assert_eq!(
            ack["params"],
            json!({"_meta": {SUBSCRIPTION_KEY: "l"}, "notifications": {"toolsListChanged": true, "resourceSubscriptions": ["a://1"]}})
        );
        let tools: Value = serde_json::from_slice(
            &for_listener(
                br#"{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}"#,
                &f,
                &id,
            )
            .unwrap(),
        )
        .unwrap();
        assert_eq!(tools["params"]["_meta"][SUBSCRIPTION_KEY], "l");
        assert!(
            for_listener(
                br#"{"jsonrpc":"2.0","method":"notifications/prompts/list_changed"}"#,
                &f,
                &id
            )
            .is_none()
        );
        assert!(for_listener(br#"{"jsonrpc":"2.0","method":"notifications/resources/updated","params":{"uri":"a://1"}}"#, &f, &id).is_some());
        assert!(for_listener(br#"{"jsonrpc":"2.0","method":"notifications/resources/updated","params":{"uri":"a://2"}}"#, &f, &id).is_none());
        assert!(
            for_listener(
                br#"{"jsonrpc":"2.0","method":"notifications/message","params":{}}"#,
                &f,
                &id
            )
            .is_none()
        );
        let closed: Value = serde_json::from_slice(&listen_closed(&id)).unwrap();
        assert_eq!(
            closed,
            json!({"jsonrpc": "2.0", "id": "l", "result": {"resultType": "complete", "_meta": {SUBSCRIPTION_KEY: "l"}}})
        );
    }

    #[test]
    fn answers_that_say_the_request_was_wrong_have_their_http_status() {
        let e = |code: i64| {
            format!(r#"{{"jsonrpc":"2.0","id":1,"error":{{"code":{code},"message":"m"}}}}"#)
        };
        assert_eq!(status_of(e(-32601).as_bytes()), 404);
        for code in [-32022, -32021, -32020] {
            assert_eq!(status_of(e(code).as_bytes()), 400, "{code}");
        }
        assert_eq!(status_of(e(-32602).as_bytes()), 200);
        assert_eq!(
            status_of(br#"{"jsonrpc":"2.0","id":1,"result":{"error":{"code":-32601}}}"#),
            200
        );
        assert_eq!(status_of(b"junk"), 200);
        let id = RawValue::from_string("4".into()).unwrap();
        assert_eq!(status_of(&method_not_found(Some(&id), "ping")), 404);
        assert!(removed("logging/setLevel") && !removed("tools/call"));
        let missing = missing_capability(Some(&id), "elicitation/create");
        assert_eq!(status_of(&missing), 400);
        let v: Value = serde_json::from_slice(&missing).unwrap();
        assert_eq!(
            v["error"]["data"],
            json!({"requiredCapabilities": {"elicitation": {}}})
        );
        assert_eq!(v["id"], json!(4));
        let stale: Value = serde_json::from_slice(&stale_state(Some(&id))).unwrap();
        assert_eq!(stale["error"]["code"], json!(-32602));
    }

    #[test]
    fn a_childs_request_becomes_an_input_request_and_the_retry_its_answer() {
        let req = server_request(
            br#"{"jsonrpc":"2.0","id":3,"method":"sampling/createMessage","params":{"maxTokens":5}}"#,
        )
        .unwrap();
        let id = RawValue::from_string("9".into()).unwrap();
        let v: Value = serde_json::from_slice(&input_required(Some(&id), &req, "st")).unwrap();
        assert_eq!(v["id"], json!(9));
        assert_eq!(
            v["result"],
            json!({"resultType": "input_required", "requestState": "st",
                   "inputRequests": {"3": {"method": "sampling/createMessage", "params": {"maxTokens": 5}}}})
        );
        let mut responses = HashMap::new();
        responses.insert(
            "3".to_string(),
            RawValue::from_string(r#"{"role":"assistant","n":1.50}"#.into()).unwrap(),
        );
        assert_eq!(
            String::from_utf8(input_answer(&req, &responses).unwrap()).unwrap(),
            r#"{"jsonrpc":"2.0","id":3,"result":{"role":"assistant","n":1.50}}"#
        );
        assert!(input_answer(&req, &HashMap::new()).is_none());
        // The child's id comes back exactly as it wrote it.
        let escaped =
            server_request(br#"{"jsonrpc":"2.0","id":"\u0061","method":"ping"}"#).unwrap();
        assert_eq!(escaped.id.get(), r#""\u0061""#);
        assert!(
            String::from_utf8(refuse(&escaped, "no"))
                .unwrap()
                .contains(r#""id":"\u0061""#)
        );
        let named =
            server_request(br#"{"jsonrpc":"2.0","id":"abc","method":"roots/list"}"#).unwrap();
        assert_eq!(input_key(&named), "abc");
    }
}
