//! The HTTP listener every cadenza service shares.
//!
//! [`serve`] runs an accept loop over any hyper service with the limits an
//! operator expects of nginx: a cap on concurrent connections (further
//! accepts wait, the kernel backlog queues), an HTTP/1 header-read timeout
//! that really fires (hyper ignores it without a timer — we always set one;
//! it also closes idle keep-alive connections, as nginx's
//! `client_header_timeout` + `keepalive_timeout` do), the same deadline on
//! the bytes that tell HTTP/1 from HTTP/2 (which hyper-util reads without
//! one), an idle timeout and a write timeout for both protocols (see
//! [`timed`](crate::timed) — they replace HTTP/2 keep-alive pings, which
//! would keep an idle connection open forever), and a graceful drain
//! on shutdown: stop accepting, let in-flight responses finish up to a
//! deadline, then close the rest. A client that never completes its first
//! request headers can hold a slot for at most twice the header timeout.
//!
//! HTTP/1.1 and HTTP/2 (prior knowledge, "h2c") are served on the same port;
//! [`serve_tls`] serves both over TLS instead, chosen by ALPN (see
//! [`tls`]). The TLS handshake counts against the header-read deadline too.
//!
//! ```no_run
//! # async fn demo(service: impl hyper::service::Service<hyper::Request<hyper::body::Incoming>,
//! #     Response = hyper::Response<String>, Error = std::convert::Infallible,
//! #     Future = std::future::Ready<Result<hyper::Response<String>, std::convert::Infallible>>>
//! #     + Clone + Send + Sync + 'static) -> std::io::Result<()> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let limits = cadenza_net::Limits::from(&cadenza_config::service::HttpServerConfig::default());
//! cadenza_net::serve(listener, service, limits, cadenza_net::shutdown_signal()).await
//! # }
//! ```

pub mod range;
mod sniff;
mod timed;
pub mod tls;

use std::error::Error as StdError;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use cadenza_config::service::HttpServerConfig;
use hyper::body::{Body, Incoming};
use hyper::service::Service;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::server::graceful::Watcher;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

pub use tls::{Tls, TlsError};

/// Limits of one listener. Built from [`HttpServerConfig`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// HTTP/1: time to receive a request's headers, counted from when the
    /// connection starts waiting for them (so it bounds idle keep-alive too).
    pub header_read_timeout: Duration,
    /// Either protocol: a connection waiting to read with no bytes moved
    /// either way for this long is closed.
    pub idle_timeout: Duration,
    /// A write the client does not accept within this long fails and the
    /// connection is closed.
    pub write_timeout: Duration,
    /// Connections served at once.
    pub max_connections: usize,
    /// How long a drain may take before remaining connections are closed.
    pub shutdown_grace: Duration,
}

impl From<&HttpServerConfig> for Limits {
    fn from(c: &HttpServerConfig) -> Self {
        Self {
            header_read_timeout: c.header_read_timeout.get(),
            idle_timeout: c.idle_timeout.get(),
            write_timeout: c.write_timeout.get(),
            max_connections: c.max_connections as usize,
            shutdown_grace: c.shutdown_grace.get(),
        }
    }
}

/// HTTP/2 streams per connection; nginx's `http2_max_concurrent_streams` default.
const H2_MAX_STREAMS: u32 = 128;
/// Pause after an accept error (EMFILE and friends) before trying again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Serve `service` on `listener` until `shutdown` completes, then drain.
///
/// Returns when every connection has finished or been closed after
/// [`Limits::shutdown_grace`].
pub async fn serve<S, B>(
    listener: TcpListener,
    service: S,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()>
where
    S: Service<Request<Incoming>, Response = Response<B>> + Clone + Send + Sync + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn StdError + Send + Sync>>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    serve_with(listener, service, limits, None, shutdown).await
}

/// [`serve`] over TLS: every connection first completes a TLS handshake
/// (within the header-read deadline), then speaks HTTP/2 or HTTP/1.1 as
/// ALPN chose. [`Tls::reload`] on a clone of `tls` changes the certificate
/// for new connections while this runs.
pub async fn serve_tls<S, B>(
    listener: TcpListener,
    service: S,
    limits: Limits,
    tls: Tls,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()>
where
    S: Service<Request<Incoming>, Response = Response<B>> + Clone + Send + Sync + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn StdError + Send + Sync>>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    serve_with(listener, service, limits, Some(tls), shutdown).await
}

async fn serve_with<S, B>(
    listener: TcpListener,
    service: S,
    limits: Limits,
    tls: Option<Tls>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()>
where
    S: Service<Request<Incoming>, Response = Response<B>> + Clone + Send + Sync + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn StdError + Send + Sync>>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout).keep_alive(true);
    builder.http2().timer(TokioTimer::new()).keep_alive_interval(None).max_concurrent_streams(H2_MAX_STREAMS);

    let local = listener.local_addr()?;
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut tasks = JoinSet::new();
    tokio::pin!(shutdown);

    loop {
        let permit = tokio::select! {
            biased;
            () = &mut shutdown => break,
            p = permits.clone().acquire_owned() => p.expect("semaphore is never closed"),
        };
        let (stream, peer) = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::warn!(%local, error = %e, "accept failed; backing off");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let conn = builder.clone();
        let service = service.clone();
        let watcher = graceful.watcher();
        let deadline = limits.header_read_timeout;
        let tls = tls.clone();
        tasks.spawn(async move {
            match tls {
                None => {
                    let stream = match tokio::time::timeout(deadline, sniff::sniff(stream)).await {
                        Ok(Ok(stream)) => stream,
                        // Closed, failed or silent before saying which protocol.
                        Ok(Err(_)) | Err(_) => return,
                    };
                    let io = timed::TimedIo::new(stream, limits.idle_timeout, limits.write_timeout);
                    serve_connection(&conn, io, service, watcher, peer).await;
                }
                Some(tls) => {
                    // The timeouts sit below TLS, on the bytes that move.
                    let io = timed::TimedIo::new(stream, limits.idle_timeout, limits.write_timeout);
                    let opened = async { sniff::sniff(tls.acceptor().accept(io).await?).await };
                    let stream = match tokio::time::timeout(deadline, opened).await {
                        Ok(Ok(stream)) => stream,
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => return,
                    };
                    serve_connection(&conn, stream, service, watcher, peer).await;
                }
            }
            drop(permit);
        });
        while tasks.try_join_next().is_some() {}
    }

    drop(listener);
    tracing::info!(%local, connections = graceful.count(), "draining");
    if tokio::time::timeout(limits.shutdown_grace, graceful.shutdown()).await.is_err() {
        tracing::warn!(%local, remaining = tasks.len(), "drain deadline passed; closing connections");
        tasks.abort_all();
    }
    while tasks.join_next().await.is_some() {}
    Ok(())
}

/// Serve HTTP/1.1 or HTTP/2 (hyper-util tells them apart) on one open
/// connection until it ends or the drain closes it.
async fn serve_connection<I, S, B>(
    builder: &auto::Builder<TokioExecutor>,
    io: I,
    service: S,
    watcher: Watcher,
    peer: std::net::SocketAddr,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: Service<Request<Incoming>, Response = Response<B>> + Clone + Send + Sync + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn StdError + Send + Sync>>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), HyperService(service));
    if let Err(e) = watcher.watch(conn.into_owned()).await {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}

/// Adapts a `hyper::service::Service` that is `Clone` to what hyper-util's
/// connection builder wants (it takes the service by value per connection).
#[derive(Clone, Debug)]
struct HyperService<S>(S);

impl<S, R> Service<R> for HyperService<S>
where
    S: Service<R>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;
    fn call(&self, req: R) -> Self::Future {
        self.0.call(req)
    }
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("SIGINT received; shutting down"),
        () = term => tracing::info!("SIGTERM received; shutting down"),
    }
}

/// SIGHUP, the reload signal (nginx's convention): each one received from
/// [`Hangups::listen`] on. Listening replaces SIGHUP's default action
/// (exit), so a service that listens never dies of a stray one.
#[derive(Debug)]
pub struct Hangups {
    #[cfg(unix)]
    signal: tokio::signal::unix::Signal,
}

impl Hangups {
    /// Start listening for SIGHUP. Fails where signals cannot be had
    /// (and on platforms without SIGHUP).
    pub fn listen() -> std::io::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Self { signal: signal(SignalKind::hangup())? })
        }
        #[cfg(not(unix))]
        Err(std::io::Error::new(std::io::ErrorKind::Unsupported, "no SIGHUP on this platform"))
    }

    /// Wait for the next SIGHUP; `false` once none can arrive any more.
    pub async fn recv(&mut self) -> bool {
        #[cfg(unix)]
        {
            self.signal.recv().await.is_some()
        }
        #[cfg(not(unix))]
        false
    }
}
