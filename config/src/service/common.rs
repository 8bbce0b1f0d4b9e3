use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::ids::KeyId;
use crate::load::{ConfigError, ensure};
use crate::token::{KeyRing, SigningKey, TokenPolicy, Verifier};
use crate::units::{HumanDuration, Secret};

/// Shortest accepted bearer token for admin APIs.
pub(crate) const MIN_ADMIN_TOKEN_LEN: usize = 16;

/// URL-signing keys and token time rules (`[signing]`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SigningConfig {
    /// Inline keys (`[[signing.keys]] id = "k1" secret = "<base64url>"`).
    /// Default: none.
    pub keys: Vec<KeySpec>,
    /// A TOML file with more `[[keys]]`, as printed by `cadenza keys
    /// generate`; appended after the inline keys. Relative paths are
    /// relative to the working directory; empty means none. Default: none.
    pub keys_file: Option<PathBuf>,
    /// Id of the key that signs new URLs. Default: the last key.
    pub current: Option<String>,
    /// Clock skew tolerated between signer and edge. Default `30s`.
    pub leeway: HumanDuration,
    /// Longest lifetime an edge accepts for a URL. Default `24h`.
    pub max_lifetime: HumanDuration,
}

/// One signing key.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeySpec {
    /// `[A-Za-z0-9_-]{1,32}`, carried in URLs as `kid=`.
    pub id: String,
    /// At least 32 bytes, unpadded base64url.
    pub secret: Secret,
}

/// The layout of a `keys_file`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyFile {
    pub keys: Vec<KeySpec>,
}

impl KeySpec {
    /// The config form of a key.
    pub fn from_key(key: &SigningKey) -> Self {
        Self { id: key.id().to_string(), secret: Secret::new(key.secret_base64()) }
    }
}

impl KeyFile {
    /// TOML text of this key file.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("key file serialises")
    }
}

impl Default for SigningConfig {
    fn default() -> Self {
        Self {
            keys: Vec::new(),
            keys_file: None,
            current: None,
            leeway: HumanDuration::secs(30),
            max_lifetime: HumanDuration::secs(24 * 3600),
        }
    }
}

impl SigningConfig {
    /// Build the key ring: inline keys, then the keys file. Errors name the
    /// key (`signing.keys[1].secret`) or the file.
    pub fn key_ring(&self) -> Result<KeyRing, ConfigError> {
        let mut specs: Vec<(String, &KeySpec)> =
            self.keys.iter().enumerate().map(|(i, k)| (format!("signing.keys[{i}]"), k)).collect();
        let from_file;
        // An empty path means "no file", so an override can unset it.
        if let Some(path) = self.keys_file.as_ref().filter(|p| !p.as_os_str().is_empty()) {
            let text = std::fs::read_to_string(path)
                .map_err(|source| ConfigError::Read { path: path.clone(), source })?;
            from_file = toml::from_str::<KeyFile>(&text)
                .map_err(|e| ConfigError::Parse { path: path.clone(), message: key_file_error(&text, &e) })?;
            specs.extend(
                from_file.keys.iter().enumerate().map(|(i, k)| (format!("{}: keys[{i}]", path.display()), k)),
            );
        }
        let mut keys = Vec::with_capacity(specs.len());
        for (at, spec) in specs {
            let id: KeyId = spec.id.parse().map_err(|e: crate::ids::IdError| {
                ConfigError::invalid(format!("{at}.id"), &spec.id, e.to_string())
            })?;
            let key = SigningKey::from_base64(id, spec.secret.expose())
                .map_err(|e| ConfigError::invalid(format!("{at}.secret"), "<redacted>", e.to_string()))?;
            keys.push(key);
        }
        let current = match &self.current {
            None => None,
            Some(c) => Some(
                c.parse::<KeyId>().map_err(|e| ConfigError::invalid("signing.current", c, e.to_string()))?,
            ),
        };
        KeyRing::new(keys, current.as_ref()).map_err(|e| {
            let key = match e {
                crate::token::KeyError::UnknownCurrent(_) => "signing.current",
                _ => "signing.keys",
            };
            ConfigError::invalid(key, self.keys.len(), e.to_string())
        })
    }

    pub fn policy(&self) -> TokenPolicy {
        TokenPolicy { leeway: self.leeway.get(), max_lifetime: self.max_lifetime.get() }
    }

    /// A verifier over [`Self::key_ring`] with [`Self::policy`].
    pub fn verifier(&self) -> Result<Verifier, ConfigError> {
        Ok(Verifier::new(self.key_ring()?, self.policy()))
    }

    /// Every rule of `[signing]` checked, then [`Self::verifier`]: what a
    /// key reload swaps in (see [`crate::live`]).
    pub fn checked_verifier(&self) -> Result<Verifier, ConfigError> {
        self.validate_limits()?;
        self.verifier()
    }

    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        self.validate_limits()?;
        self.key_ring().map(drop)
    }

    fn validate_limits(&self) -> Result<(), ConfigError> {
        ensure(
            self.leeway.get().as_secs() <= 600,
            "signing.leeway",
            self.leeway.to_string(),
            "must be at most 10m",
        )?;
        ensure(
            self.max_lifetime.get().as_secs() >= 60,
            "signing.max_lifetime",
            self.max_lifetime.to_string(),
            "must be at least 1m",
        )
    }
}

/// Why a key file is not valid TOML, by line and column: never with the
/// offending line quoted (toml's own message does that), as that line may
/// hold a secret and the message goes to logs and admin answers.
fn key_file_error(text: &str, e: &toml::de::Error) -> String {
    let message = e.message().trim_end();
    match e.span() {
        Some(span) => {
            let before = &text.as_bytes()[..span.start.min(text.len())];
            let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
            let column = before.iter().rev().take_while(|&&b| b != b'\n').count() + 1;
            format!("line {line}, column {column}: {message}")
        }
        None => message.to_owned(),
    }
}

/// Limits of an HTTP listener (`[http]`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpServerConfig {
    /// Time a client has to send a request's headers (HTTP/1). Default `10s`.
    pub header_read_timeout: HumanDuration,
    /// A connection with no bytes moving either way for this long, while it
    /// waits for a request, is closed (HTTP/1 keep-alive and HTTP/2 alike).
    /// Default `60s`.
    pub idle_timeout: HumanDuration,
    /// A response write the client does not accept within this long closes
    /// the connection (between two writes, as nginx's `send_timeout`, not
    /// for the whole response). Default `30s`.
    pub write_timeout: HumanDuration,
    /// Connections served at once; further accepts wait. Default `10000`.
    pub max_connections: u32,
    /// On SIGTERM/SIGINT, how long in-flight responses may take to finish
    /// before connections are closed. Default `10s`.
    pub shutdown_grace: HumanDuration,
}

impl Default for HttpServerConfig {
    fn default() -> Self {
        Self {
            header_read_timeout: HumanDuration::secs(10),
            idle_timeout: HumanDuration::secs(60),
            write_timeout: HumanDuration::secs(30),
            max_connections: 10_000,
            shutdown_grace: HumanDuration::secs(10),
        }
    }
}

impl HttpServerConfig {
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        ensure(
            !self.header_read_timeout.get().is_zero(),
            "http.header_read_timeout",
            self.header_read_timeout.to_string(),
            "must be positive",
        )?;
        ensure(
            !self.idle_timeout.get().is_zero(),
            "http.idle_timeout",
            self.idle_timeout.to_string(),
            "must be positive",
        )?;
        ensure(
            !self.write_timeout.get().is_zero(),
            "http.write_timeout",
            self.write_timeout.to_string(),
            "must be positive",
        )?;
        ensure(self.max_connections >= 1, "http.max_connections", self.max_connections, "must be at least 1")
    }
}

/// TLS on a public listener (`[tls]`): both files, or neither for plain
/// HTTP. Read at start-up and again on SIGHUP.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// PEM certificate chain, leaf first. Empty or absent: no TLS.
    pub cert: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of the leaf certificate.
    pub key: Option<PathBuf>,
}

impl TlsConfig {
    /// The certificate and key files, when TLS is on.
    pub fn files(&self) -> Option<(&std::path::Path, &std::path::Path)> {
        fn set(p: &Option<PathBuf>) -> Option<&std::path::Path> {
            p.as_deref().filter(|p| !p.as_os_str().is_empty())
        }
        Some((set(&self.cert)?, set(&self.key)?))
    }

    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        let set = |p: &Option<PathBuf>| p.as_ref().is_some_and(|p| !p.as_os_str().is_empty());
        match (set(&self.cert), set(&self.key)) {
            (true, false) => Err(ConfigError::invalid(
                "tls.key",
                "<unset>",
                "must be set when tls.cert is (the certificate's private key, PEM)",
            )),
            (false, true) => Err(ConfigError::invalid(
                "tls.cert",
                "<unset>",
                "must be set when tls.key is (the certificate chain, PEM)",
            )),
            _ => Ok(()),
        }
    }
}

/// An authenticated admin listener (`[admin]`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Where `/healthz`, `/readyz`, `/metrics` and the admin API listen.
    pub listen: SocketAddr,
    /// Bearer token for the admin API (at least 16 characters). Required.
    pub token: Secret,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self::with_listen(([127, 0, 0, 1], 0).into())
    }
}

impl AdminConfig {
    pub(crate) fn with_listen(listen: SocketAddr) -> Self {
        Self { listen, token: Secret::default() }
    }

    pub(crate) fn validate(&self, key: &str) -> Result<(), ConfigError> {
        validate_admin_token(&self.token, key)
    }
}

pub(crate) fn validate_admin_token(token: &Secret, key: &str) -> Result<(), ConfigError> {
    ensure(
        token.expose().len() >= MIN_ADMIN_TOKEN_LEN,
        key,
        if token.is_empty() { "<empty>" } else { "<redacted>" },
        "must be set to at least 16 characters (try `cadenza keys token`)",
    )
}

/// A store URL must at least name its scheme; the origin crate checks the rest.
pub(crate) fn validate_store_url(url: &str, key: &str) -> Result<(), ConfigError> {
    ensure(
        url.contains("://"),
        key,
        url,
        "must be an object store URL like file:///var/lib/cadenza/store or http://origin:8401/",
    )
}
