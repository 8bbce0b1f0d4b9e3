//! The edge over an S3-compatible store: a real S3 API server (moto) on
//! loopback, objects written through object_store, read back through the
//! edge's range fills.
//!
//! Needs `moto_server` on PATH (`pip install 'moto[server]'`; `.ci/run`
//! installs it). Without it the test says so and passes, unless
//! `CADENZA_REQUIRE_S3=1`, which CI sets whenever the install succeeded.

mod support;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use cadenza_config::ids::FileId;
use cadenza_config::units::ByteSize;
use support::*;

struct Moto(Child);

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

async fn start_moto() -> Option<(Moto, String)> {
    let port = free_port();
    let child = match Command::new("moto_server")
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    {
        Ok(child) => Moto(child),
        Err(e) => {
            assert!(std::env::var("CADENZA_REQUIRE_S3").as_deref() != Ok("1"), "moto_server: {e}");
            eprintln!("skipping the S3 test: moto_server not available ({e})");
            return None;
        }
    };
    let endpoint = format!("http://127.0.0.1:{port}");
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return Some((child, endpoint));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("moto_server did not start on {endpoint}");
}

#[tokio::test]
async fn the_edge_serves_ranges_from_an_s3_bucket() {
    let Some((_moto, endpoint)) = start_moto().await else {
        return;
    };
    // Create the bucket (moto accepts unsigned requests).
    let resp = client()
        .put(format!("{endpoint}/audio-bucket"))
        .header("x-amz-acl", "public-read")
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "create bucket: {}", resp.status());
    // A public-read bucket (ACL and policy), as a CDN origin bucket often is.
    let policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*",
        "Action":["s3:GetObject","s3:ListBucket"],"Resource":["arn:aws:s3:::audio-bucket","arn:aws:s3:::audio-bucket/*"]}]}"#;
    let resp = client().put(format!("{endpoint}/audio-bucket?policy")).body(policy).send().await.unwrap();
    assert!(resp.status().is_success(), "bucket policy: {}", resp.status());

    let url = format!("s3://audio-bucket/pop1?endpoint={endpoint}&region=us-east-1&skip_signature=true");
    let store = cadenza_origin::open_store(&url).unwrap();
    let bytes = noise(300_000);
    let file = FileId::of_content(&bytes);
    cadenza_origin::put_audio(store.as_ref(), &file, bytes.clone()).await.unwrap();
    // It landed under the prefix, in the published layout.
    let listed = client().get(format!("{endpoint}/audio-bucket?list-type=2")).send().await.unwrap();
    let listing = listed.text().await.unwrap();
    assert!(listing.contains(&format!("pop1/audio/{file}.ogg")), "{listing}");

    let edge = start_edge(edge_config(&url, ByteSize(64 * 1024), Duration::from_secs(5))).await;
    let resp =
        client().get(edge.good_url(&file)).header("range", "bytes=100000-100099").send().await.unwrap();
    assert_eq!(resp.status(), 206);
    assert_eq!(resp.bytes().await.unwrap(), bytes.slice(100_000..100_100));
    let resp = client().get(edge.good_url(&file)).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.bytes().await.unwrap(), bytes);
    // 5 slices, one upstream range GET each, plus one HEAD.
    assert_eq!(
        edge.counter("cadenza_edge_origin_requests_total", &["kind=\"range\"", "result=\"ok\""]).await,
        5
    );
    let missing = FileId::of_content(b"not in the bucket");
    assert_eq!(client().get(edge.good_url(&missing)).send().await.unwrap().status(), 404);
    edge.stop().await;
}
