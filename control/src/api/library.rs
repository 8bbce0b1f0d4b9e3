//! The library API (to be written).

use axum::Router;

use super::AppState;

/// The library routes, merged into the API's router.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
}
