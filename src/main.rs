//! `cadenza`: one binary, one subcommand per part. Each parses its flags,
//! loads its config (file → `CADENZA_<SERVICE>__*` env → `--set` flags) and
//! calls the part's library `run`. No service logic lives here.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, Result, bail};
use cadenza_config::ids::{FileId, KeyId, TrackId, UserId, random_id};
use cadenza_config::load::load;
use cadenza_config::service::{
    ControlConfig, DevConfig, EdgeConfig, KeyFile, KeySpec, OriginConfig, SigningConfig, TranscoderConfig,
    redact_url_password,
};
use cadenza_config::units::HumanDuration;
use clap::{Args, Parser, Subcommand};

mod progress;
mod warm;

#[derive(Debug, Parser)]
#[command(name = "cadenza", version, about = "cadenza: an audio delivery network")]
struct Cli {
    /// Async worker threads (default: one per core, or TOKIO_WORKER_THREADS).
    /// A server that shares its cores with something else (a database, a
    /// load generator) may do better with fewer.
    #[arg(long, global = true, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
    workers: Option<u16>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run control plane, origin and edges in one process on loopback, with a demo album.
    Dev(DevArgs),
    /// Run an edge POP.
    Edge(ServiceArgs),
    /// Run the control plane API, or apply its database migrations.
    Control {
        #[command(flatten)]
        service: ServiceArgs,
        #[command(subcommand)]
        action: Option<ControlAction>,
    },
    /// Serve an object store over HTTP (read-only) for edges.
    Origin(ServiceArgs),
    /// Transcode masters into the Ogg Vorbis ladder and publish them.
    Transcode(TranscodeArgs),
    /// Print a signed edge URL for a file.
    Sign(SignArgs),
    /// Warm an album, tracks or a playlist onto the edges (shields first), or follow or cancel a warm job.
    Warm(warm::WarmArgs),
    /// Manage URL-signing keys and admin tokens.
    Keys {
        #[command(subcommand)]
        action: KeysAction,
    },
}

#[derive(Debug, Args)]
struct ServiceArgs {
    /// TOML config file (see config/examples/).
    #[arg(long, short = 'c', global = true)]
    config: Option<PathBuf>,
    /// Override one config key, e.g. --set cache.memory=4GiB (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE", global = true)]
    sets: Vec<String>,
}

#[derive(Debug, Subcommand)]
enum ControlAction {
    /// Apply database migrations and exit.
    Migrate,
    /// Create users, add and revoke their API tokens (straight against the database).
    User {
        #[command(subcommand)]
        action: UserAction,
    },
}

#[derive(Debug, Subcommand)]
enum UserAction {
    /// Create a user; prints its bearer token (shown once) on stdout.
    Create {
        /// Subscription tier: free or premium.
        #[arg(long, value_parser = ["free", "premium"])]
        tier: String,
        /// ISO 3166-1 alpha-2 country, e.g. SE.
        #[arg(long)]
        country: String,
        /// Display name [default: the tier's name].
        #[arg(long)]
        name: Option<String>,
        /// User id [default: random].
        #[arg(long)]
        id: Option<String>,
    },
    /// Give an existing user another token; prints it on stdout.
    Token {
        #[arg(long)]
        user: String,
    },
    /// Revoke a token (by value or id), or every token of a user.
    Revoke {
        /// The token itself.
        #[arg(long, conflicts_with_all = ["token_id", "user"], required_unless_present_any = ["token_id", "user"])]
        token: Option<String>,
        /// A token's public id (tok_…), as `create` printed it.
        #[arg(long, conflicts_with = "user")]
        token_id: Option<String>,
        /// Every token of this user.
        #[arg(long)]
        user: Option<String>,
    },
}

#[derive(Debug, Args)]
struct DevArgs {
    #[command(flatten)]
    service: ServiceArgs,
    /// Where the stack keeps everything [default: ./cadenza-data].
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// First port (control = base, origin = base+1, edges from base+10); 0 picks free ports [default: 8400].
    #[arg(long)]
    base_port: Option<u16>,
    /// Number of edge POPs, registered as POPs of the `dev` CDN [default: 2].
    #[arg(long)]
    edges: Option<u16>,
    /// Serve the edges over HTTPS with a self-signed certificate kept in the data dir.
    #[arg(long)]
    tls: bool,
    /// Also run a shield edge the edges fill from (a parent tier), warmed first by `cadenza warm`.
    #[arg(long)]
    shield: bool,
}

#[derive(Debug, Args)]
struct TranscodeArgs {
    #[command(flatten)]
    service: ServiceArgs,
    /// Publish into this store URL instead of the config's `store`.
    #[arg(long)]
    store: Option<String>,
    /// The masters are one album with this id: album ReplayGain over all of them.
    #[arg(long, conflicts_with = "worker")]
    album: Option<String>,
    /// Track id for a single master [default: the file name without extension, with
    /// characters outside [A-Za-z0-9_-] replaced by '-'].
    #[arg(long, conflicts_with = "worker")]
    track_id: Option<String>,
    /// Print one JSON object per track (outcome and manifest) instead of a summary line.
    #[arg(long)]
    json: bool,
    /// No progress bars (they are off anyway when stderr is not a terminal).
    #[arg(long, short = 'q')]
    quiet: bool,
    /// Take ingest jobs from the control plane (worker.control_url, worker.token) until stopped.
    #[arg(long, conflicts_with = "masters")]
    worker: bool,
    /// Control plane URL for --worker (sets worker.control_url).
    #[arg(long, requires = "worker")]
    control: Option<String>,
    /// Master files (WAV, AIFF, FLAC, MP3, AAC/ALAC in MP4, Ogg Vorbis).
    #[arg(required_unless_present = "worker")]
    masters: Vec<PathBuf>,
}

#[derive(Debug, Args)]
struct SignArgs {
    /// Key file with the signing key (as printed by `cadenza keys generate`).
    #[arg(long)]
    keys_file: PathBuf,
    /// Sign with this key id [default: the last key in the file].
    #[arg(long)]
    kid: Option<String>,
    /// File id (32 hex digits) to sign a URL for.
    #[arg(long)]
    file_id: String,
    /// User id the URL is issued to.
    #[arg(long, default_value = "cli")]
    user: String,
    /// Lifetime of the URL, e.g. 10m, 1h.
    #[arg(long, default_value = "1h")]
    ttl: HumanDuration,
    /// Edge base URL to prefix; without it only the path and query print.
    #[arg(long)]
    edge: Option<String>,
}

#[derive(Debug, Subcommand)]
enum KeysAction {
    /// Print a new URL-signing key as a TOML [[keys]] entry.
    Generate {
        /// Key id, [A-Za-z0-9_-]{1,32} [default: k-<random>].
        #[arg(long)]
        id: Option<String>,
    },
    /// Print a new random admin token.
    Token,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // `cadenza transcode FILES` reports on stdout and in its progress bars;
    // info lines on stderr would only break the bars. Services log at info.
    let default_filter = match &cli.command {
        Command::Transcode(args) if !args.worker => "warn,symphonia=error",
        _ => "info,sqlx=warn,symphonia=warn",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| default_filter.into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let workers = match worker_threads(cli.workers) {
        Ok(n) => n,
        Err(e) => {
            eprintln!("cadenza: {e}");
            return ExitCode::FAILURE;
        }
    };
    let runtime =
        match tokio::runtime::Builder::new_multi_thread().worker_threads(workers).enable_all().build() {
            Ok(rt) => rt,
            Err(e) => {
                eprintln!("cadenza: cannot start the async runtime: {e}");
                return ExitCode::FAILURE;
            }
        };
    match runtime.block_on(dispatch(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cadenza: {}", describe(&e));
            ExitCode::FAILURE
        }
    }
}

/// `--workers`, else `TOKIO_WORKER_THREADS` (read here, so a bad value is
/// an error naming it rather than tokio's panic), else one per core.
fn worker_threads(flag: Option<u16>) -> Result<usize, String> {
    if let Some(n) = flag {
        return Ok(usize::from(n));
    }
    match std::env::var("TOKIO_WORKER_THREADS") {
        Ok(v) => match v.trim().parse::<usize>() {
            Ok(n) if (1..=1024).contains(&n) => Ok(n),
            _ => Err(format!("TOKIO_WORKER_THREADS: must be a number from 1 to 1024, got {v:?}")),
        },
        Err(_) => Ok(std::thread::available_parallelism().map_or(1, usize::from)),
    }
}

async fn dispatch(command: Command) -> Result<()> {
    match command {
        Command::Dev(args) => {
            let mut sets = args.service.sets;
            if let Some(d) = args.data_dir {
                sets.push(format!("data_dir={}", d.display()));
            }
            if let Some(p) = args.base_port {
                sets.push(format!("base_port={p}"));
            }
            if let Some(n) = args.edges {
                sets.push(format!("edges={n}"));
            }
            if args.tls {
                sets.push("tls=true".to_owned());
            }
            if args.shield {
                sets.push("shield=true".to_owned());
            }
            let config: DevConfig = load(args.service.config.as_deref(), &sets)?;
            cadenza_dev::run(config).await?;
        }
        Command::Edge(args) => {
            let config: EdgeConfig = load(args.config.as_deref(), &args.sets)?;
            cadenza_edge::run(config, reloaded::<EdgeConfig>(&args, |c| c.signing)).await?;
        }
        Command::Control { service, action } => {
            let config: ControlConfig = load(service.config.as_deref(), &service.sets)?;
            match action {
                Some(ControlAction::Migrate) => {
                    cadenza_control::migrate(&config).await?;
                    println!("migrations applied to {}", redact_url_password(&config.database.url));
                }
                Some(ControlAction::User { action }) => user_command(&config, action).await?,
                None => {
                    cadenza_control::run(config, reloaded::<ControlConfig>(&service, |c| c.signing)).await?
                }
            }
        }
        Command::Origin(args) => {
            let config: OriginConfig = load(args.config.as_deref(), &args.sets)?;
            cadenza_origin::run(config).await?;
        }
        Command::Transcode(args) => transcode(args).await?,
        Command::Sign(args) => sign(args)?,
        Command::Warm(args) => warm::run(args).await?,
        Command::Keys { action: KeysAction::Generate { id } } => {
            let id: KeyId = match id {
                Some(id) => id.parse().with_context(|| format!("--id {id:?}"))?,
                None => format!("k-{}", random_id(8)).parse().expect("generated key id is valid"),
            };
            let key = cadenza_config::token::SigningKey::generate(id);
            print!("{}", KeyFile { keys: vec![KeySpec::from_key(&key)] }.to_toml());
        }
        Command::Keys { action: KeysAction::Token } => println!("{}", random_id(32)),
    }
    Ok(())
}

/// `cadenza control user …`: the token on stdout (so scripts can capture
/// it), everything else on stderr.
async fn user_command(config: &ControlConfig, action: UserAction) -> anyhow::Result<()> {
    use cadenza_control::types::Tier;
    use cadenza_control::users::{self, Revoke};
    match action {
        UserAction::Create { tier, country, name, id } => {
            let tier = if tier == "premium" { Tier::Premium } else { Tier::Free };
            let name = name.unwrap_or_else(|| format!("{} listener", tier.as_str()));
            let c = users::create_user(config, &name, tier, &country, id.as_deref()).await?;
            eprintln!("created user {} ({}, {country}); token id {}", c.user_id, tier.as_str(), c.token_id);
            println!("{}", c.token);
        }
        UserAction::Token { user } => {
            let c = users::add_token(config, &user).await?;
            eprintln!("new token for user {}; token id {}", c.user_id, c.token_id);
            println!("{}", c.token);
        }
        UserAction::Revoke { token, token_id, user } => {
            let what = match (token, token_id, user) {
                (Some(t), _, _) => Revoke::Token(t),
                (_, Some(id), _) => Revoke::TokenId(id),
                (_, _, Some(u)) => Revoke::User(u),
                _ => anyhow::bail!("give --token, --token-id or --user"),
            };
            let n = users::revoke(config, &what).await?;
            if n == 0 {
                anyhow::bail!("no matching token: nothing revoked");
            }
            eprintln!("revoked {n} token(s)");
        }
    }
    Ok(())
}

async fn transcode(args: TranscodeArgs) -> Result<()> {
    let mut sets = args.service.sets;
    if let Some(store) = &args.store {
        sets.push(format!("store={store}"));
    }
    if let Some(control) = &args.control {
        sets.push(format!("worker.control_url={control}"));
    }
    let config: TranscoderConfig = load(args.service.config.as_deref(), &sets)?;
    if args.worker {
        let summary = cadenza_transcoder::run_worker(config, shutdown_signal()).await?;
        println!(
            "worker stopped: {} jobs completed, {} failed, {} lost to another worker",
            summary.completed, summary.failed, summary.lost
        );
        return Ok(());
    }
    if let Some(album) = &args.album
        && !cadenza_config::ids::is_opaque_id(album, 64)
    {
        bail!("--album {album:?}: must be 1-64 characters of [A-Za-z0-9_-]");
    }
    let tracks = track_ids(&args.masters, args.track_id.as_deref())?;
    let bars = progress::Bars::new(args.quiet, &tracks);
    let reports = cadenza_transcoder::run(config, tracks, args.album, bars.clone()).await;
    bars.clear();
    for r in reports? {
        if args.json {
            println!(
                "{}",
                serde_json::to_string(&serde_json::json!({
                    "track_id": r.track_id,
                    "master": r.master,
                    "outcome": format!("{:?}", r.outcome).to_lowercase(),
                    "manifest": r.manifest,
                }))?
            );
        } else {
            let m = &r.manifest;
            let rates: Vec<String> =
                m.renditions.iter().map(|x| format!("{}→{:.1}", x.bitrate_kbps, x.achieved_kbps)).collect();
            println!(
                "{:<11} {}  {}  {:.1} s  {:.2} LUFS  gain {:+.2} dB  {} kbps  {:.0} BPM",
                format!("{:?}", r.outcome).to_lowercase(),
                r.track_id,
                r.master.display(),
                m.source.duration_ms as f64 / 1000.0,
                m.loudness.integrated_lufs,
                m.loudness.gain_db,
                rates.join(" "),
                m.features.tempo_bpm,
            );
        }
    }
    Ok(())
}

/// The track id of each master: `--track-id` for a single master, else
/// the file name without its extension, made a valid id.
fn track_ids(masters: &[PathBuf], track_id: Option<&str>) -> Result<Vec<(TrackId, PathBuf)>> {
    if let Some(id) = track_id {
        if masters.len() != 1 {
            bail!("--track-id names one track, but {} masters were given", masters.len());
        }
        let id: TrackId = id.parse().with_context(|| format!("--track-id {id:?}"))?;
        return Ok(vec![(id, masters[0].clone())]);
    }
    let mut out: Vec<(TrackId, PathBuf)> = Vec::with_capacity(masters.len());
    for master in masters {
        let stem = master.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        let id: String = stem
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '-' { c } else { '-' })
            .take(TrackId::MAX_LEN)
            .collect();
        let id: TrackId = id.parse().with_context(|| {
            format!("{}: no track id can be made from its name; use --track-id", master.display())
        })?;
        if let Some((_, other)) = out.iter().find(|(t, _)| *t == id) {
            bail!(
                "{} and {} would both be track {id}; rename one or ingest them separately with --track-id",
                other.display(),
                master.display()
            );
        }
        out.push((id, master.clone()));
    }
    Ok(out)
}

/// What a key reload (SIGHUP, the admin API) reads: the service's whole
/// config loaded again as at start-up (file, environment, `--set` flags,
/// all validated), of which only `[signing]` is used.
fn reloaded<T: cadenza_config::ServiceConfig + 'static>(
    args: &ServiceArgs,
    signing: fn(T) -> SigningConfig,
) -> cadenza_config::live::SigningSource {
    let (file, sets) = (args.config.clone(), args.sets.clone());
    cadenza_config::live::SigningSource::new(move || load::<T>(file.as_deref(), &sets).map(signing))
}

/// SIGINT or SIGTERM.
async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
    tracing::info!("signal received; finishing the job in hand, then stopping");
}

fn sign(args: SignArgs) -> Result<()> {
    let signing = SigningConfig {
        keys_file: Some(args.keys_file.clone()),
        current: args.kid.clone(),
        ..SigningConfig::default()
    };
    let ring = signing.key_ring()?;
    let file: FileId = args.file_id.parse().with_context(|| "--file-id")?;
    let user: UserId = args.user.parse().with_context(|| "--user")?;
    if args.ttl.get() > signing.max_lifetime.get() {
        bail!("--ttl {} exceeds the edges' default max_lifetime of {}", args.ttl, signing.max_lifetime);
    }
    let exp = cadenza_config::unix_now() + args.ttl.get().as_secs();
    let path = cadenza_config::layout::edge_path(&file);
    let query = cadenza_config::token::sign_query(ring.current(), &path, &user, exp);
    let base = args.edge.as_deref().unwrap_or("").trim_end_matches('/');
    println!("{base}{path}?{query}");
    Ok(())
}

/// The error and its causes, each once: our error types already quote their
/// source in their message, anyhow contexts do not.
fn describe(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !out.contains(&text) {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(&text);
        }
    }
    out
}
