//! The playlists API (to be written).

use axum::Router;

use super::AppState;

/// The playlists routes, merged into the API's router.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
}
