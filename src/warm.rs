//! `cadenza warm`: start, watch or cancel a warm job on the control plane
//! (`/v1/admin/warm`). The control plane's URL and admin token come from
//! `--control` and `--admin-token` (or `CADENZA_ADMIN_TOKEN`), else from a
//! dev stack's `stack.json`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use cadenza_config::units::ByteSize;
use cadenza_control::types::{WarmJob, WarmRequest};
use clap::Args;
use indicatif::{HumanBytes, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How often `--wait` asks for progress.
const POLL: Duration = Duration::from_millis(500);

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["album", "track", "playlist", "status", "cancel"])))]
pub(crate) struct WarmArgs {
    /// Warm every track of this album.
    #[arg(long)]
    album: Option<String>,
    /// Warm this track (repeatable).
    #[arg(long = "track", value_name = "ID")]
    track: Vec<String>,
    /// Warm every track of this playlist.
    #[arg(long)]
    playlist: Option<String>,
    /// Report on a job (with --wait: follow it to its end).
    #[arg(long, value_name = "JOB")]
    status: Option<String>,
    /// Cancel a job.
    #[arg(long, value_name = "JOB")]
    cancel: Option<String>,
    /// Only this bitrate of the ladder, in kbps (repeatable) [default: all].
    #[arg(long = "rung", value_name = "KBPS")]
    rungs: Vec<u32>,
    /// Only this POP, `cdn/pop` or `pop` (repeatable) [default: every healthy one].
    #[arg(long = "pop", value_name = "POP", conflicts_with = "regions")]
    pops: Vec<String>,
    /// Only POPs of this region (repeatable).
    #[arg(long = "region", value_name = "REGION")]
    regions: Vec<String>,
    /// Start at this unix time (seconds) instead of now.
    #[arg(long, value_name = "UNIX", conflicts_with = "before_release")]
    start_at: Option<i64>,
    /// Start this long before the album's release_at (e.g. 2h), and be done by it.
    #[arg(long, value_name = "DURATION", requires = "album")]
    before_release: Option<String>,
    /// Fail if not done by this unix time (seconds).
    #[arg(long, value_name = "UNIX")]
    deadline: Option<i64>,
    /// Origin egress budget per second, shared by the POPs that fill from the origin (e.g. 50MiB).
    #[arg(long, value_name = "BYTES")]
    origin_rate: Option<ByteSize>,
    /// Slices each POP fetches at once [default: the POP's warm.max_concurrent].
    #[arg(long)]
    concurrency: Option<u32>,
    /// Follow the job with a progress bar until it ends; exit 1 unless it is done.
    #[arg(long)]
    wait: bool,
    /// The control plane's base URL [default: from --stack].
    #[arg(long, value_name = "URL", requires = "admin_token")]
    control: Option<String>,
    /// The control plane's admin token [default: from --stack].
    #[arg(long, env = "CADENZA_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// A dev stack's stack.json to take the URL and token from.
    #[arg(long, default_value = "cadenza-data/stack.json")]
    stack: PathBuf,
}

pub(crate) async fn run(args: WarmArgs) -> Result<()> {
    let (base, token) = match (&args.control, &args.admin_token) {
        (Some(url), Some(token)) => (url.trim_end_matches('/').to_owned(), token.clone()),
        _ => {
            let stack = cadenza_dev::stack::StackFile::read(&args.stack).with_context(|| {
                format!(
                    "--stack {}: no dev stack file there (give --control and --admin-token for another control plane)",
                    args.stack.display()
                )
            })?;
            let token = args.admin_token.clone().unwrap_or(stack.control.admin_token);
            (stack.control.url, token)
        }
    };
    cadenza_origin::install_crypto_provider();
    let client = Client {
        http: reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(30)).build()?,
        base,
        token,
    };
    if let Some(id) = &args.cancel {
        let job = client.send(client.http.delete(client.url(&format!("/v1/admin/warm/{id}")))).await?;
        eprintln!("warm job {} cancelled", job.id);
        print_summary(&job);
        return Ok(());
    }
    let job = match &args.status {
        Some(id) => client.get(id).await?,
        None => {
            let req = request(&args);
            let job = client.send(client.http.post(client.url("/v1/admin/warm")).json(&req)).await?;
            eprintln!(
                "warm job {} {}: {} files on {} POPs, {}",
                job.id,
                job.state,
                job.files_total,
                job.pops.len(),
                HumanBytes(job.bytes_total)
            );
            job
        }
    };
    // The id alone on stdout, for scripts.
    println!("{}", job.id);
    if !args.wait {
        if args.status.is_some() {
            print_summary(&job);
        }
        return Ok(());
    }
    let job = follow(&client, job).await?;
    print_summary(&job);
    match job.state.as_str() {
        "done" => Ok(()),
        other => {
            bail!("warm job {} {other}: {}", job.id, job.error.as_deref().unwrap_or("see the POPs above"))
        }
    }
}

fn request(args: &WarmArgs) -> WarmRequest {
    let some = |v: &Vec<String>| (!v.is_empty()).then(|| v.clone());
    WarmRequest {
        album_id: args.album.clone(),
        track_ids: some(&args.track),
        playlist_id: args.playlist.clone(),
        rungs: (!args.rungs.is_empty()).then(|| args.rungs.clone()),
        pops: some(&args.pops),
        regions: some(&args.regions),
        start_at: args.start_at,
        before_release: args.before_release.clone(),
        deadline_at: args.deadline,
        origin_bytes_per_second: args.origin_rate.map(|b| b.0),
        concurrency: args.concurrency,
    }
}

/// Poll until the job ends, drawing a bar on stderr when it is a terminal.
async fn follow(client: &Client, mut job: WarmJob) -> Result<WarmJob> {
    let bar = ProgressBar::with_draw_target(Some(job.bytes_total.max(1)), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("{prefix} [{bar:30}] {bytes:>10}/{total_bytes:<10} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_prefix(format!("warm {}", job.id));
    let mut last_state = String::new();
    loop {
        bar.set_length(job.bytes_total.max(1));
        bar.set_position(job.bytes_done.min(job.bytes_total));
        bar.set_message(pops_line(&job));
        if job.state != last_state {
            // Without a terminal the bar is hidden and prints nothing; the
            // state changes still go to stderr, for logs.
            if bar.is_hidden() {
                eprintln!("job {} {}", job.id, job.state);
            } else {
                bar.println(format!("job {}", job.state));
            }
            last_state.clone_from(&job.state);
        }
        if matches!(job.state.as_str(), "done" | "failed" | "cancelled") {
            bar.finish_and_clear();
            return Ok(job);
        }
        tokio::time::sleep(POLL).await;
        job = client.get(&job.id).await?;
    }
}

/// `shield done · edge-1 61% · edge-2 pending`, and the ETA.
fn pops_line(job: &WarmJob) -> String {
    let mut parts: Vec<String> = job
        .pops
        .iter()
        .map(|p| match p.state.as_str() {
            "running" if p.bytes_total > 0 => format!("{} {}%", p.pop, p.bytes_done * 100 / p.bytes_total),
            s => format!("{} {s}", p.pop),
        })
        .collect();
    if let Some(eta) = job.eta_seconds {
        parts.push(format!("eta {eta:.0}s"));
    }
    parts.join(" · ")
}

fn print_summary(job: &WarmJob) {
    eprintln!(
        "job {}: {} ({} of {}{})",
        job.id,
        job.state,
        HumanBytes(job.bytes_done),
        HumanBytes(job.bytes_total),
        job.error.as_deref().map(|e| format!("; {e}")).unwrap_or_default()
    );
    for p in &job.pops {
        eprintln!(
            "  {:<24} {:<6} {:<9} {:>4}/{} files  {} attempts{}",
            format!("{}/{}", p.cdn, p.pop),
            p.role,
            p.state,
            p.files_done,
            job.files_total,
            p.attempts,
            p.errors.last().map(|e| format!("  last error: {e}")).unwrap_or_default()
        );
    }
}

struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Client {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn get(&self, id: &str) -> Result<WarmJob> {
        self.send(self.http.get(self.url(&format!("/v1/admin/warm/{id}")))).await
    }

    /// Send with the admin token; a JSON error answer becomes its message.
    async fn send(&self, req: reqwest::RequestBuilder) -> Result<WarmJob> {
        let resp = req
            .bearer_auth(&self.token)
            .send()
            .await
            .with_context(|| format!("control plane {}", self.base))?;
        let status = resp.status();
        let text = resp.text().await.context("reading the control plane's answer")?;
        if !status.is_success() {
            let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
            let (code, message) = (v["error"]["code"].as_str(), v["error"]["message"].as_str());
            match (code, message) {
                (Some(code), Some(message)) => bail!("{} {code}: {message}", status.as_u16()),
                _ => bail!("{}: {}", status.as_u16(), text.chars().take(300).collect::<String>()),
            }
        }
        serde_json::from_str(&text).context("the control plane's answer is not a warm job")
    }
}
