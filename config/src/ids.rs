//! Identifiers shared by every part: content-addressed file ids and the
//! opaque ids of catalog entities.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

/// Number of hex digits in a [`FileId`]: 128 bits of SHA-256.
pub const FILE_ID_LEN: usize = 32;

/// The id of an immutable audio object: the first 32 lower-case hex digits of
/// the SHA-256 of its bytes. Unguessable without the bytes, so knowing a
/// track never reveals its files.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileId([u8; FILE_ID_LEN]);

impl FileId {
    /// The id of `bytes`.
    pub fn of_content(bytes: &[u8]) -> Self {
        Self::from_digest(&Sha256::digest(bytes).into())
    }

    /// The id for a finished SHA-256 digest (for callers that hash while
    /// streaming).
    pub fn from_digest(digest: &[u8; 32]) -> Self {
        let hex = hex::encode(&digest[..FILE_ID_LEN / 2]);
        let mut out = [0u8; FILE_ID_LEN];
        out.copy_from_slice(hex.as_bytes());
        Self(out)
    }

    pub fn as_str(&self) -> &str {
        // Only ever built from validated lower-case hex.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

/// Why a string is not a valid id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("file id must be {FILE_ID_LEN} lower-case hex digits, got {0:?}")]
    FileId(String),
    #[error("{kind} must be 1-{max} characters of [A-Za-z0-9_-], got {value:?}")]
    Opaque { kind: &'static str, max: usize, value: String },
}

impl FromStr for FileId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        let b = s.as_bytes();
        if b.len() != FILE_ID_LEN || !b.iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(IdError::FileId(truncate(s)));
        }
        let mut out = [0u8; FILE_ID_LEN];
        out.copy_from_slice(b);
        Ok(Self(out))
    }
}

impl fmt::Display for FileId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for FileId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FileId({})", self.as_str())
    }
}

impl Serialize for FileId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for FileId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Is `s` a valid opaque id: 1..=max characters of `[A-Za-z0-9_-]`?
///
/// Opaque ids travel in URLs and object keys, so the alphabet is the
/// URL-safe, path-safe one: no `/`, no `.`, no percent-encoding.
pub fn is_opaque_id(s: &str, max: usize) -> bool {
    !s.is_empty() && s.len() <= max && s.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-')
}

macro_rules! opaque_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal, $max:expr) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
        pub struct $name(String);

        impl $name {
            /// Longest accepted id.
            pub const MAX_LEN: usize = $max;
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                if is_opaque_id(s, $max) {
                    Ok(Self(s.to_owned()))
                } else {
                    Err(IdError::Opaque { kind: $kind, max: $max, value: truncate(s) })
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

opaque_id!(
    /// A track's id in the catalog and in `tracks/<track_id>/manifest.json`.
    TrackId, "track id", 64
);
opaque_id!(
    /// A user's id as carried in a signed URL (`uid=`).
    UserId, "user id", 64
);
opaque_id!(
    /// A signing key's id as carried in a signed URL (`kid=`).
    KeyId, "key id", 32
);

/// Shorten untrusted input before echoing it in an error message.
pub(crate) fn truncate(s: &str) -> String {
    const MAX: usize = 80;
    if s.len() <= MAX {
        return s.to_owned();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// A fresh random opaque id of `len` characters from `[A-Za-z0-9]`
/// (62^22 ≈ 2^131 for the usual 22).
pub fn random_id(len: usize) -> String {
    use rand::RngExt as _;
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut rng = rand::rng();
    (0..len).map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_id_is_sha256_prefix() {
        // sha256("abc") = ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad
        assert_eq!(FileId::of_content(b"abc").as_str(), "ba7816bf8f01cfea414140de5dae2223");
    }

    #[test]
    fn file_id_parse_is_strict() {
        assert!("ba7816bf8f01cfea414140de5dae2223".parse::<FileId>().is_ok());
        for bad in [
            "",
            "BA7816BF8F01CFEA414140DE5DAE2223",
            "ba7816bf8f01cfea414140de5dae222",
            "ba7816bf8f01cfea414140de5dae22233",
            "ba7816bf8f01cfea414140de5dae222g",
            "../816bf8f01cfea414140de5dae2223",
        ] {
            assert!(bad.parse::<FileId>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn opaque_ids_reject_path_and_url_characters() {
        assert!("trk_01-A".parse::<TrackId>().is_ok());
        for bad in ["", "a/b", "a.b", "a%2Fb", "a b", "ä", &"x".repeat(65)] {
            assert!(bad.parse::<TrackId>().is_err(), "{bad:?} accepted");
        }
        assert!("x".repeat(32).parse::<KeyId>().is_ok());
        assert!("x".repeat(33).parse::<KeyId>().is_err());
    }

    #[test]
    fn random_ids_have_the_alphabet_and_length() {
        let id = random_id(22);
        assert_eq!(id.len(), 22);
        assert!(is_opaque_id(&id, 22));
        assert_ne!(random_id(22), id);
    }
}
