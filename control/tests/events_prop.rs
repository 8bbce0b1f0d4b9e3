//! The property of `POST /v1/events` that royalties rest on: whatever
//! the duplication, order, batching, retries and concurrency of the
//! deliveries, the streams counted per track per day are exactly those of
//! a simple reference model over the set of distinct events — and so is
//! every play in the listening history.
//!
//! Each case generates plays (a user, a track, a time — often straddling
//! a UTC midnight, sometimes over 30 days old — and events of every kind
//! at positions below, at and past the threshold, some past the end of
//! the track), then a delivery plan: every event sent one to three times,
//! the copies shuffled, cut into batches of random sizes, some batches
//! sent twice, the batches spread over up to three concurrent senders.
//! It runs against a real server over HTTP, on SQLite and (when
//! `CADENZA_TEST_DATABASE_URL` is set) PostgreSQL; each case uses fresh
//! users and compares the royalties report before and after.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use cadenza_control::types::{EventBatchResponse, HistoryItem, Paging, Tier};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::Value;
use support::events::{
    DAY_MS, TRACKS, catalog_with_lengths, ev, now_ms, post, recent_royalties, threshold, utc_day,
};
use support::{Server, TestDb};

/// Cases per database: the suite must stay fast (each case is tens of
/// requests; 48 take a few seconds). `CADENZA_EVENTS_CASES=2000` digs
/// deeper.
const CASES: u32 = 48;
const KINDS: [&str; 6] = ["start", "progress", "pause", "seek", "skip", "complete"];

#[derive(Clone, Debug)]
struct EventSpec {
    kind: usize,
    /// Position as thousandths of the track (of 60 s when its length is
    /// unknown); up to 1.1 tracks, so some are past the end. Negative:
    /// the stream threshold plus `permille + 2` (one below, at, one past).
    permille: i64,
    /// Milliseconds after the play's base time.
    dt: i64,
    /// Times it is sent.
    copies: usize,
}

#[derive(Clone, Debug)]
struct PlaySpec {
    user: usize,
    track: usize,
    /// Days before today; 31 is always too late.
    days_back: i64,
    /// Around midnight (events straddle it) or around noon.
    near_midnight: bool,
    jitter: i64,
    events: Vec<EventSpec>,
}

#[derive(Clone, Debug)]
struct Case {
    plays: Vec<PlaySpec>,
    /// Drives the shuffle, the cuts and the senders.
    seed: u64,
    senders: usize,
    max_batch: usize,
    retries: bool,
}

fn case() -> impl Strategy<Value = Case> {
    let position = prop_oneof![3 => 0..=1100_i64, 1 => -3..=-1_i64];
    let event = (0..KINDS.len(), position, 0..120_000_i64, 1..=3_usize)
        .prop_map(|(kind, permille, dt, copies)| EventSpec { kind, permille, dt, copies });
    let play = (
        0..2_usize,
        0..TRACKS.len(),
        prop_oneof![9 => 1..=28_i64, 1 => Just(31_i64)],
        any::<bool>(),
        0..120_000_i64,
        prop::collection::vec(event, 1..6),
    )
        .prop_map(|(user, track, days_back, near_midnight, jitter, events)| PlaySpec {
            user,
            track,
            days_back,
            near_midnight,
            jitter,
            events,
        });
    (prop::collection::vec(play, 1..8), any::<u64>(), 1..=3_usize, 1..=12_usize, any::<bool>()).prop_map(
        |(plays, seed, senders, max_batch, retries)| Case { plays, seed, senders, max_batch, retries },
    )
}

/// xorshift64*: the delivery plan from the case's seed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as usize % n.max(1)
    }
}

/// One event of the case, concretely.
#[derive(Clone, Debug)]
struct Event {
    user: usize,
    id: String,
    play: String,
    track: &'static str,
    kind: &'static str,
    position: i64,
    at: i64,
}

impl Event {
    fn json(&self) -> Value {
        ev(&self.id, &self.play, self.track, self.kind, self.position as u64, self.at)
    }

    /// Would the server store it (its first copy)? The reference rules:
    /// at most 30 days old, at most 5 s past the end of a known length.
    fn acceptable(&self, now: i64) -> bool {
        let duration = TRACKS.iter().find(|(t, _)| *t == self.track).unwrap().1;
        self.at >= now - 30 * DAY_MS
            && self.at <= now + DAY_MS
            && (duration == 0 || self.position <= duration + 5_000)
    }
}

fn events_of(case: &Case, now: i64) -> Vec<Event> {
    let today = now.div_euclid(DAY_MS) * DAY_MS;
    let mut out = Vec::new();
    for (i, p) in case.plays.iter().enumerate() {
        let (track, duration) = TRACKS[p.track];
        let length = if duration == 0 { 60_000 } else { duration };
        let midnight = today - p.days_back * DAY_MS;
        let base =
            if p.near_midnight { midnight - 60_000 + p.jitter } else { midnight + DAY_MS / 2 + p.jitter };
        for (j, e) in p.events.iter().enumerate() {
            out.push(Event {
                user: p.user,
                id: format!("e{i}-{j}"),
                play: format!("p{i}"),
                track,
                kind: KINDS[e.kind],
                position: if e.permille < 0 {
                    threshold(duration) + e.permille + 2
                } else {
                    length * e.permille / 1000
                },
                at: base + e.dt,
            });
        }
    }
    out
}

/// The reference model: streams per (track, day) and, per (user, play),
/// (distinct stored events, listened position, streamed_at).
type Plays = BTreeMap<(usize, String), (u64, i64, Option<i64>)>;

fn model(events: &[Event], now: i64) -> (BTreeMap<(String, String), u64>, Plays) {
    let mut plays: Plays = BTreeMap::new();
    for e in events.iter().filter(|e| e.acceptable(now)) {
        let duration = TRACKS.iter().find(|(t, _)| *t == e.track).unwrap().1;
        let entry = plays.entry((e.user, e.play.clone())).or_insert((0, 0, None));
        entry.0 += 1;
        if e.kind != "seek" {
            entry.1 = entry.1.max(e.position);
            if e.position >= threshold(duration) {
                entry.2 = Some(entry.2.map_or(e.at, |s: i64| s.min(e.at)));
            }
        }
    }
    let mut streams = BTreeMap::new();
    for (key, (_, _, streamed_at)) in &plays {
        if let Some(at) = streamed_at {
            let track = events.iter().find(|e| (e.user, &e.play) == (key.0, &key.1)).unwrap().track;
            *streams.entry((track.to_owned(), utc_day(*at))).or_insert(0) += 1;
        }
    }
    (streams, plays)
}

/// Every copy of every event, shuffled, cut into batches (one user's
/// each), some sent twice, spread over the senders: per sender, its
/// (user, batch) list in order.
fn plan(case: &Case, events: &[Event]) -> Vec<Vec<(usize, Vec<Value>)>> {
    let mut rng = Rng(case.seed | 1);
    let mut senders: Vec<Vec<(usize, Vec<Value>)>> = vec![Vec::new(); case.senders];
    for user in 0..2 {
        let mut copies: Vec<Value> = Vec::new();
        for (e, spec) in events.iter().zip(case.plays.iter().flat_map(|p| &p.events)) {
            if e.user == user {
                copies.extend(std::iter::repeat_n(e.json(), spec.copies));
            }
        }
        for i in (1..copies.len()).rev() {
            copies.swap(i, rng.below(i + 1));
        }
        while !copies.is_empty() {
            let n = (1 + rng.below(case.max_batch)).min(copies.len());
            let batch: Vec<Value> = copies.drain(..n).collect();
            senders[rng.below(case.senders)].push((user, batch.clone()));
            if case.retries && rng.below(3) == 0 {
                // The ack was lost: sent again, by this sender or another.
                senders[rng.below(case.senders)].push((user, batch));
            }
        }
    }
    senders
}

async fn run_case(s: &Arc<Server>, case: &Case) -> Result<(), TestCaseError> {
    let now = now_ms();
    let users = [s.user(Tier::Premium).await, s.user(Tier::Free).await];
    let events = events_of(case, now);
    let (expected, plays) = model(&events, now);
    let before = recent_royalties(s).await;

    let mut tasks = Vec::new();
    for batches in plan(case, &events) {
        let s = s.clone();
        let tokens: Vec<String> = users.iter().map(|u| u.token.clone()).collect();
        tasks.push(tokio::spawn(async move {
            let mut answers = Vec::new();
            for (user, batch) in batches {
                let resp = post(&s, &tokens[user], &batch).await;
                let status = resp.status();
                let text = resp.text().await.unwrap();
                assert_eq!(status, 200, "{text}");
                let answer: EventBatchResponse = serde_json::from_str(&text).unwrap();
                answers.push((batch.len() as u64, answer));
            }
            answers
        }));
    }
    let (mut sent, mut accepted, mut duplicates, mut rejected) = (0, 0, 0, 0);
    for t in tasks {
        for (n, a) in t.await.map_err(|e| TestCaseError::fail(format!("sender: {e}")))? {
            sent += n;
            accepted += a.accepted;
            duplicates += a.duplicates;
            rejected += a.rejected.len() as u64;
            prop_assert_eq!(
                a.accepted + a.duplicates + a.rejected.len() as u64,
                n,
                "every event is accounted for"
            );
        }
    }
    let distinct = events.iter().filter(|e| e.acceptable(now)).count() as u64;
    prop_assert_eq!(accepted, distinct, "each acceptable event accepted exactly once");
    prop_assert_eq!(sent - accepted - duplicates, rejected);

    let after = recent_royalties(s).await;
    let keys: BTreeSet<&(String, String)> = before.keys().chain(after.keys()).collect();
    let mut counted = BTreeMap::new();
    for k in keys {
        let d = after.get(k).copied().unwrap_or(0) as i64 - before.get(k).copied().unwrap_or(0) as i64;
        if d != 0 {
            counted.insert(k.clone(), d as u64);
        }
    }
    prop_assert_eq!(&counted, &expected, "streams per (track, day)");

    for (u, user) in users.iter().enumerate() {
        let resp = s.get("/v1/me/history?limit=50", Some(&user.token)).await;
        let history: Paging<HistoryItem> = resp.json().await.unwrap();
        let mine: BTreeMap<&String, &(u64, i64, Option<i64>)> =
            plays.iter().filter(|((pu, _), _)| *pu == u).map(|((_, p), v)| (p, v)).collect();
        prop_assert_eq!(history.total as usize, mine.len(), "plays of user {}", u);
        for item in &history.items {
            let want = mine.get(&item.play_id).copied();
            prop_assert_eq!(
                Some((item.events, item.position_ms as i64, item.streamed_at_ms)),
                want.copied(),
                "play {}",
                item.play_id
            );
        }
    }
    Ok(())
}

fn run_on(rt: &tokio::runtime::Runtime, db: &TestDb) {
    let s = rt.block_on(async {
        let mut config = support::config(&db.url);
        config.rate_limits.enabled = false;
        let s = Server::start_with(config).await;
        assert_eq!(s.import(&catalog_with_lengths()).await.status(), 200);
        Arc::new(s)
    });
    let cases = std::env::var("CADENZA_EVENTS_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(CASES);
    let mut runner = TestRunner::new(Config { cases, failure_persistence: None, ..Config::default() });
    let result = runner.run(&case(), |c| rt.block_on(run_case(&s, &c)));
    if let Err(e) = result {
        panic!("{db:?}: {e}");
    }
    let s = Arc::into_inner(s).expect("no sender left");
    rt.block_on(s.stop()).unwrap();
}

#[test]
fn streams_are_counted_exactly_whatever_the_delivery() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let dbs = rt.block_on(support::databases());
    for db in &dbs {
        run_on(&rt, db);
    }
}
