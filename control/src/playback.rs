//! Playback decisions: which rung a user gets. (Which POPs, and the
//! signed URLs, are `crate::cdn` and `api::playback`.)
//!
//! The quality rule, in order:
//! 1. the tier sets the ceiling: premium 320 kbps, free 160 kbps;
//! 2. `data_saver: true` targets 24 kbps, whatever else was asked;
//! 3. otherwise an explicit `quality` targets min(quality, ceiling);
//! 4. otherwise `connection: "cellular"` targets min(96, ceiling) — the
//!    ladder's "normal on cellular" rung, so a phone on a metered network
//!    does not pull 320 kbps unless the user asked for it;
//! 5. otherwise (Wi-Fi or unknown) the target is the ceiling.
//!
//! The answer is the highest *published* rung at or below the target; if
//! every published rung is above it (say only 160 exists and data saver
//! asks for 24) the lowest published rung, so a track with audio always
//! plays.

use cadenza_config::ladder::Rung;

use crate::types::{Connection, Tier};

/// What the player asked for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Preference {
    pub(crate) quality: Option<Rung>,
    pub(crate) connection: Option<Connection>,
    pub(crate) data_saver: bool,
}

/// The highest rung a tier may stream.
pub(crate) fn ceiling(tier: Tier) -> Rung {
    match tier {
        Tier::Premium => Rung::K320,
        Tier::Free => Rung::K160,
    }
}

/// The rung to aim for before looking at what is published.
pub(crate) fn target(tier: Tier, pref: Preference) -> Rung {
    let max = ceiling(tier);
    if pref.data_saver {
        return Rung::K24;
    }
    match (pref.quality, pref.connection) {
        (Some(q), _) => q.min(max),
        (None, Some(Connection::Cellular)) => Rung::K96.min(max),
        (None, _) => max,
    }
}

/// The published rung to serve: the highest at or below `target`, else
/// the lowest published. `None` only when nothing is published.
pub(crate) fn pick(target: Rung, published: &[Rung]) -> Option<Rung> {
    published.iter().copied().filter(|r| *r <= target).max().or_else(|| published.iter().copied().min())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Rung; 4] = [Rung::K24, Rung::K96, Rung::K160, Rung::K320];

    fn pref(quality: Option<Rung>, connection: Option<Connection>, data_saver: bool) -> Preference {
        Preference { quality, connection, data_saver }
    }

    #[test]
    fn quality_rule_table() {
        use Connection::*;
        use Rung::*;
        use Tier::*;
        let cases = [
            (Premium, pref(None, None, false), K320),
            (Free, pref(None, None, false), K160),
            (Premium, pref(Some(K320), None, false), K320),
            (Free, pref(Some(K320), None, false), K160),
            (Premium, pref(Some(K96), None, false), K96),
            (Free, pref(Some(K24), Some(Wifi), false), K24),
            (Premium, pref(Some(K320), None, true), K24),
            (Free, pref(None, Some(Cellular), true), K24),
            (Premium, pref(None, Some(Cellular), false), K96),
            (Free, pref(None, Some(Cellular), false), K96),
            (Premium, pref(Some(K320), Some(Cellular), false), K320),
            (Premium, pref(None, Some(Wifi), false), K320),
        ];
        for (tier, p, want) in cases {
            assert_eq!(target(tier, p), want, "{tier:?} {p:?}");
            assert_eq!(pick(target(tier, p), &ALL), Some(want));
        }
    }

    #[test]
    fn pick_falls_back_to_what_is_published() {
        use Rung::*;
        assert_eq!(pick(K320, &[K96, K160]), Some(K160));
        assert_eq!(pick(K160, &[K24, K320]), Some(K24));
        assert_eq!(pick(K24, &[K160, K320]), Some(K160));
        assert_eq!(pick(K96, &[K320]), Some(K320));
        assert_eq!(pick(K96, &[]), None);
    }
}
