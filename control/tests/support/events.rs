//! Playback-event helpers: a catalog of tracks of known lengths, events,
//! batches, and the royalties report read whole.

use std::collections::BTreeMap;

use cadenza_control::types::{EventBatchResponse, ImportRequest, RoyaltiesResponse};
use serde_json::{Value, json};

use super::{ADMIN_TOKEN, Server, catalog, track};

pub(crate) const DAY_MS: i64 = 86_400_000;

/// Tracks of the event tests and their durations: `t1`, `t2` (30 s, the
/// fixture's manifests: a stream at 15 s), `long` (200 s: 30 s), `short`
/// (20 s: 10 s), `unknown` (duration 0, no audio: 30 s).
pub(crate) const TRACKS: [(&str, i64); 5] =
    [("t1", 30_000), ("t2", 30_000), ("long", 200_000), ("short", 20_000), ("unknown", 0)];

/// The stream threshold of a track of `duration_ms`, as the docs state it.
pub(crate) fn threshold(duration_ms: i64) -> i64 {
    if duration_ms == 0 { 30_000 } else { 30_000.min((duration_ms + 1) / 2) }
}

/// The fixture catalog plus `long`, `short` and `unknown`.
pub(crate) fn catalog_with_lengths() -> ImportRequest {
    let mut c = catalog();
    for (id, ms) in [("long", 200_000), ("short", 20_000), ("unknown", 0)] {
        let mut t = track(id, "al1", 10 + c.tracks.len() as u32, &["ar1"], &[]);
        t.manifest = None;
        t.duration_ms = Some(ms);
        c.tracks.push(t);
    }
    c
}

/// One event as a client sends it.
pub(crate) fn ev(id: &str, play: &str, track: &str, kind: &str, position_ms: u64, at: i64) -> Value {
    json!({"event_id": id, "play_id": play, "track_id": track, "type": kind,
           "position_ms": position_ms, "occurred_at_ms": at, "device": "test-device"})
}

/// Wall-clock unix milliseconds.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

/// `POST /v1/events`.
pub(crate) async fn post(s: &Server, token: &str, events: &[Value]) -> reqwest::Response {
    s.http
        .post(s.url("/v1/events"))
        .bearer_auth(token)
        .json(&json!({ "events": events }))
        .send()
        .await
        .expect("POST /v1/events")
}

/// `POST /v1/events`, which must answer 200.
pub(crate) async fn send(s: &Server, token: &str, events: &[Value]) -> EventBatchResponse {
    let resp = post(s, token, events).await;
    let status = resp.status();
    let text = resp.text().await.unwrap();
    assert_eq!(status, 200, "POST /v1/events: {text}");
    serde_json::from_str(&text).expect("events answer")
}

/// `YYYY-MM-DD` of a unix-millisecond instant (UTC).
pub(crate) fn utc_day(ms: i64) -> String {
    let z = ms.div_euclid(DAY_MS) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Every (track, day) → streams of the royalties report over
/// `from..=to`, read page by page; checks the totals agree.
pub(crate) async fn royalties(s: &Server, from: &str, to: &str) -> BTreeMap<(String, String), u64> {
    let mut out = BTreeMap::new();
    let mut offset = 0;
    loop {
        let path = format!("/v1/admin/royalties?from={from}&to={to}&limit=1000&offset={offset}");
        let resp = s.get(&path, Some(ADMIN_TOKEN)).await;
        assert_eq!(resp.status(), 200, "{path}");
        let r: RoyaltiesResponse = resp.json().await.unwrap();
        for row in &r.streams.items {
            assert!(row.streams > 0, "a zero row is listed: {row:?}");
            out.insert((row.track_id.clone(), row.day.clone()), row.streams);
        }
        offset += r.streams.items.len();
        if r.streams.next.is_none() {
            assert_eq!(out.values().sum::<u64>(), r.total_streams, "total_streams");
            let tracks: std::collections::BTreeSet<&String> = out.keys().map(|(t, _)| t).collect();
            assert_eq!(tracks.len() as u64, r.tracks, "tracks");
            assert_eq!(out.len() as u64, r.streams.total, "paging total");
            return out;
        }
    }
}

/// The royalties over the 32 days ending tomorrow (every day an accepted
/// event can fall on, now).
pub(crate) async fn recent_royalties(s: &Server) -> BTreeMap<(String, String), u64> {
    let now = now_ms();
    royalties(s, &utc_day(now - 31 * DAY_MS), &utc_day(now + DAY_MS)).await
}
