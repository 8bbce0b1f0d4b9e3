//! Bodies of the CDN registry's admin API (`/v1/admin/cdns`).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `PUT /v1/admin/cdns/{name}`: a CDN and its POPs, the shape of a
/// `[[cdns]]` config entry without the name (it is in the path).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CdnSpec {
    /// `cadenza` (HMAC token, `[signing]` keys) or `nginx_secure_link`.
    pub kind: CdnKindName,
    /// `nginx_secure_link` only: the secret of nginx's `secure_link_md5`
    /// (16-256 characters). Never shown again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// Default 1.0; 0.0001 to 1000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_per_gb: Option<f64>,
    /// Default 100; 1 to 10000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
    pub pops: Vec<PopSpec>,
}

/// A CDN's URL-signing scheme.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CdnKindName {
    Cadenza,
    NginxSecureLink,
}

/// One POP.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PopSpec {
    pub name: String,
    /// Public base URL, no trailing slash.
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Admin base URL of a cadenza edge: probed at `/readyz`, load from
    /// `/metrics`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe_url: Option<String>,
    /// Default `true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe: Option<bool>,
    /// Default 100; 1 to 10000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
    /// The POP's admin API token (a cadenza edge's `admin.token`), so warm
    /// jobs can run on it; needs `admin_url`. Never shown again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_token: Option<String>,
    /// A shield (parent tier): never in stream answers, warmed first.
    /// Default `false`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shield: Option<bool>,
    /// The shield POP of this CDN that this POP fills from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
}

/// `GET /v1/admin/cdns`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CdnList {
    pub cdns: Vec<CdnView>,
}

/// A CDN as the registry holds it, with its POPs' health.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CdnView {
    pub name: String,
    pub kind: CdnKindName,
    /// `config` (read-only here) or `api`.
    pub source: String,
    pub cost_per_gb: f64,
    pub weight: u32,
    /// Whether a secret is set (it is never shown).
    pub has_secret: bool,
    pub pops: Vec<PopView>,
}

/// A POP and what the control plane knows of it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PopView {
    pub name: String,
    pub url: String,
    pub region: String,
    pub admin_url: Option<String>,
    /// What the active probe GETs; absent when it is not probed.
    pub probe_url: Option<String>,
    pub weight: u32,
    /// Whether an admin token is set (warm jobs can run here).
    pub has_admin_token: bool,
    pub shield: bool,
    pub parent: Option<String>,
    /// `up`, `down` or `unknown`.
    pub state: String,
    /// Unix milliseconds of the last change of `state`.
    pub since_ms: Option<i64>,
    pub last_probe_ms: Option<i64>,
    pub last_rtt_ms: Option<f64>,
    pub last_error: Option<String>,
    pub in_flight: Option<u64>,
    /// Players' reports in `health.report_window`.
    pub reports_ok: u64,
    pub reports_failed: u64,
    pub availability: Option<f64>,
    pub ttfb_ms: Option<f64>,
}
