// Listeners: every virtual user is a player. It picks a track by popularity
// (Zipf over the catalog), asks the control plane for stream URLs
// (POST /v1/playback/stream with the demo user's token), fetches the first
// 64 KiB from the first URL, then 256 KiB ranges ahead of the playhead,
// sleeping as the track plays (at SPEED× its real duration), skips some
// tracks early, fails over to the next URL when an edge fails (and says so
// in POST /v1/playback/report), and waits out 429s as Retry-After asks.
//
//   cargo run --release -- dev            # writes cadenza-data/stack.json
//   k6 run -e STACK=$PWD/cadenza-data/stack.json [-e VUS=20] [-e DURATION=30s] \
//     [-e ZIPF=1.0] [-e SPEED=8] [-e SKIP=0.3] [-e QUALITY=160] [-e CHUNK_KIB=256] \
//     [-e TTFA_P99=2000] [-e AUDIO_P99=5000] [-e STREAM_P99=2000] [-e CATALOG_MAX=1000] \
//     [-e SUMMARY=out.json] loadtest/k6/player.js
//
// Targets only the stack in stack.json, on loopback (lib/stack.js refuses
// anything else, and the player skips stream URLs that are not); bounded by
// DURATION (+5 s for listeners to stop). Thresholds: playback_errors < 1 %,
// checks > 99 %, no 5xx, p99 of time_to_first_audio < TTFA_P99 ms, p99 of
// the audio requests (name:audio) < AUDIO_P99 ms and of the stream calls
// (name:stream) < STREAM_P99 ms. All VUs share the demo user, so past
// ~10 stream calls/s (rate_limits.playback) answers are 429: counted in
// shed_429 and waited out, not failures. See loadtest/README.md, "Scenarios against `cadenza dev`".
import http from 'k6/http';
import exec from 'k6/execution';
import { sleep } from 'k6';
import { Counter, Rate, Trend } from 'k6/metrics';
import {
  loadStack, durationMs, numberEnv, jsonBearer, with429, EXPECTED, crawlCatalog, fetchRange, startPlayback,
  summary,
} from './lib/stack.js';

const stack = loadStack();
const VUS = numberEnv('VUS', 20, 1);
const DURATION = __ENV.DURATION || '30s';
const RUN_MS = durationMs(DURATION, '-e DURATION');
const ZIPF = numberEnv('ZIPF', 1.0, 0, 10);
const SPEED = numberEnv('SPEED', 8, 0.01);
const SKIP = numberEnv('SKIP', 0.3, 0, 1);
const QUALITY = __ENV.QUALITY ? numberEnv('QUALITY', 160, 1) : null;
const FIRST_BYTES = 65536;
const CHUNK = numberEnv('CHUNK_KIB', 256, 1) * 1024;
const CATALOG_MAX = numberEnv('CATALOG_MAX', 1000, 1);
const TTFA_P99 = numberEnv('TTFA_P99', 2000, 1);
const AUDIO_P99 = numberEnv('AUDIO_P99', 5000, 1);
const STREAM_P99 = numberEnv('STREAM_P99', 2000, 1);

export const options = {
  scenarios: {
    listeners: { executor: 'constant-vus', vus: VUS, duration: DURATION, gracefulStop: '5s' },
  },
  setupTimeout: '60s',
  summaryTrendStats: ['avg', 'p(50)', 'p(90)', 'p(99)', 'max'],
  thresholds: {
    playback_errors: ['rate<0.01'],
    checks: ['rate>0.99'],
    http_5xx: ['count==0'],
    time_to_first_audio: [`p(99)<${TTFA_P99}`],
    'http_req_duration{name:audio}': [`p(99)<${AUDIO_P99}`],
    'http_req_duration{name:stream}': [`p(99)<${STREAM_P99}`],
  },
};

const timeToFirstAudio = new Trend('time_to_first_audio', true);
const chunkDuration = new Trend('chunk_duration', true);
const tracksStarted = new Counter('tracks_started');
const tracksCompleted = new Counter('tracks_completed');
const tracksSkipped = new Counter('tracks_skipped');
const tracksCut = new Counter('tracks_cut');
const failovers = new Counter('failovers');
const playbackErrors = new Rate('playback_errors');
const shed429 = new Counter('shed_429');
const http5xx = new Counter('http_5xx');

export function setup() {
  shed429.add(0); // in the summary even when nothing was shed
  const cat = crawlCatalog(stack, stack.demo.user_token, CATALOG_MAX, shed429);
  if (cat.tracks.length === 0) throw new Error('the catalog walk found no tracks');
  // Popularity rank: most popular first; ties keep the order found.
  const ranked = cat.tracks.map((t, i) => [t, i])
    .sort((a, b) => (b[0].popularity - a[0].popularity) || (a[1] - b[1]))
    .map(([t]) => ({ id: t.id, title: t.title }));
  console.log(`player: ${ranked.length} tracks in the catalog walk, Zipf exponent ${ZIPF}, ${VUS} listeners, speed ${SPEED}x`);
  return { tracks: ranked };
}

// Per VU: the Zipf CDF over the ranked tracks, and request params.
let cdf = null;
let streamParams = null;
let reportParams = null;

function pickTrack(tracks) {
  if (cdf === null) {
    cdf = new Array(tracks.length);
    let sum = 0;
    for (let k = 0; k < tracks.length; k++) {
      sum += 1 / Math.pow(k + 1, ZIPF);
      cdf[k] = sum;
    }
    for (let k = 0; k < cdf.length; k++) cdf[k] /= sum;
  }
  const r = Math.random();
  let lo = 0;
  let hi = cdf.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (cdf[mid] < r) lo = mid + 1;
    else hi = mid;
  }
  return tracks[lo];
}

function note(res, name) {
  if (res.status >= 500) http5xx.add(1, { name });
  return res;
}
const counters = { shed429, http5xx, failovers };
const playback = { ...counters, playbackErrors, tracksStarted, timeToFirstAudio };

export default function (data) {
  if (streamParams === null) {
    streamParams = jsonBearer(stack.demo.user_token, { name: 'stream' });
    streamParams.responseCallback = EXPECTED;
    reportParams = jsonBearer(stack.demo.user_token, { name: 'report' });
    reportParams.responseCallback = EXPECTED;
  }
  const deadline = exec.scenario.startTime + RUN_MS;
  const track = pickTrack(data.tracks);
  const body = QUALITY === null
    ? `{"track_id":"${track.id}"}`
    : JSON.stringify({ track_id: track.id, preferred_quality: QUALITY });
  const res = note(with429(() => http.post(`${stack.control.url}/v1/playback/stream`, body, streamParams), shed429, deadline), 'stream');
  if (res.status === 429) return; // the run ended while waiting
  const started = startPlayback(stack, res, FIRST_BYTES, deadline, reportParams, playback);
  if (started === null) return;
  const { answer: s, st, firstEnd } = started;
  const size = s.file.size;
  const bytesPerMs = size / Math.max(1, s.file.duration_ms); // at 1x
  const playMs = (n) => n / bytesPerMs / SPEED;

  // Skip after the first 64 KiB or after one or two chunks.
  const skipAfter = Math.random() < SKIP ? Math.floor(Math.random() * 3) : -1;
  let offset = firstEnd + 1;
  let playing = playMs(offset); // buffered, not yet played
  let chunks = 0;
  while (offset < size) {
    if (chunks === skipAfter) {
      sleep((Math.random() * playing) / 1000);
      tracksSkipped.add(1);
      playbackErrors.add(0);
      return;
    }
    if (Date.now() >= deadline) {
      tracksCut.add(1);
      return;
    }
    const end = Math.min(offset + CHUNK, size) - 1;
    const started = Date.now();
    const r = fetchRange(stack, st, offset, end, deadline, counters);
    if (r === null) {
      playbackErrors.add(1);
      return;
    }
    chunkDuration.add(r.timings.duration);
    chunks++;
    // One chunk ahead: wait while the previous one plays.
    const wait = playing - (Date.now() - started);
    if (wait > 0) sleep(wait / 1000);
    playing = playMs(end - offset + 1);
    offset = end + 1;
  }
  if (chunks === skipAfter) {
    sleep((Math.random() * playing) / 1000);
    tracksSkipped.add(1);
  } else {
    sleep(playing / 1000);
    tracksCompleted.add(1);
  }
  playbackErrors.add(0);
}

export function handleSummary(data) {
  return summary(data);
}
