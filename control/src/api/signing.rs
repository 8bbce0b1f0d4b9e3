//! The URL-signing key ring at run time: which keys, and a reload.
//!
//! A reload (this API or SIGHUP) reads `[signing]` again — the key file,
//! and with `cadenza control` the whole config — and swaps the new ring in
//! only if all of it is good; new stream URLs are signed with its current
//! key (`signing.current`, or the last key) from then on. A reload that
//! fails keeps the ring in use, and says why, naming the file or key.
//! Never a secret in an answer or a log line.

use axum::Json;
use axum::extract::State;
use cadenza_config::live::RingSummary;

use super::AppState;
use crate::auth::Admin;
use crate::error::{ApiError, ErrorKind};
use crate::types::SigningKeys;

/// The signing key ids and the one that signs.
#[utoipa::path(get, path = "/v1/admin/signing", tag = "admin", security(("admin" = [])),
    responses((status = 200, description = "The key ids in the ring and the current one.", body = SigningKeys)))]
pub(crate) async fn keys(State(state): State<AppState>, _admin: Admin) -> Json<SigningKeys> {
    Json(state.keys().summary().into())
}

/// Read `[signing]` again (the key file; with `cadenza control`, the whole
/// config) and sign new URLs with the new ring's current key.
#[utoipa::path(post, path = "/v1/admin/signing/reload", tag = "admin", security(("admin" = [])),
    responses(
        (status = 200, description = "Reloaded: the key ids now in the ring and the current one.", body = SigningKeys),
        (status = 500, description = "`signing_reload_failed`: the message names the file or key; the key ring in use stays."),
    ))]
pub(crate) async fn reload(
    State(state): State<AppState>,
    _admin: Admin,
) -> Result<Json<SigningKeys>, ApiError> {
    match reload_keys(&state, "admin API").await {
        Ok(summary) => Ok(Json(summary.into())),
        Err(e) => Err(ApiError::new(
            ErrorKind::SigningReloadFailed,
            format!("{e}; keeping the key ring in use ({})", state.keys().summary().keys.join(", ")),
        )),
    }
}

/// Reload the ring; `trigger` says why, for the log. On error the ring in
/// use stays and the error is logged and returned.
pub(crate) async fn reload_keys(state: &AppState, trigger: &'static str) -> Result<RingSummary, String> {
    let s = state.clone();
    // Reading the key file (and the config) is blocking I/O.
    let outcome = tokio::task::spawn_blocking(move || s.keys().reload())
        .await
        .map_err(|e| format!("the reload task failed: {e}"))
        .and_then(|r| r.map_err(|e| e.to_string()));
    state.metrics().signing_reload(outcome.is_ok());
    match &outcome {
        Ok(summary) => {
            state.metrics().signing_current_key(&summary.current);
            tracing::info!(
                trigger, keys = %summary.keys.join(","), current = %summary.current, "signing keys reloaded"
            );
        }
        Err(error) => {
            let in_use = state.keys().summary();
            tracing::error!(
                trigger, %error, keys = %in_use.keys.join(","), current = %in_use.current,
                "signing key reload failed; keeping the key ring in use"
            );
        }
    }
    outcome
}
