use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::common::validate_store_url;
use crate::ingest::{LEASE_SECONDS, is_worker_name};
use crate::load::{ConfigError, ServiceConfig, ensure};
use crate::units::{HumanDuration, Secret};

/// `cadenza transcode`: masters in, published ladders out.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TranscoderConfig {
    /// Store to publish into (and, for a worker, to read masters from),
    /// e.g. `file:///var/lib/cadenza/store`. Required.
    pub store: String,
    /// Where work files go while a track is transcoded (its renditions
    /// before upload, a worker's downloaded masters). Default: the system's
    /// temporary directory.
    pub work_dir: Option<PathBuf>,
    /// `cadenza transcode --worker`.
    pub worker: WorkerConfig,
}

/// `[worker]`: taking ingest jobs from the control plane.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkerConfig {
    /// Control plane base URL, e.g. `http://127.0.0.1:8400`. Required for
    /// `--worker`.
    pub control_url: String,
    /// Bearer token for the control plane's `/v1/ingest/*` routes: its
    /// `ingest.worker_token` (or admin token). Required for `--worker`.
    pub token: Secret,
    /// Name reported with each claim, `[A-Za-z0-9_.-]{1,64}`. Default: the
    /// host name and process id.
    pub name: String,
    /// Lease asked for with each claim; renewed every third of it while
    /// the job runs. A worker that dies loses its job to another this long
    /// after its last renewal. Default `2m`, between `10s` and `1h`.
    pub lease: HumanDuration,
    /// Wait between claims when there is nothing to do. Default `5s`.
    pub poll_interval: HumanDuration,
    /// Stop after this many jobs; `0` = never. Default `0`.
    pub max_jobs: u64,
    /// Stop when a claim finds nothing to do, instead of polling (batch
    /// runs). Default `false`.
    pub exit_when_idle: bool,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            control_url: String::new(),
            token: Secret::default(),
            name: String::new(),
            lease: HumanDuration::secs(120),
            poll_interval: HumanDuration::secs(5),
            max_jobs: 0,
            exit_when_idle: false,
        }
    }
}

impl ServiceConfig for TranscoderConfig {
    const ENV_PREFIX: &'static str = "CADENZA_TRANSCODER";

    fn validate(&self) -> Result<(), ConfigError> {
        validate_store_url(&self.store, "store")?;
        let w = &self.worker;
        if !w.control_url.is_empty() {
            ensure(
                (w.control_url.starts_with("http://") || w.control_url.starts_with("https://"))
                    && !w.control_url.ends_with('/'),
                "worker.control_url",
                &w.control_url,
                "must be an http(s) base URL without a trailing slash",
            )?;
        }
        if !w.name.is_empty() {
            ensure(
                is_worker_name(&w.name),
                "worker.name",
                &w.name,
                "must be 1-64 characters of [A-Za-z0-9_.-]",
            )?;
        }
        let lease = w.lease.get().as_secs();
        ensure(
            u32::try_from(lease).is_ok_and(|s| LEASE_SECONDS.contains(&s)),
            "worker.lease",
            w.lease.to_string(),
            "must be between 10s and 1h",
        )?;
        let poll = w.poll_interval.get();
        ensure(
            poll.as_millis() >= 100 && poll.as_secs() <= 600,
            "worker.poll_interval",
            w.poll_interval.to_string(),
            "must be between 100ms and 10m",
        )
    }
}

impl WorkerConfig {
    /// Check what `--worker` needs beyond [`ServiceConfig::validate`].
    pub fn require(&self) -> Result<(), ConfigError> {
        ensure(!self.control_url.is_empty(), "worker.control_url", "", "is required for --worker")?;
        ensure(!self.token.is_empty(), "worker.token", "", "is required for --worker")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_settings_are_checked_by_name() {
        let ok = TranscoderConfig { store: "memory://".into(), ..Default::default() };
        assert!(ok.validate().is_ok());
        type Break = Box<dyn Fn(&mut WorkerConfig)>;
        let cases: Vec<(&str, Break)> = vec![
            ("worker.control_url", Box::new(|w| w.control_url = "ftp://x".into())),
            ("worker.control_url", Box::new(|w| w.control_url = "http://x/".into())),
            ("worker.name", Box::new(|w| w.name = "a b".into())),
            ("worker.lease", Box::new(|w| w.lease = HumanDuration::secs(5))),
            ("worker.lease", Box::new(|w| w.lease = HumanDuration::secs(7200))),
            ("worker.poll_interval", Box::new(|w| w.poll_interval = HumanDuration::secs(0))),
        ];
        for (key, break_it) in cases {
            let mut c = ok.clone();
            break_it(&mut c.worker);
            let err = c.validate().unwrap_err().to_string();
            assert!(err.contains(key), "{key}: {err}");
        }
        let err = ok.worker.require().unwrap_err().to_string();
        assert!(err.contains("worker.control_url"), "{err}");
        let mut w = ok.worker.clone();
        w.control_url = "http://127.0.0.1:8400".into();
        assert!(w.require().unwrap_err().to_string().contains("worker.token"));
        w.token = Secret::new("a-worker-token-0123");
        assert!(w.require().is_ok());
    }
}
