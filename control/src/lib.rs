//! The cadenza control plane: catalog, users, playback and the ingest job
//! queue over HTTP.
//!
//! A player asks `POST /v1/playback/stream` for a track; the control plane
//! checks the user's bearer token, the album's embargo and the tier, picks a
//! published rung of the 24/96/160/320 kbps ladder, and answers with one
//! signed URL per edge POP (`<edge>/a/<file_id>.ogg?exp=…&uid=…&kid=…&sig=…`,
//! signed with the key ring's current key). The catalog arrives through the
//! admin API (`POST /v1/admin/import`, one transaction per batch, built
//! from the transcoder's manifests); users through `POST /v1/admin/users`.
//!
//! New audio arrives through the **ingest job queue**. A label uploads
//! masters under `masters/` in the store and registers them with
//! `POST /v1/admin/ingest` (the tracks' catalog metadata, one track or a
//! whole album); the job is queued. Transcoder workers (`cadenza transcode
//! --worker`, with `ingest.worker_token`) take jobs with leases:
//!
//! ```text
//! POST /v1/ingest/claim                →  200 job + lease (attempt n) | 204 nothing ready
//! POST /v1/ingest/jobs/{id}/heartbeat  →  lease extended
//! POST /v1/ingest/jobs/{id}/complete   →  manifests registered in the catalog, job done (one transaction)
//! POST /v1/ingest/jobs/{id}/fail       →  failed, or queued again after a doubling backoff
//! ```
//!
//! A worker that stops heartbeating loses its lease: the next claim hands
//! the job to another worker under a new lease, and any later call with the
//! old one is 409 `lease_lost`, so a late result is never registered. Every
//! claim counts as an attempt; after `ingest.max_attempts` the job fails.
//! Two claims never get the same job (a compare-and-set on the job's
//! attempt count; see `db/ingest.rs`). Admins follow jobs with
//! `GET /v1/admin/ingest[/{id}]`. The bodies are
//! [`cadenza_config::ingest`]'s.
//!
//! Storage is sqlx's Any driver over SQLite (the embedded default; the file
//! is created if missing, WAL mode) or PostgreSQL, with one migration set per
//! database applied at start-up ([`migrate`] applies them alone, for
//! `cadenza control migrate`). The request and response bodies are the
//! public [`types`]; errors are always
//! `{"error":{"status":…,"code":"…","message":"…"}}`.
//!
//! ```no_run
//! use cadenza_config::service::{ControlConfig, EdgeEndpoint, KeySpec};
//! use cadenza_config::token::SigningKey;
//! use cadenza_config::units::Secret;
//!
//! # async fn demo() -> Result<(), cadenza_control::ControlError> {
//! let mut config = ControlConfig::default();
//! config.listen = "127.0.0.1:0".parse().unwrap();
//! config.admin_token = Secret::new("an-admin-token-of-16+-chars");
//! config.database.url = "sqlite:///tmp/cadenza/control.db".into();
//! config.signing.keys = vec![KeySpec::from_key(&SigningKey::generate("k1".parse().unwrap()))];
//! config.edges = vec![EdgeEndpoint { name: "local".into(), url: "http://127.0.0.1:8410".into() }];
//!
//! let server = cadenza_control::ControlServer::bind(config).await?;
//! println!("control plane on http://{}", server.local_addr());
//! server.serve(async { let _ = tokio::signal::ctrl_c().await; }).await
//! # }
//! ```
//!
//! What this crate must never do:
//! - import the edge crate: edge and control talk HTTP, like two machines;
//! - log or store a user token or a lease token (only their SHA-256 is
//!   stored), the admin or worker token, a signing key, or a signed URL;
//! - register a worker's result without its job's current lease, or hand
//!   one job to two workers at once;
//! - issue a URL for an embargoed track, or above the user's tier;
//! - answer an error in anything but the JSON error shape, or panic on
//!   input.

mod api;
mod auth;
mod catalog;
mod cdn;
mod db;
mod error;
mod events;
mod metrics;
mod playback;
mod search;
mod ttl_cache;
pub mod types;
pub mod users;
mod validate;
mod warm;

use std::future::Future;
use std::net::SocketAddr;

use cadenza_config::ServiceConfig as _;
use cadenza_config::live::{LiveKeys, SigningSource};
use cadenza_config::service::{ControlConfig, redact_url_password as redact};
use tokio::net::TcpListener;

pub use error::ControlError;

/// A bound, migrated control plane, ready to [`serve`](Self::serve).
#[derive(Debug)]
pub struct ControlServer {
    listener: TcpListener,
    local_addr: SocketAddr,
    state: api::AppState,
}

impl ControlServer {
    /// Validate `config`, connect to the database, apply pending
    /// migrations and bind the listener (`listen` may use port 0).
    pub async fn bind(config: ControlConfig) -> Result<Self, ControlError> {
        config.validate()?;
        let keys = LiveKeys::new(&config.signing)?;
        let db = db::Db::connect(&config.database).await?;
        db.migrate().await?;
        let indexed = db::search::backfill(&db)
            .await
            .map_err(|source| ControlError::Database { url: redact(&config.database.url), source })?;
        if indexed > 0 {
            tracing::info!(rows = indexed, "search index backfilled");
        }
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|source| ControlError::Bind { addr: config.listen, source })?;
        let local_addr = listener.local_addr()?;
        Ok(Self { listener, local_addr, state: api::AppState::new(db, config, keys) })
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Where a key reload (SIGHUP, `POST /v1/admin/signing/reload`) reads
    /// `[signing]` from. Default: the config this server was bound with,
    /// its `keys_file` read again; `cadenza control` loads its whole
    /// config again.
    pub fn with_signing_source(self, source: SigningSource) -> Self {
        self.state.keys().set_source(source);
        self
    }

    /// Serve until `shutdown` resolves, then drain in-flight requests for
    /// up to `http.shutdown_grace` and close the database pool.
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ControlError> {
        let app = api::router(self.state.clone());
        let limits = cadenza_net::Limits::from(&self.state.config().http);
        tracing::info!(addr = %self.local_addr, "control plane listening");
        let service = hyper_util::service::TowerToHyperService::new(app);
        // The background tasks' HTTP clients need it before they are built.
        cadenza_net::tls::install_crypto_provider();
        // Probe every POP, and follow the registry other replicas change.
        let prober = tokio::spawn(cdn::prober(self.state.clone()));
        // Run due warm jobs (any replica may; leases keep it to one).
        let warmer = tokio::spawn(warm::runner(self.state.clone()));
        // SIGHUP reloads the signing keys. Listening before the first
        // request also keeps SIGHUP's default action (exit) away.
        let reloader = tokio::spawn(reload_on_hangup(cadenza_net::Hangups::listen(), self.state.clone()));
        // Forget idle users' rate-limit buckets once a minute.
        let limiters = self.state.limiters().clone();
        let sweeper = tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
            loop {
                tick.tick().await;
                limiters.forget_idle();
            }
        });
        let served = cadenza_net::serve(self.listener, service, limits, shutdown).await;
        sweeper.abort();
        prober.abort();
        warmer.abort();
        reloader.abort();
        self.state.db().close().await;
        served.map_err(ControlError::from)
    }
}

/// Reload the signing key ring on every SIGHUP (logged either way).
async fn reload_on_hangup(hangups: std::io::Result<cadenza_net::Hangups>, state: api::AppState) {
    let mut hup = match hangups {
        Ok(h) => h,
        Err(e) => {
            tracing::warn!(
                error = %e,
                "cannot listen for SIGHUP; use POST /v1/admin/signing/reload to reload the signing keys"
            );
            return;
        }
    };
    while hup.recv().await {
        tracing::info!("SIGHUP received; reloading the signing keys");
        let _ = api::reload_signing_keys(&state, "SIGHUP").await;
    }
}

/// Bind and serve until SIGINT or SIGTERM; key reloads read `[signing]`
/// from `signing` (see [`ControlServer::with_signing_source`]).
pub async fn run(config: ControlConfig, signing: SigningSource) -> Result<(), ControlError> {
    ControlServer::bind(config)
        .await?
        .with_signing_source(signing)
        .serve(cadenza_net::shutdown_signal())
        .await
}

/// Apply pending migrations to `config.database` and return (idempotent).
pub async fn migrate(config: &ControlConfig) -> Result<(), ControlError> {
    let db = db::Db::connect(&config.database).await?;
    let migrated = db.migrate().await;
    db.close().await;
    migrated
}
