//! Real servers for edge tests: an edge over a file:// store, a
//! `cadenza origin` in front of it, and origins that misbehave on purpose.

#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use cadenza_config::ids::FileId;
use cadenza_config::service::{
    AdminConfig, EdgeCacheConfig, EdgeConfig, KeySpec, SigningConfig, UpstreamConfig,
};
use cadenza_config::token::{SigningKey, sign_query};
use cadenza_config::units::{ByteSize, HumanDuration, Secret};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;

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

    /// Sum of a counter's samples whose labels contain every `label`.
    pub async fn counter(&self, name: &str, labels: &[&str]) -> u64 {
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

pub fn key() -> SigningKey {
    SigningKey::new("test1".parse().unwrap(), vec![7; 32]).unwrap()
}

pub fn edge_config(origin_url: &str, slice: ByteSize, timeout: Duration) -> EdgeConfig {
    let defaults = EdgeConfig::default();
    EdgeConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        admin: AdminConfig { listen: "127.0.0.1:0".parse().unwrap(), token: Secret::new(ADMIN_TOKEN) },
        origin: UpstreamConfig { url: origin_url.to_owned(), timeout: HumanDuration(timeout) },
        cache: EdgeCacheConfig { slice, memory: ByteSize::mib(64) },
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
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let bytes: Bytes = (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect::<Vec<u8>>()
        .into();
    let file = FileId::of_content(&bytes);
    let store = cadenza_origin::open_store(&url).unwrap();
    cadenza_origin::put_audio(store.as_ref(), &file, bytes.clone()).await.unwrap();
    TestStore { dir, url, file, bytes }
}

pub fn store_dir(s: &TestStore) -> PathBuf {
    s.dir.path().to_owned()
}

/// How a [`FaultyOrigin`] misbehaves on range GETs (HEAD is always right).
#[derive(Clone, Copy, Debug)]
pub enum Fault {
    /// Promise the full range, send half, close.
    Truncate,
    /// Accept the request and never answer.
    Stall,
    /// Close the connection without a byte.
    Reset,
}

/// A tiny real HTTP/1.1 origin that answers HEAD correctly for one object
/// and breaks range GETs in the chosen way.
pub async fn faulty_origin(
    file: FileId,
    len: u64,
    fault: Fault,
) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let mut got = 0;
                loop {
                    let Ok(n) = sock.read(&mut buf[got..]).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    got += n;
                    if buf[..got].windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                    if got == buf.len() {
                        return;
                    }
                }
                let req = String::from_utf8_lossy(&buf[..got]).to_string();
                let expected_path = format!("/audio/{file}.ogg");
                if !req.lines().next().unwrap_or("").contains(&expected_path) {
                    let _ = sock.write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n").await;
                    return;
                }
                if req.starts_with("HEAD ") {
                    let _ = sock
                        .write_all(
                            format!(
                                "HTTP/1.1 200 OK\r\ncontent-length: {len}\r\naccept-ranges: bytes\r\n\r\n"
                            )
                            .as_bytes(),
                        )
                        .await;
                    return;
                }
                match fault {
                    Fault::Reset => drop(sock),
                    Fault::Stall => tokio::time::sleep(Duration::from_secs(60)).await,
                    Fault::Truncate => {
                        let (a, b) = range_of(&req).unwrap_or((0, len - 1));
                        let n = b - a + 1;
                        let head = format!(
                            "HTTP/1.1 206 Partial Content\r\ncontent-length: {n}\r\ncontent-range: bytes {a}-{b}/{len}\r\n\r\n"
                        );
                        let _ = sock.write_all(head.as_bytes()).await;
                        let _ = sock.write_all(&vec![0u8; (n / 2) as usize]).await;
                    }
                }
            });
        }
    });
    (addr, task)
}

fn range_of(req: &str) -> Option<(u64, u64)> {
    let line = req.lines().find(|l| l.to_ascii_lowercase().starts_with("range:"))?;
    let spec = line.split_once('=')?.1.trim();
    let (a, b) = spec.split_once('-')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}
