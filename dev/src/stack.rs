//! `<data-dir>/stack.json`: every endpoint of a running dev stack and the
//! demo user's token, so scripts, tests and k6 find the stack without
//! guessing ports.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Format version of [`StackFile`].
pub const STACK_VERSION: u32 = 1;

/// The contents of `stack.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StackFile {
    pub version: u32,
    /// Absolute path of the data directory.
    pub data_dir: PathBuf,
    pub control: ControlEndpoint,
    pub origin: OriginEndpoint,
    pub edges: Vec<EdgeEndpoint>,
    /// With `--shield`: the shield edge the edges fill from (players are
    /// never sent to it). Empty otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shields: Vec<EdgeEndpoint>,
    pub signing: SigningInfo,
    pub demo: DemoInfo,
    /// With `--tls`: the certificate the edges present, for clients to
    /// trust (`curl --cacert`). Absent without TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_ca_file: Option<PathBuf>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ControlEndpoint {
    pub url: String,
    pub admin_token: String,
    /// Bearer token of the control plane's `/v1/ingest/*` worker routes
    /// (`cadenza transcode --worker` presents it).
    #[serde(default)]
    pub worker_token: String,
    /// `sqlite://…` URL of the control plane's database.
    pub database_url: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OriginEndpoint {
    /// The `cadenza origin` HTTP endpoint edges fill from.
    pub url: String,
    /// The object store it serves (`file://…`).
    pub store: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EdgeEndpoint {
    pub name: String,
    pub url: String,
    pub admin_url: String,
    pub admin_token: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SigningInfo {
    /// The key file every service of the stack reads.
    pub keys_file: PathBuf,
    /// Id of the key the control plane signs with.
    pub current_kid: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DemoInfo {
    pub user_id: String,
    pub user_token: String,
    pub artist_id: String,
    pub album_id: String,
    pub track_ids: Vec<String>,
}

impl StackFile {
    /// Read a stack file; `None` if it does not exist or is not ours.
    pub fn read(path: &Path) -> Option<Self> {
        let text = std::fs::read_to_string(path).ok()?;
        serde_json::from_str::<Self>(&text).ok().filter(|s| s.version == STACK_VERSION)
    }

    /// Write atomically (temp file, then rename), readable by the owner only.
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        let json = serde_json::to_vec_pretty(self).expect("stack file serialises");
        crate::secrets::write_private(path, &json)
    }
}
