use serde::{Deserialize, Serialize};

use super::common::{HttpServerConfig, validate_store_url};
use crate::load::{ConfigError, ServiceConfig};

/// `cadenza origin`: serves an object store over HTTP (GET/HEAD with ranges)
/// for edges that cannot reach the store directly.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OriginConfig {
    /// Listener. Default `127.0.0.1:8401`.
    pub listen: std::net::SocketAddr,
    /// The store to serve, e.g. `file:///var/lib/cadenza/store`. Required.
    pub store: String,
    pub http: HttpServerConfig,
}

impl Default for OriginConfig {
    fn default() -> Self {
        Self {
            listen: ([127, 0, 0, 1], 8401).into(),
            store: String::new(),
            http: HttpServerConfig::default(),
        }
    }
}

impl ServiceConfig for OriginConfig {
    const ENV_PREFIX: &'static str = "CADENZA_ORIGIN";

    fn validate(&self) -> Result<(), ConfigError> {
        validate_store_url(&self.store, "store")?;
        self.http.validate()
    }
}
