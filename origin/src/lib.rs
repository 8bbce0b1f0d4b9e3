//! Object store access for cadenza.
//!
//! - [`open_store`]: any `object_store` backend from a URL (`file://`,
//!   `http(s)://`, `memory://`); callers see only the `ObjectStore` trait.
//! - [`put_audio`], [`write_manifest`], [`read_manifest`]: the two kinds of
//!   object, at the keys `cadenza_config::layout` defines.
//! - [`server`]: `cadenza origin`, which serves a store over HTTP (GET/HEAD
//!   with single byte ranges) so edges can fill from a store they cannot
//!   reach directly.
//!
//! ```no_run
//! # async fn demo() -> Result<(), cadenza_origin::StoreError> {
//! let store = cadenza_origin::open_store("file:///var/lib/cadenza/store")?;
//! let manifest = cadenza_origin::read_manifest(store.as_ref(), &"trk1".parse().unwrap()).await?;
//! # Ok(()) }
//! ```

pub mod server;
mod store;

pub use server::{OriginError, OriginServer, run};
pub use store::{
    Store, StoreError, UPLOAD_PART, audio_path, download, manifest_path, open_store, open_store_with_token,
    put_audio, put_audio_file, put_file, read_audio, read_manifest, write_manifest,
};

/// Install rustls' ring provider as the process default, once. HTTP clients
/// (object_store's, reqwest's) need one even for plain `http://`; we pick ring
/// so the build needs no cmake or assembler.
pub fn install_crypto_provider() {
    // Err only means a provider is already installed, which is what we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
}
