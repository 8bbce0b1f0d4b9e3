//! HTTP semantics over real loopback: multipart ranges, CORS policies and
//! path tricks sent byte for byte.

mod support;

use std::time::Duration;

use cadenza_config::units::ByteSize;
use support::*;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const SLICE: u64 = 64 * 1024;

async fn edge_over(
    len: usize,
    tweak: impl FnOnce(&mut cadenza_config::service::EdgeConfig),
) -> (TestStore, TestEdge) {
    let store = store_with_object(len).await;
    let mut config = edge_config(&store.url, ByteSize(SLICE), Duration::from_secs(5));
    tweak(&mut config);
    (store, start_edge(config).await)
}

/// Parse a `multipart/byteranges` body back into (Content-Range, bytes).
fn parse_multipart(content_type: &str, body: &[u8]) -> Vec<(String, Vec<u8>)> {
    let boundary = content_type.strip_prefix("multipart/byteranges; boundary=").expect("multipart type");
    let delimiter = format!("--{boundary}");
    let mut parts = Vec::new();
    let mut rest = body;
    // Each part: [CRLF]--boundary CRLF headers CRLF CRLF data; the data's
    // length comes from its Content-Range, so binary data cannot confuse us.
    loop {
        if rest.starts_with(b"\r\n") {
            rest = &rest[2..];
        }
        assert!(rest.starts_with(delimiter.as_bytes()), "expected a delimiter");
        rest = &rest[delimiter.len()..];
        if rest == b"--\r\n" {
            return parts;
        }
        assert!(rest.starts_with(b"\r\n"));
        let end = rest.windows(4).position(|w| w == b"\r\n\r\n").expect("part headers end");
        let headers = std::str::from_utf8(&rest[2..end]).unwrap().to_owned();
        rest = &rest[end + 4..];
        let mut content_range = None;
        for line in headers.split("\r\n") {
            let (name, value) = line.split_once(": ").unwrap();
            match name.to_ascii_lowercase().as_str() {
                "content-type" => assert_eq!(value, "audio/ogg"),
                "content-range" => content_range = Some(value.to_owned()),
                other => panic!("unexpected part header {other}"),
            }
        }
        let content_range = content_range.expect("each part has a Content-Range");
        let (a, b) =
            content_range.strip_prefix("bytes ").unwrap().split_once('/').unwrap().0.split_once('-').unwrap();
        let n = (b.parse::<usize>().unwrap() - a.parse::<usize>().unwrap()) + 1;
        parts.push((content_range, rest[..n].to_vec()));
        rest = &rest[n..];
    }
}

#[tokio::test]
async fn several_ranges_are_a_multipart_answer() {
    let (store, edge) = edge_over(300_000, |_| {}).await;
    let b = &store.bytes;
    for (version, client) in clients() {
        let resp = client
            .get(edge.good_url(&store.file))
            .header("range", "bytes=200000-200009, 0-9,5-19,-5")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 206);
        assert_eq!(resp.version(), version);
        assert!(resp.headers().get("content-range").is_none(), "multipart has no top-level Content-Range");
        let content_type = resp.headers()["content-type"].to_str().unwrap().to_owned();
        let length: usize = resp.headers()["content-length"].to_str().unwrap().parse().unwrap();
        let body = resp.bytes().await.unwrap();
        assert_eq!(body.len(), length, "Content-Length is exact");
        let parts = parse_multipart(&content_type, &body);
        // Sorted and coalesced: 0-9 and 5-19 became 0-19.
        assert_eq!(
            parts.iter().map(|(r, _)| r.as_str()).collect::<Vec<_>>(),
            ["bytes 0-19/300000", "bytes 200000-200009/300000", "bytes 299995-299999/300000"]
        );
        assert_eq!(parts[0].1, b[0..20]);
        assert_eq!(parts[1].1, b[200_000..200_010]);
        assert_eq!(parts[2].1, b[299_995..]);
    }

    // HEAD gives the same length without a body.
    let get =
        client().get(edge.good_url(&store.file)).header("range", "bytes=0-0,10-10").send().await.unwrap();
    let head =
        client().head(edge.good_url(&store.file)).header("range", "bytes=0-0,10-10").send().await.unwrap();
    assert_eq!(head.status(), 206);
    assert_eq!(head.headers()["content-length"], get.headers()["content-length"]);
    edge.stop().await;
}

#[tokio::test]
async fn coalesced_ranges_become_one_and_too_many_become_the_whole_object() {
    let (store, edge) = edge_over(100_000, |c| c.max_ranges = 4).await;
    for (version, client) in clients() {
        let resp = client
            .get(edge.good_url(&store.file))
            .header("range", "bytes=0-9,10-19,15-29")
            .send()
            .await
            .unwrap();
        assert_eq!((resp.status().as_u16(), resp.version()), (206, version));
        assert_eq!(resp.headers()["content-range"], "bytes 0-29/100000");
        assert_eq!(resp.bytes().await.unwrap(), store.bytes.slice(0..30));

        let four = "bytes=0-0,2-2,4-4,6-6";
        let resp = client.get(edge.good_url(&store.file)).header("range", four).send().await.unwrap();
        assert_eq!(resp.status(), 206, "four parts is within the cap ({version:?})");
        let five = "bytes=0-0,2-2,4-4,6-6,8-8";
        let resp = client.get(edge.good_url(&store.file)).header("range", five).send().await.unwrap();
        assert_eq!(resp.status(), 200, "five parts is over the cap of 4: the whole object ({version:?})");
        assert_eq!(resp.bytes().await.unwrap(), store.bytes);
    }
    edge.stop().await;
}

#[tokio::test]
async fn cors_with_a_list_of_origins() {
    let (store, edge) = edge_over(1000, |c| {
        c.cors.allow_origins = vec!["https://player.example".into()];
        c.cors.max_age = cadenza_config::units::HumanDuration(Duration::from_secs(600));
    })
    .await;
    let url = edge.good_url(&store.file);
    for (version, client) in clients() {
        let resp = client.get(&url).header("origin", "https://player.example").send().await.unwrap();
        assert_eq!((resp.status().as_u16(), resp.version()), (200, version));
        assert_eq!(resp.headers()["access-control-allow-origin"], "https://player.example");
        assert_eq!(resp.headers()["vary"], "Origin");
        let exposed = resp.headers()["access-control-expose-headers"].to_str().unwrap();
        for h in ["Content-Range", "Content-Length", "Accept-Ranges", "ETag"] {
            assert!(exposed.contains(h), "{h} not exposed: {exposed}");
        }

        let resp = client.get(&url).header("origin", "https://evil.example").send().await.unwrap();
        assert_eq!(resp.status(), 200, "CORS does not gate the bytes; the token does");
        assert!(resp.headers().get("access-control-allow-origin").is_none());
        assert_eq!(resp.headers()["vary"], "Origin");

        let preflight = |origin: &'static str| {
            client
                .request(reqwest::Method::OPTIONS, &url)
                .header("origin", origin)
                .header("access-control-request-method", "GET")
                .header("access-control-request-headers", "range")
                .send()
        };
        let resp = preflight("https://player.example").await.unwrap();
        assert_eq!((resp.status().as_u16(), resp.version()), (204, version));
        assert_eq!(resp.headers()["access-control-allow-origin"], "https://player.example");
        assert_eq!(resp.headers()["access-control-max-age"], "600");
        assert!(resp.headers()["access-control-allow-headers"].to_str().unwrap().contains("Range"));
        assert!(resp.headers()["access-control-allow-methods"].to_str().unwrap().contains("GET"));
        let resp = preflight("https://evil.example").await.unwrap();
        assert_eq!(resp.status(), 403);
        assert_eq!(resp.headers()["x-cadenza-reason"], "cors_origin_not_allowed");
    }
    edge.stop().await;
}

#[tokio::test]
async fn cors_can_be_turned_off() {
    let (store, edge) = edge_over(1000, |c| c.cors.allow_origins.clear()).await;
    let resp =
        client().get(edge.good_url(&store.file)).header("origin", "https://a.example").send().await.unwrap();
    assert!(resp.headers().get("access-control-allow-origin").is_none());
    edge.stop().await;
}

/// Send `path` exactly as written (clients normalise dot segments and
/// escapes) and return the status and reason.
async fn raw_get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let mut sock = tokio::net::TcpStream::connect(addr).await.unwrap();
    sock.write_all(format!("GET {path} HTTP/1.1\r\nhost: edge\r\nconnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), sock.read_to_end(&mut out)).await.unwrap().unwrap();
    let text = String::from_utf8_lossy(&out).to_string();
    let status = text.split(' ').nth(1).unwrap().parse().unwrap();
    let reason = text
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("x-cadenza-reason: ").map(str::to_owned))
        .unwrap_or_default();
    (status, reason)
}

#[tokio::test]
async fn path_tricks_are_refused_before_the_token_with_a_reason() {
    let (store, edge) = edge_over(1000, |_| {}).await;
    let id = store.file.as_str();
    let good = edge.good_url(&store.file);
    let query = good.split_once('?').unwrap().1;
    let cases = [
        (format!("/a/../a/{id}.ogg"), 400, "path_dot_segment"),
        (format!("/a/./{id}.ogg"), 400, "path_dot_segment"),
        (format!("/a//{id}.ogg"), 400, "path_empty_segment"),
        (format!("/a/%2e%2e/{id}.ogg"), 400, "path_percent_encoded"),
        (format!("/a/{id}%2eogg"), 400, "path_percent_encoded"),
        (format!("/a/..%2f{id}.ogg"), 400, "path_percent_encoded"),
        (format!("/a/..%5c{id}.ogg"), 400, "path_percent_encoded"),
        (format!("/a/%252e{id}.ogg"), 400, "path_percent_encoded"),
        (format!("/a/{id}.ogg%00"), 400, "path_nul"),
        (format!("/a/{}.ogg", id.to_uppercase()), 400, "path_bad_file_id"),
        ("/a/nothex.ogg".to_owned(), 400, "path_bad_file_id"),
        (format!("/a/{id}.mp3"), 400, "path_bad_extension"),
        (format!("/b/{id}.ogg"), 404, "not_found"),
        ("/".to_owned(), 404, "not_found"),
    ];
    for (path, status, reason) in &cases {
        // Even with a valid token's query attached, the path decides first.
        let (got, why) = raw_get(edge.addr, &format!("{path}?{query}")).await;
        assert_eq!((got, why.as_str()), (*status, *reason), "{path}");
    }
    assert_eq!(edge.counter("cadenza_edge_path_rejections_total", &["reason=\"path_dot_segment\""]).await, 2);
    assert_eq!(
        edge.counter("cadenza_edge_path_rejections_total", &["reason=\"path_percent_encoded\""]).await,
        5
    );
    assert_eq!(edge.counter("cadenza_edge_path_rejections_total", &[]).await, cases.len() as u64);
    assert_eq!(edge.counter("cadenza_edge_token_rejections_total", &[]).await, 0, "no token work was done");
    assert_eq!(edge.counter("cadenza_edge_origin_requests_total", &[]).await, 0);
    // The exact path still works.
    let (status, _) = raw_get(edge.addr, &format!("/a/{id}.ogg?{query}")).await;
    assert_eq!(status, 200);
    edge.stop().await;
}
