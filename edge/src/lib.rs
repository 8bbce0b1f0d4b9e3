//! The cadenza edge POP: every byte a listener hears passes through here.
//!
//! `GET`/`HEAD /a/<file_id>.ogg?exp=…&uid=…&kid=…&sig=…` with an optional
//! `Range`. Each request is checked in this order: the path must be exactly
//! an audio path; the URL token must verify (HMAC-SHA256, key ring by `kid`,
//! see `cadenza_config::token`); then the object's length is looked up, the
//! conditionals (`If-None-Match`, `If-Range`) and the range are applied, and
//! the bytes come from the memory tier's slices, filled from the origin on a
//! miss — only the slices a range covers.
//!
//! A second listener (`admin.listen`) serves `/healthz`, `/readyz`,
//! `/metrics` and the admin API (`/admin/warm`, `/admin/purge`, `/admin/stats`,
//! `/admin/keys`, behind `admin.token`).
//!
//! SIGHUP reloads the TLS certificate and the signing key ring (so does
//! `POST /admin/keys/reload`, for the ring): a key rotation never needs a
//! restart. A reload that fails keeps what is in use.
//!
//! ```no_run
//! # async fn demo(config: cadenza_config::service::EdgeConfig) -> Result<(), cadenza_edge::EdgeError> {
//! let edge = cadenza_edge::EdgeServer::bind(config).await?;
//! println!("serving on {}", edge.local_addr());
//! edge.serve(cadenza_net::shutdown_signal()).await
//! # }
//! ```
//!
//! The edge never writes to the origin, never imports the control plane, and
//! never logs a signature or a full signed URL.

mod admin;
mod body;
mod cache;
mod cors;
pub mod disk;
mod handler;
mod keys;
mod metrics;
mod reply;
mod stats;
pub mod tier;
mod warm;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use cadenza_config::ConfigError;
use cadenza_config::live::{LiveKeys, SigningSource};
use cadenza_config::service::EdgeConfig;
use tokio::net::TcpListener;

use crate::cache::{CacheSettings, SliceCache};
use crate::handler::Edge;

/// Why the edge could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum EdgeError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("origin: {0}")]
    Origin(#[from] cadenza_origin::StoreError),
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("listener failed: {0}")]
    Serve(std::io::Error),
    #[error("config key \"tls.cert\"/\"tls.key\": {0}")]
    Tls(#[from] cadenza_net::TlsError),
    #[error("config key {0}")]
    Disk(#[from] disk::DiskError),
}

/// An edge with its listeners bound, ready to serve.
#[derive(Debug)]
pub struct EdgeServer {
    name: String,
    public: TcpListener,
    admin: TcpListener,
    config: EdgeConfig,
    edge: Arc<Edge>,
    tls: Option<cadenza_net::Tls>,
}

impl EdgeServer {
    /// Check the config, open the origin store and bind both listeners
    /// (port 0 picks a free port).
    pub async fn bind(config: EdgeConfig) -> Result<Self, EdgeError> {
        use cadenza_config::ServiceConfig as _;
        config.validate()?;
        let keys = LiveKeys::new(&config.signing)?;
        let token = Some(config.origin.token.expose()).filter(|t| !t.is_empty());
        let store = cadenza_origin::open_store_with_token(&config.origin.url, token)?;
        let metrics = metrics::Metrics::new(&config.name);
        metrics.set_signing_keys(&keys.summary());
        let settings = CacheSettings {
            memory_bytes: config.cache.memory.bytes(),
            slice_size: config.cache.slice.bytes(),
            timeout: config.origin.timeout.get(),
            max_concurrent: config.origin.max_concurrent as usize,
            not_found_ttl: config.cache.not_found_ttl.get(),
        };
        let disk = if config.disk.path.is_empty() {
            None
        } else {
            let settings = disk::DiskSettings {
                path: config.disk.path.clone().into(),
                max_bytes: config.disk.max_size.bytes(),
                slice_size: config.cache.slice.bytes(),
                max_writes: config.disk.max_writes as usize,
                reprobe_min: config.disk.reprobe_min.get(),
                reprobe_max: config.disk.reprobe_max.get(),
            };
            Some(disk::DiskTier::open(&settings, metrics.clone())?)
        };
        let cache = SliceCache::new(store, &settings, disk, metrics.clone());
        let tls = match config.tls.files() {
            Some((cert, key)) => Some(cadenza_net::Tls::load(cert, key)?),
            None => None,
        };
        let public = bind(config.listen).await?;
        let admin = bind(config.admin.listen).await?;
        let cache = Arc::new(cache);
        let warmer = warm::Warmer::new(
            cache.clone(),
            config.warm.max_concurrent as usize,
            config.warm.max_jobs as usize,
        );
        let edge = Arc::new(Edge {
            keys,
            warmer,
            cache,
            metrics,
            cors: cors::Cors::new(&config.cors),
            max_ranges: config.max_ranges as usize,
            access_log: handler::Sampler::new(config.access_log.sample),
            tier_token: Some(config.tier.token.clone())
                .filter(|t| !t.is_empty())
                .map(|t| (t, Some(config.tier.previous_token.clone()).filter(|p| !p.is_empty()))),
            admin_token: config.admin.token.clone(),
            name: config.name.clone(),
            windows: stats::Windows::new(std::time::Instant::now(), stats::Sample::default()),
        });
        Ok(Self { name: config.name.clone(), public, admin, config, edge, tls })
    }

    /// The public (audio) listener's address.
    pub fn local_addr(&self) -> SocketAddr {
        self.public.local_addr().expect("bound listener has an address")
    }

    /// The admin listener's address.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin.local_addr().expect("bound listener has an address")
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The public listener's TLS, when `[tls]` is configured: its
    /// [`reload`](cadenza_net::Tls::reload) is what SIGHUP does.
    pub fn tls(&self) -> Option<&cadenza_net::Tls> {
        self.tls.as_ref()
    }

    /// Where a key reload (SIGHUP, `POST /admin/keys/reload`) reads
    /// `[signing]` from. Default: the config this edge was bound with, its
    /// `keys_file` read again; `cadenza edge` loads its whole config again.
    pub fn with_signing_source(self, source: SigningSource) -> Self {
        self.edge.keys.set_source(source);
        self
    }

    /// `https` when the public listener speaks TLS, else `http`.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }

    /// Serve until `shutdown` completes, then drain both listeners.
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<(), EdgeError> {
        let limits = cadenza_net::Limits::from(&self.config.http);
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            shutdown.await;
            let _ = stop_tx.send(true);
        });
        let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        tracing::info!(edge = %self.name, public = %self.local_addr(), admin = %self.admin_addr(), "edge serving");

        let edge = self.edge.clone();
        let public = hyper::service::service_fn(move |req| {
            let edge = edge.clone();
            async move { Ok::<_, std::convert::Infallible>(handler::handle(edge, req).await) }
        });
        let edge = self.edge.clone();
        let admin = hyper::service::service_fn(move |req| {
            let edge = edge.clone();
            async move { Ok::<_, std::convert::Infallible>(admin::handle(edge, req).await) }
        });
        let Self { name, public: public_listener, admin: admin_listener, tls, .. } = self;
        // Listen for SIGHUP before the first connection is accepted, so a
        // reload signal can never meet the default action (exit).
        let reloader = tokio::spawn(reload_on(hangups(&name), name, tls.clone(), self.edge.clone()));
        let sampler = tokio::spawn(sample_counters(self.edge.clone()));
        let public_stop = stopped(stop_rx.clone());
        let public = async move {
            match tls {
                Some(tls) => cadenza_net::serve_tls(public_listener, public, limits, tls, public_stop).await,
                None => cadenza_net::serve(public_listener, public, limits, public_stop).await,
            }
        };
        let admin = cadenza_net::serve(admin_listener, admin, limits, stopped(stop_rx));
        let (a, b) = tokio::join!(public, admin);
        reloader.abort();
        sampler.abort();
        a.and(b).map_err(EdgeError::Serve)
    }
}

/// Feed `/admin/stats`' windows.
async fn sample_counters(edge: Arc<Edge>) {
    let mut every = tokio::time::interval(stats::SAMPLE_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    every.tick().await;
    loop {
        every.tick().await;
        edge.windows.record(std::time::Instant::now(), stats::Sample::read(&edge.metrics));
    }
}

/// SIGHUP, or `None` (logged) where it cannot be had.
fn hangups(name: &str) -> Option<cadenza_net::Hangups> {
    match cadenza_net::Hangups::listen() {
        Ok(h) => Some(h),
        Err(e) => {
            tracing::warn!(
                edge = %name, error = %e,
                "cannot listen for SIGHUP; use POST /admin/keys/reload to reload the signing keys"
            );
            None
        }
    }
}

/// On every SIGHUP (the convention of nginx and of certbot's deploy
/// hooks), re-read the certificate and key, and the signing key ring. What
/// fails to load is logged; what is in use stays.
async fn reload_on(
    hangups: Option<cadenza_net::Hangups>,
    name: String,
    tls: Option<cadenza_net::Tls>,
    edge: Arc<Edge>,
) {
    let Some(mut hup) = hangups else { return };
    while hup.recv().await {
        tracing::info!(edge = %name, "SIGHUP received; reloading the signing keys and TLS certificate");
        // Logged either way; nothing else to do with the outcome here.
        let _ = keys::reload(&edge, "SIGHUP").await;
        let Some(tls) = &tls else { continue };
        let (cert, key) = tls.files();
        match tls.reload() {
            Ok(()) => tracing::info!(
                edge = %name, cert = %cert.display(), key = %key.display(), "TLS certificate reloaded"
            ),
            Err(e) => tracing::error!(
                edge = %name, error = %e, "TLS certificate reload failed; keeping the one in use"
            ),
        }
    }
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, EdgeError> {
    TcpListener::bind(addr).await.map_err(|source| EdgeError::Bind { addr, source })
}

/// `cadenza edge`: bind and serve until SIGINT/SIGTERM; key reloads read
/// `[signing]` from `signing` (see [`EdgeServer::with_signing_source`]).
pub async fn run(config: EdgeConfig, signing: SigningSource) -> Result<(), EdgeError> {
    EdgeServer::bind(config).await?.with_signing_source(signing).serve(cadenza_net::shutdown_signal()).await
}
