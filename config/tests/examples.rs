//! Every example config file loads and validates.

use std::path::{Path, PathBuf};

use cadenza_config::load::load_from;
use cadenza_config::service::{ControlConfig, DevConfig, EdgeConfig, OriginConfig, TranscoderConfig};

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples").join(name)
}

/// The examples point `keys_file` at /etc; aim it at the example key file.
fn keys_override() -> String {
    format!("signing.keys_file={}", example("keys.toml").display())
}

#[test]
fn examples_load() {
    let no_env: Vec<(String, String)> = Vec::new();
    let edge: EdgeConfig =
        load_from(Some(&example("edge.toml")), no_env.clone(), &[keys_override()]).unwrap();
    assert_eq!(edge, {
        let mut d = EdgeConfig::default();
        d.admin.token = edge.admin.token.clone();
        d.origin.url = "http://127.0.0.1:8401".into();
        d.signing.keys_file = edge.signing.keys_file.clone();
        d
    });
    assert_eq!(edge.signing.key_ring().unwrap().current().id().as_str(), "example-k1");
    let pop: EdgeConfig =
        load_from(Some(&example("edge-pop.toml")), no_env.clone(), &[keys_override()]).unwrap();
    assert!(
        !pop.disk.path.is_empty() && pop.tls.files().is_some(),
        "the POP example has a disk tier and TLS"
    );
    let control: ControlConfig =
        load_from(Some(&example("control.toml")), no_env.clone(), &[keys_override()]).unwrap();
    assert_eq!(control.registry().iter().map(|c| c.pops.len()).sum::<usize>(), 4);
    assert_eq!(control.registry()[0].pops.iter().filter(|p| p.warmable()).count(), 3);
    assert_eq!(control.warm, cadenza_config::service::ControlWarmConfig::default());
    assert_eq!(control.health, cadenza_config::service::HealthConfig::default());
    assert_eq!(control.selection, cadenza_config::service::SelectionConfig::default());
    let _: OriginConfig = load_from(Some(&example("origin.toml")), no_env.clone(), &[]).unwrap();
    let _: TranscoderConfig = load_from(Some(&example("transcoder.toml")), no_env.clone(), &[]).unwrap();
    let dev: DevConfig = load_from(Some(&example("dev.toml")), no_env, &[]).unwrap();
    assert_eq!(dev, DevConfig::default());
}

#[test]
fn missing_required_keys_are_named() {
    let no_env: Vec<(String, String)> = Vec::new();
    let err = load_from::<EdgeConfig>(None, no_env.clone(), &[]).unwrap_err().to_string();
    assert!(err.contains("admin.token"), "{err}");
    let err = load_from::<EdgeConfig>(None, no_env.clone(), &["admin.token=0123456789abcdefgh".into()])
        .unwrap_err()
        .to_string();
    assert!(err.contains("origin.url"), "{err}");
    let err = load_from::<EdgeConfig>(
        None,
        no_env.clone(),
        &["admin.token=0123456789abcdefgh".into(), "origin.url=file:///tmp/x".into()],
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("signing.keys") && err.contains("empty"), "{err}");
    let err = load_from::<ControlConfig>(
        Some(&example("control.toml")),
        no_env.clone(),
        &[keys_override(), "playback.url_ttl=48h".into()],
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("playback.url_ttl") && err.contains("max_lifetime"), "{err}");
    let err = load_from::<EdgeConfig>(
        Some(&example("edge.toml")),
        no_env.clone(),
        &[keys_override(), "cache.slice=1KiB".into()],
    )
    .unwrap_err()
    .to_string();
    assert_eq!(err, "config key `cache.slice` = \"1KiB\": must be between 16KiB and 16MiB");
    let err = load_from::<EdgeConfig>(
        Some(&example("edge.toml")),
        no_env,
        &["signing.keys_file=/nonexistent/keys.toml".into()],
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("/nonexistent/keys.toml"), "{err}");
}

#[test]
fn inline_keys_with_a_bad_secret_name_the_entry() {
    let no_env: Vec<(String, String)> = Vec::new();
    let err = load_from::<EdgeConfig>(
        Some(&example("edge.toml")),
        no_env,
        &["signing.keys_file=".into(), r#"signing.keys=[{id="k1", secret="c2hvcnQ"}]"#.into()],
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("signing.keys[0].secret") && err.contains("at least 32 bytes"), "{err}");
    assert!(!err.contains("c2hvcnQ"), "secret leaked into the error: {err}");
}

/// docs/configuration.md tables every key of every service.
#[test]
fn every_key_is_documented() {
    fn keys(prefix: &str, v: &toml::Value, out: &mut Vec<String>) {
        if let toml::Value::Table(t) = v {
            for (k, v) in t {
                let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                keys(&key, v, out);
                out.push(key);
            }
        }
    }
    let doc = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/configuration.md"))
        .unwrap();
    let mut all = Vec::new();
    keys("", &toml::Value::try_from(EdgeConfig::default()).unwrap(), &mut all);
    keys("", &toml::Value::try_from(ControlConfig::default()).unwrap(), &mut all);
    keys("", &toml::Value::try_from(OriginConfig::default()).unwrap(), &mut all);
    keys("", &toml::Value::try_from(TranscoderConfig::default()).unwrap(), &mut all);
    keys("", &toml::Value::try_from(DevConfig::default()).unwrap(), &mut all);
    all.extend(["signing.keys_file", "signing.current", "tls.cert", "tls.key"].map(String::from));
    let sections = [
        "admin",
        "origin",
        "cache",
        "cors",
        "access_log",
        "signing",
        "http",
        "tls",
        "tier",
        "warm",
        "disk",
        "database",
        "playback",
        "ingest",
        "worker",
        "demo",
        "rate_limits",
        "health",
        "selection",
        "rate_limits.read",
        "rate_limits.search",
        "rate_limits.playback",
        "rate_limits.library_write",
        "rate_limits.playlist_write",
        "rate_limits.events",
    ];
    for key in all.iter().filter(|k| !sections.contains(&k.as_str())) {
        assert!(doc.contains(&format!("| `{key}` |")), "docs/configuration.md does not table `{key}`");
    }
}

#[test]
fn tls_needs_both_files_and_either_can_come_from_a_flag() {
    let no_env: Vec<(String, String)> = Vec::new();
    let err = load_from::<EdgeConfig>(
        Some(&example("edge.toml")),
        no_env.clone(),
        &[keys_override(), "tls.cert=/etc/c.pem".into()],
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("tls.key") && err.contains("must be set when tls.cert is"), "{err}");
    let env = vec![("CADENZA_EDGE__TLS__KEY".to_owned(), "/etc/k.pem".to_owned())];
    let c = load_from::<EdgeConfig>(
        Some(&example("edge.toml")),
        env,
        &[keys_override(), "tls.cert=/etc/c.pem".into()],
    )
    .unwrap();
    let (cert, key) = c.tls.files().expect("TLS is on");
    assert_eq!((cert.to_str(), key.to_str()), (Some("/etc/c.pem"), Some("/etc/k.pem")));
    let c = load_from::<EdgeConfig>(Some(&example("edge.toml")), no_env, &[keys_override()]).unwrap();
    assert!(c.tls.files().is_none(), "the example runs without TLS");
}

#[test]
fn a_previous_tier_token_needs_a_current_one() {
    let no_env: Vec<(String, String)> = Vec::new();
    let err = load_from::<EdgeConfig>(
        Some(&example("edge.toml")),
        no_env.clone(),
        &[keys_override(), "tier.previous_token=the-old-tier-token-0123".into()],
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("tier.previous_token") && err.contains("needs tier.token"), "{err}");
    assert!(!err.contains("the-old-tier-token"), "token leaked into the error: {err}");
    let c = load_from::<EdgeConfig>(
        Some(&example("edge.toml")),
        no_env,
        &[
            keys_override(),
            "tier.token=the-new-tier-token-0123".into(),
            "tier.previous_token=the-old-tier-token-0123".into(),
        ],
    )
    .unwrap();
    assert_eq!(c.tier.previous_token.expose(), "the-old-tier-token-0123");
}
