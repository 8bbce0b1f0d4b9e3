//! Real servers for edge tests: an edge over a file:// store, a
//! `cadenza origin` in front of it, and origins that misbehave on purpose.

#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use cadenza_config::ids::FileId;
use cadenza_config::service::{
    AdminConfig, EdgeCacheConfig, EdgeConfig, KeySpec, SigningConfig, UpstreamConfig,
};
use cadenza_config::token::{SigningKey, sign_query};
use cadenza_config::units::{ByteSize, HumanDuration, Secret};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{oneshot, watch};

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

pub struct TestEdge {
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    pub key: SigningKey,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl TestEdge {
    pub fn url(&self, file: &FileId, uid: &str, exp: u64) -> String {
        let path = cadenza_config::layout::edge_path(file);
        format!("http://{}{path}?{}", self.addr, sign_query(&self.key, &path, &uid.parse().unwrap(), exp))
    }

    pub fn good_url(&self, file: &FileId) -> String {
        self.url(file, "listener1", cadenza_config::unix_now() + 600)
    }

    pub async fn metrics(&self) -> String {
        client().get(format!("http://{}/metrics", self.admin)).send().await.unwrap().text().await.unwrap()
    }

    /// Wait until no fill is running. A response can end before the fill
    /// that fed it (a short range needs only the first bytes), and fills
    /// count their upstream request when they finish.
    pub async fn settle(&self) {
        for _ in 0..500 {
            let m = self.metrics().await;
            let running = m
                .lines()
                .find(|l| l.starts_with("cadenza_edge_fills_in_flight"))
                .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok());
            if running == Some(0.0) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("fills still running after 5 s");
    }

    /// Sum of a counter's samples whose labels contain every `label`, once
    /// running fills have finished.
    pub async fn counter(&self, name: &str, labels: &[&str]) -> u64 {
        self.settle().await;
        self.metrics()
            .await
            .lines()
            .filter(|l| l.starts_with(name) && labels.iter().all(|want| l.contains(want)))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(10), task).await.expect("edge stops").unwrap();
        }
    }
}

pub fn client() -> reqwest::Client {
    cadenza_origin::install_crypto_provider();
    reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(20)).build().unwrap()
}

/// A client that speaks HTTP/2 with prior knowledge (h2c), as the edge's
/// shared listener accepts on the same port.
pub fn h2_client() -> reqwest::Client {
    cadenza_origin::install_crypto_provider();
    reqwest::Client::builder()
        .no_proxy()
        .http2_prior_knowledge()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

/// One client per protocol the public listener serves, with the version
/// each response must come back in: a semantics test loops over these so
/// every behaviour is checked over HTTP/1.1 and HTTP/2 alike.
pub fn clients() -> [(reqwest::Version, reqwest::Client); 2] {
    [(reqwest::Version::HTTP_11, client()), (reqwest::Version::HTTP_2, h2_client())]
}

pub fn key() -> SigningKey {
    SigningKey::new("test1".parse().unwrap(), vec![7; 32]).unwrap()
}

pub fn edge_config(origin_url: &str, slice: ByteSize, timeout: Duration) -> EdgeConfig {
    let defaults = EdgeConfig::default();
    EdgeConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        admin: AdminConfig { listen: "127.0.0.1:0".parse().unwrap(), token: Secret::new(ADMIN_TOKEN) },
        origin: UpstreamConfig {
            url: origin_url.to_owned(),
            timeout: HumanDuration(timeout),
            ..defaults.origin.clone()
        },
        cache: EdgeCacheConfig { slice, memory: ByteSize::mib(64), ..defaults.cache.clone() },
        signing: SigningConfig { keys: vec![KeySpec::from_key(&key())], ..defaults.signing },
        ..defaults
    }
}

pub async fn start_edge(config: EdgeConfig) -> TestEdge {
    let server = cadenza_edge::EdgeServer::bind(config).await.unwrap();
    let (addr, admin) = (server.local_addr(), server.admin_addr());
    let (tx, rx) = oneshot::channel();
    let task = tokio::spawn(async move {
        server
            .serve(async {
                let _ = rx.await;
            })
            .await
            .unwrap();
    });
    TestEdge { addr, admin, key: key(), stop: Some(tx), task: Some(task) }
}

/// A file:// store in a temp dir holding one audio object of `len`
/// pseudo-random bytes.
pub struct TestStore {
    pub dir: tempfile::TempDir,
    pub url: String,
    pub file: FileId,
    pub bytes: Bytes,
}

pub async fn store_with_object(len: usize) -> TestStore {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}", dir.path().display());
    let bytes = noise(len);
    let file = FileId::of_content(&bytes);
    let store = cadenza_origin::open_store(&url).unwrap();
    cadenza_origin::put_audio(store.as_ref(), &file, bytes.clone()).await.unwrap();
    TestStore { dir, url, file, bytes }
}

pub fn store_dir(s: &TestStore) -> PathBuf {
    s.dir.path().to_owned()
}

/// How a [`FaultyOrigin`] answers range GETs (HEAD is always right).
#[derive(Clone, Copy, Debug)]
pub enum Fault {
    /// Answer correctly.
    None,
    /// Promise the full range, send this many bytes of it, close.
    TruncateAfter(usize),
    /// Accept the request and never answer.
    Stall,
    /// Close the connection without a byte.
    Reset,
    /// Answer with this status and no body.
    Status(u16),
    /// Answer correctly, but only after this long.
    SlowFirstByte(Duration),
    /// Send the headers and this many bytes, then wait until the gate opens
    /// before sending the rest.
    GateAfter(usize),
}

/// A tiny real HTTP/1.1 origin for one object that misbehaves on purpose,
/// counting what it is asked.
pub struct FaultyOrigin {
    pub addr: SocketAddr,
    pub gets: Arc<AtomicU64>,
    pub heads: Arc<AtomicU64>,
    /// Instant the first body byte of the first GET was written.
    pub first_byte: Arc<std::sync::Mutex<Option<std::time::Instant>>>,
    gate: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl FaultyOrigin {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Let gated responses finish.
    pub fn open_gate(&self) {
        let _ = self.gate.send(true);
    }
}

impl Drop for FaultyOrigin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub async fn faulty_origin(file: FileId, bytes: Bytes, fault: Fault) -> FaultyOrigin {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let gets = Arc::new(AtomicU64::new(0));
    let heads = Arc::new(AtomicU64::new(0));
    let first_byte = Arc::new(std::sync::Mutex::new(None));
    let (gate, gate_rx) = watch::channel(false);
    let (g, h, fb) = (gets.clone(), heads.clone(), first_byte.clone());
    let task = tokio::spawn(async move {
        // Connections live in this set, so aborting the task (on drop)
        // closes them too: the origin is really gone.
        let mut connections = tokio::task::JoinSet::new();
        loop {
            let Ok((sock, _)) = listener.accept().await else {
                return;
            };
            let (g, h, fb, gate_rx, bytes) =
                (g.clone(), h.clone(), fb.clone(), gate_rx.clone(), bytes.clone());
            connections.spawn(async move {
                let _ = answer_faulty(sock, file, bytes, fault, g, h, fb, gate_rx).await;
            });
            while connections.try_join_next().is_some() {}
        }
    });
    FaultyOrigin { addr, gets, heads, first_byte, gate, task }
}

#[allow(clippy::too_many_arguments)]
async fn answer_faulty(
    mut sock: tokio::net::TcpStream,
    file: FileId,
    bytes: Bytes,
    fault: Fault,
    gets: Arc<AtomicU64>,
    heads: Arc<AtomicU64>,
    first_byte: Arc<std::sync::Mutex<Option<std::time::Instant>>>,
    mut gate: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let len = bytes.len() as u64;
    // Keep-alive: answer requests on this connection until it closes.
    loop {
        let mut buf = vec![0u8; 8192];
        let mut got = 0;
        loop {
            let n = sock.read(&mut buf[got..]).await?;
            if n == 0 {
                return Ok(());
            }
            got += n;
            if buf[..got].windows(4).any(|w| w == b"\r\n\r\n") {
                break;
            }
            if got == buf.len() {
                return Ok(());
            }
        }
        let req = String::from_utf8_lossy(&buf[..got]).to_string();
        let expected_path = format!("/audio/{file}.ogg");
        if !req.lines().next().unwrap_or("").contains(&expected_path) {
            sock.write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n").await?;
            continue;
        }
        if req.starts_with("HEAD ") {
            heads.fetch_add(1, Ordering::SeqCst);
            let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {len}\r\naccept-ranges: bytes\r\n\r\n");
            sock.write_all(head.as_bytes()).await?;
            continue;
        }
        gets.fetch_add(1, Ordering::SeqCst);
        let (a, b) = range_of(&req).unwrap_or((0, len - 1));
        let body = bytes.slice(a as usize..=b as usize);
        let head = format!(
            "HTTP/1.1 206 Partial Content\r\ncontent-length: {}\r\ncontent-range: bytes {a}-{b}/{len}\r\n\r\n",
            body.len()
        );
        let mark = || {
            first_byte.lock().unwrap().get_or_insert_with(std::time::Instant::now);
        };
        match fault {
            Fault::Reset => return Ok(()),
            Fault::Stall => {
                tokio::time::sleep(Duration::from_secs(60)).await;
                return Ok(());
            }
            Fault::Status(code) => {
                let head = format!("HTTP/1.1 {code} Oops\r\ncontent-length: 0\r\n\r\n");
                sock.write_all(head.as_bytes()).await?;
            }
            Fault::None | Fault::SlowFirstByte(_) => {
                if let Fault::SlowFirstByte(d) = fault {
                    tokio::time::sleep(d).await;
                }
                sock.write_all(head.as_bytes()).await?;
                mark();
                sock.write_all(&body).await?;
            }
            Fault::TruncateAfter(n) => {
                sock.write_all(head.as_bytes()).await?;
                mark();
                sock.write_all(&body[..n.min(body.len())]).await?;
                return Ok(());
            }
            Fault::GateAfter(n) => {
                let n = n.min(body.len());
                sock.write_all(head.as_bytes()).await?;
                mark();
                sock.write_all(&body[..n]).await?;
                sock.flush().await?;
                let _ = gate.wait_for(|open| *open).await;
                sock.write_all(&body[n..]).await?;
            }
        }
    }
}

fn range_of(req: &str) -> Option<(u64, u64)> {
    let line = req.lines().find(|l| l.to_ascii_lowercase().starts_with("range:"))?;
    let spec = line.split_once('=')?.1.trim();
    let (a, b) = spec.split_once('-')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// `len` pseudo-random bytes (xorshift), the same every time.
pub fn noise(len: usize) -> Bytes {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect::<Vec<u8>>()
        .into()
}
