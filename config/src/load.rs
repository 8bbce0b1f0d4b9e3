//! Layered config loading: TOML file, then `CADENZA_<SERVICE>__*` environment
//! variables, then `--set key=value` flags, validated once at the end.
//!
//! Environment and flag values are typed by the key they set: a key whose
//! default is a string takes the raw text (so `CADENZA_EDGE__ADMIN__TOKEN=1234`
//! stays a string), a number key parses a number, and anything else — arrays,
//! tables, keys without a default — is read as a TOML value
//! (`CADENZA_CONTROL__EDGES='[{name="e1", url="http://127.0.0.1:8410"}]'`),
//! falling back to a string.
//!
//! Every error names the key and the bad value; unknown keys are errors, so a
//! typo never silently drops a limit.

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file {path} is not valid TOML: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config key `{key}`: {message}")]
    Key { key: String, message: String },
    #[error("config key `{key}` = {value}: {reason}")]
    Invalid { key: String, value: String, reason: String },
}

impl ConfigError {
    /// A validation failure of `key` holding `value`.
    pub fn invalid(key: impl Into<String>, value: impl std::fmt::Debug, reason: impl Into<String>) -> Self {
        let value = format!("{value:?}");
        let value = crate::ids::truncate(&value);
        Self::Invalid { key: key.into(), value, reason: reason.into() }
    }
}

/// A config struct a service can be started from.
pub trait ServiceConfig: DeserializeOwned + Serialize + Default {
    /// Environment prefix, e.g. `CADENZA_EDGE`; variables are
    /// `CADENZA_EDGE__SECTION__KEY`.
    const ENV_PREFIX: &'static str;

    /// Check every cross-field rule and limit; name the key on failure.
    fn validate(&self) -> Result<(), ConfigError>;
}

/// Load `T` from an optional TOML file, the process environment, and
/// `key=value` overrides (highest precedence), then validate it.
pub fn load<T: ServiceConfig>(file: Option<&Path>, sets: &[String]) -> Result<T, ConfigError> {
    load_from(file, std::env::vars(), sets)
}

/// [`load`] with an explicit environment (for tests).
pub fn load_from<T: ServiceConfig>(
    file: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
    sets: &[String],
) -> Result<T, ConfigError> {
    let mut root = match file {
        None => toml::Table::new(),
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
            text.parse::<toml::Table>()
                .map_err(|e| ConfigError::Parse { path: path.to_owned(), message: e.to_string() })?
        }
    };
    let defaults = toml::Value::try_from(T::default())
        .map_err(|e| ConfigError::Key { key: "<defaults>".into(), message: e.to_string() })?;

    let prefix = format!("{}__", T::ENV_PREFIX);
    let mut env: Vec<(String, String)> = env.into_iter().filter(|(k, _)| k.starts_with(&prefix)).collect();
    env.sort();
    for (name, raw) in env {
        let key = name[prefix.len()..].split("__").map(str::to_ascii_lowercase).collect::<Vec<_>>().join(".");
        set_key(&mut root, &defaults, &key, &raw)
            .map_err(|message| ConfigError::Key { key: format!("{key} (from ${name})"), message })?;
    }
    for set in sets {
        let (key, raw) = set.split_once('=').ok_or_else(|| ConfigError::Key {
            key: set.clone(),
            message: "override must look like key=value".into(),
        })?;
        set_key(&mut root, &defaults, key.trim(), raw)
            .map_err(|message| ConfigError::Key { key: key.trim().to_owned(), message })?;
    }

    let config: T = serde_path_to_error::deserialize(toml::Value::Table(root)).map_err(|e| {
        let path = e.path().to_string();
        ConfigError::Key {
            key: if path == "." { "<root>".into() } else { path },
            message: e.into_inner().to_string(),
        }
    })?;
    config.validate()?;
    Ok(config)
}

/// Set dotted `key` in `root` to `raw`, typed by the default at that key.
fn set_key(root: &mut toml::Table, defaults: &toml::Value, key: &str, raw: &str) -> Result<(), String> {
    let parts: Vec<&str> = key.split('.').collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err("empty key segment".into());
    }
    let default = parts.iter().try_fold(defaults, |v, p| v.get(*p));
    let value = match default {
        Some(toml::Value::String(_)) => toml::Value::String(raw.to_owned()),
        Some(toml::Value::Integer(_)) => {
            toml::Value::Integer(raw.trim().parse().map_err(|_| format!("{raw:?} is not an integer"))?)
        }
        Some(toml::Value::Float(_)) => {
            toml::Value::Float(raw.trim().parse().map_err(|_| format!("{raw:?} is not a number"))?)
        }
        Some(toml::Value::Boolean(_)) => toml::Value::Boolean(match raw.trim() {
            "true" | "1" | "yes" | "on" => true,
            "false" | "0" | "no" | "off" => false,
            _ => return Err(format!("{raw:?} is not a boolean")),
        }),
        Some(toml::Value::Table(_)) => return Err("is a section; set one of its keys".into()),
        // A list: a TOML array, or comma-separated strings (`a,b`).
        Some(toml::Value::Array(_)) if !raw.trim_start().starts_with('[') => toml::Value::Array(
            raw.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| toml::Value::String(s.to_owned()))
                .collect(),
        ),
        _ => parse_literal(raw),
    };
    let (last, parents) = parts.split_last().expect("split yields at least one part");
    let mut table = root;
    for p in parents {
        let entry = table.entry((*p).to_owned()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
        table = match entry {
            toml::Value::Table(t) => t,
            _ => return Err(format!("`{p}` is not a section")),
        };
    }
    table.insert((*last).to_owned(), value);
    Ok(())
}

/// `raw` as a TOML value if it is one, else as a string.
fn parse_literal(raw: &str) -> toml::Value {
    format!("v = {raw}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_owned()))
}

/// Check a value; on failure build a [`ConfigError::Invalid`].
pub fn ensure(ok: bool, key: &str, value: impl std::fmt::Debug, reason: &str) -> Result<(), ConfigError> {
    if ok { Ok(()) } else { Err(ConfigError::invalid(key, value, reason)) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::units::{ByteSize, HumanDuration};
    use serde::Deserialize;

    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields, default)]
    struct Demo {
        name: String,
        port: u16,
        verbose: bool,
        cache: Cache,
        tags: Vec<String>,
    }
    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields, default)]
    struct Cache {
        size: ByteSize,
        ttl: HumanDuration,
        label: Option<String>,
    }
    impl Default for Demo {
        fn default() -> Self {
            Self { name: "d".into(), port: 80, verbose: false, cache: Cache::default(), tags: vec![] }
        }
    }
    impl Default for Cache {
        fn default() -> Self {
            Self { size: ByteSize::mib(1), ttl: HumanDuration::secs(5), label: None }
        }
    }
    impl ServiceConfig for Demo {
        const ENV_PREFIX: &'static str = "CADENZA_DEMO";
        fn validate(&self) -> Result<(), ConfigError> {
            ensure(self.port != 0, "port", self.port, "must not be 0")
        }
    }

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn file_then_env_then_flags() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "name = \"file\"\nport = 1\n[cache]\nsize = \"2MiB\"\n").unwrap();
        let got: Demo = load_from(
            Some(&path),
            env(&[
                ("CADENZA_DEMO__PORT", "2"),
                ("CADENZA_DEMO__NAME", "12345"),
                ("CADENZA_DEMO__CACHE__TTL", "1m"),
                ("CADENZA_OTHER__PORT", "9"),
            ]),
            &["port=3".into(), "cache.label=hot".into(), "tags=[\"a\", \"b\"]".into(), "verbose=true".into()],
        )
        .unwrap();
        assert_eq!(got.name, "12345", "string-typed key keeps digits as text");
        assert_eq!(got.port, 3, "flag beats env beats file");
        assert_eq!(got.cache.size, ByteSize::mib(2));
        assert_eq!(got.cache.ttl, HumanDuration::secs(60));
        assert_eq!(got.cache.label.as_deref(), Some("hot"));
        assert_eq!(got.tags, vec!["a", "b"]);
        assert!(got.verbose);

        let got: Demo = load_from(None, env(&[("CADENZA_DEMO__TAGS", "x, y,")]), &[]).unwrap();
        assert_eq!(got.tags, vec!["x", "y"], "a list from the environment is comma-separated");
    }

    #[test]
    fn errors_name_the_key() {
        let err = load_from::<Demo>(None, env(&[]), &["cache.sise=1".into()]).unwrap_err().to_string();
        assert!(err.contains("cache") && err.contains("sise"), "{err}");
        let err = load_from::<Demo>(None, env(&[]), &["cache.size=lots".into()]).unwrap_err().to_string();
        assert!(err.contains("cache.size") && err.contains("lots"), "{err}");
        let err =
            load_from::<Demo>(None, env(&[("CADENZA_DEMO__PORT", "eighty")]), &[]).unwrap_err().to_string();
        assert!(
            err.contains("port") && err.contains("CADENZA_DEMO__PORT") && err.contains("eighty"),
            "{err}"
        );
        let err = load_from::<Demo>(None, env(&[]), &["port=0".into()]).unwrap_err().to_string();
        assert_eq!(err, "config key `port` = 0: must not be 0");
        let err = load_from::<Demo>(None, env(&[]), &["cache=1".into()]).unwrap_err().to_string();
        assert!(err.contains("section"), "{err}");
        let err = load_from::<Demo>(None, env(&[]), &["novalue".into()]).unwrap_err().to_string();
        assert!(err.contains("key=value"), "{err}");
    }

    #[test]
    fn file_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, "port = \n").unwrap();
        let err = load_from::<Demo>(Some(&path), env(&[]), &[]).unwrap_err().to_string();
        assert!(err.contains("bad.toml"), "{err}");
        let missing = dir.path().join("missing.toml");
        let err = load_from::<Demo>(Some(&missing), env(&[]), &[]).unwrap_err().to_string();
        assert!(err.contains("missing.toml"), "{err}");
    }
}
