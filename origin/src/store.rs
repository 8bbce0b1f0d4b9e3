//! Opening a store by URL, and the two kinds of object cadenza keeps in it.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use cadenza_config::ids::{FileId, TrackId};
use cadenza_config::layout;
use cadenza_config::manifest::Manifest;
use object_store::path::Path as StorePath;
use object_store::{BackoffConfig, ClientOptions, ObjectStore, ObjectStoreExt as _, PutPayload, RetryConfig};

/// A shared handle to any object store backend.
pub type Store = Arc<dyn ObjectStore>;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store url {url:?}: {reason}")]
    Url { url: String, reason: String },
    #[error("store {op} {key}: {source}")]
    Backend {
        op: &'static str,
        key: String,
        #[source]
        source: object_store::Error,
    },
    #[error("manifest {key} is not valid: {reason}")]
    BadManifest { key: String, reason: String },
    #[error("audio object {key} exists with {found} bytes, expected {expected}: refusing to overwrite")]
    Conflict { key: String, found: u64, expected: u64 },
    /// A local file being uploaded from or downloaded to failed.
    #[error("local file {}: {source}", path.display())]
    Local {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl StoreError {
    /// True when the object does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, StoreError::Backend { source: object_store::Error::NotFound { .. }, .. })
    }
}

/// Open a store from a URL:
///
/// - `file:///abs/dir` — a directory (created if missing),
/// - `http://host:port/` or `https://…` — a `cadenza origin` or any server
///   that answers GET/HEAD with ranges,
/// - `s3://bucket[/prefix]` — S3 or an S3-compatible store. Query
///   parameters: `endpoint=http://host:port` (path-style requests to a
///   MinIO, Ceph RGW, R2, … endpoint), `region=…`. Credentials and anything
///   else come from the usual `AWS_*` environment variables
///   (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`,
///   `AWS_REGION`, `AWS_ENDPOINT_URL`); `skip_signature=true` reads a
///   public-read bucket with unsigned requests and no credentials.
/// - `memory://` — an in-process store (tests).
///
/// Callers use only the [`ObjectStore`] trait, so nothing assumes local files.
pub fn open_store(url: &str) -> Result<Store, StoreError> {
    open_store_with_token(url, None)
}

/// [`open_store`], sending `Authorization: Bearer <token>` with every
/// request to an `http(s)://` store (a shield edge's tier route). A token
/// for any other scheme is an error: it would silently go nowhere.
pub fn open_store_with_token(url: &str, token: Option<&str>) -> Result<Store, StoreError> {
    let bad = |reason: &str| StoreError::Url { url: url.to_owned(), reason: reason.to_owned() };
    let parsed = url::Url::parse(url).map_err(|e| bad(&e.to_string()))?;
    match parsed.scheme() {
        "file" => {
            let dir = parsed.to_file_path().map_err(|()| bad("not an absolute file path"))?;
            std::fs::create_dir_all(&dir)
                .map_err(|e| bad(&format!("cannot create {}: {e}", dir.display())))?;
            let fs = object_store::local::LocalFileSystem::new_with_prefix(&dir)
                .map_err(|e| bad(&e.to_string()))?
                .with_automatic_cleanup(true);
            Ok(Arc::new(fs))
        }
        _ if token.is_some() && !matches!(parsed.scheme(), "http" | "https") => {
            Err(bad("a bearer token is sent only to http(s) stores"))
        }
        "http" | "https" => {
            crate::install_crypto_provider();
            let mut options = ClientOptions::new().with_allow_http(true);
            if let Some(token) = token {
                let mut value = http::HeaderValue::from_str(&format!("Bearer {token}"))
                    .map_err(|_| bad("the bearer token is not a valid header value"))?;
                value.set_sensitive(true);
                let mut headers = http::HeaderMap::new();
                headers.insert(http::header::AUTHORIZATION, value);
                options = options.with_default_headers(headers);
            }
            let store = object_store::http::HttpBuilder::new()
                .with_url(url)
                .with_client_options(options)
                .with_retry(http_retry())
                .build()
                .map_err(|e| bad(&e.to_string()))?;
            Ok(Arc::new(store))
        }
        "s3" => {
            crate::install_crypto_provider();
            let bucket = parsed.host_str().filter(|b| !b.is_empty()).ok_or_else(|| bad("no bucket name"))?;
            let mut builder = object_store::aws::AmazonS3Builder::from_env()
                .with_bucket_name(bucket)
                .with_retry(http_retry())
                .with_client_options(ClientOptions::new().with_allow_http(true));
            for (key, value) in parsed.query_pairs() {
                builder = match &*key {
                    "endpoint" => {
                        builder.with_endpoint(value.as_ref()).with_virtual_hosted_style_request(false)
                    }
                    "region" => builder.with_region(value.as_ref()),
                    // A public-read bucket: unsigned requests, no credentials looked up.
                    "skip_signature" => builder.with_skip_signature(match &*value {
                        "true" => true,
                        "false" => false,
                        _ => return Err(bad("skip_signature must be true or false")),
                    }),
                    other => {
                        return Err(bad(&format!(
                            "unknown parameter {other:?} (use endpoint, region or skip_signature)"
                        )));
                    }
                };
            }
            let store: Store = Arc::new(builder.build().map_err(|e| bad(&e.to_string()))?);
            let prefix = parsed.path().trim_matches('/');
            if prefix.is_empty() {
                Ok(store)
            } else {
                Ok(Arc::new(object_store::prefix::PrefixStore::new(store, prefix)))
            }
        }
        "memory" => Ok(Arc::new(object_store::memory::InMemory::new())),
        other => Err(bad(&format!("unsupported scheme {other:?} (use file, http, https, s3 or memory)"))),
    }
}

/// Retries for HTTP stores: a few quick ones. object_store's default (10
/// retries over up to 3 minutes) would hold a listener's request far past
/// any deadline the caller sets; the caller owns the deadline and the
/// failover, so the store should fail fast.
fn http_retry() -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(200),
            base: 2.0,
        },
        max_retries: 2,
        retry_timeout: Duration::from_secs(2),
    }
}

/// The store key of a file's audio object.
pub fn audio_path(id: &FileId) -> StorePath {
    StorePath::from(layout::audio_key(id))
}

/// The store key of a track's manifest.
pub fn manifest_path(track: &TrackId) -> StorePath {
    StorePath::from(layout::manifest_key(track))
}

/// Store an audio object under its content address. Returns `false` when an
/// object of the same size was already there (content addressing makes it
/// the same bytes), `true` when written.
pub async fn put_audio(store: &dyn ObjectStore, id: &FileId, bytes: Bytes) -> Result<bool, StoreError> {
    let path = audio_path(id);
    match store.head(&path).await {
        Ok(meta) if meta.size == bytes.len() as u64 => return Ok(false),
        Ok(meta) => {
            return Err(StoreError::Conflict {
                key: path.to_string(),
                found: meta.size,
                expected: bytes.len() as u64,
            });
        }
        Err(object_store::Error::NotFound { .. }) => {}
        Err(source) => {
            return Err(StoreError::Backend { op: "head", key: path.to_string(), source });
        }
    }
    store.put(&path, PutPayload::from_bytes(bytes)).await.map_err(|source| StoreError::Backend {
        op: "put",
        key: path.to_string(),
        source,
    })?;
    Ok(true)
}

/// Parts of a multipart upload, and the size above which an upload is
/// multipart rather than one `put`.
pub const UPLOAD_PART: usize = 8 * 1024 * 1024;

/// Store the audio object in local file `path` (`size` bytes) under its
/// content address, streaming it ([`put_file`]). Returns `false` when an
/// object of the same size was already there (content addressing makes it
/// the same bytes), `true` when written.
pub async fn put_audio_file(
    store: &dyn ObjectStore,
    id: &FileId,
    path: &std::path::Path,
    size: u64,
) -> Result<bool, StoreError> {
    let key = audio_path(id);
    match store.head(&key).await {
        Ok(meta) if meta.size == size => return Ok(false),
        Ok(meta) => {
            return Err(StoreError::Conflict { key: key.to_string(), found: meta.size, expected: size });
        }
        Err(object_store::Error::NotFound { .. }) => {}
        Err(source) => return Err(StoreError::Backend { op: "head", key: key.to_string(), source }),
    }
    let written = put_file(store, key.as_ref(), path).await?;
    if written != size {
        return Err(StoreError::Local {
            path: path.to_owned(),
            source: std::io::Error::other(format!("{written} bytes uploaded, expected {size}")),
        });
    }
    Ok(true)
}

/// Upload local file `path` to `key`, streaming: a single `put` up to
/// [`UPLOAD_PART`], a multipart upload of [`UPLOAD_PART`] parts beyond, so
/// memory stays at a few parts whatever the size. Returns the bytes
/// written. A failed multipart upload is aborted.
pub async fn put_file(store: &dyn ObjectStore, key: &str, path: &std::path::Path) -> Result<u64, StoreError> {
    use tokio::io::AsyncReadExt as _;
    let location = StorePath::from(key);
    let backend = |op, source| StoreError::Backend { op, key: key.to_owned(), source };
    let local = |source| StoreError::Local { path: path.to_owned(), source };
    let mut file = tokio::fs::File::open(path).await.map_err(local)?;
    let size = file.metadata().await.map_err(local)?.len();
    if size <= UPLOAD_PART as u64 {
        let mut bytes = Vec::with_capacity(size as usize);
        file.read_to_end(&mut bytes).await.map_err(local)?;
        let n = bytes.len() as u64;
        store.put(&location, PutPayload::from(bytes)).await.map_err(|e| backend("put", e))?;
        return Ok(n);
    }
    let upload = store.put_multipart(&location).await.map_err(|e| backend("put_multipart", e))?;
    let mut writer = object_store::WriteMultipart::new_with_chunk_size(upload, UPLOAD_PART);
    let mut buf = vec![0u8; 1024 * 1024];
    let mut sent = 0u64;
    loop {
        let n = match file.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) => {
                writer.abort().await.ok();
                return Err(local(e));
            }
        };
        if let Err(e) = writer.wait_for_capacity(2).await {
            return Err(backend("put_part", e));
        }
        writer.write(&buf[..n]);
        sent += n as u64;
    }
    writer.finish().await.map_err(|e| backend("complete_multipart", e))?;
    Ok(sent)
}

/// Download object `key` to the local file `to`, streaming, and return its
/// size. The file is written whole or removed.
pub async fn download(store: &dyn ObjectStore, key: &str, to: &std::path::Path) -> Result<u64, StoreError> {
    use futures_util::StreamExt as _;
    use tokio::io::AsyncWriteExt as _;
    let path = StorePath::from(key);
    let backend = |op, source| StoreError::Backend { op, key: key.to_owned(), source };
    let local = |source| StoreError::Local { path: to.to_owned(), source };
    let result = store.get(&path).await.map_err(|e| backend("get", e))?;
    let mut stream = result.into_stream();
    let mut file = tokio::fs::File::create(to).await.map_err(local)?;
    let mut size = 0u64;
    let written: Result<(), StoreError> = async {
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| backend("get", e))?;
            file.write_all(&chunk).await.map_err(local)?;
            size += chunk.len() as u64;
        }
        file.flush().await.map_err(local)?;
        file.sync_all().await.map_err(local)
    }
    .await;
    if let Err(e) = written {
        drop(file);
        let _ = tokio::fs::remove_file(to).await;
        return Err(e);
    }
    Ok(size)
}

/// Write a manifest. Call only after every audio object it names is stored:
/// a reader that finds the manifest must find its files.
pub async fn write_manifest(store: &dyn ObjectStore, manifest: &Manifest) -> Result<(), StoreError> {
    let path = manifest_path(&manifest.track_id);
    manifest.check().map_err(|reason| StoreError::BadManifest { key: path.to_string(), reason })?;
    let json = serde_json::to_vec_pretty(manifest).expect("manifest serialises");
    store.put(&path, PutPayload::from(json)).await.map_err(|source| StoreError::Backend {
        op: "put",
        key: path.to_string(),
        source,
    })?;
    Ok(())
}

/// Read a track's manifest; `Ok(None)` when the track is not published.
pub async fn read_manifest(store: &dyn ObjectStore, track: &TrackId) -> Result<Option<Manifest>, StoreError> {
    let path = manifest_path(track);
    let bytes = match store.get(&path).await {
        Ok(r) => r.bytes().await.map_err(|source| StoreError::Backend {
            op: "get",
            key: path.to_string(),
            source,
        })?,
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(source) => {
            return Err(StoreError::Backend { op: "get", key: path.to_string(), source });
        }
    };
    let manifest: Manifest = serde_json::from_slice(&bytes)
        .map_err(|e| StoreError::BadManifest { key: path.to_string(), reason: e.to_string() })?;
    if &manifest.track_id != track {
        return Err(StoreError::BadManifest {
            key: path.to_string(),
            reason: format!("names track {}", manifest.track_id),
        });
    }
    manifest.check().map_err(|reason| StoreError::BadManifest { key: path.to_string(), reason })?;
    Ok(Some(manifest))
}

/// Read a whole audio object.
pub async fn read_audio(store: &dyn ObjectStore, id: &FileId) -> Result<Bytes, StoreError> {
    let path = audio_path(id);
    let get = store.get(&path).await.map_err(|source| StoreError::Backend {
        op: "get",
        key: path.to_string(),
        source,
    })?;
    get.bytes().await.map_err(|source| StoreError::Backend { op: "get", key: path.to_string(), source })
}
