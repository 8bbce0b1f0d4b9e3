//! `cadenza warm` as a release manager runs it, against a dev stack of one
//! shield and two edges (started in this process; the CLI is the real
//! binary): a warm that succeeds exits 0 with the job id on stdout and
//! every POP done; one scheduled a moment ahead waits for its time; bad
//! input is a message naming the field; a job that fails (a stopped edge)
//! exits non-zero saying where.

use std::process::Output;
use std::time::Duration;

use cadenza_config::service::{DemoConfig, DevConfig};
use cadenza_control::types::WarmJob;

async fn cadenza(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_cadenza"))
            .args(args)
            .env("RUST_LOG", "warn")
            .env_remove("CADENZA_ADMIN_TOKEN")
            .output()
            .expect("the binary runs")
    })
    .await
    .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

async fn job(stack: &cadenza_dev::stack::StackFile, id: &str) -> WarmJob {
    cadenza_origin::install_crypto_provider();
    reqwest::Client::new()
        .get(format!("{}/v1/admin/warm/{id}", stack.control.url))
        .bearer_auth(&stack.control.admin_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warm_waits_for_the_job_and_exits_by_its_outcome() {
    let dir = tempfile::tempdir().unwrap();
    let config = DevConfig {
        data_dir: dir.path().to_owned(),
        base_port: 0,
        edges: 2,
        shield: true,
        demo: DemoConfig { tracks: 1, first_seconds: 12, step_seconds: 1 },
        ..DevConfig::default()
    };
    let mut dev = cadenza_dev::start(config).await.unwrap();
    let stack = dev.stack().clone();
    let stack_path = dir.path().join("stack.json").display().to_string();
    let album = stack.demo.album_id.clone();
    let args = |extra: &[&str]| -> Vec<String> {
        ["warm", "--stack", &stack_path].iter().chain(extra).map(|s| (*s).to_owned()).collect()
    };

    // Scheduled two seconds ahead, followed to its end.
    let start_at = (cadenza_config::unix_now() + 2).to_string();
    let out = cadenza(args(&["--album", &album, "--start-at", &start_at, "--wait"])).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let id = text(&out.stdout).trim().to_owned();
    let done = job(&stack, &id).await;
    assert_eq!(done.state, "done", "{done:?}");
    assert!(done.started_at.unwrap() >= done.start_at, "not started before its time: {done:?}");
    let pops: Vec<(&str, &str)> = done.pops.iter().map(|p| (p.pop.as_str(), p.state.as_str())).collect();
    assert_eq!(pops, [("shield", "done"), ("edge-1", "done"), ("edge-2", "done")]);
    let stderr = text(&out.stderr);
    assert!(stderr.contains(&format!("job {id}: done")) && stderr.contains("dev/shield"), "{stderr}");
    // No terminal here: the state changes are logged as lines.
    assert!(
        stderr.contains(&format!("job {id} scheduled")) && stderr.contains(&format!("job {id} done")),
        "{stderr}"
    );

    // --status and --cancel on an ended job.
    let out = cadenza(args(&["--status", &id])).await;
    assert!(out.status.success() && text(&out.stderr).contains("done"), "{}", text(&out.stderr));
    let out = cadenza(args(&["--cancel", &id])).await;
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("409 warm_job_ended"), "{}", text(&out.stderr));

    // Bad input: the control plane's message, naming the field.
    let out = cadenza(args(&["--album", &album, "--rung", "128"])).await;
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("rungs[0]"), "{}", text(&out.stderr));
    let out =
        cadenza(["warm", "--stack", "/nonexistent/stack.json", "--album", "a"].map(String::from).to_vec())
            .await;
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("--stack /nonexistent/stack.json"), "{}", text(&out.stderr));

    // A job on a stopped edge fails after its retries, and so does the CLI.
    assert!(dev.stop_edge("edge-2").await.unwrap());
    let out = cadenza(args(&["--album", &album, "--pop", "dev/edge-2", "--wait"])).await;
    assert!(!out.status.success(), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("failed on dev/edge-2") && stderr.contains("connection refused"), "{stderr}");

    tokio::time::timeout(Duration::from_secs(30), dev.shutdown()).await.unwrap().unwrap();
}
