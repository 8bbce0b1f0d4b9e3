//! The selection pipeline: which POPs a stream answer names, in which
//! order. Pure: the caller gathers each POP's health into a [`Candidate`],
//! this orders them and says why.
//!
//! 1. **up**: POPs the active probe marked down are dropped (if every POP
//!    is down, all are kept: a list that may work beats none).
//! 2. **region**: POPs of the client's region (and POPs with no region)
//!    are the primary set; POPs elsewhere are kept only as fallbacks.
//! 3. **availability**: primary POPs whose players' reports fall below
//!    `min_availability` become fallbacks, unless none would remain.
//! 4. **latency**: primary POPs whose reported time to first byte is more
//!    than `latency_slack` above the best become fallbacks.
//! 5. **load**: primary POPs with `max_in_flight` requests in flight
//!    become fallbacks, unless none would remain.
//! 6. **cost weighting + stickiness**: weighted rendezvous hashing
//!    (Schindelhauer & Schomaker's logarithmic method): each POP scores
//!    `weight / −ln(u)`, where `u ∈ (0,1)` is a hash of (track, region,
//!    CDN, POP) and `weight = cdn.weight · pop.weight / cdn.cost_per_gb`.
//!    The highest score leads. A track from one region therefore goes to
//!    the same POP for as long as the candidate set is the same (caches
//!    stay hot); when a POP leaves, only its own tracks move; and over
//!    many tracks each POP leads in proportion to its weight, so a CDN at
//!    a third of the price gets three times the tracks.
//! 7. **take N**: primary POPs by score, except that the second URL goes to
//!    the best primary POP of another CDN when there is one (a CDN-wide
//!    failure then still leaves the player a URL); then the fallbacks
//!    (load, latency, availability first, other regions last), by score.

use super::health::ProbeState;

/// One POP as the pipeline sees it.
#[derive(Clone, Debug)]
pub(crate) struct Candidate<'a> {
    pub(crate) cdn: &'a str,
    pub(crate) pop: &'a str,
    pub(crate) region: &'a str,
    /// `cdn.weight · pop.weight / cdn.cost_per_gb`.
    pub(crate) weight: f64,
    pub(crate) state: ProbeState,
    /// Reported availability, `None` with too few reports.
    pub(crate) availability: Option<f64>,
    pub(crate) ttfb_ms: Option<f64>,
    pub(crate) in_flight: Option<u64>,
}

/// What the pipeline is asked.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Params<'a> {
    /// The client's region; empty matches every POP.
    pub(crate) region: &'a str,
    /// The stickiness key: the track id.
    pub(crate) key: &'a str,
    pub(crate) take: usize,
    pub(crate) min_availability: f64,
    pub(crate) latency_slack_ms: f64,
    /// `0`: no load limit.
    pub(crate) max_in_flight: u64,
}

/// Why a POP is not in the primary set, or not named at all.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Skip {
    /// Too many requests in flight.
    Overloaded,
    /// Reported time to first byte too far above the best.
    Latency,
    /// Reported availability below the threshold.
    Availability,
    /// Not the client's region.
    OtherRegion,
    /// The probe says down: never named while another POP is up.
    Down,
}

impl Skip {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Skip::Overloaded => "overloaded",
            Skip::Latency => "latency",
            Skip::Availability => "availability",
            Skip::OtherRegion => "other_region",
            Skip::Down => "down",
        }
    }
}

/// The pipeline's answer: for each candidate its score and why it was
/// skipped, and the order of the URLs (indices into the candidates).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Decision {
    pub(crate) order: Vec<usize>,
    pub(crate) scores: Vec<f64>,
    pub(crate) skips: Vec<Option<Skip>>,
    /// Every POP was down, so down POPs were named anyway.
    pub(crate) all_down: bool,
}

/// Run the pipeline (see the module docs).
pub(crate) fn select(cands: &[Candidate<'_>], p: Params<'_>) -> Decision {
    let n = cands.len();
    let mut skips: Vec<Option<Skip>> = vec![None; n];
    let all_down = n > 0 && cands.iter().all(|c| !c.state.usable());
    if !all_down {
        for (i, c) in cands.iter().enumerate() {
            if !c.state.usable() {
                skips[i] = Some(Skip::Down);
            }
        }
    }
    if !p.region.is_empty() {
        let in_region = |c: &Candidate<'_>| c.region.is_empty() || c.region.eq_ignore_ascii_case(p.region);
        let any = (0..n).any(|i| skips[i].is_none() && in_region(&cands[i]));
        if any {
            for i in 0..n {
                if skips[i].is_none() && !in_region(&cands[i]) {
                    skips[i] = Some(Skip::OtherRegion);
                }
            }
        }
    }
    // Soft filters: each applies only if it leaves someone primary.
    let soft = |skips: &mut Vec<Option<Skip>>, why: Skip, bad: &dyn Fn(&Candidate<'_>) -> bool| {
        let hit: Vec<usize> = (0..n).filter(|&i| skips[i].is_none() && bad(&cands[i])).collect();
        let primary = skips.iter().filter(|s| s.is_none()).count();
        if hit.len() < primary {
            for i in hit {
                skips[i] = Some(why);
            }
        }
    };
    soft(&mut skips, Skip::Availability, &|c| c.availability.is_some_and(|a| a < p.min_availability));
    let best_ttfb =
        (0..n).filter(|&i| skips[i].is_none()).filter_map(|i| cands[i].ttfb_ms).fold(f64::INFINITY, f64::min);
    if best_ttfb.is_finite() {
        soft(&mut skips, Skip::Latency, &|c| c.ttfb_ms.is_some_and(|t| t > best_ttfb + p.latency_slack_ms));
    }
    if p.max_in_flight > 0 {
        soft(&mut skips, Skip::Overloaded, &|c| c.in_flight.is_some_and(|f| f >= p.max_in_flight));
    }

    let scores: Vec<f64> = cands.iter().map(|c| score(c, p)).collect();
    let by_score = |a: &usize, b: &usize| scores[*b].total_cmp(&scores[*a]).then(a.cmp(b));
    let mut primary: Vec<usize> = (0..n).filter(|&i| skips[i].is_none()).collect();
    primary.sort_by(by_score);
    if primary.len() > 2
        && cands[primary[1]].cdn == cands[primary[0]].cdn
        && let Some(k) = primary.iter().position(|&i| cands[i].cdn != cands[primary[0]].cdn)
    {
        let other = primary.remove(k);
        primary.insert(1, other);
    }
    let mut fallback: Vec<usize> =
        (0..n).filter(|&i| matches!(skips[i], Some(s) if s != Skip::Down)).collect();
    fallback.sort_by(|a, b| skips[*a].cmp(&skips[*b]).then(by_score(a, b)));
    let mut order = primary;
    order.extend(fallback);
    order.truncate(p.take);
    Decision { order, scores, skips, all_down }
}

/// The rendezvous score of `c` for this request.
fn score(c: &Candidate<'_>, p: Params<'_>) -> f64 {
    let h = hash(&[p.key.as_bytes(), p.region.as_bytes(), c.cdn.as_bytes(), c.pop.as_bytes()]);
    // 53 random bits, centred so that u is never 0 or 1.
    let u = ((h >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
    c.weight / -u.ln()
}

/// FNV-1a over length-prefixed parts, then the SplitMix64 finaliser:
/// specified here (not `std`'s unspecified hasher), so every replica and
/// every version orders POPs alike.
fn hash(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |b: u8| {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    };
    for part in parts {
        for b in (part.len() as u32).to_le_bytes() {
            eat(b);
        }
        for &b in *part {
            eat(b);
        }
    }
    let mut z = h.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand<'a>(cdn: &'a str, pop: &'a str, region: &'a str, weight: f64) -> Candidate<'a> {
        Candidate {
            cdn,
            pop,
            region,
            weight,
            state: ProbeState::Up,
            availability: None,
            ttfb_ms: None,
            in_flight: None,
        }
    }

    fn params(key: &str) -> Params<'_> {
        Params { region: "", key, take: 3, min_availability: 0.9, latency_slack_ms: 50.0, max_in_flight: 0 }
    }

    fn names(c: &[Candidate<'_>], d: &Decision) -> Vec<String> {
        d.order.iter().map(|&i| format!("{}/{}", c[i].cdn, c[i].pop)).collect()
    }

    #[test]
    fn down_pops_are_never_named_while_one_is_up() {
        let mut c = vec![cand("a", "1", "", 1.0), cand("a", "2", "", 1.0), cand("b", "3", "", 1.0)];
        c[1].state = ProbeState::Down;
        for k in 0..200 {
            let key = format!("t{k}");
            let d = select(&c, params(&key));
            assert!(!d.order.contains(&1), "{:?}", names(&c, &d));
            assert_eq!(d.order.len(), 2);
            assert_eq!(d.skips[1], Some(Skip::Down));
        }
        for x in &mut c {
            x.state = ProbeState::Down;
        }
        let d = select(&c, params("t"));
        assert!(d.all_down);
        assert_eq!(d.order.len(), 3, "all down: name them all rather than none");
    }

    #[test]
    fn sticky_and_only_the_lost_pops_tracks_move() {
        let mut c: Vec<Candidate<'_>> = ["1", "2", "3", "4"].iter().map(|p| cand("a", p, "", 1.0)).collect();
        let keys: Vec<String> = (0..2000).map(|k| format!("track{k}")).collect();
        let before: Vec<usize> = keys.iter().map(|k| select(&c, params(k)).order[0]).collect();
        let again: Vec<usize> = keys.iter().map(|k| select(&c, params(k)).order[0]).collect();
        assert_eq!(before, again, "same track, same region → same POP");
        c[2].state = ProbeState::Down;
        let after: Vec<usize> = keys.iter().map(|k| select(&c, params(k)).order[0]).collect();
        for (b, a) in before.iter().zip(&after) {
            if *b != 2 {
                assert_eq!(a, b, "a track whose POP is still up stays");
            } else {
                assert_ne!(*a, 2);
            }
        }
        let moved = before.iter().filter(|&&b| b == 2).count();
        assert!((350..650).contains(&moved), "about a quarter led on the lost POP: {moved}");
    }

    #[test]
    fn cost_weighting_shares_tracks_by_weight_over_cost() {
        // Same weight; CDN a costs 0.01/GB, b 0.03/GB → a leads 3 times as often.
        let c = vec![cand("a", "1", "", 100.0 / 0.01), cand("b", "1", "", 100.0 / 0.03)];
        let n = 4000;
        let a = (0..n).filter(|k| select(&c, params(&format!("t{k}"))).order[0] == 0).count();
        let share = a as f64 / n as f64;
        assert!((0.72..0.78).contains(&share), "share of the cheap CDN: {share}");
    }

    #[test]
    fn region_then_fallback_elsewhere() {
        let c = vec![cand("a", "fra", "eu", 1.0), cand("a", "iad", "us", 1.0), cand("b", "ams", "eu", 1.0)];
        let mut p = params("t1");
        p.region = "eu";
        let d = select(&c, p);
        assert_eq!(d.skips[1], Some(Skip::OtherRegion));
        assert_eq!(d.order.len(), 3);
        assert_eq!(*d.order.last().unwrap(), 1, "the other region comes last");
        p.region = "ap";
        let d = select(&c, p);
        assert!(d.skips.iter().all(Option::is_none), "no POP in the region: all are primary");
    }

    #[test]
    fn availability_and_latency_demote_but_never_empty() {
        let mut c = vec![cand("a", "1", "", 1.0), cand("a", "2", "", 1.0), cand("b", "3", "", 1.0)];
        c[0].availability = Some(0.5);
        c[1].ttfb_ms = Some(300.0);
        c[2].ttfb_ms = Some(20.0);
        let d = select(&c, params("t"));
        assert_eq!(d.skips, vec![Some(Skip::Availability), Some(Skip::Latency), None]);
        assert_eq!(d.order, vec![2, 1, 0], "primary first, then latency, then availability");
        // Everyone unavailable: the filter would empty the set, so it does not apply.
        for x in &mut c {
            x.availability = Some(0.1);
        }
        let d = select(&c, params("t"));
        assert!(!d.skips.contains(&Some(Skip::Availability)));
    }

    #[test]
    fn overloaded_pops_step_back() {
        let mut c = vec![cand("a", "1", "", 1.0), cand("a", "2", "", 1.0)];
        c[0].in_flight = Some(500);
        c[1].in_flight = Some(10);
        let mut p = params("t");
        p.max_in_flight = 100;
        let d = select(&c, p);
        assert_eq!(d.order, vec![1, 0]);
        assert_eq!(d.skips[0], Some(Skip::Overloaded));
    }

    #[test]
    fn second_url_is_on_another_cdn_when_one_is_primary() {
        let c = vec![
            cand("a", "1", "", 1000.0),
            cand("a", "2", "", 1000.0),
            cand("a", "3", "", 1000.0),
            cand("b", "1", "", 1.0),
        ];
        for k in 0..100 {
            let key = format!("t{k}");
            let d = select(&c, params(&key));
            assert_ne!(c[d.order[0]].cdn, c[d.order[1]].cdn, "{:?}", names(&c, &d));
        }
    }
}
