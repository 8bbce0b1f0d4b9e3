//! The listener over TLS, from real TLS clients over loopback: ALPN, the
//! protocol versions offered, certificate reload, and load errors.

use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response};
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

fn limits() -> cadenza_net::Limits {
    cadenza_net::Limits {
        header_read_timeout: Duration::from_millis(500),
        idle_timeout: Duration::from_secs(60),
        write_timeout: Duration::from_secs(30),
        max_connections: 64,
        shutdown_grace: Duration::from_secs(1),
    }
}

fn provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A fresh self-signed certificate for `localhost` and 127.0.0.1, written
/// as PEM to `<dir>/<name>.crt` and `<dir>/<name>.key`.
struct Cert {
    der: CertificateDer<'static>,
    pem: String,
    cert: PathBuf,
    key: PathBuf,
}

fn make_cert(dir: &Path, name: &str) -> Cert {
    let made =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
    let cert = dir.join(format!("{name}.crt"));
    let key = dir.join(format!("{name}.key"));
    std::fs::write(&cert, made.cert.pem()).unwrap();
    std::fs::write(&key, made.signing_key.serialize_pem()).unwrap();
    Cert { der: made.cert.der().clone(), pem: made.cert.pem(), cert, key }
}

fn hello() -> impl hyper::service::Service<
    Request<hyper::body::Incoming>,
    Response = Response<Full<Bytes>>,
    Error = Infallible,
    Future = impl Future<Output = Result<Response<Full<Bytes>>, Infallible>> + Send,
> + Clone
+ Send
+ Sync
+ 'static {
    hyper::service::service_fn(|req: Request<hyper::body::Incoming>| async move {
        let body = format!("hello over {:?}", req.version());
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(body))))
    })
}

struct Server {
    addr: std::net::SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Server {
    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.task.await.unwrap().unwrap();
    }
}

async fn start(tls: cadenza_net::Tls) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(cadenza_net::serve_tls(listener, hello(), limits(), tls, async {
        let _ = rx.await;
    }));
    Server { addr, stop: Some(tx), task }
}

/// A TLS client trusting `roots`, limited to `versions`, offering `alpn`.
fn connector(
    roots: &[&CertificateDer<'static>],
    versions: &[&'static rustls::SupportedProtocolVersion],
    alpn: &[&[u8]],
) -> tokio_rustls::TlsConnector {
    provider();
    let mut store = rustls::RootCertStore::empty();
    for r in roots {
        store.add((*r).clone()).unwrap();
    }
    let mut config = rustls::ClientConfig::builder_with_protocol_versions(versions)
        .with_root_certificates(store)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    // Full handshakes only: a resumed session carries the certificate of the
    // handshake it resumes, which would hide a reload from the test.
    config.resumption = rustls::client::Resumption::disabled();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

async fn handshake(
    connector: &tokio_rustls::TlsConnector,
    addr: std::net::SocketAddr,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    connector.connect(ServerName::try_from("localhost").unwrap(), tcp).await
}

/// One HTTP/1.1 request on an open TLS stream; returns the body.
async fn get_http1(stream: &mut tokio_rustls::client::TlsStream<TcpStream>) -> String {
    stream.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n").await.unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut chunk)).await.unwrap().unwrap();
        assert!(n > 0, "server closed before answering");
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf);
        if let Some(end) = text.find("\r\n\r\n") {
            let len: usize = text[..end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase().strip_prefix("content-length: ").map(|v| v.parse().unwrap())
                })
                .unwrap();
            if buf.len() >= end + 4 + len {
                return String::from_utf8_lossy(&buf[end + 4..end + 4 + len]).into_owned();
            }
        }
    }
}

fn leaf(stream: &tokio_rustls::client::TlsStream<TcpStream>) -> Vec<u8> {
    stream.get_ref().1.peer_certificates().unwrap()[0].as_ref().to_vec()
}

#[tokio::test]
async fn alpn_chooses_http2_or_http1_on_the_same_port() {
    provider();
    let dir = tempfile::tempdir().unwrap();
    let a = make_cert(dir.path(), "a");
    let server = start(cadenza_net::Tls::load(&a.cert, &a.key).unwrap()).await;
    let root = reqwest::Certificate::from_pem(a.pem.as_bytes()).unwrap();
    let url = format!("https://localhost:{}/", server.addr.port());
    let resolve = ("localhost", server.addr);

    let h2 = reqwest::Client::builder()
        .no_proxy()
        .add_root_certificate(root.clone())
        .resolve(resolve.0, resolve.1);
    let resp = h2.build().unwrap().get(&url).send().await.unwrap();
    assert_eq!(resp.version(), reqwest::Version::HTTP_2, "ALPN h2 is preferred");
    assert_eq!(resp.text().await.unwrap(), "hello over HTTP/2.0");

    let h1 = reqwest::Client::builder()
        .no_proxy()
        .add_root_certificate(root)
        .resolve(resolve.0, resolve.1)
        .http1_only();
    let resp = h1.build().unwrap().get(&url).send().await.unwrap();
    assert_eq!(resp.version(), reqwest::Version::HTTP_11);
    assert_eq!(resp.text().await.unwrap(), "hello over HTTP/1.1");

    // A client offering no ALPN at all gets HTTP/1.1.
    let mut stream = handshake(&connector(&[&a.der], rustls::ALL_VERSIONS, &[]), server.addr).await.unwrap();
    assert_eq!(stream.get_ref().1.alpn_protocol(), None);
    assert_eq!(get_http1(&mut stream).await, "hello over HTTP/1.1");
    server.stop().await;
}

#[tokio::test]
async fn tls_1_2_and_1_3_are_both_served() {
    let dir = tempfile::tempdir().unwrap();
    let a = make_cert(dir.path(), "a");
    let server = start(cadenza_net::Tls::load(&a.cert, &a.key).unwrap()).await;
    for (version, expect) in [
        (&rustls::version::TLS12, rustls::ProtocolVersion::TLSv1_2),
        (&rustls::version::TLS13, rustls::ProtocolVersion::TLSv1_3),
    ] {
        let mut stream =
            handshake(&connector(&[&a.der], &[version], &[b"http/1.1"]), server.addr).await.unwrap();
        assert_eq!(stream.get_ref().1.protocol_version(), Some(expect));
        assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
        assert_eq!(get_http1(&mut stream).await, "hello over HTTP/1.1");
    }
    server.stop().await;
}

#[tokio::test]
async fn reload_changes_the_certificate_for_new_connections_and_keeps_old_ones() {
    let dir = tempfile::tempdir().unwrap();
    let a = make_cert(dir.path(), "a");
    let b = make_cert(dir.path(), "b");
    let tls = cadenza_net::Tls::load(&a.cert, &a.key).unwrap();
    let server = start(tls.clone()).await;
    let client = connector(&[&a.der, &b.der], rustls::ALL_VERSIONS, &[b"http/1.1"]);

    let mut old = handshake(&client, server.addr).await.unwrap();
    assert_eq!(leaf(&old), a.der.as_ref());
    assert_eq!(get_http1(&mut old).await, "hello over HTTP/1.1");

    // Renewal: the new pair is written over the configured files.
    std::fs::copy(&b.cert, &a.cert).unwrap();
    std::fs::copy(&b.key, &a.key).unwrap();
    tls.reload().unwrap();
    assert_eq!(tls.leaf_certificate(), b.der.as_ref());

    let mut new = handshake(&client, server.addr).await.unwrap();
    assert_eq!(leaf(&new), b.der.as_ref(), "new handshakes present the reloaded certificate");
    assert_eq!(get_http1(&mut new).await, "hello over HTTP/1.1");
    // The connection opened before the reload is still up and still served.
    assert_eq!(get_http1(&mut old).await, "hello over HTTP/1.1");
    assert_eq!(leaf(&old), a.der.as_ref());
    server.stop().await;
}

#[tokio::test]
async fn a_reload_that_fails_keeps_the_certificate_in_use() {
    let dir = tempfile::tempdir().unwrap();
    let a = make_cert(dir.path(), "a");
    let b = make_cert(dir.path(), "b");
    let tls = cadenza_net::Tls::load(&a.cert, &a.key).unwrap();
    let server = start(tls.clone()).await;

    // Half a renewal: b's certificate with a's key.
    std::fs::copy(&b.cert, &a.cert).unwrap();
    let err = tls.reload().unwrap_err();
    assert!(matches!(err, cadenza_net::TlsError::Pair { .. }), "{err}");
    // A missing key file.
    std::fs::remove_file(&a.key).unwrap();
    let err = tls.reload().unwrap_err();
    assert!(matches!(err, cadenza_net::TlsError::Key { .. }), "{err}");
    assert!(err.to_string().contains("a.key"), "the error names the file: {err}");

    let client = connector(&[&a.der, &b.der], rustls::ALL_VERSIONS, &[]);
    let mut stream = handshake(&client, server.addr).await.unwrap();
    assert_eq!(leaf(&stream), a.der.as_ref(), "the old certificate is still served");
    assert_eq!(get_http1(&mut stream).await, "hello over HTTP/1.1");
    server.stop().await;
}

#[test]
fn load_errors_name_the_file_and_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let a = make_cert(dir.path(), "a");
    let b = make_cert(dir.path(), "b");
    let missing = dir.path().join("nope.crt");
    let err = cadenza_net::Tls::load(&missing, &a.key).unwrap_err();
    assert!(
        matches!(err, cadenza_net::TlsError::Cert { .. }) && err.to_string().contains("nope.crt"),
        "{err}"
    );

    let not_pem = dir.path().join("junk.crt");
    std::fs::write(&not_pem, "this is not a certificate\n").unwrap();
    let err = cadenza_net::Tls::load(&not_pem, &a.key).unwrap_err();
    assert!(err.to_string().contains("junk.crt") && err.to_string().contains("CERTIFICATE"), "{err}");

    // A certificate where the key should be.
    let err = cadenza_net::Tls::load(&a.cert, &a.cert).unwrap_err();
    assert!(matches!(err, cadenza_net::TlsError::Key { .. }), "{err}");

    let err = cadenza_net::Tls::load(&a.cert, &b.key).unwrap_err();
    assert!(matches!(err, cadenza_net::TlsError::Pair { .. }), "{err}");
}

#[tokio::test]
async fn a_client_that_never_finishes_the_handshake_is_closed_at_the_header_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let a = make_cert(dir.path(), "a");
    let server = start(cadenza_net::Tls::load(&a.cert, &a.key).unwrap()).await;

    // Silent after connecting.
    let mut silent = TcpStream::connect(server.addr).await.unwrap();
    // Plain HTTP sent to the TLS port.
    let mut plain = TcpStream::connect(server.addr).await.unwrap();
    plain.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    for stream in [&mut silent, &mut plain] {
        let mut buf = Vec::new();
        // The deadline is 500 ms; the server must hang up well before 10 s.
        let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut buf)).await;
        let read = read.expect("the server closed the connection");
        // A reset or an orderly close are both a hang-up; no HTTP answer.
        if let Ok(n) = read {
            assert!(!String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/"), "no plaintext answer");
        }
    }
    server.stop().await;
}
