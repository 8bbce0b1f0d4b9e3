//! The edge under test: `cadenza edge` as a child process, configured only
//! through `--set` flags, with a signing key made by `cadenza keys generate`
//! and URLs signed by `cadenza sign` — the CLI and config keys, nothing
//! internal.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use cadenza_config::ids::FileId;

use crate::client;

/// A running `cadenza edge`; stopped (SIGTERM, then SIGKILL) on drop.
#[derive(Debug)]
pub(crate) struct Edge {
    child: Child,
    cadenza: PathBuf,
    keys_file: PathBuf,
    log: PathBuf,
    pub(crate) addr: SocketAddr,
    pub(crate) admin: SocketAddr,
}

/// How to start the edge.
#[derive(Debug)]
pub(crate) struct EdgeSpec<'a> {
    pub(crate) cadenza: &'a Path,
    pub(crate) dir: &'a Path,
    pub(crate) origin: SocketAddr,
    /// Extra `key=value` config, applied last.
    pub(crate) sets: &'a [String],
}

fn run(cadenza: &Path, args: &[&str]) -> Result<String> {
    let out = Command::new(cadenza)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {}", cadenza.display()))?;
    if !out.status.success() {
        bail!("`cadenza {}` failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    }
    String::from_utf8(out.stdout).context("cadenza printed non-UTF-8")
}

/// A port nobody listens on right now (the edge binds it a moment later).
fn free_port() -> Result<SocketAddr> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

impl Edge {
    pub(crate) async fn start(spec: EdgeSpec<'_>) -> Result<Self> {
        let keys_file = spec.dir.join("keys.toml");
        std::fs::write(&keys_file, run(spec.cadenza, &["keys", "generate", "--id", "collapse"])?)?;
        let token = run(spec.cadenza, &["keys", "token"])?.trim().to_owned();
        let (addr, admin) = (free_port()?, free_port()?);
        let log = spec.dir.join("edge.log");
        let mut sets = vec![
            "name=collapse".to_owned(),
            format!("listen={addr}"),
            format!("admin.listen={admin}"),
            format!("admin.token={token}"),
            format!("origin.url=http://{}/", spec.origin),
            format!("signing.keys_file={}", keys_file.display()),
            "cache.memory=2GiB".to_owned(),
            "origin.timeout=60s".to_owned(),
        ];
        sets.extend(spec.sets.iter().cloned());
        let mut cmd = Command::new(spec.cadenza);
        cmd.arg("edge");
        for s in &sets {
            cmd.arg("--set").arg(s);
        }
        let log_file = std::fs::File::create(&log)?;
        cmd.stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file)
            .env("RUST_LOG", std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".to_owned()));
        let child = cmd.spawn().with_context(|| format!("cannot start {}", spec.cadenza.display()))?;
        let mut edge = Self { child, cadenza: spec.cadenza.to_owned(), keys_file, log, addr, admin };
        edge.wait_ready().await?;
        Ok(edge)
    }

    async fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!("the edge exited ({status}) before it was ready:\n{}", self.log_tail());
            }
            if let Ok((200, _)) = client::get_text(self.admin, "/readyz").await
                && tokio::net::TcpStream::connect(self.addr).await.is_ok()
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("the edge was not ready within 20 s:\n{}", self.log_tail());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The last lines the edge logged.
    pub(crate) fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// A signed `/a/<id>.ogg?…` for `file`, from `cadenza sign`.
    pub(crate) fn sign(&self, file: &FileId) -> Result<String> {
        let keys = self.keys_file.display().to_string();
        let id = file.to_string();
        let url = run(
            &self.cadenza,
            &["sign", "--keys-file", &keys, "--file-id", &id, "--user", "collapse", "--ttl", "1h"],
        )?;
        Ok(url.trim().to_owned())
    }

    /// The admin `/metrics` text.
    pub(crate) async fn metrics(&self) -> Result<String> {
        let (status, text) = client::get_text(self.admin, "/metrics").await?;
        if status != 200 {
            bail!("GET /metrics: {status}");
        }
        Ok(text)
    }
}

impl Drop for Edge {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        // SIGTERM first (the edge drains); SIGKILL if it lingers.
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
