//! The CDN registry the control plane picks stream URLs from (`[[cdns]]`),
//! how it watches their POPs (`[health]`), and how it chooses among them
//! (`[selection]`). The same [`CdnConfig`] is the body of the admin API's
//! `PUT /v1/admin/cdns/{name}`, so a CDN added at run time is validated by
//! exactly the rules a config file is.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::ids::is_opaque_id;
use crate::load::{ConfigError, ensure};
use crate::units::{HumanDuration, Secret};

/// How a CDN's URLs are signed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CdnKind {
    /// cadenza edges: `?exp=&uid=&kid=&sig=`, HMAC-SHA256 with the
    /// `[signing]` key ring ([`crate::token`]).
    Cadenza,
    /// nginx's `secure_link` module with `secure_link_md5`
    /// ([`crate::secure_link`]): `?md5=&expires=&uid=`, keyed by the CDN's
    /// `secret`.
    NginxSecureLink,
}

impl CdnKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CdnKind::Cadenza => "cadenza",
            CdnKind::NginxSecureLink => "nginx_secure_link",
        }
    }
}

/// One `[[cdns]]` entry: a CDN and its POPs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CdnConfig {
    /// `[A-Za-z0-9_-]{1,64}`, unique.
    pub name: String,
    /// The URL-signing scheme.
    pub kind: CdnKind,
    /// `nginx_secure_link`: the secret written into nginx's
    /// `secure_link_md5` expression (at least 16 characters, no whitespace).
    /// Must be empty for `cadenza`, whose URLs use `[signing]`.
    #[serde(default)]
    pub secret: Secret,
    /// Price of a GB delivered, in any one currency used for every CDN.
    /// Selection weighs POPs by `weight / cost_per_gb`. Default `1.0`;
    /// `0.0001` to `1000`.
    #[serde(default = "default_cost")]
    pub cost_per_gb: f64,
    /// Share of traffic relative to other CDNs at equal cost. Default `100`;
    /// `1` to `10000`.
    #[serde(default = "default_weight")]
    pub weight: u32,
    /// At least one.
    pub pops: Vec<PopConfig>,
}

/// One POP of a CDN.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PopConfig {
    /// `[A-Za-z0-9_-]{1,64}`, unique within its CDN.
    pub name: String,
    /// Public base URL players fetch from, without a trailing slash.
    pub url: String,
    /// Region or geo code clients are matched on (`eu-west`, `us`, `local`
    /// …), `[A-Za-z0-9_-]{0,64}`; empty serves every region equally.
    #[serde(default)]
    pub region: String,
    /// The POP's admin base URL (a cadenza edge's admin listener): probed
    /// at `/readyz`, its load read from `/metrics`. Optional.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_url: Option<String>,
    /// What the active probe GETs; any 2xx is healthy. Default:
    /// `<admin_url>/readyz`, else `<url>/healthz`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe_url: Option<String>,
    /// `false`: no active probe; only players' reports judge this POP.
    /// Default `true`.
    #[serde(default = "yes")]
    pub probe: bool,
    /// Share within its CDN. Default `100`; `1` to `10000`.
    #[serde(default = "default_weight")]
    pub weight: u32,
    /// Bearer token of the POP's admin API (a cadenza edge's
    /// `admin.token`): with it, warm jobs (`POST /v1/admin/warm`) run on
    /// this POP. Needs `admin_url` and kind `cadenza`; at least 16
    /// characters. Empty (the default): the POP is never warmed.
    #[serde(default, skip_serializing_if = "Secret::is_empty")]
    pub admin_token: Secret,
    /// A shield: the parent tier other POPs of this CDN fill from (its
    /// `tier.token` set). Never named in stream answers; warmed before its
    /// children. Default `false`.
    #[serde(default, skip_serializing_if = "is_false")]
    pub shield: bool,
    /// The shield POP of this CDN this POP fills from (its `origin.url`
    /// is that shield's URL). Warm jobs fill the shield first, then this
    /// POP from it. Default: none (it fills from the origin).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn default_cost() -> f64 {
    1.0
}
fn default_weight() -> u32 {
    100
}
fn yes() -> bool {
    true
}

impl PopConfig {
    /// A POP with every optional field at its default.
    pub fn new(name: impl Into<String>, url: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            url: url.into(),
            region: String::new(),
            admin_url: None,
            probe_url: None,
            probe: true,
            weight: 100,
            admin_token: Secret::default(),
            shield: false,
            parent: None,
        }
    }

    /// Whether warm jobs can run on this POP (admin URL and token known).
    pub fn warmable(&self) -> bool {
        self.admin_url.is_some() && !self.admin_token.is_empty()
    }

    /// The URL the active probe GETs; `None` when `probe = false`.
    pub fn probe_target(&self) -> Option<String> {
        if !self.probe {
            return None;
        }
        Some(match (&self.probe_url, &self.admin_url) {
            (Some(p), _) => p.clone(),
            (None, Some(a)) => format!("{a}/readyz"),
            (None, None) => format!("{}/healthz", self.url),
        })
    }
}

fn is_base_url(u: &str) -> bool {
    (u.starts_with("http://") || u.starts_with("https://"))
        && !u.ends_with('/')
        && u.len() <= 512
        && !u.contains(['?', '#', ' '])
        && u.split_once("://").is_some_and(|(_, rest)| !rest.is_empty())
}

impl CdnConfig {
    /// Check every field; `at` prefixes the key in errors (`cdns[1]`), and
    /// an empty `at` names the fields alone (`pops[0].url`), as the admin
    /// API's body has them.
    pub fn validate(&self, at: &str) -> Result<(), ConfigError> {
        let key = |field: &str| if at.is_empty() { field.to_owned() } else { format!("{at}.{field}") };
        ensure(
            is_opaque_id(&self.name, 64),
            &key("name"),
            &self.name,
            "must be 1-64 characters of [A-Za-z0-9_-]",
        )?;
        match self.kind {
            CdnKind::Cadenza => ensure(
                self.secret.is_empty(),
                &key("secret"),
                "<redacted>",
                "must be empty for kind \"cadenza\" (its URLs are signed with [signing] keys)",
            )?,
            CdnKind::NginxSecureLink => ensure(
                self.secret.expose().len() >= 16
                    && self.secret.expose().len() <= 256
                    && !self.secret.expose().chars().any(|c| {
                        c.is_whitespace()
                            || matches!(c, '"' | '\'' | '$' | '\\' | ';' | '{' | '}')
                            || c.is_control()
                    }),
                &key("secret"),
                "<redacted>",
                "must be 16-256 characters without whitespace, quotes, $, \\, ;, { or } (it is pasted into nginx's secure_link_md5, where $ starts a variable)",
            )?,
        }
        ensure(
            self.cost_per_gb.is_finite() && (0.0001..=1000.0).contains(&self.cost_per_gb),
            &key("cost_per_gb"),
            self.cost_per_gb,
            "must be between 0.0001 and 1000",
        )?;
        ensure(
            (1..=10_000).contains(&self.weight),
            &key("weight"),
            self.weight,
            "must be between 1 and 10000",
        )?;
        ensure(!self.pops.is_empty(), &key("pops"), self.pops.len(), "must list at least one POP")?;
        ensure(self.pops.len() <= 256, &key("pops"), self.pops.len(), "at most 256 POPs")?;
        for (i, p) in self.pops.iter().enumerate() {
            let at = key(&format!("pops[{i}]"));
            ensure(
                is_opaque_id(&p.name, 64),
                &format!("{at}.name"),
                &p.name,
                "must be 1-64 characters of [A-Za-z0-9_-]",
            )?;
            if self.pops[..i].iter().any(|o| o.name == p.name) {
                return Err(ConfigError::invalid(format!("{at}.name"), &p.name, "appears twice in this CDN"));
            }
            ensure(
                is_base_url(&p.url),
                &format!("{at}.url"),
                &p.url,
                "must be an http(s) base URL without a trailing slash, query or fragment",
            )?;
            ensure(
                p.region.is_empty() || is_opaque_id(&p.region, 64),
                &format!("{at}.region"),
                &p.region,
                "must be 0-64 characters of [A-Za-z0-9_-]",
            )?;
            if let Some(a) = &p.admin_url {
                ensure(
                    is_base_url(a),
                    &format!("{at}.admin_url"),
                    a,
                    "must be an http(s) base URL without a trailing slash",
                )?;
            }
            if let Some(u) = &p.probe_url {
                ensure(
                    (u.starts_with("http://") || u.starts_with("https://")) && u.len() <= 512,
                    &format!("{at}.probe_url"),
                    u,
                    "must be an http(s) URL",
                )?;
            }
            ensure(
                (1..=10_000).contains(&p.weight),
                &format!("{at}.weight"),
                p.weight,
                "must be between 1 and 10000",
            )?;
            if !p.admin_token.is_empty() {
                ensure(
                    self.kind == CdnKind::Cadenza,
                    &format!("{at}.admin_token"),
                    "<redacted>",
                    "is for cadenza edges only (kind \"cadenza\")",
                )?;
                ensure(p.admin_url.is_some(), &format!("{at}.admin_token"), "<redacted>", "needs admin_url")?;
                crate::service::common::validate_admin_token(&p.admin_token, &format!("{at}.admin_token"))?;
            }
            if let Some(parent) = &p.parent {
                ensure(
                    !p.shield,
                    &format!("{at}.parent"),
                    parent,
                    "a shield fills from the origin, not another POP",
                )?;
                ensure(
                    self.pops.iter().any(|o| &o.name == parent && o.shield),
                    &format!("{at}.parent"),
                    parent,
                    "must name a shield POP (shield = true) of this CDN",
                )?;
            }
        }
        ensure(
            self.pops.iter().any(|p| !p.shield),
            &key("pops"),
            self.pops.len(),
            "must list at least one POP that is not a shield",
        )?;
        Ok(())
    }
}

/// `[health]`: how the control plane watches POPs. Active probes mark a
/// POP down after `fall` failures in a row and up again after `rise`
/// successes; with the defaults a dead POP leaves new decisions within
/// `interval · fall + timeout` = 7 s. Players' reports
/// (`POST /v1/playback/report`) and the edges' `/metrics` are the passive
/// signals.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthConfig {
    /// Time between probes of one POP. Default `2s`; `100ms` to `1m`.
    pub interval: HumanDuration,
    /// A probe slower than this fails. Default `1s`; at most `interval`.
    pub timeout: HumanDuration,
    /// Failures in a row that mark a POP down. Default `3`; `1` to `20`.
    pub fall: u32,
    /// Successes in a row that mark a down POP up. Default `2`; `1` to `20`.
    pub rise: u32,
    /// Window over which players' reports make a POP's availability and
    /// time to first byte. Default `1m`; `10s` to `1h`.
    pub report_window: HumanDuration,
    /// Reports a POP needs in the window before its availability is
    /// believed (fewer count as fully available). Default `20`.
    pub min_reports: u32,
}

impl Default for HealthConfig {
    fn default() -> Self {
        Self {
            interval: HumanDuration::secs(2),
            timeout: HumanDuration::secs(1),
            fall: 3,
            rise: 2,
            report_window: HumanDuration::secs(60),
            min_reports: 20,
        }
    }
}

impl HealthConfig {
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        let i = self.interval.get();
        ensure(
            (Duration::from_millis(100)..=Duration::from_secs(60)).contains(&i),
            "health.interval",
            self.interval.to_string(),
            "must be between 100ms and 1m",
        )?;
        ensure(
            self.timeout.get() >= Duration::from_millis(10) && self.timeout.get() <= i,
            "health.timeout",
            self.timeout.to_string(),
            "must be at least 10ms and at most health.interval",
        )?;
        ensure((1..=20).contains(&self.fall), "health.fall", self.fall, "must be between 1 and 20")?;
        ensure((1..=20).contains(&self.rise), "health.rise", self.rise, "must be between 1 and 20")?;
        ensure(
            (Duration::from_secs(10)..=Duration::from_secs(3600)).contains(&self.report_window.get()),
            "health.report_window",
            self.report_window.to_string(),
            "must be between 10s and 1h",
        )?;
        ensure(
            self.min_reports <= 1_000_000,
            "health.min_reports",
            self.min_reports,
            "must be at most 1000000",
        )
    }
}

/// `[selection]`: the pipeline that orders POPs for one stream answer:
/// up → client region → availability → latency → cost-weighted,
/// sticky rendezvous hashing → take `urls`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SelectionConfig {
    /// URLs per answer (fewer only if fewer POPs exist). Default `3`; `2`
    /// to `8`.
    pub urls: u32,
    /// Request header the load balancer puts the client's region in.
    /// Default `x-client-region`. A request body's `region` wins.
    pub region_header: String,
    /// Region of a client that names none. Default empty: every POP is
    /// in region.
    pub default_region: String,
    /// POPs whose reported availability is below this are skipped while
    /// others remain. Default `0.9`; `0` to `1`.
    pub min_availability: f64,
    /// POPs whose reported time to first byte is more than this above the
    /// best candidate's are skipped while others remain. Default `50ms`.
    pub latency_slack: HumanDuration,
    /// POPs with at least this many requests in flight (from their
    /// `/metrics`) are skipped while others remain. `0` turns it off.
    /// Default `0`.
    pub max_in_flight: u64,
}

impl Default for SelectionConfig {
    fn default() -> Self {
        Self {
            urls: 3,
            region_header: "x-client-region".into(),
            default_region: String::new(),
            min_availability: 0.9,
            latency_slack: HumanDuration::millis(50),
            max_in_flight: 0,
        }
    }
}

impl SelectionConfig {
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        ensure((2..=8).contains(&self.urls), "selection.urls", self.urls, "must be between 2 and 8")?;
        ensure(
            !self.region_header.is_empty()
                && self.region_header.len() <= 64
                && self.region_header.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-'),
            "selection.region_header",
            &self.region_header,
            "must be a header name of [A-Za-z0-9-]",
        )?;
        ensure(
            self.default_region.is_empty() || is_opaque_id(&self.default_region, 64),
            "selection.default_region",
            &self.default_region,
            "must be 0-64 characters of [A-Za-z0-9_-]",
        )?;
        ensure(
            (0.0..=1.0).contains(&self.min_availability),
            "selection.min_availability",
            self.min_availability,
            "must be between 0 and 1",
        )?;
        ensure(
            self.latency_slack.get() <= Duration::from_secs(10),
            "selection.latency_slack",
            self.latency_slack.to_string(),
            "must be at most 10s",
        )
    }
}

/// Validate a list of CDNs as `[[cdns]]`: each entry, and unique names.
pub(crate) fn validate_cdns(cdns: &[CdnConfig], reserved: Option<&str>) -> Result<(), ConfigError> {
    for (i, c) in cdns.iter().enumerate() {
        c.validate(&format!("cdns[{i}]"))?;
        if cdns[..i].iter().any(|o| o.name == c.name) || reserved == Some(c.name.as_str()) {
            return Err(ConfigError::invalid(format!("cdns[{i}].name"), &c.name, "appears twice"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cdn() -> CdnConfig {
        CdnConfig {
            name: "akamai".into(),
            kind: CdnKind::NginxSecureLink,
            secret: Secret::new("0123456789abcdef"),
            cost_per_gb: 0.02,
            weight: 100,
            pops: vec![PopConfig { region: "eu".into(), ..PopConfig::new("fra", "https://fra.cdn.example") }],
        }
    }

    #[test]
    fn every_field_is_checked_by_name() {
        assert_eq!(cdn().validate("cdns[0]").map_err(|e| e.to_string()), Ok(()));
        type Break = fn(&mut CdnConfig);
        let cases: [(&str, Break); 19] = [
            ("cdns[0].name", |c| c.name = "a b".into()),
            ("cdns[0].secret", |c| c.secret = Secret::new("short")),
            ("cdns[0].secret", |c| c.secret = Secret::new("has a space in it 0123")),
            ("cdns[0].secret", |c| c.secret = Secret::new("abcdefgh$ijklmnopq")),
            ("cdns[0].secret", |c| c.kind = CdnKind::Cadenza),
            ("cdns[0].cost_per_gb", |c| c.cost_per_gb = 0.0),
            ("cdns[0].cost_per_gb", |c| c.cost_per_gb = f64::NAN),
            ("cdns[0].weight", |c| c.weight = 0),
            ("cdns[0].pops", |c| c.pops.clear()),
            ("cdns[0].pops[0].url", |c| c.pops[0].url = "https://x.example/".into()),
            ("cdns[0].pops[0].region", |c| c.pops[0].region = "eu west".into()),
            ("cdns[0].pops[0].admin_url", |c| c.pops[0].admin_url = Some("ftp://x".into())),
            ("cdns[0].pops[1].name", |c| c.pops.push(c.pops[0].clone())),
            // nginx POPs have no admin API to warm through.
            ("cdns[0].pops[0].admin_token", |c| c.pops[0].admin_token = Secret::new("0123456789abcdef")),
            ("cdns[0].pops[0].admin_token", |c| {
                c.kind = CdnKind::Cadenza;
                c.secret = Secret::default();
                c.pops[0].admin_token = Secret::new("0123456789abcdef");
            }),
            ("cdns[0].pops[0].admin_token", |c| {
                c.kind = CdnKind::Cadenza;
                c.secret = Secret::default();
                c.pops[0].admin_url = Some("http://127.0.0.1:1".into());
                c.pops[0].admin_token = Secret::new("short");
            }),
            ("cdns[0].pops[0].parent", |c| c.pops[0].parent = Some("nowhere".into())),
            ("cdns[0].pops[0].parent", |c| {
                c.pops.push(PopConfig::new("shield", "https://shield.cdn.example"));
                c.pops[0].parent = Some("shield".into()); // not marked a shield
            }),
            ("cdns[0].pops", |c| c.pops[0].shield = true),
        ];
        for (key, break_it) in cases {
            let mut c = cdn();
            break_it(&mut c);
            let err = c.validate("cdns[0]").expect_err(key).to_string();
            assert!(err.contains(key), "{key}: {err}");
            assert!(!err.contains("0123456789abcdef"), "secret echoed: {err}");
        }
    }

    #[test]
    fn a_shield_and_its_children_validate() {
        let mut c = cdn();
        c.kind = CdnKind::Cadenza;
        c.secret = Secret::default();
        let mut shield = PopConfig::new("shield", "https://shield.cdn.example");
        shield.shield = true;
        shield.admin_url = Some("http://10.0.0.9:9000".into());
        shield.admin_token = Secret::new("0123456789abcdef0123");
        c.pops.push(shield);
        c.pops[0].parent = Some("shield".into());
        assert_eq!(c.validate("cdns[0]").map_err(|e| e.to_string()), Ok(()));
        assert!(c.pops[1].warmable() && !c.pops[0].warmable());
        // A stored CDN keeps its tokens (the registry table is the config).
        let back: CdnConfig = serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn an_empty_prefix_names_fields_as_a_body_has_them() {
        let mut c = cdn();
        c.pops[0].url = "ftp://x".into();
        let err = c.validate("").unwrap_err().to_string();
        assert!(err.contains("`pops[0].url`") || err.contains(" pops[0].url"), "{err}");
        assert!(!err.contains(".pops"), "{err}");
        c.weight = 0;
        assert!(!c.validate("").unwrap_err().to_string().contains(".weight"));
    }

    #[test]
    fn probe_target_defaults() {
        let mut p = cdn().pops.remove(0);
        assert_eq!(p.probe_target().unwrap(), "https://fra.cdn.example/healthz");
        p.admin_url = Some("http://10.0.0.1:9000".into());
        assert_eq!(p.probe_target().unwrap(), "http://10.0.0.1:9000/readyz");
        p.probe_url = Some("http://10.0.0.1:9000/ping".into());
        assert_eq!(p.probe_target().unwrap(), "http://10.0.0.1:9000/ping");
        p.probe = false;
        assert_eq!(p.probe_target(), None);
    }

    #[test]
    fn names_are_unique() {
        let err = validate_cdns(&[cdn(), cdn()], None).unwrap_err().to_string();
        assert!(err.contains("cdns[1].name"), "{err}");
        let err = validate_cdns(&[cdn()], Some("akamai")).unwrap_err().to_string();
        assert!(err.contains("cdns[0].name"), "{err}");
    }

    #[test]
    fn health_and_selection_ranges() {
        assert!(HealthConfig::default().validate().is_ok());
        assert!(SelectionConfig::default().validate().is_ok());
        let h = HealthConfig { timeout: HumanDuration::secs(5), ..HealthConfig::default() };
        assert!(h.validate().unwrap_err().to_string().contains("health.timeout"));
        let s = SelectionConfig { urls: 1, ..SelectionConfig::default() };
        assert!(s.validate().unwrap_err().to_string().contains("selection.urls"));
        let s = SelectionConfig { min_availability: 1.5, ..SelectionConfig::default() };
        assert!(s.validate().unwrap_err().to_string().contains("selection.min_availability"));
    }
}
