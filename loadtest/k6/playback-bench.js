// Stream-URL issuance benchmark: POST /v1/playback/stream against a running
// `cadenza control`, one user token per virtual user, track ids drawn by
// popularity (Zipf). MODE=healthz is the floor: the same HTTP stack with no
// auth, database or signing. Driven by loadtest/bench-playback.sh.
//
//   k6 run -e BASE=http://127.0.0.1:8400 -e MODE=stream|prefetch|healthz -e VUS=64 \
//     -e DURATION=30s [-e RATE=2000] -e TOKENS=tokens.txt -e IDS=track_ids.txt \
//     [-e SUMMARY=out.json] loadtest/k6/playback-bench.js
//
// Targets only the BASE given (loopback in the script); bounded by DURATION.
// Threshold: every answer as expected (200 with at least two URLs).
import http from 'k6/http';
import { check } from 'k6';
import { SharedArray } from 'k6/data';

const BASE = __ENV.BASE || 'http://127.0.0.1:8400';
const MODE = __ENV.MODE || 'stream';
const lines = (path) => open(path).split('\n').filter((l) => l.length > 0);
const tokens = new SharedArray('tokens', () => lines(__ENV.TOKENS));
const ids = new SharedArray('ids', () => lines(__ENV.IDS));

const VUS = Number(__ENV.VUS || 64);
const DURATION = __ENV.DURATION || '30s';
const load = __ENV.RATE
  ? { scenarios: { paced: { executor: 'constant-arrival-rate', rate: Number(__ENV.RATE), timeUnit: '1s',
      duration: DURATION, preAllocatedVUs: VUS, maxVUs: VUS } } }
  : { vus: VUS, duration: DURATION };

export const options = {
  ...load,
  summaryTrendStats: ['avg', 'p(50)', 'p(90)', 'p(99)', 'max'],
  thresholds: { checks: ['rate==1.0'] },
};

const pick = (list) => list[Math.floor(Math.random() * list.length)];
// Built once per VU: k6 converts a params object on every call, and at
// 5,000 req/s on two shared cores the load generator's CPU is the tail.
let vuParams = null;

export default function () {
  if (MODE === 'healthz') {
    const res = http.get(`${BASE}/healthz`, { tags: { name: 'healthz' } });
    check(res, { 'status 200': (r) => r.status === 200 });
    return;
  }
  if (vuParams === null) {
    const token = tokens[(__VU - 1) % tokens.length];
    vuParams = { headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' }, tags: { name: MODE } };
  }
  const params = vuParams;
  if (MODE === 'prefetch') {
    const queue = [pick(ids), pick(ids), pick(ids), pick(ids), pick(ids)];
    const res = http.post(`${BASE}/v1/playback/prefetch`, JSON.stringify({ track_ids: queue }), params);
    check(res, { 'five answers': (r) => r.status === 200 && r.body.split('"urls"').length === 6 });
    return;
  }
  // Track ids are [A-Za-z0-9_-]: concatenation is valid JSON, and cheaper.
  const res = http.post(`${BASE}/v1/playback/stream`, `{"track_id":"${pick(ids)}"}`, params);
  // Two POPs named, found by string search: parsing every answer in k6's
  // JavaScript would cost the load generator more than the server.
  check(res, { 'two or more URLs': (r) => r.status === 200 && r.body.indexOf('"pop"') !== r.body.lastIndexOf('"pop"') });
}

export function handleSummary(data) {
  const out = { stdout: '' };
  if (__ENV.SUMMARY) out[__ENV.SUMMARY] = JSON.stringify(data);
  return out;
}
