use serde::{Deserialize, Serialize};

use super::common::{
    AdminConfig, HttpServerConfig, SigningConfig, TlsConfig, validate_admin_token, validate_store_url,
};
use crate::ids::is_opaque_id;
use crate::load::{ConfigError, ServiceConfig, ensure};
use crate::units::{ByteSize, HumanDuration, Secret};

/// `cadenza edge`: an edge POP.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EdgeConfig {
    /// This POP's name in logs, metrics and `stack.json`. Default `edge-1`.
    pub name: String,
    /// Public listener for `/a/<file_id>.ogg`. Default `127.0.0.1:8410`.
    pub listen: std::net::SocketAddr,
    /// Admin listener and token. Default listen `127.0.0.1:8411`.
    pub admin: AdminConfig,
    /// Where cache fills come from.
    pub origin: UpstreamConfig,
    /// Keys accepted on signed URLs.
    pub signing: SigningConfig,
    /// Most ranges (after coalescing) answered as `multipart/byteranges`;
    /// a request for more gets the whole object (200), as nginx's
    /// `max_ranges`. `1` turns multipart answers off. Default `16`.
    pub max_ranges: u32,
    pub cache: EdgeCacheConfig,
    pub cors: CorsConfig,
    pub access_log: AccessLogConfig,
    pub http: HttpServerConfig,
    /// TLS on the public listener (HTTP/2 and HTTP/1.1 by ALPN). The admin
    /// listener stays plain HTTP. Default: off.
    pub tls: TlsConfig,
    pub tier: TierConfig,
    pub warm: WarmConfig,
    pub disk: DiskConfig,
}

/// The disk tier (`[disk]`): every slice filled from upstream is also
/// written here, and a slice the memory tier misses is looked for here
/// before upstream. Off unless `path` is set.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DiskConfig {
    /// Directory the edge owns for its slice files (created if missing;
    /// nothing else may live in it). Empty (the default): no disk tier.
    pub path: String,
    /// Budget in bytes of cached audio (each file adds a 72-byte header and
    /// the filesystem's block rounding). Default `10GiB`.
    pub max_size: ByteSize,
    /// Slice writes in flight at once; a fill that finds them all busy is
    /// not written (counted in `cadenza_edge_disk_writes_total{result="busy"}`).
    /// Default `16`.
    pub max_writes: u32,
    /// First wait before a degraded disk tier (ENOSPC, EIO, read-only
    /// filesystem) probes the directory again; it doubles on each failed
    /// probe up to `reprobe_max`. Default `1s`.
    pub reprobe_min: HumanDuration,
    /// Longest wait between probes of a degraded disk tier. Default `60s`.
    pub reprobe_max: HumanDuration,
}

impl Default for DiskConfig {
    fn default() -> Self {
        Self {
            path: String::new(),
            max_size: ByteSize::gib(10),
            max_writes: 16,
            reprobe_min: HumanDuration::secs(1),
            reprobe_max: HumanDuration::secs(60),
        }
    }
}

/// Cache warming through the admin API (`[warm]`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WarmConfig {
    /// Slices fetched at once by all warm jobs together (a job may ask for
    /// fewer). Warm fills also wait whenever listeners hold three quarters
    /// of `origin.max_concurrent`. Default `4`.
    pub max_concurrent: u32,
    /// Finished jobs kept for `GET /admin/warm/<id>`; the oldest finished
    /// one goes first. Default `100`.
    pub max_jobs: u32,
}

impl Default for WarmConfig {
    fn default() -> Self {
        Self { max_concurrent: 4, max_jobs: 100 }
    }
}

/// This edge as a shield (parent tier) for other edges (`[tier]`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TierConfig {
    /// Bearer token child edges present to fill from this one at
    /// `/audio/<file_id>.ogg` (the object store layout, so a child's
    /// `origin.url` is simply this edge's URL). At least 16 characters.
    /// Empty (the default): this edge is not a shield, and that path is 404.
    pub token: Secret,
    /// Also accepted while a new `token` rolls out to the children (set the
    /// new one here as `token` and the old one as `previous_token`, move the
    /// children, then clear this). At least 16 characters; needs `token`.
    /// Empty (the default): only `token`.
    pub previous_token: Secret,
}

/// CORS for browser players (`[cors]`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CorsConfig {
    /// Origins allowed to read audio from scripts: `["*"]` (any: the URL
    /// token is the access control) or exact origins such as
    /// `"https://player.example.com"`. Empty: no CORS headers at all.
    /// Default `["*"]`.
    pub allow_origins: Vec<String>,
    /// How long browsers may cache a preflight answer. Default `1d`.
    pub max_age: HumanDuration,
}

/// The access log (`[access_log]`), written through `tracing` at `info`
/// under the target `cadenza_edge::access`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AccessLogConfig {
    /// Fraction of successful requests logged, `0` to `1`; every 5xx is
    /// logged. Default `0.01`.
    pub sample: f64,
}

/// The edge's upstream (`[origin]`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UpstreamConfig {
    /// Object store URL: `file:///…`, or `http://…` for a `cadenza origin`.
    /// Required.
    pub url: String,
    /// Deadline for one upstream request, including its body and any
    /// retries. Default `10s`.
    pub timeout: HumanDuration,
    /// Upstream requests in flight at once; fills beyond it queue (inside
    /// their deadline). Default `64`.
    pub max_concurrent: u32,
    /// Bearer token sent to an `http(s)://` upstream: the shield edge's
    /// `tier.token` when this edge fills from a shield. Empty (the
    /// default): none.
    pub token: Secret,
}

/// The edge cache (`[cache]`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EdgeCacheConfig {
    /// Memory tier budget, in bytes of cached audio. Default `256MiB`.
    pub memory: ByteSize,
    /// Slice size: the unit of origin fetches and of caching. Default
    /// `256KiB`; between `16KiB` and `16MiB`.
    pub slice: ByteSize,
    /// How long an object the origin does not have is remembered as
    /// missing (404 without asking again). `0s` turns it off. Default `10s`.
    pub not_found_ttl: HumanDuration,
}

impl Default for EdgeConfig {
    fn default() -> Self {
        Self {
            name: "edge-1".into(),
            listen: ([127, 0, 0, 1], 8410).into(),
            admin: AdminConfig::with_listen(([127, 0, 0, 1], 8411).into()),
            origin: UpstreamConfig::default(),
            signing: SigningConfig::default(),
            max_ranges: 16,
            cache: EdgeCacheConfig::default(),
            cors: CorsConfig::default(),
            access_log: AccessLogConfig::default(),
            http: HttpServerConfig::default(),
            tls: TlsConfig::default(),
            tier: TierConfig::default(),
            warm: WarmConfig::default(),
            disk: DiskConfig::default(),
        }
    }
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        Self {
            url: String::new(),
            timeout: HumanDuration::secs(10),
            max_concurrent: 64,
            token: Secret::default(),
        }
    }
}

impl Default for CorsConfig {
    fn default() -> Self {
        Self { allow_origins: vec!["*".into()], max_age: HumanDuration::secs(86_400) }
    }
}

impl Default for AccessLogConfig {
    fn default() -> Self {
        Self { sample: 0.01 }
    }
}

impl Default for EdgeCacheConfig {
    fn default() -> Self {
        Self { memory: ByteSize::mib(256), slice: ByteSize::kib(256), not_found_ttl: HumanDuration::secs(10) }
    }
}

impl ServiceConfig for EdgeConfig {
    const ENV_PREFIX: &'static str = "CADENZA_EDGE";

    fn validate(&self) -> Result<(), ConfigError> {
        ensure(is_opaque_id(&self.name, 64), "name", &self.name, "must be 1-64 characters of [A-Za-z0-9_-]")?;
        self.admin.validate("admin.token")?;
        validate_store_url(&self.origin.url, "origin.url")?;
        ensure(
            !self.origin.timeout.get().is_zero(),
            "origin.timeout",
            self.origin.timeout.to_string(),
            "must be positive",
        )?;
        ensure(
            self.origin.max_concurrent >= 1,
            "origin.max_concurrent",
            self.origin.max_concurrent,
            "must be at least 1",
        )?;
        ensure(self.max_ranges >= 1, "max_ranges", self.max_ranges, "must be at least 1")?;
        self.tls.validate()?;
        ensure(
            (1..=256).contains(&self.warm.max_concurrent),
            "warm.max_concurrent",
            self.warm.max_concurrent,
            "must be between 1 and 256",
        )?;
        ensure(
            (1..=10_000).contains(&self.warm.max_jobs),
            "warm.max_jobs",
            self.warm.max_jobs,
            "must be between 1 and 10000",
        )?;
        if !self.tier.token.is_empty() {
            validate_admin_token(&self.tier.token, "tier.token")?;
        }
        if !self.tier.previous_token.is_empty() {
            ensure(
                !self.tier.token.is_empty(),
                "tier.previous_token",
                "<redacted>",
                "needs tier.token (the token being rolled out)",
            )?;
            validate_admin_token(&self.tier.previous_token, "tier.previous_token")?;
        }
        if !self.origin.token.is_empty() {
            validate_admin_token(&self.origin.token, "origin.token")?;
            ensure(
                self.origin.url.starts_with("http://") || self.origin.url.starts_with("https://"),
                "origin.token",
                "<redacted>",
                "is sent only to an http(s):// upstream (a shield edge); origin.url is not one",
            )?;
        }
        for origin in &self.cors.allow_origins {
            ensure(
                valid_cors_origin(origin),
                "cors.allow_origins",
                origin,
                "must be \"*\" or a scheme://host[:port] origin without a path",
            )?;
        }
        ensure(
            (0.0..=1.0).contains(&self.access_log.sample),
            "access_log.sample",
            self.access_log.sample,
            "must be between 0 and 1",
        )?;
        let slice = self.cache.slice.bytes();
        ensure(
            (16 << 10..=16 << 20).contains(&slice),
            "cache.slice",
            self.cache.slice.to_string(),
            "must be between 16KiB and 16MiB",
        )?;
        ensure(
            self.cache.memory.bytes() >= slice,
            "cache.memory",
            self.cache.memory.to_string(),
            "must hold at least one slice",
        )?;
        if !self.disk.path.is_empty() {
            ensure(
                self.disk.max_size.bytes() >= slice,
                "disk.max_size",
                self.disk.max_size.to_string(),
                "must hold at least one slice",
            )?;
            ensure(
                (1..=1024).contains(&self.disk.max_writes),
                "disk.max_writes",
                self.disk.max_writes,
                "must be between 1 and 1024",
            )?;
            ensure(
                !self.disk.reprobe_min.get().is_zero(),
                "disk.reprobe_min",
                self.disk.reprobe_min.to_string(),
                "must be positive",
            )?;
            ensure(
                self.disk.reprobe_max.get() >= self.disk.reprobe_min.get(),
                "disk.reprobe_max",
                self.disk.reprobe_max.to_string(),
                "must be at least disk.reprobe_min",
            )?;
        }
        self.signing.validate()?;
        self.http.validate()
    }
}

/// `*`, or an origin as browsers send it: `scheme://host[:port]`, lower
/// case, no path, no trailing slash.
fn valid_cors_origin(o: &str) -> bool {
    if o == "*" {
        return true;
    }
    let Some((scheme, rest)) = o.split_once("://") else {
        return false;
    };
    matches!(scheme, "http" | "https")
        && !rest.is_empty()
        && rest.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b".-:[]".contains(&c))
}
