//! The CDN registry and what the control plane knows of each POP.
//!
//! CDNs come from two places: the config (`[[cdns]]` and the `[[edges]]`
//! shorthand; read-only at run time) and the admin API (stored in the
//! `cdns` table, so every replica sees them). [`Cdns`] holds the merged
//! registry as an immutable snapshot behind a lock that is held only to
//! clone an `Arc`; a change builds a new snapshot. Each POP's
//! [`health::PopHealth`] outlives snapshots (keyed by `cdn/pop`), so
//! editing a CDN does not forget what the probes learned.
//!
//! [`prober`] is the background task: every `health.interval` it reloads
//! the API-made CDNs from the database (another replica may have changed
//! them) and probes every POP concurrently.

pub(crate) mod health;
pub(crate) mod select;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use cadenza_config::service::{CdnConfig, ControlConfig};

use self::health::{PopHealth, Probe, ProbeState};
use crate::db::{self, Db, now_ms};

/// Where a CDN was defined.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Source {
    Config,
    Api,
}

impl Source {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Source::Config => "config",
            Source::Api => "api",
        }
    }
}

/// One POP in a snapshot.
#[derive(Debug)]
pub(crate) struct Pop {
    pub(crate) config: cadenza_config::service::PopConfig,
    pub(crate) health: Arc<PopHealth>,
    /// `cdn.weight · pop.weight / cdn.cost_per_gb`.
    pub(crate) weight: f64,
}

/// One CDN in a snapshot.
#[derive(Debug)]
pub(crate) struct Cdn {
    pub(crate) config: CdnConfig,
    pub(crate) source: Source,
    pub(crate) pops: Vec<Pop>,
}

/// An immutable view of every CDN.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    pub(crate) cdns: Vec<Cdn>,
    /// The API-made CDNs it was built from, to skip no-op reloads.
    api: Vec<CdnConfig>,
}

impl Registry {
    /// POPs players may be sent to (shields are not).
    pub(crate) fn pop_count(&self) -> usize {
        self.serving_pops().count()
    }

    /// Every POP players may be sent to, with its CDN.
    pub(crate) fn serving_pops(&self) -> impl Iterator<Item = (&Cdn, &Pop)> {
        self.cdns.iter().flat_map(|c| c.pops.iter().filter(|p| !p.config.shield).map(move |p| (c, p)))
    }

    pub(crate) fn find(&self, cdn: &str, pop: &str) -> Option<(&Cdn, &Pop)> {
        let c = self.cdns.iter().find(|c| c.config.name == cdn)?;
        Some((c, c.pops.iter().find(|p| p.config.name == pop)?))
    }
}

/// The live registry.
#[derive(Debug)]
pub(crate) struct Cdns {
    current: RwLock<Arc<Registry>>,
    from_config: Vec<CdnConfig>,
    /// `cdn/pop` → health, across snapshots.
    health: Mutex<HashMap<String, Arc<PopHealth>>>,
}

impl Cdns {
    pub(crate) fn new(config: &ControlConfig) -> Self {
        let cdns = Self {
            current: RwLock::new(Arc::new(Registry::default())),
            from_config: config.registry(),
            health: Mutex::new(HashMap::new()),
        };
        cdns.apply(Vec::new());
        cdns
    }

    pub(crate) fn snapshot(&self) -> Arc<Registry> {
        self.current.read().expect("registry lock").clone()
    }

    /// Whether `name` is defined in the config (and so not editable).
    pub(crate) fn in_config(&self, name: &str) -> bool {
        self.from_config.iter().any(|c| c.name == name)
    }

    /// Build a new snapshot from the config and these API-made CDNs.
    pub(crate) fn apply(&self, mut api: Vec<CdnConfig>) {
        // A config CDN shadows an API one of the same name.
        api.retain(|c| !self.in_config(&c.name));
        let mut health = self.health.lock().expect("health map lock");
        let mut keep = HashMap::new();
        let mut build = |c: &CdnConfig, source: Source| Cdn {
            config: c.clone(),
            source,
            pops: c
                .pops
                .iter()
                .map(|p| {
                    let key = format!("{}/{}", c.name, p.name);
                    let h = health.get(&key).cloned().unwrap_or_default();
                    keep.insert(key, h.clone());
                    Pop {
                        config: p.clone(),
                        health: h,
                        weight: f64::from(c.weight) * f64::from(p.weight) / c.cost_per_gb,
                    }
                })
                .collect(),
        };
        let mut cdns: Vec<Cdn> = self.from_config.iter().map(|c| build(c, Source::Config)).collect();
        cdns.extend(api.iter().map(|c| build(c, Source::Api)));
        *health = keep;
        *self.current.write().expect("registry lock") = Arc::new(Registry { cdns, api });
    }

    /// Reload the API-made CDNs from the database.
    pub(crate) async fn reload(&self, db: &Db) -> Result<(), sqlx::Error> {
        let api = db::cdns::list(db).await?;
        if self.snapshot().api != api {
            self.apply(api);
        }
        Ok(())
    }
}

/// Probe every POP once per `health.interval`, forever (abort to stop).
pub(crate) async fn prober(state: crate::api::AppState) {
    let config = state.config().health.clone();
    cadenza_net::tls::install_crypto_provider();
    let client = match reqwest::Client::builder()
        .no_proxy()
        .timeout(config.timeout.get())
        .connect_timeout(config.timeout.get())
        .pool_max_idle_per_host(1)
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "health prober: no HTTP client; POPs are not probed");
            return;
        }
    };
    let mut tick = tokio::time::interval(config.interval.get());
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = state.cdns().reload(state.db()).await {
            tracing::warn!(error = %e, "health prober: could not reload the CDN registry");
        }
        let registry = state.cdns().snapshot();
        let probes = registry.cdns.iter().flat_map(|c| c.pops.iter().map(move |p| (c, p))).map(|(c, p)| {
            let client = client.clone();
            let state = state.clone();
            let (rise, fall) = (config.rise, config.fall);
            async move {
                if let Some(target) = p.config.probe_target() {
                    let outcome = probe(&client, &target).await;
                    if let Probe::Failed { reason } = &outcome {
                        tracing::debug!(cdn = %c.config.name, pop = %p.config.name, reason, "probe failed");
                    }
                    if let Some(now) = p.health.record_probe(outcome, now_ms(), rise, fall) {
                        if now == ProbeState::Down {
                            tracing::warn!(cdn = %c.config.name, pop = %p.config.name, "POP marked down");
                        } else {
                            tracing::info!(cdn = %c.config.name, pop = %p.config.name, state = now.as_str(), "POP state");
                        }
                    }
                    state.metrics().pop_state(&c.config.name, &p.config.name, p.health.state());
                }
                if let Some(admin) = &p.config.admin_url {
                    p.health.set_in_flight(in_flight(&client, admin).await);
                }
            }
        });
        futures_util::future::join_all(probes).await;
    }
}

/// GET `target`; any 2xx within the client's timeout is a success.
async fn probe(client: &reqwest::Client, target: &str) -> Probe {
    let start = Instant::now();
    match client.get(target).send().await {
        Ok(r) if r.status().is_success() => {
            // Drain the (small) body so the connection is reused.
            let _ = r.bytes().await;
            Probe::Ok { rtt: start.elapsed() }
        }
        Ok(r) => Probe::Failed { reason: format!("status {}", r.status().as_u16()) },
        Err(e) if e.is_timeout() => Probe::Failed { reason: "timeout".into() },
        Err(e) if e.is_connect() => Probe::Failed { reason: "connect".into() },
        Err(_) => Probe::Failed { reason: "request".into() },
    }
}

/// Requests in flight from a cadenza edge's `/metrics`.
async fn in_flight(client: &reqwest::Client, admin: &str) -> Option<u64> {
    let r = client.get(format!("{admin}/metrics")).send().await.ok()?;
    if !r.status().is_success() {
        return None;
    }
    let text = r.text().await.ok()?;
    health::metric_value(&text, "cadenza_edge_requests_in_flight").map(|v| v.max(0.0) as u64)
}
