use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::cdn::{CdnConfig, CdnKind, HealthConfig, PopConfig, SelectionConfig, validate_cdns};
use super::common::{HttpServerConfig, SigningConfig, validate_admin_token};
use crate::ids::is_opaque_id;
use crate::load::{ConfigError, ServiceConfig, ensure};
use crate::units::{HumanDuration, Secret};

/// `cadenza control`: the control plane API.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ControlConfig {
    /// API listener. Default `127.0.0.1:8400`.
    pub listen: std::net::SocketAddr,
    /// Bearer token for `/v1/admin/*`, also accepted on the workers'
    /// `/v1/ingest/*` (at least 16 characters). Required.
    pub admin_token: Secret,
    pub database: DatabaseConfig,
    /// Keys for signing stream URLs; the current key signs.
    pub signing: SigningConfig,
    pub playback: PlaybackConfig,
    /// Shorthand for cadenza edge POPs with no region, cost or admin URL:
    /// they become the POPs of a CDN named `cadenza` (see
    /// [`ControlConfig::registry`]). Prefer `[[cdns]]`.
    pub edges: Vec<EdgeEndpoint>,
    /// The CDNs and POPs stream URLs point at. The admin API adds more at
    /// run time; those in the config cannot be changed there.
    pub cdns: Vec<CdnConfig>,
    /// Active probes and passive signals of every POP.
    pub health: HealthConfig,
    /// How POPs are chosen and ordered for a stream answer.
    pub selection: SelectionConfig,
    pub http: HttpServerConfig,
    /// The ingest job queue transcoder workers take jobs from.
    pub ingest: IngestConfig,
    /// Per-user request limits of the public API, by category.
    pub rate_limits: RateLimitsConfig,
    /// In-process caches in front of the database.
    pub cache: ControlCacheConfig,
    pub warm: ControlWarmConfig,
}

/// `[cache]`: what the control plane keeps in memory, and for how long.
/// Another replica's (or the CLI's) change shows after at most the TTL;
/// this process's own catalog writes clear its catalog cache at once.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ControlCacheConfig {
    /// How long a bearer token's user is remembered; a revoked token keeps
    /// working on this replica for at most this long. `0s` looks every
    /// token up on every request. Default `5s`; at most `5m`.
    pub token_ttl: HumanDuration,
    /// How long a track's public view is kept. `0s` turns the cache off.
    /// Default `5s`; at most `1h`.
    pub catalog_ttl: HumanDuration,
    /// How long a track's embargo and published renditions are kept for
    /// `POST /v1/playback/stream`. Longer than `catalog_ttl` because
    /// staleness costs little here: the release time is compared with the
    /// clock on every request (an embargo ends on time whatever the TTL),
    /// URLs already issued live `playback.url_ttl` (1 h) anyway, and this
    /// process's own writes clear the cache at once. What another replica
    /// changes (a new rendition, a takedown, a postponed release) shows
    /// here after at most this long. `0s` turns the cache off. Default
    /// `60s`; at most `1h`. Holds at most `catalog_capacity` tracks.
    pub playback_ttl: HumanDuration,
    /// Most tracks kept. Default `100000`.
    pub catalog_capacity: u64,
}

impl Default for ControlCacheConfig {
    fn default() -> Self {
        Self {
            token_ttl: HumanDuration::secs(5),
            catalog_ttl: HumanDuration::secs(5),
            playback_ttl: HumanDuration::secs(60),
            catalog_capacity: 100_000,
        }
    }
}

/// `[rate_limits]`: a token bucket (GCRA) per user and category. A request
/// over its category's limit is answered `429 rate_limited` with
/// `Retry-After`. The admin and worker routes are not limited.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitsConfig {
    /// Default `true`. Load tests that drive one user hard turn it off.
    pub enabled: bool,
    /// Catalog, playlist and library reads. Default 50/s, burst 100.
    pub read: RateLimit,
    /// `GET /v1/search`. Default 10/s, burst 20.
    pub search: RateLimit,
    /// Stream URLs. Default 10/s, burst 30.
    pub playback: RateLimit,
    /// Saving and removing library items. Default 10/s, burst 50.
    pub library_write: RateLimit,
    /// Creating and changing playlists. Default 10/s, burst 50.
    pub playlist_write: RateLimit,
    /// `POST /v1/events` batches (up to 500 events each). Default 5/s,
    /// burst 30 (a player back online sends its offline plays at once).
    pub events: RateLimit,
}

/// One category's limit: a sustained rate and the burst allowed on top.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Sustained requests per second per user, `1` to `100000`.
    pub per_second: u32,
    /// Requests a user may make at once after being idle, `1` to `100000`.
    pub burst: u32,
}

impl RateLimit {
    pub const fn new(per_second: u32, burst: u32) -> Self {
        Self { per_second, burst }
    }
}

impl Default for RateLimitsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            read: RateLimit::new(50, 100),
            search: RateLimit::new(10, 20),
            playback: RateLimit::new(10, 30),
            library_write: RateLimit::new(10, 50),
            playlist_write: RateLimit::new(10, 50),
            events: RateLimit::new(5, 30),
        }
    }
}

impl RateLimitsConfig {
    /// Every category with its config key.
    pub fn categories(&self) -> [(&'static str, RateLimit); 6] {
        [
            ("read", self.read),
            ("search", self.search),
            ("playback", self.playback),
            ("library_write", self.library_write),
            ("playlist_write", self.playlist_write),
            ("events", self.events),
        ]
    }

    fn validate(&self) -> Result<(), ConfigError> {
        for (name, limit) in self.categories() {
            ensure(
                (1..=100_000).contains(&limit.per_second),
                &format!("rate_limits.{name}.per_second"),
                limit.per_second,
                "must be between 1 and 100000",
            )?;
            ensure(
                (1..=100_000).contains(&limit.burst),
                &format!("rate_limits.{name}.burst"),
                limit.burst,
                "must be between 1 and 100000",
            )?;
        }
        Ok(())
    }
}

/// `[database]`. `Debug` hides any password in the URL.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// `sqlite://path/to/file.db` (created if missing) or
    /// `postgres://user@host/db`. Default `sqlite://cadenza-control.db`.
    pub url: String,
    /// Pool size. Default `10`.
    pub max_connections: u32,
}

/// `[playback]`
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PlaybackConfig {
    /// Lifetime of a signed stream URL. Default `1h`; at most
    /// `signing.max_lifetime`.
    pub url_ttl: HumanDuration,
    /// Longest start delay a stream answer asks the player to wait
    /// (`start_delay_ms`, drawn uniformly from 0 to this) while its album
    /// is in `release_window`: at an album drop, players that pressed play
    /// in the same second spread their first requests over this span.
    /// `0s` turns the hint off. Default `2s`; at most `30s`.
    pub release_jitter: HumanDuration,
    /// How long after an album's `release_at` its stream answers carry the
    /// start-delay hint. Default `15m`; at most `24h`.
    pub release_window: HumanDuration,
    /// Most `stream` and `prefetch` requests this process works on at
    /// once; one more is answered `429 overloaded` with `Retry-After` at
    /// once rather than queued behind the database. `0`: no limit.
    /// Default `1024`.
    pub max_in_flight: u32,
}

/// `[warm]`: how the control plane runs warm jobs (`POST /v1/admin/warm`)
/// on the POPs' admin APIs. Jobs live in the database; any replica may run
/// one, holding a lease it renews as it goes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ControlWarmConfig {
    /// How often a running job asks each POP for its progress (and how
    /// often a replica looks for due jobs). Default `500ms`; `50ms` to `10s`.
    pub poll_interval: HumanDuration,
    /// Submissions of one POP's part of a job before that POP fails: a
    /// refused or unreachable POP, an edge job with failed files, or one
    /// the edge forgot (a restart) each use one. Default `5`; `1` to `100`.
    pub max_attempts: u32,
    /// Wait before a POP's next attempt, doubled per attempt used.
    /// Default `1s`; `10ms` to `5m`.
    pub retry_backoff: HumanDuration,
    /// Jobs one replica runs at once. Default `4`; `1` to `64`.
    pub max_running: u32,
    /// How long a job's lease lasts without renewal (renewed every
    /// `poll_interval`): a replica that dies mid-job leaves it to another
    /// after this. Default `30s`; `5s` to `10m`, at least 5 × `poll_interval`.
    pub lease: HumanDuration,
}

impl Default for ControlWarmConfig {
    fn default() -> Self {
        Self {
            poll_interval: HumanDuration::millis(500),
            max_attempts: 5,
            retry_backoff: HumanDuration::secs(1),
            max_running: 4,
            lease: HumanDuration::secs(30),
        }
    }
}

impl ControlWarmConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        let poll = self.poll_interval.get();
        ensure(
            (Duration::from_millis(50)..=Duration::from_secs(10)).contains(&poll),
            "warm.poll_interval",
            self.poll_interval.to_string(),
            "must be between 50ms and 10s",
        )?;
        ensure(
            (1..=100).contains(&self.max_attempts),
            "warm.max_attempts",
            self.max_attempts,
            "must be between 1 and 100",
        )?;
        ensure(
            (Duration::from_millis(10)..=Duration::from_secs(300)).contains(&self.retry_backoff.get()),
            "warm.retry_backoff",
            self.retry_backoff.to_string(),
            "must be between 10ms and 5m",
        )?;
        ensure(
            (1..=64).contains(&self.max_running),
            "warm.max_running",
            self.max_running,
            "must be between 1 and 64",
        )?;
        let lease = self.lease.get();
        ensure(
            (Duration::from_secs(5)..=Duration::from_secs(600)).contains(&lease) && lease >= poll * 5,
            "warm.lease",
            self.lease.to_string(),
            "must be between 5s and 10m, and at least 5 × warm.poll_interval",
        )
    }
}

/// `[ingest]`: the job queue of `POST /v1/admin/ingest`, served to
/// transcoder workers under `/v1/ingest/*`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    /// Bearer token workers present on `/v1/ingest/*` (at least 16
    /// characters, not the admin token). The admin token is accepted there
    /// too; the worker token is never accepted on `/v1/admin/*`. Default
    /// empty: only the admin token is accepted.
    pub worker_token: Secret,
    /// Claims a job gets before it fails for good: each claim counts, so a
    /// lease that runs out uses one up as a retryable failure does.
    /// Default `5`; `1` to `100`.
    pub max_attempts: u32,
    /// Delay before a job is handed out again after a retryable failure,
    /// doubled per attempt used (`retry_backoff · 2^(attempts−1)`). Default
    /// `30s`; `1s` to `max_retry_backoff`.
    pub retry_backoff: HumanDuration,
    /// Longest such delay. Default `15m`; at most `24h`.
    pub max_retry_backoff: HumanDuration,
}

/// Longest `ingest.max_retry_backoff`.
const MAX_RETRY_BACKOFF: Duration = Duration::from_secs(24 * 3600);

/// One `[[edges]]` entry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EdgeEndpoint {
    /// POP name, `[A-Za-z0-9_-]{1,64}`.
    pub name: String,
    /// Public base URL, e.g. `https://edge-fra1.example.net`.
    pub url: String,
}

impl Default for ControlConfig {
    fn default() -> Self {
        Self {
            listen: ([127, 0, 0, 1], 8400).into(),
            admin_token: Secret::default(),
            database: DatabaseConfig::default(),
            signing: SigningConfig::default(),
            playback: PlaybackConfig::default(),
            edges: Vec::new(),
            cdns: Vec::new(),
            health: HealthConfig::default(),
            selection: SelectionConfig::default(),
            http: HttpServerConfig::default(),
            ingest: IngestConfig::default(),
            rate_limits: RateLimitsConfig::default(),
            cache: ControlCacheConfig::default(),
            warm: ControlWarmConfig::default(),
        }
    }
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            worker_token: Secret::default(),
            max_attempts: 5,
            retry_backoff: HumanDuration::secs(30),
            max_retry_backoff: HumanDuration::secs(15 * 60),
        }
    }
}

impl IngestConfig {
    fn validate(&self, admin_token: &Secret) -> Result<(), ConfigError> {
        if !self.worker_token.is_empty() {
            validate_admin_token(&self.worker_token, "ingest.worker_token")?;
            ensure(
                self.worker_token != *admin_token,
                "ingest.worker_token",
                "<redacted>",
                "must differ from admin_token, or workers could use the admin API",
            )?;
        }
        ensure(
            (1..=100).contains(&self.max_attempts),
            "ingest.max_attempts",
            self.max_attempts,
            "must be between 1 and 100",
        )?;
        ensure(
            self.max_retry_backoff.get() <= MAX_RETRY_BACKOFF,
            "ingest.max_retry_backoff",
            self.max_retry_backoff.to_string(),
            "must be at most 24h",
        )?;
        ensure(
            self.retry_backoff.get() >= Duration::from_secs(1),
            "ingest.retry_backoff",
            self.retry_backoff.to_string(),
            "must be at least 1s",
        )?;
        ensure(
            self.retry_backoff <= self.max_retry_backoff,
            "ingest.retry_backoff",
            self.retry_backoff.to_string(),
            "must not exceed ingest.max_retry_backoff",
        )
    }
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self { url: "sqlite://cadenza-control.db".into(), max_connections: 10 }
    }
}

impl Default for PlaybackConfig {
    fn default() -> Self {
        Self {
            url_ttl: HumanDuration::secs(3600),
            release_jitter: HumanDuration::secs(2),
            release_window: HumanDuration::secs(15 * 60),
            max_in_flight: 1024,
        }
    }
}

impl ServiceConfig for ControlConfig {
    const ENV_PREFIX: &'static str = "CADENZA_CONTROL";

    fn validate(&self) -> Result<(), ConfigError> {
        validate_admin_token(&self.admin_token, "admin_token")?;
        let db = &self.database.url;
        ensure(
            db.starts_with("sqlite:") || db.starts_with("postgres://") || db.starts_with("postgresql://"),
            "database.url",
            db,
            "must start with sqlite:, postgres:// or postgresql://",
        )?;
        ensure(
            self.database.max_connections >= 1,
            "database.max_connections",
            self.database.max_connections,
            "must be at least 1",
        )?;
        self.signing.validate()?;
        let ttl = self.playback.url_ttl.get();
        ensure(
            ttl.as_secs() >= 60,
            "playback.url_ttl",
            self.playback.url_ttl.to_string(),
            "must be at least 1m",
        )?;
        ensure(
            ttl <= self.signing.max_lifetime.get(),
            "playback.url_ttl",
            self.playback.url_ttl.to_string(),
            "must not exceed signing.max_lifetime, or edges would refuse the URLs",
        )?;
        ensure(
            self.playback.release_jitter.get() <= Duration::from_secs(30),
            "playback.release_jitter",
            self.playback.release_jitter.to_string(),
            "must be at most 30s",
        )?;
        ensure(
            self.playback.release_window.get() <= Duration::from_secs(24 * 3600),
            "playback.release_window",
            self.playback.release_window.to_string(),
            "must be at most 24h",
        )?;
        for (i, e) in self.edges.iter().enumerate() {
            ensure(
                is_opaque_id(&e.name, 64),
                &format!("edges[{i}].name"),
                &e.name,
                "must be 1-64 characters of [A-Za-z0-9_-]",
            )?;
            ensure(
                (e.url.starts_with("http://") || e.url.starts_with("https://")) && !e.url.ends_with('/'),
                &format!("edges[{i}].url"),
                &e.url,
                "must be an http(s) base URL without a trailing slash",
            )?;
            if self.edges[..i].iter().any(|o| o.name == e.name) {
                return Err(ConfigError::invalid(format!("edges[{i}].name"), &e.name, "appears twice"));
            }
        }
        validate_cdns(&self.cdns, (!self.edges.is_empty()).then_some(EDGES_CDN))?;
        self.health.validate()?;
        self.selection.validate()?;
        self.ingest.validate(&self.admin_token)?;
        self.rate_limits.validate()?;
        self.warm.validate()?;
        ensure(
            self.cache.token_ttl.get() <= Duration::from_secs(300),
            "cache.token_ttl",
            self.cache.token_ttl.to_string(),
            "must be at most 5m (a revoked token works that long)",
        )?;
        for (key, ttl) in
            [("cache.catalog_ttl", &self.cache.catalog_ttl), ("cache.playback_ttl", &self.cache.playback_ttl)]
        {
            ensure(ttl.get() <= Duration::from_secs(3600), key, ttl.to_string(), "must be at most 1h")?;
        }
        self.http.validate()
    }
}

impl std::fmt::Debug for DatabaseConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseConfig")
            .field("url", &redact_url_password(&self.url))
            .field("max_connections", &self.max_connections)
            .finish()
    }
}

/// Name of the CDN the `[[edges]]` shorthand makes.
pub const EDGES_CDN: &str = "cadenza";

impl ControlConfig {
    /// Every CDN of the config: `[[cdns]]`, then the `[[edges]]` shorthand
    /// as the POPs of a CDN named [`EDGES_CDN`] (kind `cadenza`, cost 1,
    /// no region, no active probe: the shorthand has no admin URL, and a
    /// cadenza edge serves `/healthz` only on its admin listener).
    pub fn registry(&self) -> Vec<CdnConfig> {
        let mut all = self.cdns.clone();
        if !self.edges.is_empty() {
            all.push(CdnConfig {
                name: EDGES_CDN.into(),
                kind: CdnKind::Cadenza,
                secret: Secret::default(),
                cost_per_gb: 1.0,
                weight: 100,
                pops: self
                    .edges
                    .iter()
                    .map(|e| PopConfig { probe: false, ..PopConfig::new(e.name.clone(), e.url.clone()) })
                    .collect(),
            });
        }
        all
    }
}

/// `scheme://user:secret@host/db` → `scheme://user:***@host/db`.
pub fn redact_url_password(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_owned();
    };
    let authority_end = url[scheme_end..].find('/').map_or(url.len(), |i| scheme_end + i);
    let Some(at) = url[scheme_end..authority_end].rfind('@').map(|i| scheme_end + i) else {
        return url.to_owned();
    };
    match url[scheme_end..at].find(':') {
        Some(colon) => format!("{}***{}", &url[..scheme_end + colon + 1], &url[at..]),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::KeySpec;
    use crate::token::SigningKey;

    #[test]
    fn database_passwords_never_print() {
        let db = DatabaseConfig {
            url: "postgres://app:hunter2@db.internal:5432/cadenza".into(),
            max_connections: 5,
        };
        let shown = format!("{db:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("postgres://app:***@db.internal:5432/cadenza"), "{shown}");
        assert_eq!(redact_url_password("postgres://app@db/x"), "postgres://app@db/x");
        assert_eq!(redact_url_password("sqlite://data/x.db"), "sqlite://data/x.db");
        assert_eq!(redact_url_password("postgres://u:p@h/db?x=a@b"), "postgres://u:***@h/db?x=a@b");
    }

    /// A config that validates: defaults plus the two keys without one.
    fn valid() -> ControlConfig {
        ControlConfig {
            admin_token: Secret::new("admin-token-0123456789"),
            signing: SigningConfig {
                keys: vec![KeySpec::from_key(&SigningKey::generate("k1".parse().unwrap()))],
                ..SigningConfig::default()
            },
            ..ControlConfig::default()
        }
    }

    #[test]
    fn cache_and_playback_bounds_are_checked_by_name() {
        assert_eq!(valid().cache.playback_ttl, HumanDuration::secs(60));
        let mut off = valid();
        off.cache.playback_ttl = HumanDuration::secs(0);
        off.playback.release_jitter = HumanDuration::secs(0);
        off.playback.max_in_flight = 0;
        assert_eq!(off.validate().map_err(|e| e.to_string()), Ok(()), "0 turns each off");
        type Break = fn(&mut ControlConfig);
        let cases: [(&str, Break); 5] = [
            ("cache.token_ttl", |c| c.cache.token_ttl = HumanDuration::secs(301)),
            ("cache.catalog_ttl", |c| c.cache.catalog_ttl = HumanDuration::secs(3601)),
            ("cache.playback_ttl", |c| c.cache.playback_ttl = HumanDuration::secs(3601)),
            ("playback.release_jitter", |c| c.playback.release_jitter = HumanDuration::secs(31)),
            ("playback.release_window", |c| c.playback.release_window = HumanDuration::secs(24 * 3600 + 1)),
        ];
        for (key, break_it) in cases {
            let mut c = valid();
            break_it(&mut c);
            let err = c.validate().expect_err(key).to_string();
            assert!(err.contains(key), "{key}: {err}");
        }
    }

    #[test]
    fn ingest_keys_are_validated_by_name() {
        assert_eq!(valid().validate().map_err(|e| e.to_string()), Ok(()));
        let mut ok = valid();
        ok.ingest.worker_token = Secret::new("worker-token-0123456789");
        assert!(ok.validate().is_ok());
        type Break = fn(&mut IngestConfig);
        let cases: [(&str, Break); 7] = [
            ("ingest.worker_token", |i| i.worker_token = Secret::new("short")),
            ("ingest.worker_token", |i| i.worker_token = Secret::new("admin-token-0123456789")),
            ("ingest.max_attempts", |i| i.max_attempts = 0),
            ("ingest.max_attempts", |i| i.max_attempts = 101),
            ("ingest.retry_backoff", |i| i.retry_backoff = HumanDuration::millis(500)),
            ("ingest.retry_backoff", |i| i.retry_backoff = HumanDuration::secs(3600)),
            ("ingest.max_retry_backoff", |i| i.max_retry_backoff = HumanDuration::secs(25 * 3600)),
        ];
        for (key, break_it) in cases {
            let mut c = valid();
            break_it(&mut c.ingest);
            let err = c.validate().expect_err(key).to_string();
            assert!(err.contains(key), "{key}: {err}");
            assert!(!err.contains("admin-token-0123456789"), "secret echoed: {err}");
        }
    }
}
