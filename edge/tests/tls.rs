//! The edge's public listener over TLS: the same signed ranges over
//! HTTP/2 and HTTP/1.1 chosen by ALPN, and a reload of the certificate.

mod support;

use std::time::Duration;

use cadenza_config::units::ByteSize;
use support::*;

struct Pem {
    cert_pem: String,
    cert: std::path::PathBuf,
    key: std::path::PathBuf,
}

fn self_signed(dir: &std::path::Path, name: &str) -> Pem {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert = dir.join(format!("{name}.crt"));
    let key = dir.join(format!("{name}.key"));
    std::fs::write(&cert, made.cert.pem()).unwrap();
    std::fs::write(&key, made.signing_key.serialize_pem()).unwrap();
    Pem { cert_pem: made.cert.pem(), cert, key }
}

/// `url` (http://127.0.0.1:port/...) as the https://localhost URL a
/// browser would use, and a client that trusts `pem` and resolves
/// localhost to the edge.
fn https(url: &str, addr: std::net::SocketAddr, pem: &Pem, http1_only: bool) -> (String, reqwest::Client) {
    cadenza_origin::install_crypto_provider();
    let url = url.replacen(&format!("http://{addr}"), &format!("https://localhost:{}", addr.port()), 1);
    let mut b = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(20))
        .resolve("localhost", addr)
        .add_root_certificate(reqwest::Certificate::from_pem(pem.cert_pem.as_bytes()).unwrap())
        .tls_info(true);
    if http1_only {
        b = b.http1_only();
    }
    (url, b.build().unwrap())
}

#[tokio::test]
async fn signed_ranges_over_tls_with_alpn_h2_and_http1() {
    let dir = tempfile::tempdir().unwrap();
    let pem = self_signed(dir.path(), "edge");
    let store = store_with_object(300_000).await;
    let mut config = edge_config(&store.url, ByteSize(64 * 1024), Duration::from_secs(5));
    config.tls.cert = Some(pem.cert.clone());
    config.tls.key = Some(pem.key.clone());
    let edge = start_edge(config).await;

    for (http1_only, version) in [(false, reqwest::Version::HTTP_2), (true, reqwest::Version::HTTP_11)] {
        let (url, client) = https(&edge.good_url(&store.file), edge.addr, &pem, http1_only);
        let resp = client.get(&url).header("range", "bytes=70000-70099").send().await.unwrap();
        assert_eq!((resp.status().as_u16(), resp.version()), (206, version));
        assert_eq!(resp.headers()["content-range"], "bytes 70000-70099/300000");
        assert!(resp.extensions().get::<reqwest::tls::TlsInfo>().is_some(), "served over TLS");
        assert_eq!(resp.bytes().await.unwrap(), store.bytes.slice(70_000..70_100));

        // A tampered token is refused over TLS just the same.
        let resp = client.get(url.replace("sig=", "sig=A")).send().await.unwrap();
        assert_eq!(resp.status(), 403);
    }

    // Plain HTTP on the TLS port gets no answer.
    let plain = client().get(edge.good_url(&store.file)).send().await;
    assert!(plain.is_err(), "plain HTTP must not be served on a TLS listener");
    edge.stop().await;
}

#[tokio::test]
async fn a_bad_tls_config_fails_at_start_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let a = self_signed(dir.path(), "a");
    let b = self_signed(dir.path(), "b");
    let store = store_with_object(1000).await;
    let mut config = edge_config(&store.url, ByteSize(64 * 1024), Duration::from_secs(5));
    config.tls.cert = Some(a.cert.clone());
    config.tls.key = Some(b.key.clone());
    let err = cadenza_edge::EdgeServer::bind(config).await.unwrap_err().to_string();
    assert!(err.contains("tls.cert") && err.contains("a.crt") && err.contains("b.key"), "{err}");
}
