//! `cadenza`: one binary, one subcommand per part. Each parses its flags,
//! loads its config (file → `CADENZA_<SERVICE>__*` env → `--set` flags) and
//! calls the part's library `run`. No service logic lives here.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, Result, bail};
use cadenza_config::ids::{FileId, KeyId, UserId, random_id};
use cadenza_config::load::load;
use cadenza_config::service::{
    ControlConfig, DevConfig, EdgeConfig, KeyFile, KeySpec, OriginConfig, SigningConfig, TranscoderConfig,
    redact_url_password,
};
use cadenza_config::units::HumanDuration;
use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "cadenza", version, about = "cadenza: an audio delivery network")]
struct Cli {
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
    /// Number of edge POPs [default: 1].
    #[arg(long)]
    edges: Option<u16>,
    /// Serve the edges over HTTPS with a self-signed certificate kept in the data dir.
    #[arg(long)]
    tls: bool,
}

#[derive(Debug, Args)]
struct TranscodeArgs {
    #[command(flatten)]
    service: ServiceArgs,
    /// Publish into this store URL instead of the config's `store`.
    #[arg(long)]
    store: Option<String>,
    /// Track id the master is published as.
    track_id: String,
    /// Master file (WAV, AIFF, FLAC, MP3, AAC/ALAC in MP4, Ogg Vorbis).
    master: PathBuf,
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
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info,sqlx=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
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
            let config: DevConfig = load(args.service.config.as_deref(), &sets)?;
            cadenza_dev::run(config).await?;
        }
        Command::Edge(args) => {
            let config: EdgeConfig = load(args.config.as_deref(), &args.sets)?;
            cadenza_edge::run(config).await?;
        }
        Command::Control { service, action } => {
            let config: ControlConfig = load(service.config.as_deref(), &service.sets)?;
            match action {
                Some(ControlAction::Migrate) => {
                    cadenza_control::migrate(&config).await?;
                    println!("migrations applied to {}", redact_url_password(&config.database.url));
                }
                None => cadenza_control::run(config).await?,
            }
        }
        Command::Origin(args) => {
            let config: OriginConfig = load(args.config.as_deref(), &args.sets)?;
            cadenza_origin::run(config).await?;
        }
        Command::Transcode(args) => {
            let mut sets = args.service.sets;
            if let Some(store) = args.store {
                sets.push(format!("store={store}"));
            }
            let config: TranscoderConfig = load(args.service.config.as_deref(), &sets)?;
            let track = args.track_id.parse().with_context(|| format!("track id {:?}", args.track_id))?;
            let reports = cadenza_transcoder::run(config, vec![(track, args.master)]).await?;
            for r in reports {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({
                        "outcome": format!("{:?}", r.outcome).to_lowercase(),
                        "manifest": r.manifest,
                    }))?
                );
            }
        }
        Command::Sign(args) => sign(args)?,
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
