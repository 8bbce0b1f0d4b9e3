//! Helpers shared by the integration tests: masters from `synth`, a real
//! decoder for the renditions, and a store wrapper that records (and can
//! fail) writes.

#![allow(dead_code, unreachable_pub)]

use std::fmt;
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use cadenza_transcoder::synth;
use futures_util::stream::BoxStream;
use object_store::path::Path as StorePath;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult,
};
use symphonia::core::codecs::audio::AudioDecoderOptions;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, TrackType};
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;

/// Write `planes` as a WAV (24-bit) or FLAC (16-bit) master named `name`.
pub fn write_master(dir: &Path, name: &str, planes: &[Vec<f32>], rate: u32) -> PathBuf {
    let path = dir.join(name);
    if name.ends_with(".flac") {
        synth::write_flac(&path, planes, rate, 16).unwrap();
    } else {
        synth::write_wav(&path, planes, rate, 24).unwrap();
    }
    path
}

/// Demo music, `seconds` long, stereo 44.1 kHz, as planes.
pub fn music(seed: u64, seconds: u32) -> Vec<Vec<f32>> {
    synth::render(seed, 0, seconds).to_vec()
}

/// What a real decoder (symphonia's Ogg demuxer and Vorbis decoder) makes
/// of an encoded file.
#[derive(Debug)]
pub struct Decoded {
    pub sample_rate: u32,
    pub channels: usize,
    pub frames: u64,
}

impl Decoded {
    pub fn duration_ms(&self) -> f64 {
        self.frames as f64 * 1000.0 / f64::from(self.sample_rate)
    }
}

pub fn decode_ogg(bytes: &[u8]) -> Decoded {
    let mss = MediaSourceStream::new(Box::new(Cursor::new(bytes.to_vec())), Default::default());
    let mut hint = Hint::new();
    hint.with_extension("ogg");
    let mut reader = symphonia::default::get_probe()
        .probe(&hint, mss, FormatOptions::default(), MetadataOptions::default())
        .expect("symphonia opens the ogg");
    assert_eq!(reader.format_info().short_name, "ogg");
    let track = reader.default_track(TrackType::Audio).expect("audio track");
    let id = track.id;
    let params = track.codec_params.as_ref().unwrap().audio().unwrap().clone();
    let mut decoder = symphonia::default::get_codecs()
        .make_audio_decoder(&params, &AudioDecoderOptions::default())
        .expect("vorbis decoder");
    let mut frames = 0u64;
    let mut spec = None;
    while let Some(packet) = reader.next_packet().expect("demux") {
        if packet.track_id != id {
            continue;
        }
        let buf = decoder.decode(&packet).expect("decode");
        frames += buf.frames() as u64;
        spec.get_or_insert((buf.spec().rate(), buf.spec().channels().count()));
    }
    let (sample_rate, channels) = spec.expect("decoded some audio");
    Decoded { sample_rate, channels, frames }
}

/// A store that forwards to `inner`, records every `put` key in order, and
/// fails the `fail_at`-th put (0-based) when set.
#[derive(Debug)]
pub struct Recording {
    pub inner: cadenza_origin::Store,
    pub puts: Mutex<Vec<String>>,
    pub fail_at: Option<usize>,
    count: AtomicUsize,
}

impl Recording {
    pub fn new(inner: cadenza_origin::Store, fail_at: Option<usize>) -> Self {
        Self { inner, puts: Mutex::new(Vec::new()), fail_at, count: AtomicUsize::new(0) }
    }

    pub fn puts(&self) -> Vec<String> {
        self.puts.lock().unwrap().clone()
    }
}

impl fmt::Display for Recording {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Recording({})", self.inner)
    }
}

#[async_trait::async_trait]
impl ObjectStore for Recording {
    async fn put_opts(
        &self,
        location: &StorePath,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        let n = self.count.fetch_add(1, Ordering::SeqCst);
        if Some(n) == self.fail_at {
            return Err(object_store::Error::Generic {
                store: "recording",
                source: format!("injected failure on put #{n} ({location})").into(),
            });
        }
        self.puts.lock().unwrap().push(location.to_string());
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &StorePath,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &StorePath, options: GetOptions) -> object_store::Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<StorePath>>,
    ) -> BoxStream<'static, object_store::Result<StorePath>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&StorePath>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&StorePath>) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &StorePath,
        to: &StorePath,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}

/// Every file under a directory, relative, sorted.
pub fn files_under(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(base, &p, out);
            } else {
                out.push(p.strip_prefix(base).unwrap().display().to_string());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// A `file://` URL for a directory.
pub fn file_url(dir: &Path) -> String {
    format!("file://{}", dir.display())
}
