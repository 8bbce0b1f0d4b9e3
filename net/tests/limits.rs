//! The listener's limits, observed from a real client over loopback.

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn limits(header_read_ms: u64, max_connections: usize, grace_ms: u64) -> cadenza_net::Limits {
    cadenza_net::Limits {
        header_read_timeout: Duration::from_millis(header_read_ms),
        idle_timeout: Duration::from_secs(60),
        write_timeout: Duration::from_secs(30),
        max_connections,
        shutdown_grace: Duration::from_millis(grace_ms),
    }
}

/// Answers after the delay given in the `x-delay-ms` request header.
fn slow_service() -> impl hyper::service::Service<
    Request<hyper::body::Incoming>,
    Response = Response<Full<Bytes>>,
    Error = Infallible,
    Future = impl Future<Output = Result<Response<Full<Bytes>>, Infallible>> + Send,
> + Clone
+ Send
+ Sync
+ 'static {
    hyper::service::service_fn(|req: Request<hyper::body::Incoming>| async move {
        let ms: u64 = req
            .headers()
            .get("x-delay-ms")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        tokio::time::sleep(Duration::from_millis(ms)).await;
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"done"))))
    })
}

async fn read_all(stream: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn header_read_timeout_closes_a_silent_connection() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(cadenza_net::serve(listener, slow_service(), limits(200, 16, 1000), async {
        let _ = stop_rx.await;
    }));

    // Send half a request line and go quiet: the server must hang up (with a
    // 408 or a bare close) instead of holding the connection forever.
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    let mut buf = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await;
    assert!(closed.is_ok(), "connection still open after 5 s with a 200 ms header timeout");
    let text = String::from_utf8_lossy(&buf);
    assert!(text.is_empty() || text.starts_with("HTTP/1.1 408"), "unexpected reply {text:?}");

    let _ = stop_tx.send(());
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_client_that_never_speaks_or_stalls_in_the_h2_preface_is_closed() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(cadenza_net::serve(listener, slow_service(), limits(200, 16, 1000), async {
        let _ = stop_rx.await;
    }));
    for opening in [&b""[..], b"PRI * HTTP/2.0\r\n"] {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(opening).await.unwrap();
        let mut buf = Vec::new();
        let closed = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await;
        assert!(closed.is_ok(), "connection opened with {opening:?} still open after 5 s");
    }
    // A real client after them is still served.
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.unwrap();
    assert!(read_all(&mut s).await.starts_with("HTTP/1.1 200"));
    let _ = stop_tx.send(());
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn graceful_shutdown_finishes_in_flight_responses() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(cadenza_net::serve(listener, slow_service(), limits(5000, 16, 5000), async {
        let _ = stop_rx.await;
    }));

    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nx-delay-ms: 300\r\n\r\n").await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let _ = stop_tx.send(());
    let reply = read_all(&mut s).await;
    assert!(reply.starts_with("HTTP/1.1 200"), "in-flight request was cut: {reply:?}");
    assert!(reply.ends_with("done"), "{reply:?}");
    server.await.unwrap().unwrap();
    assert!(TcpStream::connect(addr).await.is_err(), "listener still accepting after shutdown");
}

#[tokio::test]
async fn drain_deadline_closes_stragglers() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(cadenza_net::serve(listener, slow_service(), limits(5000, 16, 200), async {
        let _ = stop_rx.await;
    }));
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nx-delay-ms: 60000\r\n\r\n").await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let _ = stop_tx.send(());
    let finished = tokio::time::timeout(Duration::from_secs(10), server).await;
    assert!(finished.is_ok(), "server did not stop after its 200 ms drain deadline");
    assert_eq!(read_all(&mut s).await, "", "the straggler got a response it should not have");
}

#[tokio::test]
async fn connection_cap_holds_extra_connections_until_a_slot_frees() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(cadenza_net::serve(listener, slow_service(), limits(5000, 1, 1000), async {
        let _ = stop_rx.await;
    }));

    // The first connection holds the only slot for 500 ms.
    let mut first = TcpStream::connect(addr).await.unwrap();
    first
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nx-delay-ms: 500\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    // The second is accepted by the kernel but not served until the first ends.
    let mut second = TcpStream::connect(addr).await.unwrap();
    second.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.unwrap();
    let mut byte = [0u8; 1];
    let early = tokio::time::timeout(Duration::from_millis(200), second.read(&mut byte)).await;
    assert!(early.is_err(), "second connection was served while the cap was full");
    let first_reply = read_all(&mut first).await;
    assert!(first_reply.starts_with("HTTP/1.1 200"), "{first_reply:?}");
    let rest = read_all(&mut second).await;
    assert!(rest.starts_with("HTTP/1.1 200"), "{rest:?}");

    let _ = stop_tx.send(());
    server.await.unwrap().unwrap();
}

/// Streams 64 MiB, far more than socket buffers hold.
fn big_service() -> impl hyper::service::Service<
    Request<hyper::body::Incoming>,
    Response = Response<Full<Bytes>>,
    Error = Infallible,
    Future = impl Future<Output = Result<Response<Full<Bytes>>, Infallible>> + Send,
> + Clone
+ Send
+ Sync
+ 'static {
    let body = Bytes::from(vec![b'x'; 64 << 20]);
    hyper::service::service_fn(move |_req: Request<hyper::body::Incoming>| {
        let body = body.clone();
        async move { Ok::<_, Infallible>(Response::new(Full::new(body))) }
    })
}

#[tokio::test]
async fn write_timeout_closes_a_client_that_stops_reading() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut l = limits(5_000, 16, 100);
    l.write_timeout = Duration::from_millis(300);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(cadenza_net::serve(listener, big_service(), l, async {
        let _ = stopped.await;
    }));

    let mut client = TcpStream::connect(addr).await.unwrap();
    client.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n").await.unwrap();
    // Read a little, then stop reading while the server still has megabytes
    // to send: its writes block and the write timeout must close the socket.
    let mut buf = vec![0u8; 4096];
    let n = client.read(&mut buf).await.unwrap();
    assert!(n > 0);
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    // Now drain what is buffered: the stream must end (EOF or reset) well
    // short of 64 MiB, within a bounded time.
    let mut total = n;
    let drained = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match client.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(k) => total += k,
            }
        }
    })
    .await;
    assert!(drained.is_ok(), "connection was not closed");
    assert!(total < 64 << 20, "the whole body arrived ({total} bytes): the write timeout did not fire");
    let _ = stop.send(());
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn idle_timeout_closes_a_quiet_http2_connection() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut l = limits(5_000, 16, 100);
    l.idle_timeout = Duration::from_millis(400);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(cadenza_net::serve(listener, slow_service(), l, async {
        let _ = stopped.await;
    }));

    let mut client = TcpStream::connect(addr).await.unwrap();
    // The preface and an empty SETTINGS frame, then silence.
    client.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0").await.unwrap();
    let started = std::time::Instant::now();
    let mut buf = [0u8; 1024];
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match client.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {} // the server's SETTINGS, ACK, GOAWAY
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "quiet HTTP/2 connection was never closed");
    assert!(started.elapsed() >= Duration::from_millis(300), "closed before the idle timeout");
    let _ = stop.send(());
    server.await.unwrap().unwrap();
}
