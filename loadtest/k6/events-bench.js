// Playback-event ingest benchmark: each virtual user posts batches of
// BATCH events (plays of five events each: start, three progress reports
// past the stream threshold, complete) to POST /v1/events of a running
// `cadenza control`, one user token per virtual user. Driven by
// loadtest/bench-events.sh, which prepares the catalog and the users.
//
//   k6 run -e BASE=http://127.0.0.1:8400 -e VUS=16 -e DURATION=30s -e BATCH=50 \
//     -e TOKENS=tokens.txt -e IDS=track_ids.txt [-e RUN=r1] [-e SUMMARY=out.json] \
//     loadtest/k6/events-bench.js
//
// Targets only the BASE given (loopback in the script); bounded by
// DURATION. Every event of every batch is new (ids carry RUN, the VU and
// the iteration), so each is inserted; the check wants 200 and every event
// accepted. `events` counts accepted events: its rate is the result.
import http from 'k6/http';
import { check } from 'k6';
import { Counter } from 'k6/metrics';
import { SharedArray } from 'k6/data';

const BASE = __ENV.BASE || 'http://127.0.0.1:8400';
const BATCH = Number(__ENV.BATCH || 50);
const RUN = __ENV.RUN || `${Date.now()}`;
const lines = (path) => open(path).split('\n').filter((l) => l.length > 0);
const tokens = new SharedArray('tokens', () => lines(__ENV.TOKENS));
const ids = new SharedArray('ids', () => lines(__ENV.IDS));
const accepted = new Counter('events');

export const options = {
  vus: Number(__ENV.VUS || 16),
  duration: __ENV.DURATION || '30s',
  summaryTrendStats: ['avg', 'p(50)', 'p(90)', 'p(99)', 'max'],
  thresholds: { checks: ['rate==1.0'] },
};

// A play's events: positions in ms (the third progress report is past
// 30 s, so every play is a stream), seconds apart on the client's clock.
const SHAPE = [['start', 0], ['progress', 10000], ['progress', 20000], ['progress', 31000], ['complete', 60000]];

export default function () {
  const token = tokens[(__VU - 1) % tokens.length];
  const events = [];
  const now = Date.now();
  for (let p = 0; events.length < BATCH; p++) {
    const play = `${RUN}-${__VU}-${__ITER}-${p}`;
    const track = ids[Math.floor(Math.random() * ids.length)];
    const start = now - Math.floor(Math.random() * 3600000);
    for (let i = 0; i < SHAPE.length && events.length < BATCH; i++) {
      events.push({ event_id: `${play}-${i}`, play_id: play, track_id: track, type: SHAPE[i][0],
        position_ms: SHAPE[i][1], occurred_at_ms: start + SHAPE[i][1], device: 'k6' });
    }
  }
  const res = http.post(`${BASE}/v1/events`, JSON.stringify({ events }), {
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
  });
  const ok = res.status === 200 && res.json('accepted') === BATCH;
  check(res, { 'status 200, every event accepted': () => ok });
  if (ok) accepted.add(BATCH);
}

export function handleSummary(data) {
  const out = { stdout: '' };
  if (__ENV.SUMMARY) out[__ENV.SUMMARY] = JSON.stringify(data);
  return out;
}
