use serde::{Deserialize, Serialize};

use super::common::{AdminConfig, HttpServerConfig, SigningConfig, validate_store_url};
use crate::ids::is_opaque_id;
use crate::load::{ConfigError, ServiceConfig, ensure};
use crate::units::{ByteSize, HumanDuration};

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
    pub cache: EdgeCacheConfig,
    pub http: HttpServerConfig,
}

/// The edge's upstream (`[origin]`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UpstreamConfig {
    /// Object store URL: `file:///…`, or `http://…` for a `cadenza origin`.
    /// Required.
    pub url: String,
    /// Deadline for one upstream request, including its body. Default `10s`.
    pub timeout: HumanDuration,
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
}

impl Default for EdgeConfig {
    fn default() -> Self {
        Self {
            name: "edge-1".into(),
            listen: ([127, 0, 0, 1], 8410).into(),
            admin: AdminConfig::with_listen(([127, 0, 0, 1], 8411).into()),
            origin: UpstreamConfig::default(),
            signing: SigningConfig::default(),
            cache: EdgeCacheConfig::default(),
            http: HttpServerConfig::default(),
        }
    }
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        Self { url: String::new(), timeout: HumanDuration::secs(10) }
    }
}

impl Default for EdgeCacheConfig {
    fn default() -> Self {
        Self { memory: ByteSize::mib(256), slice: ByteSize::kib(256) }
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
        self.signing.validate()?;
        self.http.validate()
    }
}
