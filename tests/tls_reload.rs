//! `cadenza edge` with TLS as an operator runs it: a real process, PEM files
//! on disk, a certificate renewed in place and `kill -HUP`.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

mod support;

use support::{Proc as Edge, free_port};

/// A self-signed certificate for localhost written to `cert` and `key`;
/// returns its PEM and DER.
fn write_cert(cert: &Path, key: &Path) -> (String, Vec<u8>) {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    std::fs::write(cert, made.cert.pem()).unwrap();
    std::fs::write(key, made.signing_key.serialize_pem()).unwrap();
    (made.cert.pem(), made.cert.der().to_vec())
}

fn signal(child: &Child, name: &str) {
    let ok = Command::new("kill").args([&format!("-{name}"), &child.id().to_string()]).status().unwrap();
    assert!(ok.success(), "kill -{name}");
}

/// The leaf certificate a fresh connection is shown, or `None` if no TLS
/// request succeeds. A new client each time: no pooled connection, no
/// resumed session.
async fn leaf(addr: SocketAddr, url: &str, roots: &[&str]) -> Option<Vec<u8>> {
    let mut b = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .resolve("localhost", addr)
        .tls_info(true);
    for pem in roots {
        b = b.add_root_certificate(reqwest::Certificate::from_pem(pem.as_bytes()).unwrap());
    }
    let resp = b.build().unwrap().get(url).header("range", "bytes=0-9").send().await.ok()?;
    assert_eq!(resp.status(), 206);
    let info = resp.extensions().get::<reqwest::tls::TlsInfo>()?;
    info.peer_certificate().map(<[u8]>::to_vec)
}

/// Poll (bounded) until a fresh connection sees `want`.
async fn wait_for_leaf(addr: SocketAddr, url: &str, roots: &[&str], want: &[u8]) {
    for _ in 0..200 {
        if leaf(addr, url, roots).await.as_deref() == Some(want) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the edge never presented the expected certificate");
}

#[tokio::test]
async fn sighup_reloads_the_certificate_and_a_bad_renewal_keeps_the_old_one() {
    cadenza_origin::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();

    // A file:// store with one audio object, and a signing key.
    let bytes = b"OggS pretend audio bytes for the TLS reload test".repeat(100);
    let file = cadenza_config::ids::FileId::of_content(&bytes);
    let object = d.join("store").join(cadenza_config::layout::audio_key(&file));
    std::fs::create_dir_all(object.parent().unwrap()).unwrap();
    std::fs::write(&object, &bytes).unwrap();
    let key = cadenza_config::token::SigningKey::new("k1".parse().unwrap(), vec![9; 32]).unwrap();
    let keys =
        cadenza_config::service::KeyFile { keys: vec![cadenza_config::service::KeySpec::from_key(&key)] };
    std::fs::write(d.join("keys.toml"), keys.to_toml()).unwrap();

    let (cert, pkey) = (d.join("edge.crt"), d.join("edge.key"));
    let (pem_a, der_a) = write_cert(&cert, &pkey);
    let port = free_port();
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let set = |kv: String| ["--set".to_owned(), kv];
    let mut args = vec!["edge".to_owned()];
    for kv in [
        format!("listen=127.0.0.1:{port}"),
        format!("admin.listen=127.0.0.1:{}", free_port()),
        "admin.token=tls-reload-test-admin-token".to_owned(),
        format!("origin.url=file://{}", d.join("store").display()),
        format!("signing.keys_file={}", d.join("keys.toml").display()),
        format!("tls.cert={}", cert.display()),
        format!("tls.key={}", pkey.display()),
    ] {
        args.extend(set(kv));
    }
    let child = Command::new(env!("CARGO_BIN_EXE_cadenza"))
        .args(&args)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("the binary runs");
    let mut edge = Edge(child);

    let path = cadenza_config::layout::edge_path(&file);
    let uid = "u1".parse().unwrap();
    let query = cadenza_config::token::sign_query(&key, &path, &uid, cadenza_config::unix_now() + 600);
    let url = format!("https://localhost:{port}{path}?{query}");

    wait_for_leaf(addr, &url, &[&pem_a], &der_a).await;

    // Renewal in place, then SIGHUP: new connections see the new pair.
    let (pem_b, der_b) = write_cert(&cert, &pkey);
    signal(&edge.0, "HUP");
    wait_for_leaf(addr, &url, &[&pem_a, &pem_b], &der_b).await;

    // A broken renewal (a key that is not the certificate's) and SIGHUP: the
    // edge stays up and keeps presenting the pair that works.
    let other = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    std::fs::write(&pkey, other.signing_key.serialize_pem()).unwrap();
    signal(&edge.0, "HUP");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(leaf(addr, &url, &[&pem_a, &pem_b]).await.as_deref(), Some(&der_b[..]));

    // SIGTERM drains and exits cleanly.
    signal(&edge.0, "TERM");
    let mut status = None;
    for _ in 0..200 {
        if let Some(s) = edge.0.try_wait().unwrap() {
            status = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(status.expect("the edge exits after SIGTERM").success());
}
