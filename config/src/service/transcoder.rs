use serde::{Deserialize, Serialize};

use super::common::validate_store_url;
use crate::load::{ConfigError, ServiceConfig, ensure};

/// `cadenza transcode`: masters in, published ladders out.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TranscoderConfig {
    /// Store to publish into, e.g. `file:///var/lib/cadenza/store`. Required.
    pub store: String,
    /// Encoder threads per track; `0` means one per rung. Default `0`.
    pub threads: u32,
}

impl ServiceConfig for TranscoderConfig {
    const ENV_PREFIX: &'static str = "CADENZA_TRANSCODER";

    fn validate(&self) -> Result<(), ConfigError> {
        validate_store_url(&self.store, "store")?;
        ensure(self.threads <= 64, "threads", self.threads, "must be at most 64")
    }
}
