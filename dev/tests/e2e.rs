//! The walking skeleton, end to end: the whole dev stack in-process on free
//! ports, a stream URL for every rung of a demo track from the control
//! plane, the file fetched through the edge in 64 KiB ranges, compared with
//! the origin object, and decoded by a real Ogg Vorbis decoder.

use std::io::Cursor;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use cadenza_config::ladder::LADDER;
use cadenza_config::manifest::Manifest;
use cadenza_config::service::{DemoConfig, DevConfig, SigningConfig};
use cadenza_control::types::StreamResponse;
use cadenza_dev::stack::StackFile;

fn client() -> reqwest::Client {
    cadenza_origin::install_crypto_provider();
    reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(30)).build().unwrap()
}

fn config(dir: &std::path::Path) -> DevConfig {
    DevConfig {
        data_dir: dir.to_owned(),
        base_port: 0,
        demo: DemoConfig { tracks: 2, first_seconds: 20, step_seconds: 3 },
        ..DevConfig::default()
    }
}

async fn stream_url(stack: &StackFile, track: &str, quality: u32) -> StreamResponse {
    let resp = client()
        .post(format!("{}/v1/playback/stream", stack.control.url))
        .bearer_auth(&stack.demo.user_token)
        .json(&serde_json::json!({ "track_id": track, "quality": quality }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "stream url for {track} at {quality}");
    resp.json().await.unwrap()
}

/// Fetch `url` as a player would: consecutive 64 KiB ranges until the end.
async fn fetch_in_ranges(url: &str) -> (Bytes, u64) {
    const CHUNK: u64 = 64 * 1024;
    let mut out = BytesMut::new();
    let mut start = 0u64;
    let mut requests = 0;
    loop {
        assert!(requests < 1000, "too many range requests");
        requests += 1;
        let resp = client()
            .get(url)
            .header("range", format!("bytes={start}-{}", start + CHUNK - 1))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 206);
        let content_range = resp.headers()["content-range"].to_str().unwrap().to_owned();
        let len: u64 = content_range.rsplit('/').next().unwrap().parse().unwrap();
        let expected_end = (start + CHUNK).min(len) - 1;
        assert_eq!(content_range, format!("bytes {start}-{expected_end}/{len}"));
        let body = resp.bytes().await.unwrap();
        assert_eq!(body.len() as u64, expected_end - start + 1);
        out.extend_from_slice(&body);
        start += body.len() as u64;
        if start >= len {
            return (out.freeze(), len);
        }
    }
}

/// Decode Ogg Vorbis bytes with symphonia: (channels, sample rate, frames).
fn decode(bytes: Bytes) -> (usize, u32, u64) {
    use symphonia::core::codecs::audio::AudioDecoderOptions;
    use symphonia::core::formats::probe::Hint;
    use symphonia::core::formats::{FormatOptions, TrackType};
    use symphonia::core::io::MediaSourceStream;
    use symphonia::core::meta::MetadataOptions;

    let mut hint = Hint::new();
    hint.with_extension("ogg");
    let mss = MediaSourceStream::new(Box::new(Cursor::new(bytes)), Default::default());
    let mut reader = symphonia::default::get_probe()
        .probe(&hint, mss, FormatOptions::default(), MetadataOptions::default())
        .expect("an Ogg container");
    assert_eq!(reader.format_info().short_name, "ogg");
    let track = reader.default_track(TrackType::Audio).expect("an audio track");
    let track_id = track.id;
    let params = track.codec_params.as_ref().and_then(|p| p.audio()).expect("audio params").clone();
    let mut decoder = symphonia::default::get_codecs()
        .make_audio_decoder(&params, &AudioDecoderOptions::default())
        .expect("a vorbis decoder");
    let (mut channels, mut rate, mut frames) = (0usize, 0u32, 0u64);
    while let Some(packet) = reader.next_packet().expect("a well-formed stream") {
        if packet.track_id != track_id {
            continue;
        }
        let buf = decoder.decode(&packet).expect("decodable audio");
        channels = buf.spec().channels().count();
        rate = buf.spec().rate();
        frames += buf.frames() as u64;
    }
    (channels, rate, frames)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn master_in_audio_out_of_an_edge() {
    let dir = tempfile::tempdir().unwrap();
    let stack = cadenza_dev::start(config(dir.path())).await.unwrap();
    let s = stack.stack().clone();
    assert_eq!(
        StackFile::read(stack.stack_path()).as_ref(),
        Some(&s),
        "stack.json matches the running stack"
    );
    assert_eq!(s.demo.track_ids.len(), 2);
    assert_eq!(s.edges.len(), 2, "two POPs by default");

    let store = cadenza_origin::open_store(&s.origin.store).unwrap();
    let track = &s.demo.track_ids[0];
    let manifest: Manifest = cadenza_origin::read_manifest(store.as_ref(), &track.parse().unwrap())
        .await
        .unwrap()
        .expect("published");
    assert_eq!(
        manifest.album.as_ref().map(|a| (a.id.as_str(), a.tracks)),
        Some(("demo-album", 2)),
        "the demo masters went through one album ingest job"
    );

    for rung in LADDER {
        let stream = stream_url(&s, track, rung.kbps()).await;
        assert_eq!(stream.quality_kbps, rung.kbps(), "premium demo user gets what it asks for");
        let rendition = manifest.rendition(rung).expect("every rung published");
        assert_eq!(stream.file.file_id, rendition.file_id);
        assert_eq!(stream.file.gain_db, rendition.loudness.gain_db, "the rendition's own gain");
        assert_eq!(stream.file.album_gain_db, rendition.album_loudness.map(|l| l.gain_db));
        assert!(s.edges.iter().any(|e| stream.urls[0].url.starts_with(&e.url)), "URL points at a dev edge");

        let (bytes, len) = fetch_in_ranges(&stream.urls[0].url).await;
        assert_eq!(len, rendition.size);
        let origin_bytes = cadenza_origin::read_audio(store.as_ref(), &rendition.file_id).await.unwrap();
        assert_eq!(bytes, origin_bytes, "{rung} kbps: edge bytes differ from the origin object");
        assert_eq!(
            cadenza_config::ids::FileId::of_content(&bytes),
            rendition.file_id,
            "content address holds"
        );

        let (channels, rate, frames) = decode(bytes);
        assert_eq!(channels, usize::from(rendition.channels), "{rung} kbps channels");
        assert_eq!(rate, rendition.sample_rate, "{rung} kbps sample rate");
        let decoded_ms = frames as f64 * 1000.0 / f64::from(rate);
        assert!(
            (decoded_ms - rendition.duration_ms as f64).abs() <= 50.0,
            "{rung} kbps: decoded {decoded_ms:.1} ms, manifest says {} ms",
            rendition.duration_ms
        );
    }

    // Refusals: a tampered signature, an expired URL, an unsatisfiable range.
    let url = stream_url(&s, track, 96).await.urls[0].url.clone();
    let (head, sig) = url.rsplit_once("sig=").unwrap();
    let mut tampered = sig.as_bytes().to_vec();
    tampered[0] = if tampered[0] == b'A' { b'B' } else { b'A' };
    let tampered = format!("{head}sig={}", String::from_utf8(tampered).unwrap());
    let resp = client().get(&tampered).send().await.unwrap();
    assert_eq!(resp.status(), 403);
    assert_eq!(resp.headers()["x-cadenza-reason"], "token_bad_signature");

    let signing = SigningConfig { keys_file: Some(s.signing.keys_file.clone()), ..SigningConfig::default() };
    let ring = signing.key_ring().unwrap();
    let rendition = manifest.rendition(cadenza_config::ladder::Rung::K96).unwrap();
    let path = cadenza_config::layout::edge_path(&rendition.file_id);
    let expired_query = cadenza_config::token::sign_query(
        ring.current(),
        &path,
        &s.demo.user_id.parse().unwrap(),
        cadenza_config::unix_now() - 3600,
    );
    let resp = client().get(format!("{}{path}?{expired_query}", s.edges[0].url)).send().await.unwrap();
    assert_eq!(resp.status(), 403);
    assert_eq!(resp.headers()["x-cadenza-reason"], "token_expired");
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "token_expired");

    let resp = client().get(&url).header("range", format!("bytes={}-", rendition.size)).send().await.unwrap();
    assert_eq!(resp.status(), 416);
    assert_eq!(resp.headers()["content-range"], format!("bytes */{}", rendition.size).as_str());

    stack.shutdown().await.unwrap();

    // A second start on the same data dir reuses everything: same files,
    // same user, same key.
    let again = cadenza_dev::start(config(dir.path())).await.unwrap();
    let s2 = again.stack().clone();
    assert_eq!(s2.demo, s.demo, "demo user and tracks reused");
    assert_eq!(s2.signing, s.signing, "signing key reused");
    assert_eq!(s2.control.admin_token, s.control.admin_token);
    assert_eq!(s2.control.worker_token, s.control.worker_token);
    assert!(!s2.control.worker_token.is_empty());
    let manifest2 =
        cadenza_origin::read_manifest(store.as_ref(), &track.parse().unwrap()).await.unwrap().unwrap();
    assert_eq!(manifest2, manifest, "nothing re-encoded");
    let stream = stream_url(&s2, track, 160).await;
    let resp = client().get(&stream.urls[0].url).header("range", "bytes=0-3").send().await.unwrap();
    assert_eq!(resp.status(), 206);
    assert_eq!(&resp.bytes().await.unwrap()[..], b"OggS");
    again.shutdown().await.unwrap();
}

/// `cadenza dev --tls`: the edges speak HTTPS with the stack's own
/// certificate; stream URLs point at https, a client that trusts
/// `tls_ca_file` plays a track over HTTP/2, and a restart keeps the
/// certificate.
#[tokio::test]
async fn the_dev_stack_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let tls_config = DevConfig {
        tls: true,
        demo: DemoConfig { tracks: 1, ..config(dir.path()).demo },
        ..config(dir.path())
    };
    let stack = cadenza_dev::start(tls_config.clone()).await.unwrap();
    let s = stack.stack().clone();
    let ca_file = s.tls_ca_file.clone().expect("stack.json names the certificate");
    let ca = std::fs::read(&ca_file).unwrap();
    assert!(s.edges[0].url.starts_with("https://127.0.0.1:"), "{}", s.edges[0].url);

    let track = s.demo.track_ids[0].clone();
    let stream = stream_url(&s, &track, 160).await;
    let url = &stream.urls[0].url;
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");

    // Without trusting the certificate, no connection.
    assert!(client().get(url).send().await.is_err(), "a self-signed certificate is not trusted by default");
    let trusting = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
        .build()
        .unwrap();
    let resp = trusting.get(url).send().await.unwrap();
    assert_eq!((resp.status().as_u16(), resp.version()), (200, reqwest::Version::HTTP_2));
    let body = resp.bytes().await.unwrap();
    let (channels, rate, frames) = decode(body);
    assert_eq!((channels, rate), (2, 44_100));
    assert!(frames > 44_100 * 10, "{frames} frames");
    stack.shutdown().await.unwrap();

    // The edges' certificate is renewed (here: removed) under the same
    // authority, so clients that trust it keep working.
    let leaf = dir.path().join("tls").join("cert.pem");
    let old_leaf = std::fs::read(&leaf).unwrap();
    std::fs::remove_file(&leaf).unwrap();
    let again = cadenza_dev::start(tls_config).await.unwrap();
    assert_eq!(
        std::fs::read(again.stack().tls_ca_file.as_ref().unwrap()).unwrap(),
        ca,
        "the authority is kept"
    );
    assert_ne!(std::fs::read(&leaf).unwrap(), old_leaf, "a new edge certificate");
    let url = stream_url(again.stack(), &track, 96).await.urls[0].url.clone();
    let resp = trusting.get(&url).header("range", "bytes=0-99").send().await.unwrap();
    assert_eq!(resp.status(), 206);
    again.shutdown().await.unwrap();
}
