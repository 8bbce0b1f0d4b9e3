//! `GET /openapi.json` against what the server really does.
//!
//! - Routes: the router's routes, read from the source (every `.route(…)`
//!   under `control/src`), are exactly the document's operations; every
//!   documented operation is routed (never the router's fallback 404 or
//!   405), and every method the document leaves out of a documented path
//!   is the fallback 405.
//! - Answers: real requests, at least one success per operation and the
//!   error cases a client meets (bad input, no or a wrong token, unknown
//!   ids, stale snapshots, lost leases, rate limits, oversized bodies,
//!   conditional GETs): each status is documented for the operation, the
//!   body validates against the documented schema (with the document's
//!   components embedded, so `$ref`s resolve locally), the content type
//!   is a documented one and the required headers are there. The request
//!   bodies of the successes validate against the documented request
//!   schemas too.
//!
//! The checker is a plain function, and a self-check feeds it wrong
//! answers to show it refuses them.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use cadenza_config::ingest::{ClaimRequest, CompleteRequest, FailRequest, IngestJob, LeaseRequest};
use cadenza_config::ladder::LADDER;
use cadenza_config::service::{RateLimit, RateLimitsConfig};
use cadenza_control::types::Tier;
use reqwest::Method;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use support::{ADMIN_TOKEN, Server, WORKER_TOKEN, catalog, manifest};

const METHODS: [&str; 7] = ["get", "put", "post", "delete", "patch", "head", "options"];

// ---------------------------------------------------------------- the document

async fn fetch_document(s: &Server) -> Value {
    let resp = s.get("/openapi.json", None).await;
    assert_eq!(resp.status(), 200, "GET /openapi.json");
    let ct = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    assert!(ct.starts_with("application/json"), "content-type {ct:?}");
    let doc: Value = resp.json().await.expect("document json");
    assert_eq!(doc["openapi"], "3.1.0");
    doc
}

/// `(method, path template)` of every documented operation.
fn documented(doc: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("path item").keys() {
            if METHODS.contains(&method.as_str()) {
                out.insert((method.clone(), path.clone()));
            }
        }
    }
    out
}

/// The documented template that matches a concrete path, preferring
/// literal segments (`/v1/me/library/{kind}/contains` is not `{kind}`'s).
fn template_of<'d>(doc: &'d Value, path: &str) -> Option<&'d str> {
    let path = path.split('?').next().unwrap_or(path);
    let segments: Vec<&str> = path.split('/').collect();
    doc["paths"]
        .as_object()?
        .keys()
        .filter_map(|t| {
            let ts: Vec<&str> = t.split('/').collect();
            if ts.len() != segments.len() {
                return None;
            }
            let mut literal = 0;
            for (a, b) in ts.iter().zip(&segments) {
                if a.starts_with('{') && a.ends_with('}') {
                    if b.is_empty() {
                        return None;
                    }
                } else if a == b {
                    literal += 1;
                } else {
                    return None;
                }
            }
            Some((literal, t.as_str()))
        })
        .max_by_key(|(literal, _)| *literal)
        .map(|(_, t)| t)
}

/// A validator for `schema`, with the document's components at its root so
/// `#/components/schemas/…` resolves without fetching anything.
fn validator(doc: &Value, schema: &Value) -> jsonschema::Validator {
    let mut root = schema.as_object().cloned().unwrap_or_default();
    root.insert("components".into(), doc["components"].clone());
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .build(&Value::Object(root))
        .unwrap_or_else(|e| panic!("schema {schema} does not compile: {e}"))
}

fn validate(doc: &Value, schema: &Value, instance: &Value) -> Result<(), String> {
    let v = validator(doc, schema);
    let errors: Vec<String> =
        v.iter_errors(instance).map(|e| format!("{} at {}", e, e.instance_path())).collect();
    if errors.is_empty() { Ok(()) } else { Err(errors.join("; ")) }
}

/// What came back for one request.
#[derive(Debug, Clone)]
struct Answer {
    status: u16,
    headers: HeaderMap,
    body: Vec<u8>,
}

/// Is `answer` documented for `method path` (a concrete path)? Its status,
/// content type, required headers and body.
fn check_answer(doc: &Value, method: &str, path: &str, answer: &Answer) -> Result<(), String> {
    let template = template_of(doc, path).ok_or_else(|| format!("{path}: no documented path matches"))?;
    let op = &doc["paths"][template][method];
    if !op.is_object() {
        return Err(format!("{method} {template}: not documented"));
    }
    let status = answer.status.to_string();
    let response = &op["responses"][&status];
    if !response.is_object() {
        let documented: Vec<&String> =
            op["responses"].as_object().map(|r| r.keys().collect()).unwrap_or_default();
        return Err(format!(
            "{method} {template}: status {status} not documented (documented: {documented:?})"
        ));
    }
    for (name, header) in response["headers"].as_object().into_iter().flatten() {
        let value = answer.headers.get(name.as_str()).and_then(|v| v.to_str().ok());
        match value {
            None if header["required"] == true => {
                return Err(format!("{method} {template} {status}: required header {name} missing"));
            }
            None => {}
            Some(v) => {
                let instance = if header["schema"]["type"] == "integer" {
                    v.parse::<i64>()
                        .map(Value::from)
                        .map_err(|_| format!("{name}: {v:?} is not an integer"))?
                } else {
                    Value::from(v)
                };
                validate(doc, &header["schema"], &instance)
                    .map_err(|e| format!("{method} {template} {status}: header {name}: {e}"))?;
            }
        }
    }
    let content_type = answer.headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default();
    let mime = content_type.split(';').next().unwrap_or_default().trim();
    let Some(content) = response["content"].as_object() else {
        return if answer.body.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "{method} {template} {status}: documented without a body, got {} bytes",
                answer.body.len()
            ))
        };
    };
    let media = content
        .get(mime)
        .ok_or_else(|| format!("{method} {template} {status}: content type {mime:?} not documented"))?;
    if mime == "application/json" {
        let body: Value = serde_json::from_slice(&answer.body)
            .map_err(|e| format!("{method} {template} {status}: body is not JSON: {e}"))?;
        validate(doc, &media["schema"], &body)
            .map_err(|e| format!("{method} {template} {status}: {e}; body {body}"))?;
    } else if media["schema"]["type"] == "string" && std::str::from_utf8(&answer.body).is_err() {
        return Err(format!("{method} {template} {status}: body is not text"));
    }
    Ok(())
}

/// Does `body` fit the documented JSON request body of `method path`?
fn check_request(doc: &Value, method: &str, path: &str, body: &Value) -> Result<(), String> {
    let template = template_of(doc, path).ok_or_else(|| format!("{path}: no documented path"))?;
    let schema = &doc["paths"][template][method]["requestBody"]["content"]["application/json"]["schema"];
    if !schema.is_object() {
        return Err(format!("{method} {template}: no JSON request body documented"));
    }
    validate(doc, schema, body).map_err(|e| format!("{method} {template} request: {e}"))
}

// ---------------------------------------------------------------- routes in the source

/// `(method, path)` of every `.route("…", get(…).post(…)…)` under
/// `control/src`. Routes added some other way would escape this reading,
/// so those ways fail the test instead.
fn source_routes() -> BTreeSet<(String, String)> {
    let mut files = Vec::new();
    rust_files(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &mut files);
    let mut out = BTreeSet::new();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("read source");
        for hidden in [".nest(", ".nest_service(", ".route_service(", "routing::any("] {
            assert!(
                !text.contains(hidden),
                "{}: uses {hidden}; teach tests/openapi.rs to read those routes",
                file.display()
            );
        }
        let mut rest = text.as_str();
        while let Some(at) = rest.find(".route(") {
            rest = &rest[at + ".route(".len()..];
            let args = balanced(rest).unwrap_or_else(|| panic!("{}: unbalanced .route(", file.display()));
            let trimmed = args.trim_start();
            let path = trimmed
                .strip_prefix('"')
                .and_then(|p| p.split('"').next())
                .unwrap_or_else(|| panic!("{}: .route( without a literal path: {args}", file.display()));
            assert!(methods_in(args, &["any"]).is_empty(), "{}: any( in .route({args})", file.display());
            let methods = methods_in(args, &METHODS);
            assert!(!methods.is_empty(), "{}: no method in .route({args})", file.display());
            for m in methods {
                out.insert((m, path.to_owned()));
            }
        }
    }
    assert!(out.len() > 10, "read only {out:?} from the source");
    out
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read_dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The text up to the `)` closing an opened `(`.
fn balanced(s: &str) -> Option<&str> {
    let mut depth = 1;
    let mut in_string = false;
    let mut prev = ' ';
    for (i, c) in s.char_indices() {
        match c {
            '"' if prev != '\\' => in_string = !in_string,
            '(' if !in_string => depth += 1,
            ')' if !in_string => {
                depth -= 1;
                if depth == 0 {
                    return Some(&s[..i]);
                }
            }
            _ => {}
        }
        prev = c;
    }
    None
}

/// The method routers named in a `.route(` call's arguments: `get(` at the
/// start of an argument or after `.` / `::`.
fn methods_in(args: &str, methods: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    for m in methods {
        let needle = format!("{m}(");
        let mut from = 0;
        while let Some(i) = args[from..].find(&needle) {
            let at = from + i;
            let before = args[..at].trim_end();
            if before.ends_with(',') || before.ends_with('.') || before.ends_with("::") {
                out.push((*m).to_owned());
            }
            from = at + needle.len();
        }
    }
    out
}

// ---------------------------------------------------------------- fixtures

/// Ids of what the test made, to fill path templates.
struct Fixture {
    user: String,
    playlist: String,
    job: String,
}

/// A concrete path for `template` from the fixture.
fn fill(template: &str, fx: &Fixture) -> String {
    let id = if template.starts_with("/v1/tracks") || template.starts_with("/v1/audio-features") {
        "t1"
    } else if template.starts_with("/v1/albums") || template.starts_with("/v1/admin/albums") {
        "al1"
    } else if template.starts_with("/v1/artists") || template.starts_with("/v1/admin/artists") {
        "ar1"
    } else if template.starts_with("/v1/admin/tracks") {
        "t1"
    } else if template.starts_with("/v1/admin/ingest") || template.starts_with("/v1/ingest") {
        fx.job.as_str()
    } else {
        fx.playlist.as_str()
    };
    template.replace("{id}", id).replace("{user_id}", &fx.user).replace("{kind}", "tracks")
}

/// The router's own 404 (no route) or 405 (no such method).
async fn is_fallback(resp: reqwest::Response) -> bool {
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    status == 405 || (status == 404 && body["error"]["code"] == "not_found")
}

// ---------------------------------------------------------------- a client that checks

struct Client<'a> {
    s: &'a Server,
    doc: &'a Value,
    /// Operations answered with a 2xx, and every status seen per operation.
    seen: BTreeMap<(String, String), BTreeSet<u16>>,
}

impl<'a> Client<'a> {
    /// Send, check the answer against the document, assert the status and
    /// return the answer.
    async fn call(
        &mut self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
        headers: &[(&str, &str)],
        expect: u16,
    ) -> Answer {
        let mut req = self.s.http.request(method.clone(), self.s.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.send().await.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let answer = Answer {
            status: resp.status().as_u16(),
            headers: resp.headers().clone(),
            body: resp.bytes().await.expect("body").to_vec(),
        };
        self.record(&method, path, body, answer, expect)
    }

    /// Send a raw body with its content type.
    async fn raw(
        &mut self,
        method: Method,
        path: &str,
        token: &str,
        ct: &str,
        body: Vec<u8>,
        expect: u16,
    ) -> Answer {
        let resp = self
            .s
            .http
            .request(method.clone(), self.s.url(path))
            .bearer_auth(token)
            .header("content-type", ct)
            .body(body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let answer = Answer {
            status: resp.status().as_u16(),
            headers: resp.headers().clone(),
            body: resp.bytes().await.expect("body").to_vec(),
        };
        self.record(&method, path, None, answer, expect)
    }

    fn record(
        &mut self,
        method: &Method,
        path: &str,
        body: Option<&Value>,
        answer: Answer,
        expect: u16,
    ) -> Answer {
        let m = method.as_str().to_ascii_lowercase();
        assert_eq!(answer.status, expect, "{method} {path}: {}", String::from_utf8_lossy(&answer.body));
        if let Err(e) = check_answer(self.doc, &m, path, &answer) {
            panic!("{method} {path}: the answer does not match the document: {e}");
        }
        if (200..300).contains(&answer.status)
            && let Some(b) = body
            && let Err(e) = check_request(self.doc, &m, path, b)
        {
            panic!("{method} {path}: a request the server accepted does not match the document: {e}");
        }
        let template = template_of(self.doc, path).expect("template").to_owned();
        self.seen.entry((m, template)).or_default().insert(answer.status);
        answer
    }

    async fn get(&mut self, path: &str, token: Option<&str>, expect: u16) -> Value {
        let a = self.call(Method::GET, path, token, None, &[], expect).await;
        serde_json::from_slice(&a.body).unwrap_or(Value::Null)
    }

    async fn send(&mut self, method: Method, path: &str, token: &str, body: Value, expect: u16) -> Value {
        let a = self.call(method, path, Some(token), Some(&body), &[], expect).await;
        serde_json::from_slice(&a.body).unwrap_or(Value::Null)
    }
}

// ---------------------------------------------------------------- tests

/// The routes in the source are exactly the documented operations, and
/// the running router agrees: documented operations are routed, other
/// methods on documented paths are 405.
#[tokio::test]
async fn the_document_has_every_route_and_only_routes() {
    let db = support::sqlite();
    let s = Server::start(&db.url).await;
    let doc = fetch_document(&s).await;
    let documented = documented(&doc);
    let routed = source_routes();
    let undocumented: Vec<_> = routed.difference(&documented).collect();
    let unrouted: Vec<_> = documented.difference(&routed).collect();
    assert!(undocumented.is_empty(), "routes missing from the document: {undocumented:?}");
    assert!(unrouted.is_empty(), "documented operations with no route: {unrouted:?}");

    let fx = Fixture { user: "nobody".into(), playlist: "p1".into(), job: "j1".into() };
    let paths: BTreeSet<&String> = documented.iter().map(|(_, p)| p).collect();
    for path in paths {
        let concrete = fill(path, &fx);
        for m in ["get", "put", "post", "delete", "patch"] {
            let method = Method::from_bytes(m.to_ascii_uppercase().as_bytes()).unwrap();
            let resp = s.http.request(method, s.url(&concrete)).send().await.expect("request");
            let fallback = is_fallback(resp).await;
            let is_documented = documented.contains(&(m.to_owned(), path.clone()));
            assert_eq!(
                fallback, !is_documented,
                "{m} {concrete} (template {path}): documented {is_documented}"
            );
        }
    }
    // The fallback itself is recognised.
    assert!(is_fallback(s.get("/v1/nothing-here", None).await).await);
    s.stop().await.unwrap();
}

/// The document is well-formed where clients depend on it.
#[tokio::test]
async fn the_document_is_coherent() {
    let db = support::sqlite();
    let s = Server::start(&db.url).await;
    let doc = fetch_document(&s).await;
    let schemes = doc["components"]["securitySchemes"].as_object().expect("security schemes");
    for name in ["bearer", "admin", "worker"] {
        assert_eq!(schemes[name]["type"], "http", "{name}");
        assert_eq!(schemes[name]["scheme"], "bearer", "{name}");
    }
    let mut ids = BTreeSet::new();
    for (method, path) in documented(&doc) {
        let op = &doc["paths"][&path][&method];
        assert!(
            ids.insert(op["operationId"].as_str().expect("operationId").to_owned()),
            "{method} {path}: repeated id"
        );
        let open = ["/healthz", "/readyz", "/metrics", "/openapi.json"].contains(&path.as_str());
        let scheme = op["security"][0].as_object().and_then(|s| s.keys().next().cloned());
        let want = if open {
            None
        } else if path.starts_with("/v1/admin/") {
            Some("admin")
        } else if path.starts_with("/v1/ingest/") {
            Some("worker")
        } else {
            Some("bearer")
        };
        assert_eq!(scheme.as_deref(), want, "{method} {path}: security");
        let responses = op["responses"].as_object().expect("responses");
        if want.is_some() {
            assert!(responses.contains_key("401"), "{method} {path}: 401");
        }
        if want == Some("bearer") {
            assert!(responses["429"]["headers"]["Retry-After"].is_object(), "{method} {path}: 429");
        }
        if want.is_some_and(|w| w != "bearer") {
            assert!(responses.contains_key("403"), "{method} {path}: 403");
        }
        for (status, r) in responses {
            if status.starts_with('4') || status.starts_with('5') {
                assert_eq!(
                    r["content"]["application/json"]["schema"]["$ref"], "#/components/schemas/ErrorResponse",
                    "{method} {path} {status}"
                );
            }
        }
        if method == "get" && responses["200"]["content"]["application/json"].is_object() {
            assert!(responses["304"].is_object(), "{method} {path}: 304");
            assert!(responses["200"]["headers"]["ETag"].is_object(), "{method} {path}: ETag");
        }
        let params: Vec<String> = op["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["in"] == "path")
            .map(|p| p["name"].as_str().unwrap_or_default().to_owned())
            .collect();
        let in_template: Vec<String> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(str::to_owned)
            .collect();
        assert_eq!(params, in_template, "{method} {path}: path parameters");
    }
    // Every `$ref` anywhere (operations included) names a component.
    let mut refs = Vec::new();
    collect_refs(&doc, &mut refs);
    assert!(refs.len() > 50, "only {} $refs", refs.len());
    for r in refs {
        let pointer = r.strip_prefix('#').unwrap_or_else(|| panic!("{r}: not a local reference"));
        assert!(doc.pointer(pointer).is_some(), "{r}: no such component");
    }
    // Every schema compiles with the components embedded.
    for (name, _) in doc["components"]["schemas"].as_object().expect("schemas") {
        validator(&doc, &json!({"$ref": format!("#/components/schemas/{name}")}));
    }
    s.stop().await.unwrap();
}

fn collect_refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("$ref", Value::String(r)) => out.push(r.clone()),
                    _ => collect_refs(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}

/// The checker refuses what it should: these answers are wrong.
#[tokio::test]
async fn the_checker_refuses_wrong_answers() {
    let db = support::sqlite();
    let s = Server::start(&db.url).await;
    let doc = fetch_document(&s).await;
    let json_headers = |etag: Option<&str>| {
        let mut h = HeaderMap::new();
        h.insert("content-type", "application/json".parse().unwrap());
        if let Some(e) = etag {
            h.insert("etag", e.parse().unwrap());
        }
        h
    };
    let error = |status: u16, code: &str| {
        serde_json::to_vec(&json!({"error": {"status": status, "code": code, "message": "m"}})).unwrap()
    };
    let etag = "\"0123456789abcdef0123456789abcdef\"";
    let good = Answer { status: 404, headers: json_headers(None), body: error(404, "track_not_found") };
    check_answer(&doc, "get", "/v1/tracks/x", &good).expect("a right answer passes");
    let wrong = [
        ("status not documented", "get", "/v1/tracks/x", Answer { status: 418, ..good.clone() }),
        ("method not documented", "patch", "/v1/tracks/x", good.clone()),
        ("path not documented", "get", "/v1/nothing", good.clone()),
        (
            "error without code",
            "get",
            "/v1/tracks/x",
            Answer { body: br#"{"error":{"status":404,"message":"m"}}"#.to_vec(), ..good.clone() },
        ),
        (
            "track without album",
            "get",
            "/v1/tracks/x",
            Answer {
                status: 200,
                headers: json_headers(Some(etag)),
                body: br#"{"id":"t1","title":"x","duration_ms":1,"track_number":1,"disc_number":1,"explicit":false,"popularity":0,"artists":[],"qualities":[]}"#.to_vec(),
            },
        ),
        (
            "200 without ETag",
            "get",
            "/v1/artists/ar1",
            Answer {
                status: 200,
                headers: json_headers(None),
                body: br#"{"id":"ar1","name":"n","popularity":1}"#.to_vec(),
            },
        ),
        (
            "text where JSON is documented",
            "get",
            "/v1/artists/ar1",
            Answer {
                status: 200,
                headers: {
                    let mut h = HeaderMap::new();
                    h.insert("content-type", "text/plain".parse().unwrap());
                    h.insert("etag", etag.parse().unwrap());
                    h
                },
                body: b"ar1".to_vec(),
            },
        ),
        (
            "a body on a 204",
            "delete",
            "/v1/playlists/p1",
            Answer { status: 204, headers: json_headers(None), body: b"{}".to_vec() },
        ),
        (
            "a job in an unknown state",
            "get",
            "/v1/admin/ingest/j1",
            Answer {
                status: 200,
                headers: json_headers(Some(etag)),
                body: br#"{"id":"j1","state":"lost","attempts":0,"max_attempts":5,"tracks":[],"created_at":1,"updated_at":1}"#.to_vec(),
            },
        ),
    ];
    for (what, method, path, answer) in wrong {
        assert!(check_answer(&doc, method, path, &answer).is_err(), "accepted: {what}");
    }
    // Request bodies: unknown fields and missing ones are refused.
    assert!(check_request(&doc, "post", "/v1/playback/stream", &json!({"track_id": "t1"})).is_ok());
    assert!(
        check_request(&doc, "post", "/v1/playback/stream", &json!({"track_id": "t1", "colour": 1})).is_err()
    );
    assert!(check_request(&doc, "post", "/v1/playback/stream", &json!({"quality": 96})).is_err());
    s.stop().await.unwrap();
}

/// Real answers, on every database: each status documented, each body
/// valid against its schema; at least one success per operation.
#[tokio::test]
async fn real_answers_match_the_document() {
    for db in support::databases().await {
        let s = Server::start(&db.url).await;
        let doc = fetch_document(&s).await;
        let mut c = Client { s: &s, doc: &doc, seen: BTreeMap::new() };
        scenario(&mut c).await;
        let seen = std::mem::take(&mut c.seen);
        let missing: Vec<_> = documented(&doc)
            .into_iter()
            .filter(|op| !seen.get(op).is_some_and(|st| st.iter().any(|s| (200..300).contains(s))))
            .collect();
        assert!(missing.is_empty(), "{}: operations never answered with a success: {missing:?}", db.kind);
        let statuses: BTreeSet<u16> = seen.values().flatten().copied().collect();
        for want in [200, 201, 202, 204, 304, 400, 401, 403, 404, 409, 412, 413] {
            assert!(statuses.contains(&want), "{}: no {want} was checked", db.kind);
        }
        s.stop().await.unwrap();
    }
    // 429, on a server with a burst of one search.
    let db = support::sqlite();
    let mut config = support::config(&db.url);
    config.rate_limits = RateLimitsConfig { search: RateLimit::new(1, 1), ..RateLimitsConfig::default() };
    let s = Server::start_with(config).await;
    let doc = fetch_document(&s).await;
    let user = s.user(Tier::Free).await;
    let mut c = Client { s: &s, doc: &doc, seen: BTreeMap::new() };
    c.get("/v1/search?q=x&type=track", Some(&user.token), 200).await;
    c.get("/v1/search?q=x&type=track", Some(&user.token), 429).await;
    s.stop().await.unwrap();
}

async fn scenario(c: &mut Client<'_>) {
    let admin = Some(ADMIN_TOKEN);
    let catalog = serde_json::to_value(catalog()).unwrap();

    // Open routes.
    for path in ["/healthz", "/readyz", "/metrics", "/openapi.json"] {
        c.get(path, None, 200).await;
    }

    // Admin: catalog and users.
    c.send(Method::POST, "/v1/admin/import", ADMIN_TOKEN, catalog.clone(), 200).await;
    c.send(Method::POST, "/v1/admin/import", ADMIN_TOKEN, json!({"albums": [{"id": "x"}]}), 400).await;
    c.get("/v1/admin/ingest", None, 401).await;
    let user = c
        .send(
            Method::POST,
            "/v1/admin/users",
            ADMIN_TOKEN,
            json!({"display_name": "Ana", "tier": "premium", "country": "SE", "id": "ana"}),
            201,
        )
        .await;
    let token = user["token"].as_str().expect("token").to_owned();
    let other = c
        .send(
            Method::POST,
            "/v1/admin/users",
            ADMIN_TOKEN,
            json!({"display_name": "Bo", "tier": "free", "country": "NO"}),
            201,
        )
        .await;
    let other_token = other["token"].as_str().expect("token").to_owned();
    let other_id = other["id"].as_str().expect("id").to_owned();
    c.send(
        Method::POST,
        "/v1/admin/users",
        ADMIN_TOKEN,
        json!({"display_name": "Ana", "tier": "premium", "country": "SE", "id": "ana"}),
        409,
    )
    .await;
    c.send(
        Method::POST,
        "/v1/admin/users",
        &token,
        json!({"display_name": "X", "tier": "free", "country": "SE"}),
        403,
    )
    .await;
    let artist = json!({"id": "ar9", "name": "Nine"});
    c.send(Method::PUT, "/v1/admin/artists/ar9", ADMIN_TOKEN, artist.clone(), 201).await;
    c.send(Method::PUT, "/v1/admin/artists/ar9", ADMIN_TOKEN, artist, 200).await;
    c.send(Method::PUT, "/v1/admin/artists/ar8", ADMIN_TOKEN, json!({"id": "ar9", "name": "Nine"}), 400)
        .await;
    let album = json!({"id": "al9", "title": "Ninth", "album_type": "ep", "artist_ids": ["ar9"], "release_date": "2025-01-01"});
    c.send(Method::PUT, "/v1/admin/albums/al9", ADMIN_TOKEN, album, 201).await;
    let track = json!({"id": "t90", "album_id": "al9", "title": "Ninety", "track_number": 1, "artist_ids": ["ar9"], "duration_ms": 1000});
    c.send(Method::PUT, "/v1/admin/tracks/t90", ADMIN_TOKEN, track, 201).await;
    let lines = "{\"artist\":{\"id\":\"ar7\",\"name\":\"Seven\"}}\n{\"album\":{\"id\":\"al7\",\"title\":\"S\",\"album_type\":\"single\",\"artist_ids\":[\"ar7\"]}}\n";
    c.raw(Method::POST, "/v1/admin/import/jsonl", ADMIN_TOKEN, "application/x-ndjson", lines.into(), 200)
        .await;
    c.raw(
        Method::POST,
        "/v1/admin/import/jsonl",
        ADMIN_TOKEN,
        "application/x-ndjson",
        b"{\"song\":{}}\n".to_vec(),
        400,
    )
    .await;
    c.raw(Method::POST, "/v1/admin/import/jsonl", ADMIN_TOKEN, "text/plain", lines.into(), 400).await;
    c.raw(Method::POST, "/v1/admin/import", ADMIN_TOKEN, "text/plain", b"{}".to_vec(), 400).await;

    // Catalog reads, conditional GETs, auth.
    let t = Some(token.as_str());
    c.get("/v1/tracks?ids=t1,nope,t90", t, 200).await;
    c.get("/v1/tracks?ids=", t, 400).await;
    let first = c.call(Method::GET, "/v1/tracks/t1", t, None, &[], 200).await;
    let etag = first.headers.get("etag").and_then(|v| v.to_str().ok()).expect("etag").to_owned();
    c.call(Method::GET, "/v1/tracks/t1", t, None, &[("if-none-match", &etag)], 304).await;
    c.get("/v1/tracks/t90", t, 200).await;
    c.get("/v1/tracks/nope", t, 404).await;
    c.get("/v1/tracks/a.b", t, 400).await;
    c.get("/v1/tracks/t1", None, 401).await;
    c.get("/v1/tracks/t1", Some("not-a-known-token"), 401).await;
    c.get("/v1/tracks/t1", Some(ADMIN_TOKEN), 401).await;
    c.get("/v1/albums?ids=al1,al2,zz", t, 200).await;
    c.get("/v1/albums/al1", t, 200).await;
    c.get("/v1/albums/al1?limit=1&offset=1", t, 200).await;
    c.get("/v1/albums/al1?limit=0", t, 400).await;
    c.get("/v1/albums/al1?colour=red", t, 400).await;
    c.get("/v1/albums/zz", t, 404).await;
    c.get("/v1/albums/al1/tracks?limit=1", t, 200).await;
    c.get("/v1/albums/zz/tracks", t, 404).await;
    c.get("/v1/artists?ids=ar1,ar2", t, 200).await;
    c.get("/v1/artists/ar1", t, 200).await;
    c.get("/v1/artists/zz", t, 404).await;
    c.get("/v1/artists/ar1/albums", t, 200).await;
    c.get("/v1/artists/ar1/top-tracks", t, 200).await;
    c.get("/v1/artists/zz/top-tracks", t, 404).await;
    c.get("/v1/audio-features/t1", t, 200).await;
    c.get("/v1/audio-features/t90", t, 404).await;
    c.get("/v1/search?q=first&type=track,artist,album,playlist", t, 200).await;
    c.get("/v1/search?q=!!&type=track", t, 200).await;
    c.get("/v1/search?q=&type=track", t, 400).await;
    c.get("/v1/search?q=x&type=song", t, 400).await;

    // Playback.
    c.send(
        Method::POST,
        "/v1/playback/stream",
        &token,
        json!({"track_id": "t1", "connection": "cellular"}),
        200,
    )
    .await;
    c.send(
        Method::POST,
        "/v1/playback/stream",
        &token,
        json!({"track_id": "t2", "quality": 320, "data_saver": false}),
        200,
    )
    .await;
    c.send(Method::POST, "/v1/playback/stream", &token, json!({"track_id": "t3"}), 403).await;
    c.send(Method::POST, "/v1/playback/stream", &token, json!({"track_id": "nope"}), 404).await;
    c.send(Method::POST, "/v1/playback/stream", &token, json!({"track_id": "t90"}), 409).await;
    c.send(Method::POST, "/v1/playback/stream", &token, json!({"track_id": "t1", "quality": 100}), 400).await;
    c.send(Method::POST, "/v1/playback/stream", &token, json!({"track": "t1"}), 400).await;
    let big = json!({"track_id": "t1", "pad": "x".repeat(100 * 1024)});
    c.send(Method::POST, "/v1/playback/stream", &token, big, 413).await;
    c.send(
        Method::POST,
        "/v1/playback/stream",
        &token,
        json!({"track_id": "t1", "region": "eu", "debug": true, "preferred_quality": 96}),
        200,
    )
    .await;
    c.send(Method::POST, "/v1/playback/stream", &token, json!({"track_id": "t1", "region": "e u"}), 400)
        .await;
    c.send(
        Method::POST,
        "/v1/playback/prefetch",
        &token,
        json!({"track_ids": ["t1", "t3", "nope"], "connection": "wifi"}),
        200,
    )
    .await;
    c.send(Method::POST, "/v1/playback/prefetch", &token, json!({"track_ids": []}), 400).await;
    c.send(
        Method::POST,
        "/v1/playback/report",
        &token,
        json!({"reports": [{"cdn": "cadenza", "pop": "pop-a", "ttfb_ms": 20}, {"cdn": "x", "pop": "y", "error": "timeout"}]}),
        202,
    )
    .await;
    c.send(Method::POST, "/v1/playback/report", &token, json!({"reports": []}), 400).await;
    let answer = c.send(Method::POST, "/v1/playback/stream", &token, json!({"track_id": "t1"}), 200).await;
    let seek = answer["file"]["seek_table"].as_str().expect("seek_table").to_owned();
    c.get(&seek, t, 200).await;
    c.get("/v1/files/00000000000000000000000000000000/seek-table", t, 404).await;

    // The CDN registry.
    c.get("/v1/admin/cdns", admin, 200).await;
    c.get("/v1/admin/cdns/cadenza", admin, 200).await;
    c.get("/v1/admin/cdns/nope", admin, 404).await;
    let cdn = json!({"kind": "nginx_secure_link", "secret": "0123456789abcdef-secret", "cost_per_gb": 0.02,
        "pops": [{"name": "fra", "url": "http://127.0.0.1:9", "region": "eu", "probe": false}]});
    c.send(Method::PUT, "/v1/admin/cdns/third", ADMIN_TOKEN, cdn.clone(), 201).await;
    c.send(Method::PUT, "/v1/admin/cdns/third", ADMIN_TOKEN, cdn, 200).await;
    c.send(Method::PUT, "/v1/admin/cdns/cadenza", ADMIN_TOKEN, json!({"kind": "cadenza", "pops": []}), 409)
        .await;
    c.send(Method::PUT, "/v1/admin/cdns/bad", ADMIN_TOKEN, json!({"kind": "cadenza", "pops": []}), 400).await;
    c.call(Method::DELETE, "/v1/admin/cdns/third", admin, None, &[], 204).await;
    c.call(Method::DELETE, "/v1/admin/cdns/third", admin, None, &[], 404).await;

    // Warm jobs, on a POP with an admin API (nothing listens there: the
    // job is scheduled a day ahead and cancelled before it would run).
    let lab = json!({"kind": "cadenza", "pops": [{"name": "p1", "url": "http://127.0.0.1:9",
        "admin_url": "http://127.0.0.1:9", "admin_token": "lab-admin-token-0123456789", "probe": false}]});
    c.send(Method::PUT, "/v1/admin/cdns/lab", ADMIN_TOKEN, lab, 201).await;
    let tomorrow = cadenza_config::unix_now() + 86_400;
    let job = c
        .send(
            Method::POST,
            "/v1/admin/warm",
            ADMIN_TOKEN,
            json!({"album_id": "al1", "start_at": tomorrow}),
            202,
        )
        .await;
    let href = job["href"].as_str().expect("warm job href").to_owned();
    c.get("/v1/admin/warm", admin, 200).await;
    c.get(&href, admin, 200).await;
    c.get("/v1/admin/warm/nope", admin, 404).await;
    c.send(Method::POST, "/v1/admin/warm", ADMIN_TOKEN, json!({}), 400).await;
    c.send(Method::POST, "/v1/admin/warm", ADMIN_TOKEN, json!({"album_id": "nope"}), 404).await;
    c.send(Method::POST, "/v1/admin/warm", ADMIN_TOKEN, json!({"track_ids": ["t2"], "rungs": [24]}), 422)
        .await;
    c.call(Method::DELETE, &href, admin, None, &[], 202).await;
    c.call(Method::DELETE, &href, admin, None, &[], 409).await;
    c.call(Method::DELETE, "/v1/admin/cdns/lab", admin, None, &[], 204).await;

    // The signing keys (the test servers pin the older key as current).
    let keys = json!({"keys": ["k-old", "k-new"], "current": "k-old"});
    assert_eq!(c.get("/v1/admin/signing", admin, 200).await, keys);
    c.get("/v1/admin/signing", t, 403).await;
    let reloaded = c.call(Method::POST, "/v1/admin/signing/reload", admin, None, &[], 200).await;
    assert_eq!(serde_json::from_slice::<Value>(&reloaded.body).unwrap(), keys);
    c.call(Method::POST, "/v1/admin/signing/reload", None, None, &[], 401).await;

    // Playlists.
    let p =
        c.send(Method::POST, "/v1/playlists", &token, json!({"name": "Mix", "description": "d"}), 201).await;
    let pid = p["id"].as_str().expect("playlist id").to_owned();
    let items = format!("/v1/playlists/{pid}/items");
    let one = format!("/v1/playlists/{pid}");
    c.send(Method::POST, "/v1/playlists", &token, json!({"name": "", "public": true}), 400).await;
    let added = c.send(Method::POST, &items, &token, json!({"track_ids": ["t1", "t2", "t1"]}), 201).await;
    let snapshot = added["snapshot_id"].as_str().expect("snapshot").to_owned();
    c.send(Method::POST, &items, &token, json!({"track_ids": ["nope"]}), 400).await;
    c.send(Method::POST, &items, &other_token, json!({"track_ids": ["t1"]}), 403).await;
    c.send(Method::POST, "/v1/playlists/nope/items", &token, json!({"track_ids": ["t1"]}), 404).await;
    c.get(&one, t, 200).await;
    c.get(&format!("{one}?limit=1&offset=1"), t, 200).await;
    c.get(&items, Some(&other_token), 200).await;
    c.get("/v1/playlists/nope", t, 404).await;
    c.send(
        Method::PUT,
        &items,
        &token,
        json!({"range_start": 0, "insert_before": 3, "snapshot_id": snapshot}),
        200,
    )
    .await;
    c.send(
        Method::PUT,
        &items,
        &token,
        json!({"range_start": 0, "insert_before": 1, "snapshot_id": snapshot}),
        412,
    )
    .await;
    c.send(Method::DELETE, &items, &token, json!({"tracks": [{"track_id": "t2", "positions": [0]}]}), 200)
        .await;
    c.send(Method::DELETE, &items, &token, json!({"tracks": []}), 400).await;
    c.send(Method::PUT, &one, &token, json!({"name": "Mix 2"}), 200).await;
    c.call(Method::PUT, &one, t, Some(&json!({"public": false})), &[("if-match", "\"stale\"")], 412).await;
    c.send(Method::PUT, &one, &other_token, json!({"name": "Mine now"}), 403).await;
    c.send(Method::PUT, &one, &token, json!({}), 400).await;
    c.send(Method::PUT, &one, &token, json!({"public": false, "collaborative": true}), 200).await;
    let collaborator = format!("/v1/playlists/{pid}/collaborators/{other_id}");
    c.call(Method::PUT, &collaborator, t, None, &[], 204).await;
    c.call(Method::PUT, &format!("/v1/playlists/{pid}/collaborators/nobody"), t, None, &[], 404).await;
    c.get("/v1/me/playlists", Some(&other_token), 200).await;
    c.call(Method::DELETE, &collaborator, t, None, &[], 204).await;
    c.get(&one, Some(&other_token), 404).await;
    c.get("/v1/me/playlists?limit=1", t, 200).await;
    c.get(&format!("/v1/users/{other_id}/playlists"), t, 200).await;
    c.get("/v1/users/ana/playlists", Some(&other_token), 200).await;
    c.get("/v1/users/nobody/playlists", t, 404).await;
    c.get("/v1/users/a.b/playlists", t, 400).await;

    // Library.
    let mut public = c.send(Method::POST, "/v1/playlists", &other_token, json!({"name": "Open"}), 201).await;
    let public_id = public["id"].take();
    let public_id = public_id.as_str().expect("id");
    for (kind, ids) in
        [("tracks", "t1,t2"), ("albums", "al1"), ("artists", "ar1,ar2"), ("playlists", public_id)]
    {
        let path = format!("/v1/me/library/{kind}?ids={ids}");
        c.call(Method::PUT, &path, t, None, &[], 204).await;
        c.get(&format!("/v1/me/library/{kind}"), t, 200).await;
        c.get(&format!("/v1/me/library/{kind}/contains?ids={ids},zz"), t, 200).await;
        c.call(Method::DELETE, &path, t, None, &[], 204).await;
    }
    c.get("/v1/me/library/playlists", t, 200).await;
    c.call(Method::PUT, "/v1/me/library/songs?ids=t1", t, None, &[], 400).await;
    c.call(Method::PUT, "/v1/me/library/tracks?ids=nope", t, None, &[], 400).await;
    c.get("/v1/me/library/tracks/contains?ids=", t, 400).await;

    // Ingest: admin side.
    let job_track = |id: &str| {
        json!({"id": id, "album_id": "al1", "title": format!("Song {id}"), "track_number": 7,
            "artist_ids": ["ar1"], "master": format!("masters/al1/{id}.flac")})
    };
    let job = c
        .send(Method::POST, "/v1/admin/ingest", ADMIN_TOKEN, json!({"tracks": [job_track("t7")]}), 202)
        .await;
    let job_id = job["id"].as_str().expect("job id").to_owned();
    c.send(Method::POST, "/v1/admin/ingest", ADMIN_TOKEN, json!({"tracks": [job_track("t7")]}), 409).await;
    c.send(Method::POST, "/v1/admin/ingest", ADMIN_TOKEN, json!({"tracks": []}), 400).await;
    c.send(Method::POST, "/v1/admin/ingest", WORKER_TOKEN, json!({"tracks": [job_track("t8")]}), 403).await;
    c.get("/v1/admin/ingest", admin, 200).await;
    c.get("/v1/admin/ingest?state=queued&limit=5", admin, 200).await;
    c.get("/v1/admin/ingest?state=lost", admin, 400).await;
    c.get(&format!("/v1/admin/ingest/{job_id}"), admin, 200).await;
    c.get("/v1/admin/ingest/nope", admin, 404).await;
    c.get("/v1/admin/ingest/nope", Some(WORKER_TOKEN), 403).await;

    // Ingest: worker side.
    let claim = |worker: &str| {
        serde_json::to_value(ClaimRequest { worker: worker.into(), lease_seconds: 60 }).unwrap()
    };
    let leased = c.send(Method::POST, "/v1/ingest/claim", WORKER_TOKEN, claim("w1"), 200).await;
    let leased: IngestJob = serde_json::from_value(leased).expect("leased job");
    c.send(Method::POST, "/v1/ingest/claim", WORKER_TOKEN, claim("w1"), 204).await;
    c.send(Method::POST, "/v1/ingest/claim", &token, claim("w1"), 403).await;
    c.send(
        Method::POST,
        "/v1/ingest/claim",
        WORKER_TOKEN,
        json!({"worker": "w 1", "lease_seconds": 60}),
        400,
    )
    .await;
    let jobs = format!("/v1/ingest/jobs/{}", leased.id);
    let lease =
        |lease: &str| serde_json::to_value(LeaseRequest { lease: lease.into(), lease_seconds: 30 }).unwrap();
    c.send(Method::POST, &format!("{jobs}/heartbeat"), WORKER_TOKEN, lease(&leased.lease), 200).await;
    c.send(Method::POST, &format!("{jobs}/heartbeat"), WORKER_TOKEN, lease("not-the-lease"), 409).await;
    c.send(Method::POST, "/v1/ingest/jobs/nope/heartbeat", WORKER_TOKEN, lease(&leased.lease), 404).await;
    let complete = serde_json::to_value(CompleteRequest {
        lease: leased.lease.clone(),
        manifests: vec![manifest("t7", &LADDER)],
    })
    .unwrap();
    c.send(Method::POST, &format!("{jobs}/complete"), ADMIN_TOKEN, complete.clone(), 200).await;
    c.send(Method::POST, &format!("{jobs}/complete"), WORKER_TOKEN, complete, 409).await;
    c.get(&format!("/v1/admin/ingest/{job_id}"), admin, 200).await;
    c.get("/v1/tracks/t7", t, 200).await;

    c.send(
        Method::POST,
        "/v1/admin/ingest",
        ADMIN_TOKEN,
        json!({"album_id": "al1", "tracks": [job_track("t8")]}),
        202,
    )
    .await;
    let leased = c.send(Method::POST, "/v1/ingest/claim", WORKER_TOKEN, claim("w2"), 200).await;
    let leased: IngestJob = serde_json::from_value(leased).expect("leased job");
    let fail = |retryable: bool| {
        serde_json::to_value(FailRequest {
            lease: leased.lease.clone(),
            error: "store down".into(),
            retryable,
        })
        .unwrap()
    };
    c.send(Method::POST, &format!("/v1/ingest/jobs/{}/fail", leased.id), WORKER_TOKEN, fail(true), 200).await;
    c.send(Method::POST, &format!("/v1/ingest/jobs/{}/fail", leased.id), WORKER_TOKEN, fail(false), 409)
        .await;
    c.get("/v1/admin/ingest?state=queued", admin, 200).await;

    // Playback events, the listening history, royalties, popularity.
    let now = support::events::now_ms();
    let batch = json!({"events": [
        {"event_id": "e1", "play_id": "p1", "track_id": "t1", "type": "start", "position_ms": 0,
         "occurred_at_ms": now, "device": "ios"},
        {"event_id": "e2", "play_id": "p1", "track_id": "t1", "type": "progress", "position_ms": 20000,
         "occurred_at_ms": now + 20000},
        {"event_id": "e3", "play_id": "p2", "track_id": "nope", "type": "start", "position_ms": 0,
         "occurred_at_ms": now},
    ]});
    c.send(Method::POST, "/v1/events", &token, batch.clone(), 200).await;
    c.send(Method::POST, "/v1/events", &token, batch, 200).await;
    c.send(Method::POST, "/v1/events", &token, json!({"events": []}), 400).await;
    c.send(Method::POST, "/v1/events", ADMIN_TOKEN, json!({"events": []}), 401).await;
    c.get("/v1/me/history", t, 200).await;
    c.get("/v1/me/history?from_ms=0&to_ms=1&limit=1", t, 200).await;
    c.get("/v1/me/history?limit=0", t, 400).await;
    let today = support::events::utc_day(now);
    c.get(&format!("/v1/admin/royalties?from={today}&to={today}&limit=1"), admin, 200).await;
    c.get("/v1/admin/royalties?from=2020-01-01&to=2020-12-31", admin, 200).await;
    c.get("/v1/admin/royalties?from=2026-02-30&to=2026-03-01", admin, 400).await;
    c.get("/v1/admin/royalties?from=2026-01-01&to=2026-01-02", t, 403).await;
    c.call(Method::POST, "/v1/admin/popularity/recompute?days=7", admin, None, &[], 200).await;
    c.call(Method::POST, "/v1/admin/popularity/recompute?days=0", admin, None, &[], 400).await;

    // Playlist deletion last: the library above used the playlists.
    c.call(Method::DELETE, &one, Some(&other_token), None, &[], 404).await;
    c.call(Method::DELETE, &one, t, None, &[], 204).await;
}
