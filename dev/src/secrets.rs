//! The dev stack's secrets: admin tokens and the URL-signing key file,
//! generated on first start and reused after.

use std::path::Path;

use cadenza_config::ids::random_id;
use cadenza_config::service::{KeyFile, KeySpec};
use cadenza_config::token::SigningKey;
use serde::{Deserialize, Serialize};

/// `<data-dir>/secrets.toml`
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Secrets {
    pub(crate) control_admin_token: String,
    /// One per edge, by index; grown when `--edges` grows.
    pub(crate) edge_admin_tokens: Vec<String>,
    /// The control plane's `ingest.worker_token`, which the dev stack's
    /// transcoder worker presents. Made on the first start that lacks it.
    #[serde(default)]
    pub(crate) ingest_worker_token: String,
    /// With `shield = true`: the shield edge's admin token and the tier
    /// token its children fill with. Made on the first start that needs them.
    #[serde(default)]
    pub(crate) shield_admin_token: String,
    #[serde(default)]
    pub(crate) tier_token: String,
}

/// Admin tokens are 32 characters of base62 (~190 bits).
const TOKEN_LEN: usize = 32;

impl Secrets {
    /// Load `secrets.toml` and `keys.toml` from `dir`, creating what is
    /// missing. Returns the secrets and the current key id.
    pub(crate) fn load_or_create(dir: &Path, edges: usize) -> std::io::Result<(Self, String)> {
        let path = dir.join("secrets.toml");
        let mut secrets = match std::fs::read_to_string(&path) {
            Ok(text) => toml::from_str(&text).map_err(|e| invalid(&path, &e.to_string()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Secrets {
                control_admin_token: random_id(TOKEN_LEN),
                edge_admin_tokens: Vec::new(),
                ingest_worker_token: String::new(),
                shield_admin_token: String::new(),
                tier_token: String::new(),
            },
            Err(e) => return Err(e),
        };
        if secrets.ingest_worker_token.is_empty() {
            secrets.ingest_worker_token = random_id(TOKEN_LEN);
        }
        for t in [&mut secrets.shield_admin_token, &mut secrets.tier_token] {
            if t.is_empty() {
                *t = random_id(TOKEN_LEN);
            }
        }
        while secrets.edge_admin_tokens.len() < edges {
            secrets.edge_admin_tokens.push(random_id(TOKEN_LEN));
        }
        write_private(&path, toml::to_string(&secrets).expect("secrets serialise").as_bytes())?;

        let keys_path = dir.join("keys.toml");
        let keys: KeyFile = match std::fs::read_to_string(&keys_path) {
            Ok(text) => toml::from_str(&text).map_err(|e| invalid(&keys_path, &e.to_string()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let id = format!("dev-{}", random_id(6)).parse().expect("generated key id is valid");
                let file = KeyFile { keys: vec![KeySpec::from_key(&SigningKey::generate(id))] };
                write_private(&keys_path, file.to_toml().as_bytes())?;
                file
            }
            Err(e) => return Err(e),
        };
        let current = keys.keys.last().map(|k| k.id.clone()).ok_or_else(|| invalid(&keys_path, "no keys"))?;
        Ok((secrets, current))
    }
}

fn invalid(path: &Path, reason: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{}: {reason}", path.display()))
}

/// Write `bytes` to `path` atomically, mode 0600 on Unix.
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
    }
    std::fs::rename(&tmp, path)
}
