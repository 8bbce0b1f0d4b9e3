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
//! A second listener (`admin.listen`) serves `/healthz`, `/readyz` and
//! `/metrics`.
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
mod handler;
mod metrics;
mod reply;
pub mod tier;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use cadenza_config::ConfigError;
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
}

/// An edge with its listeners bound, ready to serve.
#[derive(Debug)]
pub struct EdgeServer {
    name: String,
    public: TcpListener,
    admin: TcpListener,
    config: EdgeConfig,
    edge: Arc<Edge>,
}

impl EdgeServer {
    /// Check the config, open the origin store and bind both listeners
    /// (port 0 picks a free port).
    pub async fn bind(config: EdgeConfig) -> Result<Self, EdgeError> {
        use cadenza_config::ServiceConfig as _;
        config.validate()?;
        let verifier = config.signing.verifier()?;
        let store = cadenza_origin::open_store(&config.origin.url)?;
        let metrics = metrics::Metrics::new(&config.name);
        let settings = CacheSettings {
            memory_bytes: config.cache.memory.bytes(),
            slice_size: config.cache.slice.bytes(),
            timeout: config.origin.timeout.get(),
            max_concurrent: config.origin.max_concurrent as usize,
            not_found_ttl: config.cache.not_found_ttl.get(),
        };
        let cache = SliceCache::new(store, &settings, metrics.clone());
        let public = bind(config.listen).await?;
        let admin = bind(config.admin.listen).await?;
        let edge = Arc::new(Edge {
            verifier,
            cache: Arc::new(cache),
            metrics,
            cors: cors::Cors::new(&config.cors),
            max_ranges: config.max_ranges as usize,
            access_log: handler::Sampler::new(config.access_log.sample),
        });
        Ok(Self { name: config.name.clone(), public, admin, config, edge })
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
        let (a, b) = tokio::join!(
            cadenza_net::serve(self.public, public, limits, stopped(stop_rx.clone())),
            cadenza_net::serve(self.admin, admin, limits, stopped(stop_rx)),
        );
        a.and(b).map_err(EdgeError::Serve)
    }
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, EdgeError> {
    TcpListener::bind(addr).await.map_err(|source| EdgeError::Bind { addr, source })
}

/// `cadenza edge`: bind and serve until SIGINT/SIGTERM.
pub async fn run(config: EdgeConfig) -> Result<(), EdgeError> {
    EdgeServer::bind(config).await?.serve(cadenza_net::shutdown_signal()).await
}
