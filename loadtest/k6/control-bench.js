// Control-plane read benchmark: track lookups or searches against a running
// `cadenza control`, one user token per virtual user. Driven by
// loadtest/bench-control.sh, which prepares the catalog, users and files.
//
//   k6 run -e BASE=http://127.0.0.1:8400 -e MODE=track|search -e VUS=32 \
//     -e DURATION=30s [-e RATE=2000] -e TOKENS=tokens.txt -e IDS=track_ids.txt \
//     -e QUERIES=queries.txt [-e TYPES=track,artist,album] \
//     [-e SUMMARY=out.json] loadtest/k6/control-bench.js
//
// Targets only the BASE given (loopback in the script); bounded by DURATION.
// Thresholds: no failed checks (every answer 200); the latency goals of
// issue 6 are reported, not enforced here (the script compares them).
import http from 'k6/http';
import { check } from 'k6';
import { SharedArray } from 'k6/data';

const BASE = __ENV.BASE || 'http://127.0.0.1:8400';
const MODE = __ENV.MODE || 'track';
const TYPES = __ENV.TYPES || 'track,artist,album';
const lines = (path) => open(path).split('\n').filter((l) => l.length > 0);
const tokens = new SharedArray('tokens', () => lines(__ENV.TOKENS));
const ids = new SharedArray('ids', () => lines(__ENV.IDS));
const queries = new SharedArray('queries', () => lines(__ENV.QUERIES));

// Closed loop (default): VUS users, each sending its next request as soon
// as the last one is answered: the server's saturation throughput, and
// latency that is mostly queueing (Little's law: VUS / throughput).
// Open loop (RATE set): requests arrive at RATE per second whatever the
// answers, from up to VUS users: latency at a load the server can carry.
const VUS = Number(__ENV.VUS || 32);
const DURATION = __ENV.DURATION || '30s';
const load = __ENV.RATE
  ? { scenarios: { paced: { executor: 'constant-arrival-rate', rate: Number(__ENV.RATE), timeUnit: '1s',
      duration: DURATION, preAllocatedVUs: VUS, maxVUs: VUS } } }
  : { vus: VUS, duration: DURATION };

export const options = {
  ...load,
  discardResponseBodies: true,
  summaryTrendStats: ['avg', 'p(50)', 'p(90)', 'p(99)', 'max'],
  thresholds: { checks: ['rate==1.0'] },
};

export default function () {
  const token = tokens[(__VU - 1) % tokens.length];
  const pick = (list) => list[Math.floor(Math.random() * list.length)];
  const url = MODE === 'search'
    ? `${BASE}/v1/search?q=${encodeURIComponent(pick(queries))}&type=${TYPES}&limit=20`
    : `${BASE}/v1/tracks/${pick(ids)}`;
  const res = http.get(url, { headers: { Authorization: `Bearer ${token}` }, tags: { name: MODE } });
  check(res, { 'status 200': (r) => r.status === 200 });
}

export function handleSummary(data) {
  const out = { stdout: '' };
  if (__ENV.SUMMARY) out[__ENV.SUMMARY] = JSON.stringify(data);
  return out;
}
