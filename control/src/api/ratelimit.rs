//! Per-user rate limits by category (`[rate_limits]`): one keyed GCRA
//! limiter (governor) per category, keyed by user id. A request over the
//! limit is a 429 `rate_limited` with `Retry-After` in whole seconds
//! (rounded up), and counted in `cadenza_control_rate_limited_total`.
//!
//! Limits live in this process's memory: with several control-plane
//! replicas behind a balancer each enforces its own share, so the
//! effective limit is the configured one times the replica count — the
//! usual trade for keeping a shared store off the request path.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use cadenza_config::service::{RateLimit, RateLimitsConfig};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::error::ApiError;

/// What a request spends from its user's budget.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Category {
    Read,
    Search,
    Playback,
    LibraryWrite,
    PlaylistWrite,
    Events,
}

impl Category {
    pub(crate) const ALL: [Category; 6] = [
        Category::Read,
        Category::Search,
        Category::Playback,
        Category::LibraryWrite,
        Category::PlaylistWrite,
        Category::Events,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Category::Read => "read",
            Category::Search => "search",
            Category::Playback => "playback",
            Category::LibraryWrite => "library_write",
            Category::PlaylistWrite => "playlist_write",
            Category::Events => "events",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// The limiters of every category, or none when `rate_limits.enabled` is
/// off.
#[derive(Clone)]
pub(crate) struct RateLimiters {
    limiters: Option<Arc<[DefaultKeyedRateLimiter<String>; 6]>>,
    clock: DefaultClock,
}

impl std::fmt::Debug for RateLimiters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiters").field("enabled", &self.limiters.is_some()).finish()
    }
}

impl RateLimiters {
    pub(crate) fn new(config: &RateLimitsConfig) -> Self {
        let quota = |l: RateLimit| {
            let rate = NonZeroU32::new(l.per_second).unwrap_or(NonZeroU32::MIN);
            let burst = NonZeroU32::new(l.burst).unwrap_or(NonZeroU32::MIN);
            RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst))
        };
        let limiters = config.enabled.then(|| {
            Arc::new([
                quota(config.read),
                quota(config.search),
                quota(config.playback),
                quota(config.library_write),
                quota(config.playlist_write),
                quota(config.events),
            ])
        });
        Self { limiters, clock: DefaultClock::default() }
    }

    /// Spend one request of `user`'s `category` budget, or a 429.
    pub(crate) fn check(&self, user: &str, category: Category) -> Result<(), ApiError> {
        let Some(limiters) = &self.limiters else { return Ok(()) };
        let limiter = &limiters[category.index()];
        // The key is cloned only on a user's first request of a period;
        // `check_key` takes a reference.
        match limiter.check_key(&user.to_owned()) {
            Ok(()) => Ok(()),
            Err(not_until) => {
                let wait = not_until.wait_time_from(self.clock.now());
                Err(ApiError::rate_limited(category.as_str(), ceil_secs(wait)))
            }
        }
    }

    /// Forget users whose buckets are full again, so memory follows the
    /// active users rather than every user ever seen.
    pub(crate) fn forget_idle(&self) {
        if let Some(limiters) = &self.limiters {
            for l in limiters.iter() {
                l.retain_recent();
                l.shrink_to_fit();
            }
        }
    }
}

fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_429_with_retry_after() {
        let config = RateLimitsConfig { search: RateLimit::new(1, 3), ..Default::default() };
        let limits = RateLimiters::new(&config);
        for _ in 0..3 {
            limits.check("u1", Category::Search).unwrap();
        }
        let e = limits.check("u1", Category::Search).unwrap_err();
        assert_eq!(e.kind(), crate::error::ErrorKind::RateLimited);
        // Other users and other categories have their own buckets.
        limits.check("u2", Category::Search).unwrap();
        limits.check("u1", Category::Read).unwrap();
        assert_eq!(ceil_secs(Duration::from_millis(1)), 1);
        assert_eq!(ceil_secs(Duration::from_secs(2)), 2);
    }

    #[test]
    fn disabled_never_limits() {
        let config = RateLimitsConfig { enabled: false, search: RateLimit::new(1, 1), ..Default::default() };
        let limits = RateLimiters::new(&config);
        for _ in 0..100 {
            limits.check("u1", Category::Search).unwrap();
        }
    }
}
