//! `docs/grafana-dashboard.json` stays true to the proxy: it is a Grafana
//! dashboard (JSON model, a Prometheus data-source variable that every panel
//! uses), and every metric its PromQL names is one a running proxy exports
//! (read from its `/metrics` with a Prometheus text-format parser).

use std::collections::BTreeSet;

use prometheus_parse::{LineInfo, SampleType};
use serde_json::Value;

use crate::common::{
    MCP_ACCEPT, NodeUpstream, Proxy, admin_url, free_port, initialize_body, root, simple_config,
    with_admin,
};
use crate::oauth_client::{http, tokens};

fn dashboard() -> Value {
    let text = std::fs::read_to_string(root().join("docs/grafana-dashboard.json")).unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("the dashboard is not JSON: {e}"))
}

/// Every series name the exposition can hold: the samples it has, and for each
/// declared family the names its type gives (a counter with no sample yet too).
fn exported_names(exposition: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in exposition.lines() {
        match LineInfo::parse(line) {
            LineInfo::Sample { metric_name, .. } => {
                names.insert(metric_name.to_string());
            }
            LineInfo::Type {
                metric_name,
                metric_alias,
                sample_type,
            } => match sample_type {
                SampleType::Counter => {
                    let base = metric_name.trim_end_matches("_total");
                    names.insert(format!("{base}_total"));
                }
                SampleType::Histogram => {
                    let base = metric_alias.unwrap_or(metric_name);
                    for suffix in ["_bucket", "_sum", "_count"] {
                        names.insert(format!("{base}{suffix}"));
                    }
                }
                SampleType::Gauge => {
                    names.insert(metric_name);
                }
                // Other types (info) by their samples.
                _ => {}
            },
            _ => {}
        }
    }
    names
}

/// Keywords and aggregation operators (which may be followed by `by` rather than `(`).
const KEYWORDS: [&str; 26] = [
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "and",
    "or",
    "unless",
    "offset",
    "inf",
    "nan",
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "limitk",
];

/// The metric names a PromQL expression reads: identifiers that are not
/// functions (followed by `(`), keywords, label names or values (inside `{}`),
/// grouping labels (after `by`/`without`/`on`/`ignoring`), durations (inside
/// `[]`), strings or `$variables`.
fn metric_names(expr: &str) -> Vec<String> {
    let chars: Vec<char> = expr.chars().collect();
    let mut names = Vec::new();
    let (mut i, mut braces, mut brackets) = (0, 0, 0);
    let mut grouping = false;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '"' | '\'' => {
                i += 1;
                while i < chars.len() && chars[i] != c {
                    i += if chars[i] == '\\' { 2 } else { 1 };
                }
            }
            '{' => braces += 1,
            '}' => braces -= 1,
            '[' => brackets += 1,
            ']' => brackets -= 1,
            ')' => grouping = false,
            // A variable, or a number or duration (`0.99`, `5m`, `1e3`).
            c if c == '$' || c.is_ascii_digit() => {
                while i + 1 < chars.len()
                    && (chars[i + 1].is_alphanumeric() || matches!(chars[i + 1], '_' | '.'))
                {
                    i += 1;
                }
            }
            c if c.is_ascii_alphabetic() || c == '_' || c == ':' => {
                let start = i;
                while i + 1 < chars.len()
                    && (chars[i + 1].is_ascii_alphanumeric()
                        || chars[i + 1] == '_'
                        || chars[i + 1] == ':')
                {
                    i += 1;
                }
                let word: String = chars[start..=i].iter().collect();
                let next = chars[i + 1..].iter().find(|c| !c.is_whitespace());
                let lower = word.to_ascii_lowercase();
                if matches!(lower.as_str(), "by" | "without" | "on" | "ignoring") {
                    grouping = true;
                } else if braces == 0
                    && brackets == 0
                    && !grouping
                    && next != Some(&'(')
                    && !KEYWORDS.contains(&lower.as_str())
                {
                    names.push(word);
                }
            }
            _ => {}
        }
        i += 1;
    }
    names
}

#[test]
fn promql_metric_names_are_told_from_functions_labels_and_variables() {
    assert_eq!(
        metric_names(
            r#"histogram_quantile(0.99, sum by (route, le) (rate(a_bucket{route=~"$route",x="y{"}[$__rate_interval]))) / on (route) b_total offset 5m"#
        ),
        ["a_bucket", "b_total"]
    );
    assert_eq!(metric_names("max(up) * 1000"), ["up"]);
}

/// Every panel, rows' nested panels included.
fn panels(d: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for p in d["panels"].as_array().expect("panels") {
        out.push(p);
        if let Some(nested) = p["panels"].as_array() {
            out.extend(nested);
        }
    }
    out
}

#[test]
fn the_dashboard_is_a_grafana_json_model_with_a_prometheus_data_source_variable() {
    let d = dashboard();
    let version = d["schemaVersion"].as_u64().expect("schemaVersion");
    assert!((36..=41).contains(&version), "schemaVersion {version}");
    assert!(d["title"].as_str().is_some_and(|t| !t.is_empty()));
    assert!(
        d["uid"]
            .as_str()
            .is_some_and(|u| !u.is_empty() && u.len() <= 40)
    );
    let variables = d["templating"]["list"].as_array().expect("templating.list");
    let source = variables
        .iter()
        .find(|v| v["type"] == "datasource")
        .expect("a data-source variable");
    assert_eq!(source["query"], "prometheus");
    let uses = format!("${{{}}}", source["name"].as_str().unwrap());

    let mut ids = BTreeSet::new();
    let mut queries = 0;
    for p in panels(&d) {
        let title = p["title"].as_str().unwrap_or_default();
        assert!(
            ids.insert(p["id"].as_u64().expect("id")),
            "{title}: id used twice"
        );
        let g = &p["gridPos"];
        let (x, w) = (g["x"].as_u64().unwrap(), g["w"].as_u64().unwrap());
        assert!(x + w <= 24 && g["h"].as_u64().unwrap() > 0, "{title}: {g}");
        if p["type"] == "row" {
            continue;
        }
        assert_eq!(p["datasource"]["uid"], uses.as_str(), "{title}");
        let targets = p["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{title}: no query");
        for t in targets {
            assert_eq!(t["datasource"]["uid"], uses.as_str(), "{title}");
            assert!(t["expr"].as_str().is_some_and(|e| !e.is_empty()), "{title}");
            queries += 1;
        }
    }
    assert!(queries >= 10, "{queries} queries");
}

/// `notes` in front of an event stream, with scopes; `down` in front of nothing.
const ROUTES: &str = r#"    scopes:
      "notes:read": ["echo"]
      "notes:write": ["write_note"]
    default_scopes: ["notes:read"]
  - name: down
    path: /down/mcp
    upstream: "http://127.0.0.1:9/mcp"
"#;

/// Enough traffic for every metric family to have a sample: a request, an
/// event stream, a policy refusal, an upstream error.
async fn exercise(proxy: &Proxy) {
    let notes = tokens(proxy, &[]).await;
    let mut stream = http()
        .get(proxy.url("/notes/mcp?count=1&interval_ms=10"))
        .bearer_auth(&notes.access)
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    while stream.chunk().await.unwrap().is_some() {}
    let call = serde_json::json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": "write_note", "arguments": {}}});
    let res = http()
        .post(proxy.url("/notes/mcp"))
        .bearer_auth(&notes.access)
        .header("accept", MCP_ACCEPT)
        .json(&call)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403, "a step-up refusal");
    let down = tokens(proxy, &[("resource", &proxy.url("/down/mcp"))]).await;
    let res = http()
        .post(proxy.url("/down/mcp"))
        .bearer_auth(&down.access)
        .header("accept", MCP_ACCEPT)
        .json(&initialize_body())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 502, "an upstream error");
}

#[tokio::test]
async fn every_metric_the_dashboard_reads_is_one_the_proxy_exports() {
    let upstream = NodeUpstream::start(&[]);
    let proxy = Proxy::start(|port, dir| {
        with_admin(
            &simple_config(port, dir, ROUTES, &upstream.url("/_sse")),
            free_port(),
        )
    })
    .await;
    exercise(&proxy).await;
    let exposition = reqwest::get(admin_url(&proxy, "/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let exported = exported_names(&exposition);
    assert!(
        exported.contains("mcp_oauth_proxy_http_requests_total")
            && exported.contains("mcp_oauth_proxy_http_request_duration_seconds_bucket")
            && exported.contains("mcp_oauth_proxy_build_info"),
        "{exported:?}"
    );

    let d = dashboard();
    let mut expressions: Vec<String> = panels(&d)
        .iter()
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .filter_map(|t| t["expr"].as_str().map(str::to_string))
        .collect();
    // A variable's `label_values(METRIC, label)` reads METRIC.
    for v in d["templating"]["list"].as_array().unwrap() {
        if let Some(q) = v["definition"].as_str() {
            let metric = q
                .strip_prefix("label_values(")
                .and_then(|rest| rest.split(',').next())
                .unwrap_or_else(|| panic!("a variable query other than label_values: {q}"));
            expressions.push(metric.trim().to_string());
        }
    }
    let mut read = BTreeSet::new();
    for expr in &expressions {
        let names = metric_names(expr);
        assert!(!names.is_empty(), "{expr}: reads no metric");
        for name in names {
            assert!(
                exported.contains(&name),
                "{expr}: {name} is not exported; the proxy exports {exported:#?}"
            );
            read.insert(name);
        }
    }
    // And the dashboard shows every family the proxy exports.
    let unread: Vec<_> = exported
        .iter()
        .filter(|n| !n.ends_with("_sum") && !n.ends_with("_count"))
        .filter(|n| !read.contains(*n))
        .collect();
    assert!(
        unread.is_empty(),
        "exported but not on the dashboard: {unread:?}"
    );
}
