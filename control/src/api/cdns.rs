//! The CDN registry's admin API: list with health, read, create or
//! replace, delete. CDNs from the config file are listed but read-only
//! (409 `managed_by_config`); CDNs made here are stored, so every replica
//! picks them up within one `health.interval`, and this one at once.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use cadenza_config::ids::is_opaque_id;
use cadenza_config::service::{CdnConfig, CdnKind, PopConfig};
use cadenza_config::units::Secret;

use super::AppState;
use super::extract::{ApiJson, ApiPath};
use crate::auth::Admin;
use crate::cdn::{Cdn, Registry};
use crate::db::{self, now_ms};
use crate::error::{ApiError, ErrorKind};
use crate::types::{CdnKindName, CdnList, CdnSpec, CdnView, PopView};
use crate::validate::echo;

/// Every CDN and POP, with what the probes and reports say.
#[utoipa::path(get, path = "/v1/admin/cdns", tag = "admin", security(("admin" = [])),
    responses((status = 200, description = "The registry, config CDNs first, each POP with its health.", body = CdnList)))]
pub(crate) async fn list_cdns(State(state): State<AppState>, _admin: Admin) -> Json<CdnList> {
    let registry = state.cdns().snapshot();
    Json(CdnList { cdns: registry.cdns.iter().map(|c| view(&state, c)).collect() })
}

/// One CDN.
#[utoipa::path(get, path = "/v1/admin/cdns/{name}", tag = "admin", security(("admin" = [])),
    params(("name" = String, Path, description = "CDN name")),
    responses(
        (status = 200, description = "The CDN with its POPs' health.", body = CdnView),
        (status = 404, description = "`cdn_not_found`."),
    ))]
pub(crate) async fn get_cdn(
    State(state): State<AppState>,
    _admin: Admin,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<CdnView>, ApiError> {
    let registry = state.cdns().snapshot();
    Ok(Json(view(&state, find(&registry, &name)?)))
}

/// Create or replace a CDN made through the API.
#[utoipa::path(put, path = "/v1/admin/cdns/{name}", tag = "admin", security(("admin" = [])),
    params(("name" = String, Path, description = "CDN name, `[A-Za-z0-9_-]{1,64}`")),
    request_body = CdnSpec,
    responses(
        (status = 201, description = "Created; in new decisions at once on this replica.", body = CdnView),
        (status = 200, description = "Replaced; the POPs' health is kept by name.", body = CdnView),
        (status = 400, description = "`invalid_request`: the message names the field, e.g. `pops[1].url`."),
        (status = 409, description = "`managed_by_config`: the CDN is in the config file."),
    ))]
pub(crate) async fn put_cdn(
    State(state): State<AppState>,
    _admin: Admin,
    ApiPath(name): ApiPath<String>,
    ApiJson(spec): ApiJson<CdnSpec>,
) -> Result<Response, ApiError> {
    if !is_opaque_id(&name, 64) {
        return Err(ApiError::invalid(format!(
            "path: name must be 1-64 characters of [A-Za-z0-9_-], got {}",
            echo(&name)
        )));
    }
    if state.cdns().in_config(&name) {
        return Err(managed(&name));
    }
    let cdn = to_config(name, spec);
    // The config rules, with keys relative to the body (`pops[0].url`).
    cdn.validate("").map_err(|e| ApiError::invalid(e.to_string()))?;
    let created = db::cdns::put(state.db(), &cdn).await?;
    state.cdns().reload(state.db()).await?;
    tracing::info!(cdn = %cdn.name, pops = cdn.pops.len(), created, "CDN stored");
    let registry = state.cdns().snapshot();
    let body = Json(view(&state, find(&registry, &cdn.name)?));
    Ok((if created { StatusCode::CREATED } else { StatusCode::OK }, body).into_response())
}

/// Delete a CDN made through the API; its POPs leave new decisions at once
/// on this replica, within one `health.interval` on the others.
#[utoipa::path(delete, path = "/v1/admin/cdns/{name}", tag = "admin", security(("admin" = [])),
    params(("name" = String, Path, description = "CDN name")),
    responses(
        (status = 204, description = "Deleted."),
        (status = 404, description = "`cdn_not_found`."),
        (status = 409, description = "`managed_by_config`: the CDN is in the config file."),
    ))]
pub(crate) async fn delete_cdn(
    State(state): State<AppState>,
    _admin: Admin,
    ApiPath(name): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    if state.cdns().in_config(&name) {
        return Err(managed(&name));
    }
    if !db::cdns::delete(state.db(), &name).await? {
        return Err(not_found(&name));
    }
    state.cdns().reload(state.db()).await?;
    tracing::info!(cdn = %name, "CDN deleted");
    Ok(StatusCode::NO_CONTENT)
}

fn find<'a>(registry: &'a Registry, name: &str) -> Result<&'a Cdn, ApiError> {
    registry.cdns.iter().find(|c| c.config.name == name).ok_or_else(|| not_found(name))
}

fn not_found(name: &str) -> ApiError {
    ApiError::new(ErrorKind::CdnNotFound, format!("name: no CDN {}", echo(name)))
}

fn managed(name: &str) -> ApiError {
    ApiError::new(
        ErrorKind::ManagedByConfig,
        format!("name: CDN {} is defined in the config file; change it there", echo(name)),
    )
}

fn to_config(name: String, spec: CdnSpec) -> CdnConfig {
    CdnConfig {
        name,
        kind: match spec.kind {
            CdnKindName::Cadenza => CdnKind::Cadenza,
            CdnKindName::NginxSecureLink => CdnKind::NginxSecureLink,
        },
        secret: Secret::new(spec.secret.unwrap_or_default()),
        cost_per_gb: spec.cost_per_gb.unwrap_or(1.0),
        weight: spec.weight.unwrap_or(100),
        pops: spec
            .pops
            .into_iter()
            .map(|p| PopConfig {
                name: p.name,
                url: p.url,
                region: p.region.unwrap_or_default(),
                admin_url: p.admin_url,
                probe_url: p.probe_url,
                probe: p.probe.unwrap_or(true),
                weight: p.weight.unwrap_or(100),
                admin_token: Secret::new(p.admin_token.unwrap_or_default()),
                shield: p.shield.unwrap_or(false),
                parent: p.parent,
            })
            .collect(),
    }
}

fn view(state: &AppState, c: &Cdn) -> CdnView {
    let now = now_ms();
    let health = &state.config().health;
    CdnView {
        name: c.config.name.clone(),
        kind: match c.config.kind {
            CdnKind::Cadenza => CdnKindName::Cadenza,
            CdnKind::NginxSecureLink => CdnKindName::NginxSecureLink,
        },
        source: c.source.as_str().to_owned(),
        cost_per_gb: c.config.cost_per_gb,
        weight: c.config.weight,
        has_secret: !c.config.secret.is_empty(),
        pops: c
            .pops
            .iter()
            .map(|p| {
                let h = p.health.view(now, health.report_window.get());
                PopView {
                    name: p.config.name.clone(),
                    url: p.config.url.clone(),
                    region: p.config.region.clone(),
                    admin_url: p.config.admin_url.clone(),
                    probe_url: p.config.probe_target(),
                    weight: p.config.weight,
                    has_admin_token: !p.config.admin_token.is_empty(),
                    shield: p.config.shield,
                    parent: p.config.parent.clone(),
                    state: h.state.as_str().to_owned(),
                    since_ms: h.since_ms,
                    last_probe_ms: h.last_probe_ms,
                    last_rtt_ms: h.last_rtt_ms,
                    last_error: h.last_error,
                    in_flight: h.in_flight,
                    reports_ok: h.passive.ok,
                    reports_failed: h.passive.errors,
                    availability: h.passive.availability(health.min_reports),
                    ttfb_ms: h.passive.ttfb_ms,
                }
            })
            .collect(),
    }
}
