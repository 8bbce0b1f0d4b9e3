// Shared by the scenario scripts (player.js, album-drop.js, control-api.js):
// finds a `cadenza dev` stack through its stack.json, refuses anything that
// is not on loopback, and holds the small HTTP helpers every script needs
// (bearer params, 429 + Retry-After, Prometheus text, durations, the
// summary).
//
// -e STACK=<path>   stack.json of the stack (default cadenza-data/stack.json,
//                   relative to the directory k6 is started in).
// -e SUMMARY=<file> also write k6's end-of-test data as JSON to <file>.
import http from 'k6/http';
import { check, sleep } from 'k6';

// ------------------------------------------------------------ loopback only

const LOOPBACK_HOSTS = ['127.0.0.1', '::1', '[::1]', 'localhost'];

// The host of an http(s) URL, lower-cased, IPv6 literals with brackets;
// null if the URL is not plain http(s)://host[:port][/…] (user info, an
// empty host or a bad port are refused rather than guessed at).
export function hostOf(url) {
  const m = /^https?:\/\/([^/?#]*)(?:[/?#]|$)/i.exec(String(url));
  if (!m) return null;
  const authority = m[1];
  if (authority.indexOf('@') >= 0) return null;
  let host;
  let rest;
  if (authority.startsWith('[')) {
    const end = authority.indexOf(']');
    if (end < 0) return null;
    host = authority.slice(0, end + 1);
    rest = authority.slice(end + 1);
  } else {
    const colon = authority.indexOf(':');
    host = colon < 0 ? authority : authority.slice(0, colon);
    rest = colon < 0 ? '' : authority.slice(colon);
  }
  if (rest !== '' && !/^:\d{1,5}$/.test(rest)) return null;
  return host === '' ? null : host.toLowerCase();
}

export function isLoopback(url) {
  const host = hostOf(url);
  return host !== null && LOOPBACK_HOSTS.indexOf(host) >= 0;
}

export function assertLoopback(url, what) {
  if (!isLoopback(url)) {
    throw new Error(`${what}: ${JSON.stringify(url)} is not on loopback (127.0.0.1, ::1 or localhost); `
      + 'these scripts only load a local dev stack');
  }
}

// ------------------------------------------------------------ stack.json

// Where stack.json is. k6's open() resolves a relative path against the
// script, not the working directory, so a relative STACK is joined to $PWD
// (k6 passes the shell's environment through by default); without $PWD
// (--include-system-env-vars=false) it is taken relative to the repository
// root, two directories above loadtest/k6/.
export function stackPath() {
  const p = __ENV.STACK || 'cadenza-data/stack.json';
  if (p.startsWith('/') || p.startsWith('file://')) return p;
  if (__ENV.PWD) return `${__ENV.PWD.replace(/\/+$/, '')}/${p}`;
  return import.meta.resolve(`../../../${p}`);
}

// Read and check stack.json; only in the init context (open() is an
// init-context function). Throws, which stops k6 before any request, when
// the file is missing or any endpoint is off loopback.
export function loadStack() {
  const path = stackPath();
  let text;
  try {
    text = open(path);
  } catch (e) {
    throw new Error(`cannot read stack.json at ${path} (${e}); start a stack with \`cadenza dev\` `
      + 'and pass -e STACK=<its data dir>/stack.json');
  }
  let s;
  try {
    s = JSON.parse(text);
  } catch (e) {
    throw new Error(`${path} is not JSON: ${e}`);
  }
  if (!s.control || !s.origin || !Array.isArray(s.edges) || !s.demo) {
    throw new Error(`${path} lacks control, origin, edges or demo: not a cadenza dev stack file`);
  }
  s.shields = Array.isArray(s.shields) ? s.shields : [];
  assertLoopback(s.control.url, 'stack.json control.url');
  assertLoopback(s.origin.url, 'stack.json origin.url');
  for (const kind of ['edges', 'shields']) {
    s[kind].forEach((e, i) => {
      assertLoopback(e.url, `stack.json ${kind}[${i}].url`);
      assertLoopback(e.admin_url, `stack.json ${kind}[${i}].admin_url`);
    });
  }
  s.control.url = s.control.url.replace(/\/+$/, '');
  s.origin.url = s.origin.url.replace(/\/+$/, '');
  s.path = path;
  return s;
}

// ------------------------------------------------------------ options

// A k6 duration ("30s", "1m30s", "500ms", "2h"; a bare number is seconds)
// in milliseconds. Throws on anything else, so a typo fails at start.
export function durationMs(text, what) {
  const s = String(text).trim();
  if (/^\d+(\.\d+)?$/.test(s)) return Number(s) * 1000;
  const unit = { ms: 1, s: 1000, m: 60000, h: 3600000 };
  let total = 0;
  let seen = '';
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h)/g;
  let m;
  while ((m = re.exec(s)) !== null) {
    total += Number(m[1]) * unit[m[2]];
    seen += m[0];
  }
  if (seen !== s || seen === '') throw new Error(`${what || 'duration'}: ${JSON.stringify(text)} is not a duration like 30s, 2m or 500ms`);
  return total;
}

export function numberEnv(name, dflt, min, max) {
  const raw = __ENV[name];
  if (raw === undefined || raw === '') return dflt;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < min || (max !== undefined && n > max)) {
    throw new Error(`-e ${name}=${raw}: expected a number from ${min}${max !== undefined ? ` to ${max}` : ''}`);
  }
  return n;
}

// ------------------------------------------------------------ HTTP

// Request params with a bearer token and tags. Build once per VU and reuse
// where the tags do not change: k6 converts the object on every call.
export function bearer(token, tags, extraHeaders) {
  const headers = { Authorization: `Bearer ${token}` };
  if (extraHeaders) Object.assign(headers, extraHeaders);
  return { headers, tags: tags || {} };
}

export function jsonBearer(token, tags) {
  return bearer(token, tags, { 'Content-Type': 'application/json' });
}

// The API's error code ("rate_limited", "not_released", …) or ''.
export function errorCode(res) {
  try {
    const b = res.json();
    return (b && b.error && b.error.code) || '';
  } catch (e) {
    return '';
  }
}

export function json(res) {
  try {
    return res.json();
  } catch (e) {
    return null;
  }
}

// Milliseconds a 429 asks to wait: Retry-After (whole seconds), at least
// 100 ms; 1 s when absent.
export function retryAfterMs(res) {
  const v = res.headers['Retry-After'] || res.headers['retry-after'];
  const n = parseInt(v, 10);
  if (!Number.isFinite(n)) return 1000;
  return Math.max(100, n * 1000);
}

// Send with `send()` until the answer is not a 429 or `deadline` (epoch ms)
// would pass while waiting. Each 429 is added to `counter` (tagged with the
// error code: rate_limited, overloaded) and waited out: Retry-After plus up
// to 250 ms, so the VUs told the same whole second do not return together.
// Returns the last answer; a 429 only once the deadline has come (it waits
// until then rather than return early: a VU must not spin on 429s).
export function with429(send, counter, deadline) {
  for (;;) {
    const res = send();
    if (res.status !== 429) return res;
    counter.add(1, { code: errorCode(res) || 'none' });
    const wait = retryAfterMs(res) + Math.random() * 250;
    const left = deadline - Date.now();
    if (wait >= left) {
      if (left > 0) sleep(left / 1000);
      return res;
    }
    sleep(wait / 1000);
  }
}

// 429 is how the control plane sheds and rate-limits: counted by the
// scripts, not a failure. Everything else below 400 is expected.
export const EXPECTED = http.expectedStatuses({ min: 200, max: 399 }, 429);

// ------------------------------------------------------------ catalog

// Every page of a paging object, following `next` (relative to the API's
// base URL). `get(url)` returns the answer; stops at `max` items.
export function allPages(base, firstPath, get, max) {
  const items = [];
  let path = firstPath;
  while (path && items.length < max) {
    const res = get(`${base}${path}`);
    if (res.status !== 200) throw new Error(`GET ${path}: ${res.status} ${res.body}`);
    const page = res.json();
    for (const it of page.items || []) items.push(it);
    path = page.next || null;
  }
  return items.slice(0, max);
}

// The catalog as the API shows it, found by walking from the demo artist
// and album (the API has no "list everything" route): each artist's albums
// (GET /v1/artists/{id}/albums), each album's tracks
// (GET /v1/albums/{id}/tracks), each track's other artists, until no new
// artist is found or `maxTracks` tracks are known. For setup() only.
// Returns { artists: [{id, name}], albums: [{id, title, release_at}],
// tracks: [{id, title, popularity, duration_ms, album_id, artist_ids}] },
// tracks in the order found.
export function crawlCatalog(stack, token, maxTracks, counter) {
  const base = stack.control.url;
  const params = bearer(token, { name: 'setup' });
  params.responseCallback = EXPECTED;
  const deadline = Date.now() + 50000;
  const get = (url) => with429(() => http.get(url, params), counter, deadline);
  const artists = [];
  const albums = [];
  const tracks = [];
  const seenArtists = {};
  const seenAlbums = {};
  const artistQueue = [stack.demo.artist_id];
  const albumQueue = [stack.demo.album_id];
  seenArtists[stack.demo.artist_id] = true;
  seenAlbums[stack.demo.album_id] = true;
  while ((artistQueue.length || albumQueue.length) && tracks.length < maxTracks) {
    while (albumQueue.length && tracks.length < maxTracks) {
      const id = albumQueue.shift();
      const res = get(`${base}/v1/albums/${encodeURIComponent(id)}?limit=1`);
      if (res.status !== 200) throw new Error(`GET /v1/albums/${id}: ${res.status} ${res.body}`);
      const a = res.json();
      albums.push({ id: a.id, title: a.title, release_at: a.release_at });
      for (const t of allPages(base, `/v1/albums/${encodeURIComponent(id)}/tracks?limit=50`, get, maxTracks - tracks.length)) {
        tracks.push({
          id: t.id, title: t.title, popularity: t.popularity, duration_ms: t.duration_ms,
          album_id: a.id, artist_ids: (t.artists || []).map((x) => x.id),
        });
        for (const ar of t.artists || []) {
          if (!seenArtists[ar.id]) {
            seenArtists[ar.id] = true;
            artistQueue.push(ar.id);
          }
        }
      }
    }
    if (artistQueue.length) {
      const id = artistQueue.shift();
      const res = get(`${base}/v1/artists/${encodeURIComponent(id)}`);
      if (res.status !== 200) throw new Error(`GET /v1/artists/${id}: ${res.status} ${res.body}`);
      artists.push({ id, name: res.json().name });
      for (const al of allPages(base, `/v1/artists/${encodeURIComponent(id)}/albums?limit=50`, get, 1000)) {
        if (!seenAlbums[al.id]) {
          seenAlbums[al.id] = true;
          albumQueue.push(al.id);
        }
      }
    }
  }
  return { artists, albums, tracks };
}

// ------------------------------------------------------------ audio

// What POST /v1/playback/report calls a failed fetch.
function reportKind(res) {
  if (res.status === 0) return res.error_code === 1050 ? 'timeout' : 'connect';
  if (res.status === 401 || res.status === 403) return 'token';
  if (res.status >= 500) return 'http_5xx';
  if (res.status >= 400) return 'http_4xx';
  return 'other';
}

// GET bytes=start-end (inclusive) of the track from the stream URL in use,
// st = { urls (the stream answer's), idx (URL in use), decisionId,
// reportParams (bearer params for the report) }. On a failed answer (not a
// 206 of exactly that range, or a network error) it tells the control plane
// (POST /v1/playback/report, as players do) and moves on to the next URL,
// as the answer's `urls` order asks. A URL off loopback is skipped, never
// fetched. Returns the answer, or null once every URL failed.
// c = { shed429, http5xx, failovers } counters of the calling script.
export function fetchRange(stack, st, start, end, deadline, c) {
  const want = end - start + 1;
  while (st.idx < st.urls.length) {
    const u = st.urls[st.idx];
    if (!isLoopback(u.url)) {
      console.error(`stream URL on ${u.pop} is not on loopback; not fetched`);
      st.idx++;
      continue;
    }
    const params = {
      headers: { Range: `bytes=${start}-${end}` }, tags: { name: 'audio', pop: u.pop }, responseType: 'none', responseCallback: EXPECTED,
    };
    const res = with429(() => http.get(u.url, params), c.shed429, deadline);
    if (res.status >= 500) c.http5xx.add(1, { name: 'audio' });
    const ok = check(res, {
      'audio 206 with the range asked': (r) => r.status === 206 && r.error === ''
        && Number(r.headers['Content-Length']) === want
        && String(r.headers['Content-Range']).startsWith(`bytes ${start}-${end}/`),
    });
    if (ok) return res;
    const body = JSON.stringify({ reports: [{ cdn: u.cdn, pop: u.pop, error: reportKind(res), decision_id: st.decisionId }] });
    const r = http.post(`${stack.control.url}/v1/playback/report`, body, st.reportParams);
    if (r.status >= 500) c.http5xx.add(1, { name: 'report' });
    if (r.status === 429) c.shed429.add(1, { code: 'report' });
    c.failovers.add(1, { pop: u.pop });
    st.idx++;
  }
  return null;
}

// A stream answer taken up as a player does: checked (200 with URLs), its
// start delay (start_delay_ms) waited out, its first `firstBytes` fetched
// with failover. m = the calling script's { shed429, http5xx, failovers,
// playbackErrors, tracksStarted, timeToFirstAudio, startDelay (optional) }.
// Returns { answer, st, firstEnd } to go on from (st as fetchRange takes
// it), or null after counting a playback error.
export function startPlayback(stack, res, firstBytes, deadline, reportParams, m) {
  const s = res.status === 200 ? json(res) : null;
  if (!check(s, { 'stream 200 with URLs': (x) => x !== null && Array.isArray(x.urls) && x.urls.length > 0 })) {
    m.playbackErrors.add(1);
    return null;
  }
  const t = res.timings;
  const streamMs = t.blocked + t.connecting + t.tls_handshaking + t.duration;
  m.tracksStarted.add(1);
  // After an album's release the control plane spreads players out.
  const delay = s.start_delay_ms || 0;
  if (m.startDelay) m.startDelay.add(delay);
  if (delay > 0) sleep(delay / 1000);
  const st = { urls: s.urls, idx: 0, decisionId: s.decision_id, reportParams };
  const firstEnd = Math.min(firstBytes, s.file.size) - 1;
  const t0 = Date.now();
  if (fetchRange(stack, st, 0, firstEnd, deadline, m) === null) {
    m.playbackErrors.add(1);
    return null;
  }
  m.timeToFirstAudio.add(streamMs + (Date.now() - t0));
  return { answer: s, st, firstEnd };
}

// ------------------------------------------------------------ metrics

// Sum of a Prometheus counter's samples in `text`, by the value of label
// `by` (all samples under '' when `by` is empty). null if the metric is not
// in the text at all.
export function promSum(text, metric, by) {
  const out = {};
  let found = false;
  for (const line of String(text).split('\n')) {
    if (!line.startsWith(metric)) continue;
    const rest = line.slice(metric.length);
    if (rest[0] !== '{' && rest[0] !== ' ') continue;
    let labels = '';
    let value;
    if (rest[0] === '{') {
      const close = rest.indexOf('}');
      labels = rest.slice(1, close);
      value = Number(rest.slice(close + 1).trim().split(' ')[0]);
    } else {
      value = Number(rest.trim().split(' ')[0]);
    }
    if (!Number.isFinite(value)) continue;
    found = true;
    let key = '';
    if (by) {
      const m = new RegExp(`(?:^|,)${by}="([^"]*)"`).exec(labels);
      key = m ? m[1] : '';
    }
    out[key] = (out[key] || 0) + value;
  }
  return found ? out : null;
}

const SCRAPE = { tags: { name: 'metrics' }, timeout: '5s', responseCallback: http.expectedStatuses({ min: 200, max: 599 }) };

// One edge's cadenza_edge_slice_lookups_total by result
// ({hit, disk, miss, coalesced}), or null if its admin listener does not
// answer with the edge's metrics. (A Prometheus counter with labels shows
// no sample before its first increment: absent counts as 0.)
export function edgeLookups(edge) {
  const res = http.get(`${edge.admin_url}/metrics`, SCRAPE);
  if (res.status !== 200 || String(res.body).indexOf('cadenza_edge_') < 0) return null;
  const by = promSum(res.body, 'cadenza_edge_slice_lookups_total', 'result') || {};
  return { hit: by.hit || 0, disk: by.disk || 0, miss: by.miss || 0, coalesced: by.coalesced || 0 };
}

// Sum of the origin's cadenza_origin_requests_total (every method and
// status; 0 before its first request), or null when the origin serves no
// metrics (an origin from before GET /metrics answers it with a 404).
export function originRequests(stack) {
  const res = http.get(`${stack.origin.url}/metrics`, SCRAPE);
  if (res.status !== 200 || String(res.body).indexOf('cadenza_origin_') < 0) return null;
  const by = promSum(res.body, 'cadenza_origin_requests_total', '');
  return by === null ? 0 : by[''];
}

// ------------------------------------------------------------ summary

function fmtNum(v) {
  if (v === undefined || v === null) return '-';
  if (Number.isInteger(v) || Math.abs(v) >= 100) return String(Math.round(v * 100) / 100);
  return v.toFixed(Math.abs(v) >= 1 ? 2 : 3);
}

function fmtMetric(m, stats) {
  const v = m.values;
  switch (m.type) {
    case 'trend': {
      const keys = stats.filter((k) => k in v).concat(Object.keys(v).filter((k) => stats.indexOf(k) < 0));
      return keys.map((k) => `${k}=${fmtNum(v[k])}${m.contains === 'time' ? 'ms' : ''}`).join(' ');
    }
    case 'counter':
      return `count=${fmtNum(v.count)} rate=${fmtNum(v.rate)}/s`;
    case 'rate':
      return `${fmtNum(v.rate * 100)}% (${v.passes} of ${v.passes + v.fails})`;
    case 'gauge':
      return `value=${fmtNum(v.value)}`;
    default:
      return JSON.stringify(v);
  }
}

// A plain-text summary: thresholds first (✓ held, ✗ crossed), then every
// metric. k6's own text summary is not importable offline, so this stands
// in for it when handleSummary must return files too.
export function textSummary(data) {
  const lines = [];
  const names = Object.keys(data.metrics).sort();
  const thresholds = [];
  for (const name of names) {
    const t = data.metrics[name].thresholds || {};
    for (const expr of Object.keys(t)) thresholds.push(`  ${t[expr].ok ? '✓' : '✗'} ${name} ${expr}`);
  }
  lines.push('THRESHOLDS');
  lines.push(...(thresholds.length ? thresholds : ['  (none)']));
  const checks = [];
  const walk = (g) => {
    for (const c of g.checks || []) checks.push(`  ${c.fails ? '✗' : '✓'} ${c.name}: ${c.passes} passed, ${c.fails} failed`);
    for (const sub of g.groups || []) walk(sub);
  };
  if (data.root_group) walk(data.root_group);
  if (checks.length) lines.push('CHECKS', ...checks);
  lines.push('METRICS');
  const width = Math.min(48, Math.max(...names.map((n) => n.length)) + 1);
  const stats = (data.options && data.options.summaryTrendStats) || [];
  for (const name of names) lines.push(`  ${name.padEnd(width, '.')} ${fmtMetric(data.metrics[name], stats)}`);
  const failed = thresholds.filter((l) => l.indexOf('✗') >= 0).length;
  lines.push(failed ? `${failed} threshold(s) crossed` : 'all thresholds held');
  return `\n${lines.join('\n')}\n\n`;
}

// handleSummary for every script: k6's own summary on stdout, unless
// -e SUMMARY=<file> asks for the JSON too, in which case stdout gets
// textSummary() (returning any object replaces k6's summary).
export function summary(data) {
  if (!__ENV.SUMMARY) return undefined;
  return { stdout: textSummary(data), [__ENV.SUMMARY]: JSON.stringify(data, null, 1) };
}
