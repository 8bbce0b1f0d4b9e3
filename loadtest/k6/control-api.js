// Control-plane traffic of an app in use, with the demo user's token: a
// weighted mix of catalog reads (track, several tracks, album, album
// tracks, artist, artist albums, artist top tracks), searches (titles and
// artist names found in setup(), whole, as prefixes and with a typo) and
// playlist work (each VU creates a private playlist, adds tracks, reads it,
// lists its playlists, reorders, removes, renames and deletes it, one step
// per iteration, over and over; teardown() deletes what a cut-off run
// left).
//
//   cargo run --release -- dev            # writes cadenza-data/stack.json
//   k6 run -e STACK=$PWD/cadenza-data/stack.json [-e RATE=30] [-e VUS=10] \
//     [-e DURATION=30s] [-e MIX=60,25,15] [-e CATALOG_P99=1000] [-e SEARCH_P99=1000] \
//     [-e PLAYLIST_P99=2000] [-e CATALOG_MAX=1000] [-e SUMMARY=out.json] \
//     loadtest/k6/control-api.js
//
// Targets only the control plane in stack.json, on loopback; bounded by
// DURATION (+5 s for the last steps). Open loop by default: RATE requests/s
// from up to VUS users. The default rate keeps one user under the default
// per-user limits (read 50/s, search 10/s, playlist writes 10/s); RATE=0
// is closed loop (VUS users, each sending as soon as answered), which
// meets them: 429s are waited out (Retry-After) and counted in shed_429,
// never failures. Thresholds per kind (tag kind: catalog, search,
// playlist): checks > 99 %, p99 under *_P99 ms; overall: no 5xx, checks
// > 99 %. See loadtest/README.md, "Scenarios against `cadenza dev`".
import http from 'k6/http';
import exec from 'k6/execution';
import { check } from 'k6';
import { Counter } from 'k6/metrics';
import {
  loadStack, durationMs, numberEnv, bearer, jsonBearer, with429, EXPECTED, json, crawlCatalog, allPages,
  summary,
} from './lib/stack.js';

const stack = loadStack();
const RATE = numberEnv('RATE', 30, 0);
const VUS = numberEnv('VUS', 10, 1);
const DURATION = __ENV.DURATION || '30s';
const RUN_MS = durationMs(DURATION, '-e DURATION');
const MIX = (__ENV.MIX || '60,25,15').split(',').map(Number);
if (MIX.length !== 3 || MIX.some((x) => !Number.isFinite(x) || x < 0) || MIX[0] + MIX[1] + MIX[2] <= 0) {
  throw new Error(`-e MIX=${__ENV.MIX}: expected three weights, catalog,search,playlist (e.g. 60,25,15)`);
}
const CATALOG_MAX = numberEnv('CATALOG_MAX', 1000, 1);

const load = RATE > 0
  ? { executor: 'constant-arrival-rate', rate: RATE, timeUnit: '1s', duration: DURATION, preAllocatedVUs: VUS, maxVUs: VUS }
  : { executor: 'constant-vus', vus: VUS, duration: DURATION };

export const options = {
  scenarios: { api: { ...load, gracefulStop: '5s' } },
  setupTimeout: '60s',
  teardownTimeout: '60s',
  summaryTrendStats: ['avg', 'p(50)', 'p(90)', 'p(99)', 'max'],
  thresholds: {
    http_5xx: ['count==0'],
    checks: ['rate>0.99'],
    'checks{kind:catalog}': ['rate>0.99'],
    'checks{kind:search}': ['rate>0.99'],
    'checks{kind:playlist}': ['rate>0.99'],
    'http_req_duration{kind:catalog}': [`p(99)<${numberEnv('CATALOG_P99', 1000, 1)}`],
    'http_req_duration{kind:search}': [`p(99)<${numberEnv('SEARCH_P99', 1000, 1)}`],
    'http_req_duration{kind:playlist}': [`p(99)<${numberEnv('PLAYLIST_P99', 2000, 1)}`],
  },
};

const shed429 = new Counter('shed_429');
const http5xx = new Counter('http_5xx');
const requestsByKind = new Counter('api_requests');

// Queries as people type them: whole titles and names, a word's first
// letters, and a word with two letters swapped.
function queries(cat) {
  const out = {};
  const add = (q) => {
    const t = q.trim();
    if (t.length > 0 && t.length <= 200) out[t] = true;
  };
  const texts = cat.tracks.map((t) => t.title).concat(cat.artists.map((a) => a.name), cat.albums.map((a) => a.title));
  for (const text of texts) {
    add(text);
    const words = text.split(/\s+/).filter((w) => w.length > 0);
    for (const w of words) {
      if (w.length >= 3) add(w.slice(0, 3));
      if (w.length >= 5) add(w.slice(0, Math.ceil(w.length / 2)));
      if (w.length >= 4) {
        const i = 1 + ((w.length * 7) % (w.length - 2));
        add(w.slice(0, i) + w[i + 1] + w[i] + w.slice(i + 2));
      }
    }
    if (words.length > 1) add(`${words[0]} ${words[1].slice(0, 2)}`);
  }
  return Object.keys(out);
}

export function setup() {
  shed429.add(0); // in the summary even when nothing was shed
  const cat = crawlCatalog(stack, stack.demo.user_token, CATALOG_MAX, shed429);
  if (cat.tracks.length === 0) throw new Error('the catalog walk found no tracks');
  const q = queries(cat);
  console.log(`control-api: ${cat.tracks.length} tracks, ${cat.albums.length} albums, ${cat.artists.length} artists, `
    + `${q.length} search queries; ${RATE > 0 ? `${RATE} requests/s from up to ${VUS} VUs` : `${VUS} VUs, closed loop`}, mix ${MIX.join('/')}`);
  return {
    run: `k6 control-api ${Date.now().toString(36)}`,
    tracks: cat.tracks.map((t) => t.id),
    albums: cat.albums.map((a) => a.id),
    artists: cat.artists.map((a) => a.id),
    queries: q,
  };
}

const pick = (list) => list[Math.floor(Math.random() * list.length)];
const enc = encodeURIComponent;

let base = null;
let deadline = 0;
const paramsCache = {};
function params(kind, name, body) {
  const key = `${kind}/${name}/${body ? 1 : 0}`;
  if (!paramsCache[key]) {
    const p = body ? jsonBearer(stack.demo.user_token, { kind, name }) : bearer(stack.demo.user_token, { kind, name });
    p.responseCallback = EXPECTED;
    paramsCache[key] = p;
  }
  return paramsCache[key];
}

// One request, 429s waited out; null if the run ended while waiting.
function call(method, kind, name, url, body) {
  const p = params(kind, name, body !== undefined);
  const res = with429(() => http.request(method, url, body === undefined ? null : body, p), shed429, deadline);
  if (res.status >= 500) http5xx.add(1, { kind, name });
  if (res.status === 429) return null;
  requestsByKind.add(1, { kind });
  return res;
}

function ok(res, kind, what, want, extra) {
  if (res === null) return false;
  return check(res, { [what]: (r) => r.status === want && (!extra || extra(r)) }, { kind });
}

function catalog(data) {
  const r = Math.random() * 100;
  if (r < 30) {
    const res = call('GET', 'catalog', 'track', `${base}/v1/tracks/${enc(pick(data.tracks))}`);
    ok(res, 'catalog', 'track 200', 200, (x) => json(x) !== null && json(x).id !== undefined);
  } else if (r < 40) {
    const ids = [pick(data.tracks), pick(data.tracks), pick(data.tracks)].join(',');
    const res = call('GET', 'catalog', 'tracks', `${base}/v1/tracks?ids=${enc(ids)}`);
    ok(res, 'catalog', 'tracks 200', 200);
  } else if (r < 55) {
    const res = call('GET', 'catalog', 'album', `${base}/v1/albums/${enc(pick(data.albums))}`);
    ok(res, 'catalog', 'album 200', 200);
  } else if (r < 70) {
    const res = call('GET', 'catalog', 'album_tracks', `${base}/v1/albums/${enc(pick(data.albums))}/tracks?limit=20`);
    ok(res, 'catalog', 'album tracks 200', 200);
  } else if (r < 80) {
    const res = call('GET', 'catalog', 'artist', `${base}/v1/artists/${enc(pick(data.artists))}`);
    ok(res, 'catalog', 'artist 200', 200);
  } else if (r < 90) {
    const res = call('GET', 'catalog', 'artist_albums', `${base}/v1/artists/${enc(pick(data.artists))}/albums?limit=20`);
    ok(res, 'catalog', 'artist albums 200', 200);
  } else {
    const res = call('GET', 'catalog', 'artist_top_tracks', `${base}/v1/artists/${enc(pick(data.artists))}/top-tracks`);
    ok(res, 'catalog', 'artist top tracks 200', 200);
  }
}

function search(data) {
  const q = pick(data.queries);
  const res = call('GET', 'search', 'search', `${base}/v1/search?q=${enc(q)}&type=track,artist,album&limit=20`);
  ok(res, 'search', 'search 200', 200, (x) => {
    const b = json(x);
    return b !== null && b.tracks !== undefined && b.artists !== undefined && b.albums !== undefined;
  });
}

// This VU's playlist and where it is in its life.
const pl = { id: null, step: 0, n: 0 };
const STEPS = ['create', 'add', 'read', 'mine', 'reorder', 'items', 'remove', 'rename', 'delete'];

function playlist(data) {
  const step = STEPS[pl.step];
  let res;
  let good = false;
  const path = pl.id === null ? '' : `${base}/v1/playlists/${enc(pl.id)}`;
  switch (step) {
    case 'create': {
      pl.n += 1;
      const body = JSON.stringify({ name: `${data.run} vu${__VU} #${pl.n}`, description: 'k6 control-api.js', public: false });
      res = call('POST', 'playlist', 'create', `${base}/v1/playlists`, body);
      good = ok(res, 'playlist', 'playlist created 201', 201, (x) => json(x) !== null && typeof json(x).id === 'string');
      if (good) pl.id = json(res).id;
      break;
    }
    case 'add': {
      const ids = [];
      for (let i = 0; i < 5; i++) ids.push(pick(data.tracks));
      res = call('POST', 'playlist', 'add_items', `${path}/items`, JSON.stringify({ track_ids: ids }));
      good = ok(res, 'playlist', 'items added 201', 201);
      break;
    }
    case 'read':
      res = call('GET', 'playlist', 'read', `${path}?limit=20`);
      good = ok(res, 'playlist', 'playlist read 200 with 5 items', 200, (x) => json(x) !== null && json(x).items.total === 5);
      break;
    case 'mine':
      res = call('GET', 'playlist', 'mine', `${base}/v1/me/playlists?limit=20`);
      good = ok(res, 'playlist', 'my playlists 200', 200);
      break;
    case 'reorder':
      res = call('PUT', 'playlist', 'reorder', `${path}/items`, JSON.stringify({ range_start: 0, insert_before: 3, range_length: 2 }));
      good = ok(res, 'playlist', 'items reordered 200', 200);
      break;
    case 'items':
      res = call('GET', 'playlist', 'items', `${path}/items?limit=20`);
      good = ok(res, 'playlist', 'items read 200', 200);
      if (good) pl.items = json(res).items.map((it) => [it.track.id, it.position]);
      break;
    case 'remove': {
      const [id, pos] = pl.items && pl.items.length ? pl.items[pl.items.length - 1] : [pick(data.tracks), null];
      const entry = pos === null ? { track_id: id } : { track_id: id, positions: [pos] };
      res = call('DELETE', 'playlist', 'remove_items', `${path}/items`, JSON.stringify({ tracks: [entry] }));
      good = ok(res, 'playlist', 'item removed 200', 200);
      break;
    }
    case 'rename':
      res = call('PUT', 'playlist', 'update', path, JSON.stringify({ name: `${data.run} vu${__VU} #${pl.n} (renamed)` }));
      good = ok(res, 'playlist', 'playlist renamed 200', 200);
      break;
    case 'delete':
      res = call('DELETE', 'playlist', 'delete', path);
      good = ok(res, 'playlist', 'playlist deleted 204', 204);
      if (good) pl.id = null;
      break;
    default:
      break;
  }
  if (res === null) return; // out of time: try the same step next time
  // A failed step: delete what exists and start over.
  if (!good && pl.id !== null && step !== 'delete') {
    pl.step = STEPS.indexOf('delete');
    return;
  }
  pl.step = (pl.step + 1) % STEPS.length;
  if (pl.step === 0) pl.items = null;
}

export default function (data) {
  if (base === null) {
    base = stack.control.url;
    deadline = exec.scenario.startTime + RUN_MS;
  }
  const r = Math.random() * (MIX[0] + MIX[1] + MIX[2]);
  if (r < MIX[0]) catalog(data);
  else if (r < MIX[0] + MIX[1]) search(data);
  else playlist(data);
}

// Delete this run's playlists a cut-off VU left behind.
export function teardown(data) {
  base = stack.control.url;
  deadline = Date.now() + 50000;
  const get = (url) => with429(() => http.get(url, params('cleanup', 'mine')), shed429, deadline);
  let left = [];
  try {
    left = allPages(base, '/v1/me/playlists?limit=50', get, 10000).filter((p) => p.name.startsWith(`${data.run} `));
  } catch (e) {
    console.error(`teardown: could not list the demo user's playlists: ${e}`);
    return;
  }
  let deleted = 0;
  for (const p of left) {
    const res = with429(() => http.del(`${base}/v1/playlists/${enc(p.id)}`, null, params('cleanup', 'delete')), shed429, deadline);
    if (res.status === 204 || res.status === 404) deleted++;
  }
  console.log(`control-api: teardown deleted ${deleted} of ${left.length} playlist(s) left by this run`);
}

export function handleSummary(data) {
  return summary(data);
}
