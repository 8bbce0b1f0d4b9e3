// The album drop: LISTENERS virtual listeners all start the album's first
// track within WITHIN of each other (at its release_at if that is still to
// come: each listener first asks once before the release and must get 403
// not_released), apply the answer's start_delay_ms, fetch the first 64 KiB
// and then the rest of the track in 256 KiB ranges as fast as they come (a
// herd wants every slice), then the album's next tracks if TRACKS > 1.
// Before and after, it reads every edge's cadenza_edge_slice_lookups_total
// (stack.edges; shields are not counted) and the origin's
// cadenza_origin_requests_total, and reports the drop's edge hit ratio and
// origin requests: a one-line `DROP {…}` JSON on the console, and metrics
// the thresholds judge.
//
//   cargo run --release -- dev            # writes cadenza-data/stack.json
//   k6 run -e STACK=$PWD/cadenza-data/stack.json [-e ALBUM=<id>] [-e LISTENERS=200] \
//     [-e WITHIN=3s] [-e TRACKS=1] [-e USERS=<LISTENERS>] [-e EXPECT=cold|warm] \
//     [-e DURATION=60s] [-e PROBE=1] [-e TTFA_P99=5000] [-e SUMMARY=out.json] \
//     loadtest/k6/album-drop.js
//
// Targets only the stack in stack.json, on loopback; bounded by DURATION
// (the herd's maxDuration, waiting for a release included; +2 s to stop).
// Thresholds, always: no 5xx, playback_errors < 1 %, embargo_leaks == 0,
// checks > 99 %, p99 of time_to_first_audio < TTFA_P99 ms. EXPECT=warm adds
// edge_hit_ratio >= 0.99 and origin_requests == 0, and fails if the origin
// has no request metrics (origin_metrics_unavailable). EXPECT=cold (default)
// only reports them.
//
// Users: the per-user stream rate limit (rate_limits.playback, 10/s, burst
// 30) would turn one shared user into a queue, so setup() creates USERS
// premium users (default: one per listener) through the admin API with
// stack.json's admin token; they stay in the stack's database. USERS=0 has
// every listener use the demo user instead (expect many shed_429).
import http from 'k6/http';
import exec from 'k6/execution';
import { check, sleep } from 'k6';
import { Counter, Gauge, Rate, Trend } from 'k6/metrics';
import {
  loadStack, durationMs, numberEnv, jsonBearer, bearer, with429, EXPECTED, errorCode, allPages,
  fetchRange, startPlayback, edgeLookups, originRequests, summary,
} from './lib/stack.js';

const stack = loadStack();
const ALBUM = __ENV.ALBUM || stack.demo.album_id;
const LISTENERS = numberEnv('LISTENERS', 200, 1);
const WITHIN_MS = durationMs(__ENV.WITHIN || '3s', '-e WITHIN');
const TRACKS = numberEnv('TRACKS', 1, 1);
const USERS = numberEnv('USERS', LISTENERS, 0);
const DURATION = __ENV.DURATION || '60s';
const RUN_MS = durationMs(DURATION, '-e DURATION');
const EXPECT = __ENV.EXPECT || 'cold';
const PROBE = (__ENV.PROBE || '1') !== '0';
const TTFA_P99 = numberEnv('TTFA_P99', 5000, 1);
const FIRST_BYTES = 65536;
const CHUNK = numberEnv('CHUNK_KIB', 256, 1) * 1024;
if (EXPECT !== 'cold' && EXPECT !== 'warm') throw new Error(`-e EXPECT=${EXPECT}: expected cold or warm`);

const thresholds = {
  http_5xx: ['count==0'],
  playback_errors: ['rate<0.01'],
  embargo_leaks: ['count==0'],
  checks: ['rate>0.99'],
  time_to_first_audio: [`p(99)<${TTFA_P99}`],
  'http_req_duration{name:audio}': [`p(99)<${numberEnv('AUDIO_P99', 10000, 1)}`],
  'http_req_duration{name:stream}': [`p(99)<${numberEnv('STREAM_P99', 5000, 1)}`],
};
if (EXPECT === 'warm') {
  thresholds.edge_hit_ratio = ['value>=0.99'];
  thresholds.origin_requests = ['count==0'];
  thresholds.origin_metrics_unavailable = ['count==0'];
}

export const options = {
  scenarios: {
    herd: {
      executor: 'per-vu-iterations', vus: LISTENERS, iterations: 1, maxDuration: DURATION, gracefulStop: '2s',
    },
  },
  setupTimeout: '120s',
  teardownTimeout: '30s',
  summaryTrendStats: ['avg', 'p(50)', 'p(90)', 'p(99)', 'max'],
  thresholds,
};

const timeToFirstAudio = new Trend('time_to_first_audio', true);
const chunkDuration = new Trend('chunk_duration', true);
const startDelay = new Trend('start_delay', true);
const tracksStarted = new Counter('tracks_started');
const tracksCompleted = new Counter('tracks_completed');
const tracksCut = new Counter('tracks_cut');
const failovers = new Counter('failovers');
const playbackErrors = new Rate('playback_errors');
const shed429 = new Counter('shed_429');
const http5xx = new Counter('http_5xx');
const embargoLeaks = new Counter('embargo_leaks');
const edgeHitRatio = new Gauge('edge_hit_ratio');
const edgeLookupsTotal = new Counter('edge_lookups');
const originRequestsMetric = new Counter('origin_requests');
const originUnavailable = new Counter('origin_metrics_unavailable');
const counters = { shed429, http5xx, failovers };
const playback = { ...counters, playbackErrors, tracksStarted, timeToFirstAudio, startDelay };

function note(res, name) {
  if (res.status >= 500) http5xx.add(1, { name });
  return res;
}

function snapshot() {
  return {
    edges: stack.edges.map((e) => ({ name: e.name, lookups: edgeLookups(e) })),
    shields: stack.shields.map((e) => ({ name: e.name, lookups: edgeLookups(e) })),
    origin: originRequests(stack),
  };
}

function makeUsers(n) {
  const run = Date.now().toString(36);
  const params = jsonBearer(stack.control.admin_token, { name: 'setup' });
  const tokens = [];
  for (let i = 0; i < n; i += 25) {
    const batch = [];
    for (let j = i; j < Math.min(n, i + 25); j++) {
      batch.push(['POST', `${stack.control.url}/v1/admin/users`,
        JSON.stringify({ display_name: `k6 album-drop ${run} #${j + 1}`, tier: 'premium', country: 'SE' }), params]);
    }
    for (const res of http.batch(batch)) {
      if (res.status !== 201) throw new Error(`POST /v1/admin/users: ${res.status} ${res.body}`);
      tokens.push(res.json().token);
    }
  }
  return tokens;
}

export function setup() {
  shed429.add(0); // in the summary even when nothing was shed
  const userParams = bearer(stack.demo.user_token, { name: 'setup' });
  userParams.responseCallback = EXPECTED;
  const deadline = Date.now() + 60000;
  const get = (url) => with429(() => http.get(url, userParams), shed429, deadline);
  const res = get(`${stack.control.url}/v1/albums/${encodeURIComponent(ALBUM)}?limit=1`);
  if (res.status !== 200) throw new Error(`GET /v1/albums/${ALBUM}: ${res.status} ${res.body}`);
  const album = res.json();
  const tracks = allPages(stack.control.url, `/v1/albums/${encodeURIComponent(ALBUM)}/tracks?limit=50`, get, TRACKS)
    .map((t) => t.id);
  if (tracks.length === 0) throw new Error(`album ${ALBUM} has no tracks`);

  const now = Date.now();
  const releaseAtMs = album.release_at ? album.release_at * 1000 : 0;
  const upcoming = releaseAtMs > now;
  if (upcoming && releaseAtMs - now > RUN_MS - WITHIN_MS) {
    throw new Error(`album ${ALBUM} is released at ${new Date(releaseAtMs).toISOString()}, `
      + `${Math.ceil((releaseAtMs - now) / 1000)} s from now: more than DURATION (${DURATION}) minus WITHIN allows; raise -e DURATION`);
  }
  if (upcoming) {
    // The embargo, asked once here even with PROBE=0.
    const p = jsonBearer(stack.demo.user_token, { name: 'stream' });
    p.responseCallback = http.expectedStatuses({ min: 200, max: 399 }, 403, 429);
    const r = note(http.post(`${stack.control.url}/v1/playback/stream`, `{"track_id":"${tracks[0]}"}`, p), 'stream');
    if (r.status === 200 && Date.now() < releaseAtMs) embargoLeaks.add(1);
    check(r, { 'before release: 403 not_released': (x) => x.status === 403 && errorCode(x) === 'not_released' });
  }

  const tokens = USERS > 0 ? makeUsers(USERS) : [stack.demo.user_token];
  const before = snapshot();
  const origin = before.origin === null ? 'origin metrics unavailable' : `origin requests so far ${before.origin}`;
  console.log(`album-drop: album ${ALBUM} "${album.title}", ${LISTENERS} listeners over ${tokens.length} user(s), `
    + `${tracks.length} track(s) each, ${upcoming ? `release in ${((releaseAtMs - now) / 1000).toFixed(1)} s` : 'released'}, `
    + `start within ${WITHIN_MS} ms, EXPECT=${EXPECT}; ${origin}`);
  return { tracks, tokens, releaseAtMs: upcoming ? releaseAtMs : 0, before };
}

// One stream answer for `id`, after 429s; null when the run ended first.
function stream(id, params, deadline) {
  const res = note(with429(() => http.post(`${stack.control.url}/v1/playback/stream`, `{"track_id":"${id}"}`, params),
    shed429, deadline), 'stream');
  return res.status === 429 ? null : res;
}

function listen(id, data, params, reportParams, deadline) {
  const res = stream(id, params, deadline);
  if (res === null) {
    tracksCut.add(1);
    return;
  }
  if (res.status === 200 && Date.now() < data.releaseAtMs) embargoLeaks.add(1);
  const started = startPlayback(stack, res, FIRST_BYTES, deadline, reportParams, playback);
  if (started === null) return;
  const { answer: s, st, firstEnd } = started;
  const size = s.file.size;
  for (let offset = firstEnd + 1; offset < size;) {
    if (Date.now() >= deadline) {
      tracksCut.add(1);
      return;
    }
    const end = Math.min(offset + CHUNK, size) - 1;
    const r = fetchRange(stack, st, offset, end, deadline, counters);
    if (r === null) {
      playbackErrors.add(1);
      return;
    }
    chunkDuration.add(r.timings.duration);
    offset = end + 1;
  }
  tracksCompleted.add(1);
  playbackErrors.add(0);
}

export default function (data) {
  const deadline = exec.scenario.startTime + RUN_MS;
  const token = data.tokens[(__VU - 1) % data.tokens.length];
  const params = jsonBearer(token, { name: 'stream' });
  params.responseCallback = EXPECTED;
  if (data.releaseAtMs > 0) {
    const early = data.releaseAtMs - 500 - Date.now();
    if (PROBE && early > 0) {
      // Asked once before the release, at a random moment, as players
      // showing an upcoming album do: must be 403 not_released.
      sleep((Math.random() * early) / 1000);
      const p = jsonBearer(token, { name: 'stream' });
      p.responseCallback = http.expectedStatuses({ min: 200, max: 399 }, 403, 429);
      const r = note(http.post(`${stack.control.url}/v1/playback/stream`, `{"track_id":"${data.tracks[0]}"}`, p), 'stream');
      if (r.status === 429) shed429.add(1, { code: errorCode(r) || 'none' });
      else {
        if (r.status === 200 && Date.now() < data.releaseAtMs) embargoLeaks.add(1);
        check(r, { 'before release: 403 not_released': (x) => x.status === 403 && errorCode(x) === 'not_released' });
      }
    }
    const wait = data.releaseAtMs - Date.now();
    if (wait > 0) sleep(wait / 1000);
  }
  sleep((Math.random() * WITHIN_MS) / 1000);
  const reportParams = jsonBearer(token, { name: 'report' });
  reportParams.responseCallback = EXPECTED;
  for (const id of data.tracks) {
    if (Date.now() >= deadline) break;
    listen(id, data, params, reportParams, deadline);
  }
}

export function teardown(data) {
  const after = snapshot();
  // A second reading right after tells what one /metrics request adds to
  // the origin's own count (0 or 1, depending on whether it counts them),
  // so the drop's figure is the audio traffic alone.
  const again = after.origin === null ? null : originRequests(stack);
  const out = { album: ALBUM, listeners: LISTENERS, expect: EXPECT };
  const sum = { hit: 0, disk: 0, miss: 0, coalesced: 0 };
  const perEdge = {};
  let edgesOk = true;
  data.before.edges.forEach((b, i) => {
    const a = after.edges[i];
    if (b.lookups === null || a.lookups === null) {
      edgesOk = false;
      perEdge[b.name] = 'metrics unavailable';
      return;
    }
    const d = {};
    for (const k of Object.keys(sum)) {
      d[k] = a.lookups[k] - b.lookups[k];
      sum[k] += d[k];
    }
    perEdge[b.name] = d;
  });
  const lookups = sum.hit + sum.disk + sum.miss + sum.coalesced;
  out.edge_lookups = lookups;
  out.edge_hit_ratio = edgesOk && lookups > 0 ? (sum.hit + sum.disk) / lookups : null;
  out.by_result = sum;
  out.edges = perEdge;
  if (stack.shields.length) {
    // Shown, not counted in the ratio: what the edges' misses cost the
    // shields (their misses are origin requests).
    out.shields = {};
    data.before.shields.forEach((b, i) => {
      const a = after.shields[i];
      if (b.lookups === null || a.lookups === null) {
        out.shields[b.name] = 'metrics unavailable';
        return;
      }
      const d = {};
      for (const k of Object.keys(sum)) d[k] = a.lookups[k] - b.lookups[k];
      out.shields[b.name] = d;
    });
  }
  if (data.before.origin === null || after.origin === null) {
    out.origin_requests = null;
    out.origin = 'origin metrics unavailable';
  } else {
    const self = again === null ? 0 : Math.max(0, again - after.origin);
    out.origin_requests = Math.max(0, after.origin - data.before.origin - self);
  }
  console.log(`DROP ${JSON.stringify(out)}`);

  if (lookups > 0) edgeLookupsTotal.add(lookups);
  if (out.edge_hit_ratio !== null) edgeHitRatio.add(out.edge_hit_ratio);
  else if (EXPECT === 'warm') {
    console.error('EXPECT=warm: no edge hit ratio (an edge\'s metrics were unavailable, or nothing was fetched)');
    edgeHitRatio.add(0);
  }
  if (out.origin_requests !== null) originRequestsMetric.add(out.origin_requests);
  else {
    originUnavailable.add(1);
    if (EXPECT === 'warm') {
      console.error(`EXPECT=warm needs the origin's request count, and ${stack.origin.url}/metrics serves no `
        + 'origin metrics (cadenza_origin_*): origin metrics unavailable, so the warm check fails');
    }
  }
}

export function handleSummary(data) {
  return summary(data);
}
