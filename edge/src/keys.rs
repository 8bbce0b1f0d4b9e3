//! Reloading the signing key ring at run time (SIGHUP and
//! `POST /admin/keys/reload`): `[signing]` is read again, and the new ring
//! replaces the old one only if all of it is good (see
//! [`cadenza_config::live`]).

use std::sync::Arc;

use cadenza_config::live::RingSummary;

use crate::handler::Edge;

/// Reload the key ring; `trigger` says why, for the log. On error the ring
/// in use stays, and the error (naming the file or key) is logged and
/// returned.
pub(crate) async fn reload(edge: &Arc<Edge>, trigger: &'static str) -> Result<RingSummary, String> {
    let e = edge.clone();
    // Reading the key file is blocking I/O.
    let outcome = tokio::task::spawn_blocking(move || e.keys.reload())
        .await
        .map_err(|e| format!("the reload task failed: {e}"))
        .and_then(|r| r.map_err(|e| e.to_string()));
    match &outcome {
        Ok(summary) => {
            edge.metrics.signing_reloads.with_label_values(&["ok"]).inc();
            edge.metrics.set_signing_keys(summary);
            tracing::info!(
                edge = %edge.name, trigger, keys = %summary.keys.join(","), current = %summary.current,
                "signing keys reloaded"
            );
        }
        Err(error) => {
            edge.metrics.signing_reloads.with_label_values(&["error"]).inc();
            let in_use = edge.keys.summary();
            tracing::error!(
                edge = %edge.name, trigger, %error, keys = %in_use.keys.join(","),
                "signing key reload failed; keeping the key ring in use"
            );
        }
    }
    outcome
}
