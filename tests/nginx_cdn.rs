//! nginx as a second CDN, for real: the dev stack (origin, edges, control
//! plane), a real `nginx` on loopback caching the origin behind
//! `secure_link`, registered through the admin API as an
//! `nginx_secure_link` CDN. The control plane's stream answer names a URL
//! on it; nginx serves exactly the store's bytes for it (whole and in
//! ranges, from its cache once warm, one cache entry whatever the query),
//! and refuses a tampered tag, another user, an expired URL and another
//! file's path. Then the secret is rotated as `docs/cdn.md` says: nginx
//! checks the new secret and falls back to the old one, so URLs issued
//! before the change keep working while the control plane signs with the
//! new secret; once the old secret is dropped its URLs are refused.
//!
//! The nginx configs written here are the ones `docs/cdn.md` shows, with
//! test-only paths and ports; a second test checks the page still shows
//! them (and that its `[[cdns]]` and admin API examples parse). The first
//! needs `nginx` with the secure_link module (Debian's package has it);
//! `.ci/run` installs it and sets `CADENZA_REQUIRE_NGINX=1`, so there a
//! missing nginx fails the test; elsewhere the test says it was skipped.

mod support;

use std::collections::HashSet;
use std::fmt::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use cadenza_config::ids::{FileId, UserId};
use cadenza_config::secure_link;
use cadenza_config::service::{CdnConfig, CdnKind, DemoConfig, DevConfig};
use cadenza_control::types::{CdnKindName, CdnSpec, StreamResponse};
use cadenza_dev::stack::StackFile;
use support::free_port;

/// The CDN's secret before and after the rotation (16+ characters, no
/// whitespace or quotes: it is pasted into nginx's config).
const OLD_SECRET: &str = "nginx-cdn-test-secret-one";
const NEW_SECRET: &str = "nginx-cdn-test-secret-two";
/// A secret neither nginx nor the control plane knows.
const STRANGER: &str = "nginx-cdn-test-secret-xxx";

/// What `docs/cdn.md` shows in place of the secrets and of the old secret's
/// socket.
const DOC_SECRET: &str = "REPLACE-with-the-cdn-secret";
const DOC_NEW_SECRET: &str = "REPLACE-with-the-new-secret";
const DOC_SOCK: &str = "/run/nginx-cadenza-old-secret.sock";

/// How long nginx may take to start or reload.
const NGINX_WAIT: Duration = Duration::from_secs(10);

/// An nginx built with the secure_link module (`nginx -V` lists it).
fn nginx_binary() -> Option<PathBuf> {
    // Debian installs it in /usr/sbin, which is not on every user's PATH.
    ["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/local/nginx/sbin/nginx", "nginx"]
        .iter()
        .map(PathBuf::from)
        .find(|bin| {
            Command::new(bin).arg("-V").output().is_ok_and(|out| {
                String::from_utf8_lossy(&out.stderr).contains("--with-http_secure_link_module")
            })
        })
}

/// The `location` serving `/a/<file_id>.ogg` for URLs signed with `secret`
/// (`docs/cdn.md` shows the same block): check the link, then serve the
/// origin's `audio/<file_id>.ogg` through the cache. With `fallback`, a
/// URL this secret refuses goes to `@old_secret` (rotation).
fn audio_location(secret: &str, fallback: bool) -> String {
    let mut checks = String::new();
    for line in secure_link::nginx_directives(secret).lines() {
        writeln!(checks, "    {line}").unwrap();
    }
    if fallback {
        checks.push_str("    error_page 403 = @old_secret;\n");
    }
    format!(
        r#"location ~ "^/a/([0-9a-f]{{32}})\.ogg$" {{
{checks}    if ($secure_link = "") {{ return 403; }}
    if ($secure_link = "0") {{ return 410; }}

    proxy_pass http://cadenza_origin/audio/$1.ogg;
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    proxy_cache cadenza_audio;
    # One entry per file, whoever's URL and whatever its expiry.
    proxy_cache_key $uri;
    # Content-addressed files never change.
    proxy_cache_valid 200 30d;
    proxy_cache_lock on;
    add_header X-Cache-Status $upstream_cache_status always;
}}
"#
    )
}

/// Where a URL the new secret refuses goes while rotating: the server
/// block on `sock` that checks the old secret ([`old_secret_server`]).
fn old_secret_location(sock: &str) -> String {
    format!("location @old_secret {{\n    proxy_pass http://unix:{sock};\n}}\n")
}

/// The server block checking the old secret while rotating: a request of
/// its own, so its `$secure_link` is computed afresh.
fn old_secret_server(sock: &str, old: &str) -> String {
    format!("server {{\n    listen unix:{sock};\n\n{}}}\n", indent(&audio_location(old, false), 4))
}

/// `text` with every non-empty line indented by `n` spaces.
fn indent(text: &str, n: usize) -> String {
    text.lines().map(|l| if l.is_empty() { "\n".to_owned() } else { format!("{:n$}{l}\n", "") }).collect()
}

/// The control plane's probe target (a POP without `admin_url` is probed at
/// `<url>/healthz`).
const HEALTHZ: &str = "location = /healthz { return 200; }\n";

/// Which secrets nginx accepts.
#[derive(Clone, Copy, Debug)]
enum Secrets<'a> {
    One(&'a str),
    /// `new` first, then `old` through a second server block on a unix
    /// socket (a second `secure_link` in the same request would reuse the
    /// first one's cached result).
    Rotating {
        new: &'a str,
        old: &'a str,
    },
    /// What does not work: `new` first, then `old` in a named location of
    /// the same request (`docs/cdn.md` warns against it). The named
    /// location answers 200 with the `$secure_link` it sees.
    SameRequest {
        new: &'a str,
        old: &'a str,
    },
}

/// `nginx.conf`: nginx on `127.0.0.1:<port>` in front of `origin`, its
/// files in `dir`, accepting URLs signed with `secrets`. `/_generation`
/// answers `generation` (test only: it tells when a reload is live).
fn config(dir: &Path, port: u16, origin: &str, generation: u32, secrets: Secrets<'_>) -> String {
    let sock = format!("{}/old-secret.sock", dir.display());
    let (locations, old_server) = match secrets {
        Secrets::One(secret) => (audio_location(secret, false), String::new()),
        Secrets::Rotating { new, old } => {
            (audio_location(new, true) + &old_secret_location(&sock), old_secret_server(&sock, old))
        }
        Secrets::SameRequest { new, old } => {
            let named = format!(
                "location @old_secret {{\n{}    return 200 \"secure_link=[$secure_link]\";\n}}\n",
                indent(&secure_link::nginx_directives(old), 4)
            );
            (audio_location(new, true) + &named, String::new())
        }
    };
    let (locations, old_server) = (indent(&locations, 8), indent(&old_server, 4));
    let dir = dir.display();
    format!(
        r#"worker_processes 1;
error_log {dir}/error.log info;

events {{
    worker_connections 256;
}}

http {{
    access_log {dir}/access.log;
    client_body_temp_path {dir}/tmp/body;
    proxy_temp_path {dir}/tmp/proxy;
    fastcgi_temp_path {dir}/tmp/fastcgi;
    uwsgi_temp_path {dir}/tmp/uwsgi;
    scgi_temp_path {dir}/tmp/scgi;

    proxy_cache_path {dir}/cache levels=1:2 keys_zone=cadenza_audio:10m
                     max_size=1g inactive=7d use_temp_path=off;

    upstream cadenza_origin {{
        server {origin};
        keepalive 16;
    }}

    server {{
        listen 127.0.0.1:{port};

        {HEALTHZ}        location = /_generation {{ return 200 "{generation}"; }}

{locations}    }}
{old_server}}}
"#
    )
}

/// nginx's command line for the config in `dir`, in the foreground.
fn args(dir: &Path) -> Vec<String> {
    let dir = dir.display();
    vec![
        "-p".into(),
        format!("{dir}/"),
        "-e".into(),
        format!("{dir}/error.log"),
        "-c".into(),
        format!("{dir}/nginx.conf"),
        "-g".into(),
        format!("daemon off; pid {dir}/nginx.pid;"),
    ]
}

/// A running nginx: stopped (master and workers) when dropped.
struct Nginx {
    bin: PathBuf,
    child: Child,
    dir: PathBuf,
    port: u16,
    origin: String,
    generation: u32,
    http: reqwest::Client,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGKILL on the master would orphan its workers, still serving:
        // `-s stop` (SIGTERM) makes it stop them and exit.
        let workers = self.children();
        let _ = Command::new(&self.bin)
            .args(args(&self.dir))
            .args(["-s", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        if !workers.is_empty() {
            let _ = Command::new("kill").arg("-KILL").args(workers.iter().map(u32::to_string)).status();
        }
    }
}

impl Nginx {
    /// Start nginx with its files in `dir` in front of `origin`
    /// (`127.0.0.1:<port>`) and wait until it answers.
    async fn start(bin: PathBuf, dir: &Path, origin: &str, secrets: Secrets<'_>) -> Self {
        // nginx started as root serves from unprivileged workers: they must
        // reach the cache and temp dirs nginx creates in here.
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::create_dir_all(dir.join("tmp")).unwrap();
        let (port, generation) = (free_port(), 1);
        std::fs::write(dir.join("nginx.conf"), config(dir, port, origin, generation, secrets)).unwrap();
        let stderr = std::fs::File::create(dir.join("stderr.log")).unwrap();
        let child = Command::new(&bin)
            .args(args(dir))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("{}: {e}", bin.display()));
        let mut nginx = Nginx {
            bin,
            child,
            dir: dir.to_owned(),
            port,
            origin: origin.to_owned(),
            generation,
            http: client(),
        };
        nginx.wait_for_generation().await;
        nginx
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Rewrite the config and reload: new workers take it, old ones finish.
    async fn reload(&mut self, secrets: Secrets<'_>) {
        self.generation += 1;
        let config = config(&self.dir, self.port, &self.origin, self.generation, secrets);
        std::fs::write(self.dir.join("nginx.conf"), config).unwrap();
        let old_workers = self.children();
        let out = Command::new(&self.bin).args(args(&self.dir)).args(["-s", "reload"]).output().unwrap();
        assert!(
            out.status.success(),
            "nginx -s reload: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.logs()
        );
        self.wait_for_generation().await;
        // New workers answer as soon as they start, but the old ones keep
        // accepting connections (with the old config) until the master
        // tells them to quit: wait until they are gone.
        let deadline = Instant::now() + NGINX_WAIT;
        loop {
            let left: Vec<u32> = self.children().intersection(&old_workers).copied().collect();
            if left.is_empty() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "nginx's old workers {left:?} still run {NGINX_WAIT:?} after the reload:\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Pids of the master's live children (workers, cache manager and
    /// loader), from `/proc`.
    fn children(&self) -> HashSet<u32> {
        let master = self.child.id();
        let entries = std::fs::read_dir("/proc").unwrap();
        entries
            .flatten()
            .filter_map(|e| {
                let pid: u32 = e.file_name().to_str()?.parse().ok()?;
                let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
                // `pid (comm) state ppid …`; comm may hold spaces and parentheses.
                let mut fields = stat.rsplit_once(')')?.1.split_whitespace();
                let state = fields.next()?;
                let ppid: u32 = fields.next()?.parse().ok()?;
                (ppid == master && state != "Z" && state != "X").then_some(pid)
            })
            .collect()
    }

    /// Poll `/_generation` until it answers this config's number, at most
    /// [`NGINX_WAIT`].
    async fn wait_for_generation(&mut self) {
        let want = self.generation.to_string();
        let deadline = Instant::now() + NGINX_WAIT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("nginx exited ({status}) before serving:\n{}", self.logs());
            }
            let last = match self.http.get(format!("{}/_generation", self.url())).send().await {
                Ok(resp) => {
                    let status = resp.status();
                    let body = resp.text().await.unwrap_or_default();
                    if status == 200 && body == want {
                        return;
                    }
                    format!("{status} {body:?}")
                }
                Err(e) => e.to_string(),
            };
            assert!(
                Instant::now() < deadline,
                "nginx did not serve config {want} on port {} within {NGINX_WAIT:?} (last: {last}):\n{}",
                self.port,
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// nginx's error log and stderr, for failure messages.
    fn logs(&self) -> String {
        let read = |name: &str| std::fs::read_to_string(self.dir.join(name)).unwrap_or_default();
        format!("--- error.log\n{}--- stderr\n{}", read("error.log"), read("stderr.log"))
    }
}

fn client() -> reqwest::Client {
    cadenza_origin::install_crypto_provider();
    // No idle connections: nginx's reload closes them under our feet.
    reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// What a GET got: status, `X-Cache-Status`, `Content-Range`, body.
struct Got {
    status: u16,
    cache: String,
    content_range: String,
    body: Bytes,
}

async fn get(http: &reqwest::Client, url: &str, range: Option<&str>) -> Got {
    let mut req = http.get(url);
    if let Some(r) = range {
        req = req.header("range", r);
    }
    let resp = req.send().await.unwrap_or_else(|e| panic!("GET {}: {e}", redact(url)));
    let header =
        |name: &str| resp.headers().get(name).map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    let (cache, content_range) = (header("x-cache-status"), header("content-range"));
    let status = resp.status().as_u16();
    Got { status, cache, content_range, body: resp.bytes().await.unwrap() }
}

/// A URL without its query, for messages (the query is a credential).
fn redact(url: &str) -> &str {
    url.split_once('?').map_or(url, |(path, _)| path)
}

async fn stream(http: &reqwest::Client, s: &StackFile, track: &str) -> StreamResponse {
    let resp = http
        .post(format!("{}/v1/playback/stream", s.control.url))
        .bearer_auth(&s.demo.user_token)
        .json(&serde_json::json!({ "track_id": track }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "stream answer for {track}");
    resp.json().await.unwrap()
}

/// The answer's URL on the nginx CDN.
fn nginx_url(answer: &StreamResponse, nginx: &Nginx) -> String {
    let url = answer
        .urls
        .iter()
        .find(|u| u.cdn == "nginx")
        .unwrap_or_else(|| panic!("no nginx URL among {:?}", answer.urls))
        .clone();
    assert_eq!(url.pop, "local");
    let path = cadenza_config::layout::edge_path(&answer.file.file_id);
    assert!(
        url.url.starts_with(&format!("{}{path}?md5=", nginx.url())),
        "nginx URL has the secure_link shape: {}",
        redact(&url.url)
    );
    url.url
}

async fn put_cdn(http: &reqwest::Client, s: &StackFile, nginx: &Nginx, secret: &str) -> u16 {
    let resp = http
        .put(format!("{}/v1/admin/cdns/nginx", s.control.url))
        .bearer_auth(&s.control.admin_token)
        .json(&serde_json::json!({
            "kind": "nginx_secure_link",
            "secret": secret,
            "pops": [{
                "name": "local",
                "url": nginx.url(),
            }],
        }))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let view: serde_json::Value = resp.json().await.unwrap();
    assert!(matches!(status, 200 | 201), "PUT /v1/admin/cdns/nginx: {status} {view}");
    assert_eq!(view["kind"], "nginx_secure_link", "{view}");
    assert_eq!(view["has_secret"], true, "{view}");
    assert!(!view.to_string().contains(secret), "the secret is never shown: {view}");
    status
}

/// Wait until the control plane's probe (of `<url>/healthz`, the default
/// for a POP without `admin_url`) marks the POP up.
async fn wait_pop_up(http: &reqwest::Client, s: &StackFile) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let view: serde_json::Value = http
            .get(format!("{}/v1/admin/cdns/nginx", s.control.url))
            .bearer_auth(&s.control.admin_token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if view["pops"][0]["state"] == "up" {
            return;
        }
        assert!(Instant::now() < deadline, "the nginx POP never probed up: {view}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `url` with `key=value` in its query replaced by `key=<f(value)>`.
fn with_param(url: &str, key: &str, f: impl Fn(&str) -> String) -> String {
    let (base, query) = url.split_once('?').unwrap();
    let query: Vec<String> = query
        .split('&')
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) if k == key => format!("{k}={}", f(v)),
            _ => kv.to_owned(),
        })
        .collect();
    format!("{base}?{}", query.join("&"))
}

/// A URL for `file` signed with `secret`, expiring at `exp`.
fn signed(nginx: &Nginx, secret: &str, file: &FileId, user: &UserId, exp: u64) -> String {
    let path = cadenza_config::layout::edge_path(file);
    format!("{}{path}?{}", nginx.url(), secure_link::sign_query(secret, &path, user, exp))
}

/// Ranges a player asks for (the first 64 KiB, one in the middle, the
/// tail), answered from nginx's cache.
async fn check_ranges(http: &reqwest::Client, url: &str, want: &Bytes) {
    let size = want.len();
    for (start, end) in [(0, 65_535), (size / 2, size / 2 + 9_999), (size - 1_000, size - 1)] {
        let got = get(http, url, Some(&format!("bytes={start}-{end}"))).await;
        assert_eq!((got.status, got.cache.as_str()), (206, "HIT"), "range {start}-{end} of {}", redact(url));
        assert_eq!(got.content_range, format!("bytes {start}-{end}/{size}"));
        assert!(got.body == want.slice(start..=end), "range {start}-{end}: bytes differ from the store's");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_cdn_serves_urls_signed_for_it_and_refuses_the_rest() {
    let Some(bin) = nginx_binary() else {
        assert!(
            std::env::var("CADENZA_REQUIRE_NGINX").as_deref() != Ok("1"),
            "CADENZA_REQUIRE_NGINX=1 but no nginx with the secure_link module is installed"
        );
        eprintln!(
            "SKIPPED: no nginx with the secure_link module (apt-get install nginx); the nginx CDN test did not run"
        );
        return;
    };

    let data = tempfile::tempdir().unwrap();
    let stack = cadenza_dev::start(DevConfig {
        data_dir: data.path().to_owned(),
        base_port: 0,
        demo: DemoConfig { tracks: 2, first_seconds: 16, step_seconds: 2 },
        ..DevConfig::default()
    })
    .await
    .unwrap();
    let s = stack.stack().clone();
    let http = client();
    let user: UserId = s.demo.user_id.parse().unwrap();
    let store = cadenza_origin::open_store(&s.origin.store).unwrap();

    let nginx_dir = tempfile::tempdir().unwrap();
    let origin = s.origin.url.strip_prefix("http://").expect("plain HTTP origin");
    let mut nginx = Nginx::start(bin, nginx_dir.path(), origin, Secrets::One(OLD_SECRET)).await;

    // Registered through the admin API, probed at /healthz.
    assert_eq!(put_cdn(&http, &s, &nginx, OLD_SECRET).await, 201, "created");
    wait_pop_up(&http, &s).await;

    // The stream answer's URL on nginx, and the object it must serve.
    let answer = stream(&http, &s, &s.demo.track_ids[0]).await;
    let url = nginx_url(&answer, &nginx);
    let file = answer.file.file_id;
    let want = cadenza_origin::read_audio(store.as_ref(), &file).await.unwrap();
    assert_eq!(want.len() as u64, answer.file.size, "the answer's size is the stored object's");
    assert!(want.starts_with(b"OggS"), "an Ogg file");
    assert!(want.len() > 3 * 65_536, "long enough for the ranges to be partial: {}", want.len());

    // A player's first request is a range: a miss, which nginx fills from
    // the origin with the whole file (for its cache) while answering the
    // range. (proxy_cache_lock: a request during the fill waits for it.)
    let got = get(&http, &url, Some("bytes=0-65535")).await;
    assert_eq!(got.status, 206, "{}", nginx.logs());
    assert_eq!(got.cache, "MISS");
    assert_eq!(got.content_range, format!("bytes 0-65535/{}", want.len()));
    assert!(got.body == want.slice(..65_536), "first range: bytes differ from the store's");
    // So the whole file is then a hit, and so are ranges.
    let got = get(&http, &url, None).await;
    assert_eq!((got.status, got.cache.as_str()), (200, "HIT"), "the range's miss cached the whole file");
    assert!(got.body.starts_with(b"OggS") && got.body.len() as u64 == answer.file.size);
    assert!(got.body == want, "whole file: bytes differ from the store's");
    check_ranges(&http, &url, &want).await;

    // Another valid URL for the file (another expiry) is the same cache
    // entry: the query is not part of the key.
    let later = signed(&nginx, OLD_SECRET, &file, &user, answer.expires_at + 60);
    let got = get(&http, &later, None).await;
    assert_eq!((got.status, got.cache.as_str()), (200, "HIT"), "one cache entry per file");
    assert!(got.body == want);

    // Refusals.
    let other = stream(&http, &s, &s.demo.track_ids[1]).await;
    let other_url = nginx_url(&other, &nginx);
    assert_ne!(other.file.file_id, file);
    let other_path = cadenza_config::layout::edge_path(&other.file.file_id);
    let query = url.split_once('?').unwrap().1;
    let cases = [
        (
            ("tampered md5", 403),
            with_param(&url, "md5", |v| {
                let mut t = v.to_owned().into_bytes();
                t[0] = if t[0] == b'A' { b'B' } else { b'A' };
                String::from_utf8(t).unwrap()
            }),
        ),
        (("another uid", 403), with_param(&url, "uid", |_| "someone-else".into())),
        (
            ("a later expires", 403),
            with_param(&url, "expires", |v| (v.parse::<u64>().unwrap() + 1).to_string()),
        ),
        (("another file's path", 403), format!("{}{other_path}?{query}", nginx.url())),
        (("no query", 403), format!("{}{}", nginx.url(), cadenza_config::layout::edge_path(&file))),
        (("signed with another secret", 403), signed(&nginx, STRANGER, &file, &user, answer.expires_at)),
        (
            ("expired, signed right", 410),
            signed(&nginx, OLD_SECRET, &file, &user, cadenza_config::unix_now() - 60),
        ),
    ];
    for ((what, status), bad) in &cases {
        let got = get(&http, bad, None).await;
        assert_eq!(got.status, *status, "{what}: {}", redact(bad));
        assert!(got.body.len() < 1024 && !got.body.starts_with(b"OggS"), "{what}: no audio");
    }
    // The other file exists and its own URL works: the 403 above was the
    // signature's.
    let other_want = cadenza_origin::read_audio(store.as_ref(), &other.file.file_id).await.unwrap();
    let got = get(&http, &other_url, None).await;
    assert_eq!((got.status, got.cache.as_str()), (200, "MISS"));
    assert!(got.body == other_want, "other file: bytes differ from the store's");

    // Rotation. The tempting way does not work: a second `secure_link` in
    // a named location of the same request sees the first one's result.
    nginx.reload(Secrets::SameRequest { new: NEW_SECRET, old: OLD_SECRET }).await;
    let got = get(&http, &url, None).await;
    assert_eq!(
        (got.status, String::from_utf8_lossy(&got.body).as_ref()),
        (200, "secure_link=[]"),
        "the named location checking the old secret should see the new secret's empty result \
         (\"[1]\": nginx now re-evaluates it, and docs/cdn.md needs a new rotation section)"
    );
    // Step 1: nginx accepts the new secret and the old one.
    nginx.reload(Secrets::Rotating { new: NEW_SECRET, old: OLD_SECRET }).await;
    let got = get(&http, &url, None).await;
    assert_eq!(got.status, 200, "a URL issued before the rotation still works:\n{}", nginx.logs());
    assert_eq!(got.cache, "HIT", "the old secret's server shares the cache");
    assert!(got.body == want);
    check_ranges(&http, &url, &want).await;
    // Step 2: the control plane signs with the new secret.
    assert_eq!(put_cdn(&http, &s, &nginx, NEW_SECRET).await, 200, "replaced");
    let rotated = stream(&http, &s, &s.demo.track_ids[0]).await;
    let new_url = nginx_url(&rotated, &nginx);
    assert_eq!(
        new_url,
        signed(&nginx, NEW_SECRET, &file, &user, rotated.expires_at),
        "the control plane signs with the new secret"
    );
    let got = get(&http, &new_url, None).await;
    assert_eq!((got.status, got.cache.as_str()), (200, "HIT"));
    assert!(got.body == want);
    check_ranges(&http, &new_url, &want).await;
    let past = cadenza_config::unix_now() - 60;
    for ((what, status), bad) in [
        (("expired, old secret", 410), signed(&nginx, OLD_SECRET, &file, &user, past)),
        (("expired, new secret", 410), signed(&nginx, NEW_SECRET, &file, &user, past)),
        (("another secret", 403), signed(&nginx, STRANGER, &file, &user, rotated.expires_at)),
        (("another uid", 403), with_param(&url, "uid", |_| "someone-else".into())),
        (("another uid, new secret", 403), with_param(&new_url, "uid", |_| "someone-else".into())),
        (("another file's path", 403), format!("{}{other_path}?{query}", nginx.url())),
    ] {
        let got = get(&http, &bad, None).await;
        assert_eq!(got.status, status, "while rotating, {what}: {}", redact(&bad));
    }
    // Step 3, once every old URL has expired: the old secret goes.
    nginx.reload(Secrets::One(NEW_SECRET)).await;
    assert_eq!(get(&http, &url, None).await.status, 403, "the old secret's URLs are refused");
    let got = get(&http, &new_url, None).await;
    assert_eq!((got.status, got.cache.as_str()), (200, "HIT"));
    assert!(got.body == want);

    drop(nginx);
    stack.shutdown().await.unwrap();
}

/// `docs/cdn.md`'s "nginx as a second CDN" shows the configs the test
/// above runs, and examples the control plane accepts.
#[test]
fn docs_show_the_tested_nginx_configs() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/cdn.md");
    let doc = std::fs::read_to_string(&path).unwrap();
    let start = doc.find("\n## nginx as a second CDN\n").expect("docs/cdn.md has the section") + 1;
    let section = &doc[start..];
    let section = section[3..].find("\n## ").map_or(section, |end| &section[..end + 3]);

    let nginx = fenced(section, "nginx");
    assert_eq!(nginx.len(), 2, "the config, then the rotation's");
    assert_shows(&nginx[0], &[HEALTHZ.to_owned() + &audio_location(DOC_SECRET, false)]);
    assert_shows(
        &nginx[1],
        &[
            HEALTHZ.to_owned() + &audio_location(DOC_NEW_SECRET, true) + &old_secret_location(DOC_SOCK),
            old_secret_server(DOC_SOCK, DOC_SECRET),
        ],
    );

    #[derive(serde::Deserialize)]
    struct Cdns {
        cdns: Vec<CdnConfig>,
    }
    let toml = fenced(section, "toml");
    assert_eq!(toml.len(), 1, "one [[cdns]] example");
    let cdns: Cdns = toml::from_str(&toml[0]).unwrap_or_else(|e| panic!("docs/cdn.md's TOML: {e}"));
    assert_eq!(cdns.cdns.len(), 1);
    let cdn = &cdns.cdns[0];
    cdn.validate("cdns[0]").unwrap();
    assert_eq!((cdn.kind, cdn.secret.expose()), (CdnKind::NginxSecureLink, DOC_SECRET));

    let json = fenced(section, "json");
    assert_eq!(json.len(), 1, "one admin API body");
    let spec: CdnSpec = serde_json::from_str(&json[0]).unwrap_or_else(|e| panic!("docs/cdn.md's JSON: {e}"));
    assert_eq!((spec.kind, spec.secret.as_deref()), (CdnKindName::NginxSecureLink, Some(DOC_SECRET)));
    assert!(section.contains(r#"curl -X PUT "$CONTROL/v1/admin/cdns/nginx""#));
}

/// The contents of the ```` ```lang ```` blocks of `text`.
fn fenced(text: &str, lang: &str) -> Vec<String> {
    let (mut blocks, mut open) = (Vec::new(), None::<String>);
    for line in text.lines() {
        match (&mut open, line.trim()) {
            (None, l) if l == format!("```{lang}") => open = Some(String::new()),
            (Some(_), "```") => blocks.push(open.take().unwrap()),
            (Some(block), _) => {
                block.push_str(line);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    blocks
}

/// nginx config lines without comments, indentation, alignment or blank
/// lines.
fn directives(config: &str) -> Vec<String> {
    config
        .lines()
        .map(|line| {
            let code = line
                .char_indices()
                .find(|&(i, c)| c == '#' && (i == 0 || line[..i].ends_with(char::is_whitespace)));
            let code = code.map_or(line, |(i, _)| &line[..i]);
            code.split_whitespace().collect::<Vec<_>>().join(" ")
        })
        .filter(|l| !l.is_empty())
        .collect()
}

/// `shown` holds each of `pieces`, directive for directive, as an unbroken
/// run, in this order.
fn assert_shows(shown: &str, pieces: &[String]) {
    let shown = directives(shown);
    let mut from = 0;
    for piece in pieces {
        let piece = directives(piece);
        let at = shown.windows(piece.len()).skip(from).position(|w| w == piece).unwrap_or_else(|| {
            panic!(
                "docs/cdn.md does not show the tested config:\n{}\n--- in:\n{}",
                piece.join("\n"),
                shown.join("\n")
            )
        });
        let at = from + at;
        from = at + piece.len();
    }
}
