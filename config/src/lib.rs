//! Everything two cadenza processes must agree on.
//!
//! - [`service`]: the typed configuration of every service, loaded by
//!   [`load::load`] from a TOML file, `CADENZA_*` environment variables and
//!   `--set key=value` flags, and validated with errors that name the key.
//! - [`ladder`]: the 24/96/160/320 kbps Ogg Vorbis ladder.
//! - [`layout`]: object keys (`audio/<file_id>.ogg`,
//!   `tracks/<track_id>/manifest.json`) and the edge path `/a/<file_id>.ogg`.
//! - [`manifest`]: a track's published ladder.
//! - [`ingest`]: the job protocol between the control plane and transcoder
//!   workers.
//! - [`token`]: signed edge URLs (HMAC-SHA256, key ring by `kid`).
//! - [`live`]: a service's key ring, reloaded at run time (key rotation).
//! - [`secure_link`]: URLs for an nginx CDN's `secure_link_md5`.
//!
//! This crate does no I/O beyond reading config and key files.
//!
//! ```
//! use cadenza_config::{ids::FileId, layout, token};
//! let key = token::SigningKey::generate("k1".parse().unwrap());
//! let path = layout::edge_path(&FileId::of_content(b"ogg bytes"));
//! let query = token::sign_query(&key, &path, &"user1".parse().unwrap(), 1_900_000_000);
//! let ring = token::KeyRing::new(vec![key], None).unwrap();
//! let policy = token::TokenPolicy {
//!     leeway: std::time::Duration::from_secs(30),
//!     max_lifetime: std::time::Duration::from_secs(86_400),
//! };
//! let verified = token::Verifier::new(ring, policy).verify(&path, Some(&query), 1_899_999_000);
//! assert_eq!(verified.unwrap().uid.as_str(), "user1");
//! ```

pub mod ids;
pub mod ingest;
pub mod ladder;
pub mod layout;
pub mod live;
pub mod load;
pub mod manifest;
pub mod secure_link;
pub mod service;
pub mod token;
pub mod units;

pub use load::{ConfigError, ServiceConfig};

/// Seconds since the Unix epoch, the clock every token is judged by.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}
