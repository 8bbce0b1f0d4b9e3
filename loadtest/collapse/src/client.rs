//! The crowd: N HTTP/1.1 connections opened first, then one request on each
//! released at once, every body read and compared byte by byte as it comes.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail};
use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Request, StatusCode};
use http_body_util::{BodyExt as _, Empty};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::{Semaphore, mpsc, watch};

/// What one request saw.
#[derive(Debug, Clone)]
pub(crate) struct Outcome {
    pub(crate) status: u16,
    pub(crate) x_cache: String,
    pub(crate) sent: Instant,
    pub(crate) headers: Instant,
    pub(crate) first_byte: Option<Instant>,
    pub(crate) done: Instant,
    pub(crate) body_len: u64,
    /// Every byte equal to the expected body, and all of it.
    pub(crate) body_ok: bool,
    pub(crate) error: Option<String>,
}

/// What to ask for, and what the answer must be.
#[derive(Debug, Clone)]
pub(crate) struct Ask {
    /// `/a/<id>.ogg?<signed query>`
    pub(crate) path_and_query: String,
    /// `Range` header value, if any.
    pub(crate) range: Option<String>,
    pub(crate) want_status: StatusCode,
    pub(crate) want_body: Bytes,
}

async fn connect(addr: SocketAddr) -> Result<SendRequest<Empty<Bytes>>> {
    let stream = TcpStream::connect(addr).await.with_context(|| format!("connect {addr}"))?;
    stream.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

/// Open `n` connections to `addr` (at most `parallel_connects` at a time),
/// then send `ask` on all of them at once; `timeout` bounds each response.
pub(crate) async fn crowd(
    addr: SocketAddr,
    ask: Ask,
    n: usize,
    parallel_connects: usize,
    timeout: Duration,
) -> Result<Vec<Outcome>> {
    let ask = Arc::new(ask);
    let gate = Arc::new(Semaphore::new(parallel_connects.max(1)));
    let (go_tx, go_rx) = watch::channel(false);
    let (ready_tx, mut ready_rx) = mpsc::channel::<Result<()>>(n.max(1));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..n {
        let (ask, gate, mut go_rx, ready_tx) = (ask.clone(), gate.clone(), go_rx.clone(), ready_tx.clone());
        tasks.spawn(async move {
            let sender = {
                let _permit = gate.acquire().await.map_err(|e| anyhow!("{e}"))?;
                connect(addr).await
            };
            let mut sender = match sender {
                Ok(s) => {
                    let _ = ready_tx.send(Ok(())).await;
                    s
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(anyhow!("{e:#}"))).await;
                    return Err(e);
                }
            };
            go_rx.wait_for(|go| *go).await.map_err(|_| anyhow!("crowd cancelled"))?;
            sender.ready().await?;
            Ok(tokio::time::timeout(timeout, one(&mut sender, &ask)).await.unwrap_or_else(|_| Outcome {
                status: 0,
                x_cache: String::new(),
                sent: Instant::now(),
                headers: Instant::now(),
                first_byte: None,
                done: Instant::now(),
                body_len: 0,
                body_ok: false,
                error: Some(format!("no complete response within {timeout:?}")),
            }))
        });
    }
    drop(ready_tx);
    for connected in 0..n {
        match ready_rx.recv().await {
            Some(Ok(())) => {}
            Some(Err(e)) => {
                tasks.abort_all();
                bail!(
                    "connection {} of {n} to {addr} failed: {e} (too many open files? raise `ulimit -n`)",
                    connected + 1
                );
            }
            None => bail!("connection tasks ended early"),
        }
    }
    go_tx.send(true).map_err(|_| anyhow!("no request task is waiting"))?;
    let mut out = Vec::with_capacity(n);
    while let Some(joined) = tasks.join_next().await {
        out.push(joined.context("request task panicked")??);
    }
    Ok(out)
}

async fn one(sender: &mut SendRequest<Empty<Bytes>>, ask: &Ask) -> Outcome {
    let mut req = Request::get(ask.path_and_query.as_str())
        .body(Empty::new())
        .expect("a path and query from `cadenza sign` is a valid URI");
    req.headers_mut().insert(header::HOST, HeaderValue::from_static("127.0.0.1"));
    if let Some(range) = &ask.range {
        req.headers_mut().insert(header::RANGE, HeaderValue::try_from(range.as_str()).expect("ASCII range"));
    }
    let sent = Instant::now();
    let mut outcome = Outcome {
        status: 0,
        x_cache: String::new(),
        sent,
        headers: sent,
        first_byte: None,
        done: sent,
        body_len: 0,
        body_ok: false,
        error: None,
    };
    let resp = match sender.send_request(req).await {
        Ok(r) => r,
        Err(e) => {
            outcome.error = Some(format!("request failed: {e}"));
            outcome.done = Instant::now();
            return outcome;
        }
    };
    outcome.headers = Instant::now();
    outcome.status = resp.status().as_u16();
    outcome.x_cache = resp
        .headers()
        .get("x-cache")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default();
    let want = &ask.want_body;
    let mut body = resp.into_body();
    let mut pos = 0usize;
    let mut same = true;
    loop {
        match body.frame().await {
            None => break,
            Some(Err(e)) => {
                outcome.error = Some(format!("body failed after {pos} bytes: {e}"));
                break;
            }
            Some(Ok(frame)) => {
                let Ok(data) = frame.into_data() else { continue };
                if data.is_empty() {
                    continue;
                }
                if outcome.first_byte.is_none() {
                    outcome.first_byte = Some(Instant::now());
                }
                let end = pos + data.len();
                if end > want.len() || want[pos..end] != data[..] {
                    same = false;
                }
                pos = end;
            }
        }
    }
    outcome.done = Instant::now();
    outcome.body_len = pos as u64;
    outcome.body_ok = same && pos == want.len() && outcome.error.is_none();
    if outcome.status != ask.want_status.as_u16() && outcome.error.is_none() {
        outcome.error = Some(format!("status {}, want {}", outcome.status, ask.want_status.as_u16()));
    }
    outcome
}

/// `GET path` on a fresh connection: status and body as text.
pub(crate) async fn get_text(addr: SocketAddr, path: &str) -> Result<(u16, String)> {
    let mut sender = connect(addr).await?;
    let mut req = Request::get(path).body(Empty::new())?;
    req.headers_mut().insert(header::HOST, HeaderValue::from_static("127.0.0.1"));
    let resp = sender.send_request(req).await?;
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await?.to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}
