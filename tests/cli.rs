//! The `cadenza` binary as an operator meets it: real processes, real files.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use cadenza_config::service::{KeyFile, SigningConfig};
use cadenza_config::token::{TokenPolicy, Verifier};

fn cadenza(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cadenza"))
        .args(args)
        .env("RUST_LOG", "warn")
        .env_remove("CADENZA_EDGE__ORIGIN__URL")
        .output()
        .expect("the binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn keys_generate_then_sign_gives_a_url_an_edge_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let out = cadenza(&["keys", "generate", "--id", "k1"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let keys_path = dir.path().join("keys.toml");
    std::fs::write(&keys_path, &out.stdout).unwrap();
    let file: KeyFile = toml::from_str(&text(&out.stdout)).unwrap();
    assert_eq!(file.keys[0].id, "k1");

    let file_id = cadenza_config::ids::FileId::of_content(b"some audio");
    let out = cadenza(&[
        "sign",
        "--keys-file",
        keys_path.to_str().unwrap(),
        "--file-id",
        file_id.as_str(),
        "--user",
        "u1",
        "--ttl",
        "10m",
        "--edge",
        "http://127.0.0.1:8410/",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let url = text(&out.stdout).trim().to_owned();
    let path = cadenza_config::layout::edge_path(&file_id);
    let (base, query) = url.split_once('?').unwrap();
    assert_eq!(base, format!("http://127.0.0.1:8410{path}"));

    let signing = SigningConfig { keys_file: Some(keys_path), ..SigningConfig::default() };
    let verifier = Verifier::new(
        signing.key_ring().unwrap(),
        TokenPolicy { leeway: Duration::from_secs(30), max_lifetime: Duration::from_secs(3600) },
    );
    let ok = verifier.verify(&path, Some(query), cadenza_config::unix_now()).unwrap();
    assert_eq!(ok.uid.as_str(), "u1");
    let ttl = ok.exp - cadenza_config::unix_now();
    assert!((590..=600).contains(&ttl), "ttl {ttl}");
}

#[test]
fn keys_token_prints_a_long_random_token() {
    let a = text(&cadenza(&["keys", "token"]).stdout);
    let b = text(&cadenza(&["keys", "token"]).stdout);
    assert_eq!(a.trim().len(), 32);
    assert_ne!(a, b);
}

#[test]
fn bad_config_is_refused_with_the_key_named() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("edge.toml");
    std::fs::write(&config, "name = \"e1\"\n[cache]\nmemroy = \"1GiB\"\n").unwrap();
    let out = cadenza(&["edge", "--config", config.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("cache") && err.contains("memroy"), "{err}");

    std::fs::write(&config, "[admin]\ntoken = \"0123456789abcdefXYZ\"\n[origin]\nurl = \"memory://\"\n")
        .unwrap();
    let out = cadenza(&["edge", "--config", config.to_str().unwrap(), "--set", "cache.slice=1KiB"]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("`cache.slice` = \"1KiB\""), "{err}");

    let out = cadenza(&["sign", "--keys-file", "/nonexistent/keys.toml", "--file-id", "x"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("/nonexistent/keys.toml"), "{}", text(&out.stderr));
}

#[test]
fn worker_threads_are_checked_before_the_runtime_starts() {
    let out = cadenza(&["--workers", "0", "keys", "token"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("--workers"), "{}", text(&out.stderr));
    let out = cadenza(&["--workers", "1", "keys", "token"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim().len(), 32);
    // tokio would panic on this value; the binary names it instead.
    let out = Command::new(env!("CARGO_BIN_EXE_cadenza"))
        .args(["keys", "token"])
        .env("TOKIO_WORKER_THREADS", "many")
        .output()
        .expect("the binary runs");
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("TOKIO_WORKER_THREADS") && err.contains("\"many\"") && !err.contains("panicked"),
        "{err}"
    );
}

#[test]
fn transcode_names_a_bad_master() {
    let dir = tempfile::tempdir().unwrap();
    let master = dir.path().join("notes.txt");
    std::fs::write(&master, "these are not audio samples").unwrap();
    let store = format!("file://{}", dir.path().join("store").display());
    let out = cadenza(&["transcode", "--store", &store, "--track-id", "t1", master.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("notes.txt"), "{err}");
    assert!(!Path::new(&dir.path().join("store/tracks")).exists(), "a bad master published something");
}

#[test]
fn transcode_an_album_of_masters_named_by_their_files() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("01 Intro.wav");
    let b = dir.path().join("02_Theme.flac");
    let planes = |seed| cadenza_transcoder::synth::render(seed, 0, 2).to_vec();
    cadenza_transcoder::synth::write_wav(&a, &planes(1), 44_100, 16).unwrap();
    cadenza_transcoder::synth::write_flac(&b, &planes(2), 44_100, 16).unwrap();
    let store = format!("file://{}", dir.path().join("store").display());
    let args = [
        "transcode",
        "--store",
        &store,
        "--album",
        "alb-9",
        "--json",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
    ];
    let out = cadenza(&args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let lines: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert_eq!(lines.len(), 2);
    for (line, id) in lines.iter().zip(["01-Intro", "02_Theme"]) {
        assert_eq!(line["track_id"], id);
        assert_eq!(line["outcome"], "published");
        assert_eq!(line["manifest"]["album"]["id"], "alb-9");
        assert_eq!(line["manifest"]["album"]["tracks"], 2);
        assert!(dir.path().join(format!("store/tracks/{id}/manifest.json")).exists());
    }
    // Again: nothing to do, and the summary line says so.
    let again = cadenza(&[
        "transcode",
        "--store",
        &store,
        "--album",
        "alb-9",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
    ]);
    assert!(again.status.success(), "{}", text(&again.stderr));
    let summary = text(&again.stdout);
    assert_eq!(summary.lines().filter(|l| l.starts_with("unchanged ")).count(), 2, "{summary}");

    // Bad usage is named.
    let out = cadenza(&[
        "transcode",
        "--store",
        &store,
        "--track-id",
        "x",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("--track-id names one track"), "{}", text(&out.stderr));
    let out = cadenza(&["transcode", "--store", &store, "--album", "no/slash", a.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("--album"), "{}", text(&out.stderr));
    let dup = dir.path().join("sub");
    std::fs::create_dir(&dup).unwrap();
    std::fs::copy(&a, dup.join("01 Intro.wav")).unwrap();
    let out = cadenza(&[
        "transcode",
        "--store",
        &store,
        a.to_str().unwrap(),
        dup.join("01 Intro.wav").to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("would both be track 01-Intro"), "{}", text(&out.stderr));
}

#[test]
fn control_migrate_applies_and_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys.toml");
    std::fs::write(&keys, cadenza(&["keys", "generate"]).stdout).unwrap();
    let db = format!("database.url=sqlite://{}", dir.path().join("c.db").display());
    let keys_set = format!("signing.keys_file={}", keys.display());
    for _ in 0..2 {
        let out = cadenza(&[
            "control",
            "--set",
            "admin_token=0123456789abcdefXYZ",
            "--set",
            &db,
            "--set",
            &keys_set,
            "migrate",
        ]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert!(text(&out.stdout).contains("migrations applied"));
    }
    assert!(dir.path().join("c.db").is_file());
}

/// `cadenza control user create` prints a token the control plane accepts;
/// `user revoke` makes the next request with it a 401; `user token` adds
/// another. Bad input is refused naming the flag.
#[tokio::test]
async fn control_user_create_and_revoke_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys.toml");
    std::fs::write(&keys, cadenza(&["keys", "generate"]).stdout).unwrap();
    let db = format!("database.url=sqlite://{}", dir.path().join("c.db").display());
    let keys_set = format!("signing.keys_file={}", keys.display());
    let control = |args: &[&str]| {
        let mut all =
            vec!["control", "--set", "admin_token=0123456789abcdefXYZ", "--set", &db, "--set", &keys_set];
        all.extend_from_slice(args);
        cadenza(&all)
    };
    let out = control(&["user", "create", "--tier", "premium", "--country", "se", "--id", "ana"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let token = text(&out.stdout).trim().to_owned();
    assert_eq!(token.len(), 43, "{token}");
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("created user ana (premium, se)") && stderr.contains("token id tok_"),
        "{stderr}"
    );

    // A control plane on the same database accepts the token.
    let config: cadenza_config::service::ControlConfig = cadenza_config::load::load(
        None,
        &[
            "admin_token=0123456789abcdefXYZ".to_owned(),
            db.clone(),
            keys_set.clone(),
            "listen=127.0.0.1:0".to_owned(),
            // Look every token up on every request, so revocation shows at
            // once (by default a replica remembers a token for 5 s).
            "cache.token_ttl=0s".to_owned(),
        ],
    )
    .unwrap();
    let server = cadenza_control::ControlServer::bind(config).await.unwrap();
    let url = format!("http://{}/v1/search?q=x&type=track", server.local_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server.serve(async {
        let _ = stopped.await;
    }));
    cadenza_origin::install_crypto_provider();
    let http = reqwest::Client::new();
    let status = |t: String| {
        let (http, url) = (http.clone(), url.clone());
        async move { http.get(&url).bearer_auth(t).send().await.unwrap().status().as_u16() }
    };
    assert_eq!(status(token.clone()).await, 200);

    let out = control(&["user", "token", "--user", "ana"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let second = text(&out.stdout).trim().to_owned();
    assert_eq!(status(second.clone()).await, 200);

    let out = control(&["user", "revoke", "--token", &token]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(status(token.clone()).await, 401);
    assert_eq!(status(second.clone()).await, 200, "only that token");
    let out = control(&["user", "revoke", "--user", "ana"]);
    assert!(out.status.success() && text(&out.stderr).contains("revoked 1 token"), "{}", text(&out.stderr));
    assert_eq!(status(second).await, 401);
    let out = control(&["user", "revoke", "--user", "ana"]);
    assert!(!out.status.success() && text(&out.stderr).contains("nothing revoked"), "{}", text(&out.stderr));

    for (args, flag) in [
        (vec!["user", "create", "--tier", "premium", "--country", "XX"], "--country"),
        (vec!["user", "create", "--tier", "gold", "--country", "SE"], "--tier"),
        (vec!["user", "create", "--tier", "free", "--country", "SE", "--id", "a/b"], "--id"),
        (vec!["user", "token", "--user", "nobody"], "--user"),
        (vec!["user", "revoke"], "--token"),
    ] {
        let out = control(&args);
        assert!(!out.status.success(), "{args:?}");
        assert!(text(&out.stderr).contains(flag), "{args:?}: {}", text(&out.stderr));
    }
    let _ = stop.send(());
    task.await.unwrap().unwrap();
}
