//! Load shedding for the stream routes: past `playback.max_in_flight`
//! requests in progress, the next one is answered `429 overloaded` with
//! `Retry-After` at once. At an album drop the alternative is a queue
//! behind the database pool in which every request waits and many time
//! out; a quick 429 costs the player one retry a second or two later
//! (1 or 2 s, at random, so the retries do not arrive together either).
//!
//! The count covers a request from its head to its answer, body included,
//! and is dropped however the request ends (a guard).

use std::sync::atomic::{AtomicU32, Ordering};

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::AppState;
use crate::error::ApiError;

pub(crate) async fn shed(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let limit = state.config().playback.max_in_flight;
    if limit == 0 {
        return next.run(req).await;
    }
    let Some(_guard) = InFlight::enter(state.playback_in_flight(), limit) else {
        state.metrics().rate_limited("overloaded");
        return ApiError::overloaded(rand::random_range(1..=2)).into_response();
    };
    next.run(req).await
}

struct InFlight<'a>(&'a AtomicU32);

impl<'a> InFlight<'a> {
    /// One more in flight, unless `limit` already are.
    fn enter(count: &'a AtomicU32, limit: u32) -> Option<Self> {
        count.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < limit).then_some(n + 1)).ok()?;
        Some(Self(count))
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_holds_and_leaving_frees_a_place() {
        let count = AtomicU32::new(0);
        let a = InFlight::enter(&count, 2).unwrap();
        let b = InFlight::enter(&count, 2).unwrap();
        assert!(InFlight::enter(&count, 2).is_none());
        drop(a);
        let c = InFlight::enter(&count, 2).unwrap();
        drop((b, c));
        assert_eq!(count.load(Ordering::Acquire), 0);
    }
}
