//! `cadenza dev`: the whole system in one process on loopback.
//!
//! Starts an origin (a `file://` store under the data dir, served over HTTP),
//! one or more edges filling from it, the control plane on SQLite, and a
//! transcoder worker taking the control plane's ingest jobs. On first start
//! it synthesises a demo album, uploads the masters to the store's
//! `masters/`, registers them as one ingest job, which the worker
//! transcodes, publishes and registers in the catalog; and it makes a
//! premium demo user;
//! then writes `<data-dir>/stack.json` (see [`stack::StackFile`]). A second
//! start reuses the data dir: same keys, same tokens, nothing re-encoded.
//!
//! Each service also gets a config file under `<data-dir>/config/`, so any
//! of them can be run alone with `cadenza <service> --config …`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), cadenza_dev::DevError> {
//! let mut config = cadenza_config::service::DevConfig::default();
//! config.base_port = 0; // free ports
//! let stack = cadenza_dev::start(config).await?;
//! println!("control plane at {}", stack.stack().control.url);
//! stack.shutdown().await
//! # }
//! ```

mod demo;
mod secrets;
pub mod stack;
mod tls;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use cadenza_config::ServiceConfig as _;
use cadenza_config::service::{
    AdminConfig, CdnConfig, CdnKind, ControlConfig, DatabaseConfig, DevConfig, DiskConfig, EdgeConfig,
    IngestConfig, OriginConfig, PopConfig, SigningConfig, TlsConfig, TranscoderConfig, UpstreamConfig,
    WorkerConfig,
};
use cadenza_config::units::{HumanDuration, Secret};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::secrets::Secrets;
use crate::stack::{ControlEndpoint, EdgeEndpoint, OriginEndpoint, SigningInfo, StackFile};

/// Name of the dev stack's shield edge (with `shield = true`).
const SHIELD: &str = "shield";
/// The CDN the dev stack's edges are POPs of.
pub const DEV_CDN: &str = "dev";
/// The region of the dev stack's POPs.
pub const DEV_REGION: &str = "local";

/// Why the dev stack could not start or stopped badly.
#[derive(Debug, thiserror::Error)]
pub enum DevError {
    #[error(transparent)]
    Config(#[from] cadenza_config::ConfigError),
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("origin: {0}")]
    Origin(#[from] cadenza_origin::OriginError),
    #[error("store: {0}")]
    Store(#[from] cadenza_origin::StoreError),
    #[error("edge: {0}")]
    Edge(#[from] cadenza_edge::EdgeError),
    #[error("control plane: {0}")]
    Control(#[from] cadenza_control::ControlError),
    #[error("demo album: {0}")]
    Demo(String),
    #[error("{0}")]
    Http(String),
    #[error("a service stopped: {0}")]
    Stopped(String),
    #[error("dev TLS certificate: {0}")]
    Tls(String),
}

/// A running dev stack.
#[derive(Debug)]
pub struct DevStack {
    stack: StackFile,
    stack_path: PathBuf,
    stop: watch::Sender<bool>,
    tasks: Vec<(String, JoinHandle<Result<(), String>>)>,
    /// Each edge's own stop, for [`DevStack::stop_edge`].
    edge_stops: Vec<(String, watch::Sender<bool>)>,
}

impl DevStack {
    /// Endpoints, tokens and demo ids (what `stack.json` holds).
    pub fn stack(&self) -> &StackFile {
        &self.stack
    }

    /// Where `stack.json` was written.
    pub fn stack_path(&self) -> &Path {
        &self.stack_path
    }

    /// Stop one edge POP (drain, then close its listeners), as if its
    /// machine went away: the control plane's probes mark it down and new
    /// stream answers avoid it. `false` if no running edge has that name.
    pub async fn stop_edge(&mut self, name: &str) -> Result<bool, DevError> {
        let Some(k) = self.edge_stops.iter().position(|(n, _)| n == name) else { return Ok(false) };
        let (_, stop) = self.edge_stops.remove(k);
        let _ = stop.send(true);
        let Some(t) = self.tasks.iter().position(|(n, _)| n == name) else { return Ok(true) };
        let (_, task) = self.tasks.remove(t);
        match task.await {
            Ok(Ok(())) => Ok(true),
            Ok(Err(e)) => Err(DevError::Stopped(format!("{name}: {e}"))),
            Err(e) => Err(DevError::Stopped(format!("{name}: {e}"))),
        }
    }

    /// Stop every service, draining in-flight requests.
    pub async fn shutdown(self) -> Result<(), DevError> {
        let _ = self.stop.send(true);
        let mut first_error = None;
        for (name, task) in self.tasks {
            let outcome = match task.await {
                Ok(Ok(())) => continue,
                Ok(Err(e)) => format!("{name}: {e}"),
                Err(e) => format!("{name}: {e}"),
            };
            first_error.get_or_insert(DevError::Stopped(outcome));
        }
        first_error.map_or(Ok(()), Err)
    }
}

fn port(config: &DevConfig, offset: u16) -> SocketAddr {
    let p = if config.base_port == 0 { 0 } else { config.base_port + offset };
    SocketAddr::new(config.host, p)
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> DevError + '_ {
    move |source| DevError::Io { path: path.to_owned(), source }
}

/// Start the stack; returns once every listener is bound and the demo album
/// is published, registered and playable.
pub async fn start(config: DevConfig) -> Result<DevStack, DevError> {
    config.validate()?;
    std::fs::create_dir_all(&config.data_dir).map_err(io(&config.data_dir))?;
    let data_dir = std::fs::canonicalize(&config.data_dir).map_err(io(&config.data_dir))?;
    let edges = usize::from(config.edges);
    let (secrets, current_kid) = Secrets::load_or_create(&data_dir, edges).map_err(io(&data_dir))?;
    let keys_file = data_dir.join("keys.toml");
    let store_url = format!("file://{}", data_dir.join("store").display());
    let store = cadenza_origin::open_store(&store_url)?;
    let dev_cert = if config.tls { Some(tls::ensure(&data_dir).map_err(DevError::Tls)?) } else { None };
    let (stop, stop_rx) = watch::channel(false);
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    let mut tasks: Vec<(String, JoinHandle<Result<(), String>>)> = Vec::new();

    // Origin.
    let origin_config =
        OriginConfig { listen: port(&config, 1), store: store_url.clone(), ..OriginConfig::default() };
    let origin = cadenza_origin::OriginServer::bind_store(origin_config.clone(), store.clone()).await?;
    let origin_url = format!("http://{}", origin.local_addr());
    tasks.push((
        "origin".into(),
        tokio::spawn({
            let s = stopped();
            async move { origin.serve(s).await.map_err(|e| e.to_string()) }
        }),
    ));

    // The shield, if asked for: the edges fill from it, it from the origin.
    let mut started = Started::default();
    let mut shield_endpoints = Vec::new();
    let tls = TlsConfig {
        cert: dev_cert.as_ref().map(|c| c.cert.clone()),
        key: dev_cert.as_ref().map(|c| c.key.clone()),
    };
    let edge_config = |name: String, listen: u16, admin_token: &str, upstream: UpstreamConfig| {
        let defaults = EdgeConfig::default();
        EdgeConfig {
            listen: port(&config, listen),
            admin: AdminConfig { listen: port(&config, listen + 1), token: Secret::new(admin_token) },
            origin: upstream,
            signing: SigningConfig { keys_file: Some(keys_file.clone()), ..defaults.signing },
            tls: tls.clone(),
            // A disk tier per edge, as a POP has: restarts keep the cache.
            disk: DiskConfig {
                path: data_dir.join(format!("{name}-cache")).display().to_string(),
                max_size: cadenza_config::units::ByteSize::gib(1),
                ..defaults.disk.clone()
            },
            name,
            ..defaults
        }
    };
    let mut upstream = UpstreamConfig { url: origin_url.clone(), ..UpstreamConfig::default() };
    if config.shield {
        let mut c = edge_config(SHIELD.into(), 2, &secrets.shield_admin_token, upstream.clone());
        c.tier.token = Secret::new(secrets.tier_token.clone());
        // Plain HTTP even with --tls: children would need the dev
        // certificate in their upstream client, and players never come here.
        c.tls = TlsConfig::default();
        let shield = start_edge(c, &secrets.shield_admin_token, stopped(), &mut started).await?;
        // Children fill from the shield's audio listener with the tier token.
        upstream = UpstreamConfig {
            url: shield.url.clone(),
            token: Secret::new(secrets.tier_token.clone()),
            ..UpstreamConfig::default()
        };
        shield_endpoints.push(shield);
    }
    let mut edge_endpoints = Vec::with_capacity(edges);
    for i in 0..edges {
        let token = &secrets.edge_admin_tokens[i];
        let c = edge_config(format!("edge-{}", i + 1), 10 + 2 * i as u16, token, upstream.clone());
        edge_endpoints.push(start_edge(c, token, stopped(), &mut started).await?);
    }
    let Started { configs: edge_configs, stops: edge_stops, tasks: edge_tasks } = started;
    tasks.extend(edge_tasks);

    // Control plane.
    let defaults = ControlConfig::default();
    let mut control_config = ControlConfig {
        listen: port(&config, 0),
        admin_token: Secret::new(secrets.control_admin_token.clone()),
        database: DatabaseConfig {
            url: format!("sqlite://{}", data_dir.join("control.db").display()),
            ..defaults.database
        },
        signing: SigningConfig { keys_file: Some(keys_file.clone()), ..defaults.signing },
        // The edges are the POPs of one CDN, probed on their admin
        // listeners, so selection and failover work as in production.
        cdns: vec![CdnConfig {
            name: DEV_CDN.into(),
            kind: CdnKind::Cadenza,
            secret: Secret::default(),
            cost_per_gb: 1.0,
            weight: 100,
            // With the admin tokens, so warm jobs run on them; the shield
            // is a POP players are never sent to.
            pops: shield_endpoints
                .iter()
                .map(|e| (e, true))
                .chain(edge_endpoints.iter().map(|e| (e, false)))
                .map(|(e, shield)| PopConfig {
                    region: DEV_REGION.into(),
                    admin_url: Some(e.admin_url.clone()),
                    admin_token: Secret::new(e.admin_token.clone()),
                    shield,
                    parent: (!shield && config.shield).then(|| SHIELD.to_owned()),
                    ..PopConfig::new(e.name.clone(), e.url.clone())
                })
                .collect(),
        }],
        ingest: IngestConfig {
            worker_token: Secret::new(secrets.ingest_worker_token.clone()),
            ..defaults.ingest
        },
        ..defaults
    };
    let control = cadenza_control::ControlServer::bind(control_config.clone()).await?;
    let control_url = format!("http://{}", control.local_addr());
    control_config.listen = control.local_addr();
    tasks.push((
        "control".into(),
        tokio::spawn({
            let s = stopped();
            async move { control.serve(s).await.map_err(|e| e.to_string()) }
        }),
    ));

    // A transcoder worker taking the control plane's ingest jobs, as a
    // transcoding fleet would; the demo album arrives through it.
    let transcoder_config = TranscoderConfig {
        store: store_url.clone(),
        work_dir: None,
        worker: WorkerConfig {
            control_url: control_url.clone(),
            token: Secret::new(secrets.ingest_worker_token.clone()),
            name: "dev-worker".into(),
            // Short, so a job left running by a killed stack is picked up
            // again soon after a restart.
            lease: HumanDuration::secs(30),
            poll_interval: HumanDuration::millis(250),
            ..WorkerConfig::default()
        },
    };
    tasks.push((
        "transcoder-worker".into(),
        tokio::spawn({
            let s = stopped();
            let config = transcoder_config.clone();
            async move { cadenza_transcoder::run_worker(config, s).await.map(drop).map_err(|e| e.to_string()) }
        }),
    ));

    let mut stack = DevStack {
        stack: StackFile {
            version: stack::STACK_VERSION,
            data_dir: data_dir.clone(),
            control: ControlEndpoint {
                url: control_url.clone(),
                admin_token: secrets.control_admin_token.clone(),
                worker_token: secrets.ingest_worker_token.clone(),
                database_url: control_config.database.url.clone(),
            },
            origin: OriginEndpoint { url: origin_url, store: store_url.clone() },
            edges: edge_endpoints,
            shields: shield_endpoints,
            signing: SigningInfo { keys_file, current_kid },
            tls_ca_file: dev_cert.map(|c| c.ca),
            demo: stack::DemoInfo {
                user_id: String::new(),
                user_token: String::new(),
                artist_id: String::new(),
                album_id: String::new(),
                track_ids: Vec::new(),
            },
        },
        stack_path: data_dir.join("stack.json"),
        stop,
        tasks,
        edge_stops,
    };

    let previous = StackFile::read(&stack.stack_path).map(|s| s.demo);
    let demo = demo::ensure(
        &data_dir,
        &config.demo,
        &store,
        &control_url,
        &secrets.control_admin_token,
        previous.as_ref(),
    )
    .await;
    match demo {
        Ok(d) => stack.stack.demo = d,
        Err(e) => {
            let _ = stack.shutdown().await;
            return Err(e);
        }
    }
    write_service_configs(&data_dir, &control_config, &origin_config, &edge_configs, &transcoder_config)?;
    stack.stack.write(&stack.stack_path).map_err(io(&stack.stack_path))?;
    Ok(stack)
}

/// The edges started so far.
#[derive(Default)]
struct Started {
    configs: Vec<EdgeConfig>,
    stops: Vec<(String, watch::Sender<bool>)>,
    tasks: Vec<(String, JoinHandle<Result<(), String>>)>,
}

/// Bind an edge and serve it until the stack's stop (`all`) or its own.
async fn start_edge(
    mut c: EdgeConfig,
    admin_token: &str,
    all: impl Future<Output = ()> + Send + 'static,
    started: &mut Started,
) -> Result<EdgeEndpoint, DevError> {
    let edge = cadenza_edge::EdgeServer::bind(c.clone()).await?;
    let endpoint = EdgeEndpoint {
        name: c.name.clone(),
        url: format!("{}://{}", edge.scheme(), edge.local_addr()),
        admin_url: format!("http://{}", edge.admin_addr()),
        admin_token: admin_token.to_owned(),
    };
    c.listen = edge.local_addr();
    c.admin.listen = edge.admin_addr();
    started.configs.push(c);
    let (own_tx, mut own_rx) = watch::channel(false);
    started.stops.push((edge.name().to_owned(), own_tx));
    let s = async move {
        tokio::select! {
            () = all => {}
            _ = own_rx.wait_for(|s| *s) => {}
        }
    };
    started.tasks.push((
        edge.name().to_owned(),
        tokio::spawn(async move { edge.serve(s).await.map_err(|e| e.to_string()) }),
    ));
    Ok(endpoint)
}

/// `<data-dir>/config/*.toml`: each service's config as the dev stack runs
/// it, for `cadenza <service> --config …`.
fn write_service_configs(
    data_dir: &Path,
    control: &ControlConfig,
    origin: &OriginConfig,
    edges: &[EdgeConfig],
    transcoder: &TranscoderConfig,
) -> Result<(), DevError> {
    let dir = data_dir.join("config");
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    let mut files = vec![
        ("control.toml".to_owned(), toml::to_string(control)),
        ("origin.toml".to_owned(), toml::to_string(origin)),
        ("transcoder.toml".to_owned(), toml::to_string(transcoder)),
    ];
    for e in edges {
        files.push((format!("{}.toml", e.name), toml::to_string(e)));
    }
    for (name, text) in files {
        let path = dir.join(name);
        let text = text.expect("service configs serialise to TOML");
        secrets::write_private(&path, text.as_bytes()).map_err(io(&path))?;
    }
    Ok(())
}

/// `cadenza dev`: start, print how to use the stack, run until SIGINT/SIGTERM.
pub async fn run(config: DevConfig) -> Result<(), DevError> {
    let stack = start(config).await?;
    print_summary(&stack).await;
    cadenza_net::shutdown_signal().await;
    stack.shutdown().await
}

async fn print_summary(stack: &DevStack) {
    let s = stack.stack();
    println!();
    println!("cadenza dev stack is up (data in {})", s.data_dir.display());
    println!("  control plane  {}", s.control.url);
    println!("  origin         {}", s.origin.url);
    for e in &s.shields {
        println!("  {:<14} {}  (admin {}; the edges fill from it)", e.name, e.url, e.admin_url);
    }
    for e in &s.edges {
        println!("  {:<14} {}  (admin {})", e.name, e.url, e.admin_url);
    }
    println!("  stack file     {}", stack.stack_path().display());
    let first = &s.demo.track_ids[0];
    let url = demo::client()
        .post(format!("{}/v1/playback/stream", s.control.url))
        .bearer_auth(&s.demo.user_token)
        .json(&serde_json::json!({ "track_id": first }))
        .send()
        .await;
    let url = match url {
        Ok(resp) => match demo::check(resp, "stream url").await {
            Ok(resp) => resp
                .json::<cadenza_control::types::StreamResponse>()
                .await
                .ok()
                .and_then(|r| r.urls.into_iter().next())
                .map(|u| u.url),
            Err(_) => None,
        },
        Err(_) => None,
    };
    println!();
    match url {
        Some(url) => {
            println!("The first 64 KiB of demo track {first}, signed for the demo user (valid 1 h):");
            let ca =
                s.tls_ca_file.as_ref().map(|p| format!("--cacert '{}' ", p.display())).unwrap_or_default();
            println!("  curl -sS {ca}-D - -o first-64k.ogg -H 'Range: bytes=0-65535' '{url}'");
            println!("The whole track, to listen to:");
            println!("  curl -sS {ca}-o {first}.ogg '{url}' && ffplay -autoexit {first}.ogg");
        }
        None => println!("(could not fetch a stream URL for {first}; see the log)"),
    }
    println!("A fresh URL for any quality:");
    println!(
        "  curl -sS -H 'Authorization: Bearer {}' -H 'Content-Type: application/json' \\\n       -d '{{\"track_id\":\"{first}\",\"quality\":96}}' {}/v1/playback/stream",
        s.demo.user_token, s.control.url
    );
    println!();
    println!("Warm the demo album onto every edge (shields first):");
    println!("  cadenza warm --stack '{}' --album {} --wait", stack.stack_path().display(), s.demo.album_id);
    println!();
    println!("Ctrl-C stops the stack; the next start reuses {}.", s.data_dir.display());
}
