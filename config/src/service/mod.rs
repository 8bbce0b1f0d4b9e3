//! The typed configuration of every service. Each struct documents every
//! key with its default; `docs/configuration.md` tables them.

mod cdn;
mod common;
mod control;
mod dev;
mod edge;
mod origin;
mod transcoder;

pub use cdn::{CdnConfig, CdnKind, HealthConfig, PopConfig, SelectionConfig};
pub use common::{AdminConfig, HttpServerConfig, KeyFile, KeySpec, SigningConfig, TlsConfig};
pub use control::{
    ControlCacheConfig, ControlConfig, ControlWarmConfig, DatabaseConfig, EDGES_CDN, EdgeEndpoint,
    IngestConfig, PlaybackConfig, RateLimit, RateLimitsConfig, redact_url_password,
};
pub use dev::{DemoConfig, DevConfig};
pub use edge::{
    AccessLogConfig, CorsConfig, DiskConfig, EdgeCacheConfig, EdgeConfig, TierConfig, UpstreamConfig,
    WarmConfig,
};
pub use origin::OriginConfig;
pub use transcoder::{TranscoderConfig, WorkerConfig};
