//! Rotating the URL-signing key as the README's procedure says, against
//! real services: a URL signed with the old key keeps working while that
//! key is in the edges' rings, and is refused once it is retired.
//!
//! - In process: the dev stack (origin, two edges, control plane, worker,
//!   a demo album), reloaded through the admin APIs.
//! - As an operator runs it: `cadenza edge` and `cadenza control`
//!   processes with inline keys in their config files, reloaded with
//!   `kill -HUP`.

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use cadenza_config::service::{DemoConfig, DevConfig, KeyFile};
use cadenza_config::token::{SigningKey, sign_query};
use cadenza_control::types::StreamResponse;
use cadenza_dev::stack::StackFile;
use serde_json::{Value, json};

mod support;

use support::{Proc, free_port};

fn client() -> reqwest::Client {
    cadenza_origin::install_crypto_provider();
    reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(30)).build().unwrap()
}

/// The `kid=` of a signed URL.
fn kid(url: &str) -> &str {
    url.split_once('?').unwrap().1.split('&').find_map(|p| p.strip_prefix("kid=")).unwrap()
}

/// GET the first KiB: the status and the edge's reason header.
async fn fetch(url: &str) -> (u16, Option<String>) {
    let resp = client().get(url).header("range", "bytes=0-1023").send().await.unwrap();
    let reason = resp.headers().get("x-cadenza-reason").map(|v| v.to_str().unwrap().to_owned());
    (resp.status().as_u16(), reason)
}

/// Stream URLs for the demo track, one per edge POP.
async fn stream_urls(s: &StackFile) -> Vec<String> {
    let resp = client()
        .post(format!("{}/v1/playback/stream", s.control.url))
        .bearer_auth(&s.demo.user_token)
        .json(&json!({ "track_id": s.demo.track_ids[0] }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let urls: Vec<String> =
        resp.json::<StreamResponse>().await.unwrap().urls.into_iter().map(|u| u.url).collect();
    assert_eq!(urls.len(), s.edges.len(), "one URL per edge");
    urls
}

/// POST a reload with `token`: the status and the JSON answer.
async fn reload(url: String, token: &str) -> (u16, Value) {
    let resp = client().post(url).bearer_auth(token).send().await.unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

async fn reload_edges(s: &StackFile) -> Vec<(u16, Value)> {
    let mut out = Vec::new();
    for e in &s.edges {
        out.push(reload(format!("{}/admin/keys/reload", e.admin_url), &e.admin_token).await);
    }
    out
}

async fn reload_control(s: &StackFile) -> (u16, Value) {
    reload(format!("{}/v1/admin/signing/reload", s.control.url), &s.control.admin_token).await
}

/// `cadenza keys generate --id <id>`, as the README has the operator run it.
fn generate(id: &str) -> String {
    let out =
        Command::new(env!("CARGO_BIN_EXE_cadenza")).args(["keys", "generate", "--id", id]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_keeps_old_urls_working_while_their_key_is_in_the_ring() {
    let dir = tempfile::tempdir().unwrap();
    let config = DevConfig {
        data_dir: dir.path().to_owned(),
        base_port: 0,
        edges: 2,
        demo: DemoConfig { tracks: 1, first_seconds: 4, step_seconds: 0 },
        ..DevConfig::default()
    };
    let stack = cadenza_dev::start(config).await.unwrap();
    let s = stack.stack().clone();
    let keys_file = s.signing.keys_file.clone();
    let k1 = s.signing.current_kid.clone();

    // (a) URLs signed with k1, served by every edge.
    let old = stream_urls(&s).await;
    for url in &old {
        assert_eq!(kid(url), k1);
        assert_eq!(fetch(url).await, (206, None), "{url}");
    }

    // (b) k2 appended to the key file every service reads. Nothing changes
    // until a reload: files are read at start-up and on reload only.
    let k2 = generate("k2");
    std::fs::OpenOptions::new().append(true).open(&keys_file).unwrap().write_all(k2.as_bytes()).unwrap();
    assert!(stream_urls(&s).await.iter().all(|u| kid(u) == k1));
    // The edges first: they accept both keys; the control plane still signs with k1.
    let both = json!({ "keys": [k1, "k2"], "current": "k2" });
    for answer in reload_edges(&s).await {
        assert_eq!(answer, (200, both.clone()));
    }
    assert!(stream_urls(&s).await.iter().all(|u| kid(u) == k1));
    // Then the control plane, which signs with the newest key from now on.
    assert_eq!(reload_control(&s).await, (200, both.clone()));
    let new = stream_urls(&s).await;
    for url in &new {
        assert_eq!(kid(url), "k2");
        assert_eq!(fetch(url).await, (206, None), "{url}");
    }
    // The URLs signed with k1 before the rotation still play.
    for url in &old {
        assert_eq!(fetch(url).await, (206, None), "{url}");
    }

    // (c) k1 retired (after url_ttl + leeway in production): its URLs are
    // refused, k2's still play.
    let mut file: KeyFile = toml::from_str(&std::fs::read_to_string(&keys_file).unwrap()).unwrap();
    file.keys.retain(|k| k.id != k1);
    std::fs::write(&keys_file, file.to_toml()).unwrap();
    let only_k2 = json!({ "keys": ["k2"], "current": "k2" });
    for answer in reload_edges(&s).await {
        assert_eq!(answer, (200, only_k2.clone()));
    }
    for url in &old {
        assert_eq!(fetch(url).await, (403, Some("token_unknown_key".to_owned())), "{url}");
    }
    for url in &new {
        assert_eq!(fetch(url).await, (206, None), "{url}");
    }
    assert_eq!(reload_control(&s).await, (200, only_k2.clone()));
    assert!(stream_urls(&s).await.iter().all(|u| kid(u) == "k2"));

    // (d) A broken key file (a half-written edit): every reload fails,
    // naming the file, and the ring in use stays.
    let good = std::fs::read_to_string(&keys_file).unwrap();
    std::fs::write(&keys_file, &good[..good.len() / 2]).unwrap();
    let failed = reload_edges(&s).await.into_iter().chain([reload_control(&s).await]);
    for (status, body) in failed {
        assert_eq!(status, 500, "{body}");
        assert_eq!(body["error"]["code"], "signing_reload_failed");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(&keys_file.display().to_string()), "{message}");
        assert!(message.contains("keeping the key ring in use (k2)"), "{message}");
    }
    for url in &new {
        assert_eq!(fetch(url).await, (206, None), "{url}");
    }
    let after = stream_urls(&s).await;
    for url in &after {
        assert_eq!(kid(url), "k2");
        assert_eq!(fetch(url).await, (206, None), "{url}");
    }
    stack.shutdown().await.unwrap();
}

// ---------------------------------------------------------------- processes and SIGHUP

const ADMIN_TOKEN: &str = "key-rotation-test-admin-token";

fn signal(child: &Proc, name: &str) {
    let ok = Command::new("kill").args([&format!("-{name}"), &child.0.id().to_string()]).status().unwrap();
    assert!(ok.success(), "kill -{name}");
}

/// `[[signing.keys]]` tables for a service config.
fn inline_keys(keys: &[&SigningKey]) -> String {
    keys.iter()
        .map(|k| format!("\n[[signing.keys]]\nid = \"{}\"\nsecret = \"{}\"\n", k.id(), k.secret_base64()))
        .collect()
}

fn spawn(args: &[&str], log: &Path) -> Proc {
    let child = Command::new(env!("CARGO_BIN_EXE_cadenza"))
        .args(args)
        .env("RUST_LOG", "warn")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .expect("the binary runs");
    Proc(child)
}

/// GET `url` with the admin token until `done` accepts the JSON answer,
/// within `limit`.
async fn wait_for(url: &str, token: &str, limit: Duration, done: impl Fn(&Value) -> bool) -> Value {
    let start = std::time::Instant::now();
    let mut last = Value::Null;
    while start.elapsed() < limit {
        if let Ok(resp) = client().get(url).bearer_auth(token).send().await
            && let Ok(v) = resp.json::<Value>().await
        {
            if done(&v) {
                return v;
            }
            last = v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{url}: still {last} after {limit:?}");
}

/// Wait until `url` (Prometheus text) has the line `line`.
async fn wait_for_metric(url: &str, line: &str) {
    for _ in 0..200 {
        if let Ok(resp) = client().get(url).send().await
            && resp.text().await.is_ok_and(|m| m.lines().any(|l| l == line))
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{url}: no {line:?} after 10 s");
}

#[tokio::test]
async fn sighup_reloads_inline_keys_from_the_config_files() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let bytes = b"OggS pretend audio bytes for the key rotation test".repeat(100);
    let file = cadenza_config::ids::FileId::of_content(&bytes);
    let object = d.join("store").join(cadenza_config::layout::audio_key(&file));
    std::fs::create_dir_all(object.parent().unwrap()).unwrap();
    std::fs::write(&object, &bytes).unwrap();
    let k1 = SigningKey::generate("k1".parse().unwrap());
    let k2 = SigningKey::generate("k2".parse().unwrap());

    let (port, admin_port, control_port) = (free_port(), free_port(), free_port());
    let edge_toml = d.join("edge.toml");
    let edge_config = |keys: &[&SigningKey]| {
        let head = format!(
            "listen = \"127.0.0.1:{port}\"\n[admin]\nlisten = \"127.0.0.1:{admin_port}\"\ntoken = \"{ADMIN_TOKEN}\"\n\
             [origin]\nurl = \"file://{}\"\n",
            d.join("store").display()
        );
        std::fs::write(&edge_toml, head + &inline_keys(keys)).unwrap();
    };
    let control_toml = d.join("control.toml");
    let control_config = |keys: &[&SigningKey]| {
        let head = format!(
            "listen = \"127.0.0.1:{control_port}\"\nadmin_token = \"{ADMIN_TOKEN}\"\n\
             [database]\nurl = \"sqlite://{}\"\n[[edges]]\nname = \"edge-1\"\nurl = \"http://127.0.0.1:{port}\"\n",
            d.join("control.db").display()
        );
        std::fs::write(&control_toml, head + &inline_keys(keys)).unwrap();
    };
    edge_config(&[&k1]);
    control_config(&[&k1]);
    let (edge_log, control_log) = (d.join("edge.log"), d.join("control.log"));
    let edge = spawn(&["edge", "--config", &edge_toml.display().to_string()], &edge_log);
    let control = spawn(&["control", "--config", &control_toml.display().to_string()], &control_log);
    let edge_keys = format!("http://127.0.0.1:{admin_port}/admin/keys");
    let edge_metrics = format!("http://127.0.0.1:{admin_port}/metrics");
    let control_keys = format!("http://127.0.0.1:{control_port}/v1/admin/signing");
    let control_metrics = format!("http://127.0.0.1:{control_port}/metrics");
    let up = Duration::from_secs(60);
    wait_for(&edge_keys, ADMIN_TOKEN, up, |v| v["keys"] == json!(["k1"])).await;
    wait_for(&control_keys, ADMIN_TOKEN, up, |v| v["current"] == "k1").await;

    let path = cadenza_config::layout::edge_path(&file);
    let url = |k: &SigningKey| {
        let query = sign_query(k, &path, &"u1".parse().unwrap(), cadenza_config::unix_now() + 600);
        format!("http://127.0.0.1:{port}{path}?{query}")
    };
    let (url1, url2) = (url(&k1), url(&k2));
    assert_eq!(fetch(&url1).await, (206, None));
    assert_eq!(fetch(&url2).await, (403, Some("token_unknown_key".to_owned())));

    // k2 added to both config files; SIGHUP to the edge, then the control plane.
    let reloaded = Duration::from_secs(10);
    edge_config(&[&k1, &k2]);
    control_config(&[&k1, &k2]);
    signal(&edge, "HUP");
    wait_for(&edge_keys, ADMIN_TOKEN, reloaded, |v| v["keys"] == json!(["k1", "k2"])).await;
    assert_eq!(fetch(&url1).await, (206, None));
    assert_eq!(fetch(&url2).await, (206, None));
    signal(&control, "HUP");
    wait_for(&control_keys, ADMIN_TOKEN, reloaded, |v| v["current"] == "k2").await;
    wait_for_metric(&control_metrics, r#"cadenza_control_signing_current_key{kid="k2"} 1"#).await;

    // k1 retired from the edge: its URL is refused, k2's plays.
    edge_config(&[&k2]);
    signal(&edge, "HUP");
    wait_for(&edge_keys, ADMIN_TOKEN, reloaded, |v| v["keys"] == json!(["k2"])).await;
    assert_eq!(fetch(&url1).await, (403, Some("token_unknown_key".to_owned())));
    assert_eq!(fetch(&url2).await, (206, None));

    // A short secret in both files: both keep their rings and log the key.
    let short = "\n[[signing.keys]]\nid = \"k3\"\nsecret = \"c2hvcnQ\"\n";
    std::fs::write(&edge_toml, std::fs::read_to_string(&edge_toml).unwrap() + short).unwrap();
    std::fs::write(&control_toml, std::fs::read_to_string(&control_toml).unwrap() + short).unwrap();
    signal(&edge, "HUP");
    signal(&control, "HUP");
    wait_for_metric(&edge_metrics, r#"cadenza_edge_signing_reloads_total{result="error",edge="edge-1"} 1"#)
        .await;
    wait_for_metric(&control_metrics, r#"cadenza_control_signing_reloads_total{result="error"} 1"#).await;
    assert_eq!(fetch(&url2).await, (206, None));
    wait_for(&edge_keys, ADMIN_TOKEN, reloaded, |v| v["keys"] == json!(["k2"])).await;
    wait_for(&control_keys, ADMIN_TOKEN, reloaded, |v| v["current"] == "k2").await;
    for log in [&edge_log, &control_log] {
        let text = std::fs::read_to_string(log).unwrap();
        let line = text
            .lines()
            .find(|l| l.contains("signing key reload failed"))
            .unwrap_or_else(|| panic!("{}: no reload error logged:\n{text}", log.display()));
        assert!(line.contains("signing.keys[2].secret") || line.contains("signing.keys[1].secret"), "{line}");
        assert!(!text.contains(&k2.secret_base64()), "{}: a secret in the log", log.display());
    }

    // Both still serve, and SIGTERM stops them cleanly.
    for (mut p, name) in [(edge, "edge"), (control, "control")] {
        signal(&p, "TERM");
        let mut status = None;
        for _ in 0..400 {
            if let Some(s) = p.0.try_wait().unwrap() {
                status = Some(s);
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        assert!(status.unwrap_or_else(|| panic!("{name} did not exit after SIGTERM")).success(), "{name}");
    }
}
