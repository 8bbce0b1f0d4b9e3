//! Signing keys that change while a service runs: key rotation without a
//! restart.
//!
//! Edges and control planes hold their `[signing]` keys in [`LiveKeys`].
//! Requests read it under one read lock, held only for the synchronous
//! check or signature (an HMAC, no I/O). A reload reads `[signing]` again
//! from its [`SigningSource`], builds and checks the whole new ring first,
//! and only then swaps it in under the write lock; one that fails (a
//! missing or malformed key file, a short secret, an empty ring, a
//! `signing.current` that is not in the ring) changes nothing, and its
//! error names the file or the key. Reloads run one at a time, so two at
//! once (a SIGHUP and an admin request) cannot swap in the older read last.
//!
//! ```
//! use cadenza_config::live::LiveKeys;
//! use cadenza_config::service::{KeySpec, SigningConfig};
//! use cadenza_config::token::SigningKey;
//!
//! let k1 = SigningKey::generate("k1".parse().unwrap());
//! let config = SigningConfig { keys: vec![KeySpec::from_key(&k1)], ..SigningConfig::default() };
//! let keys = LiveKeys::new(&config).unwrap();
//! let summary = keys.reload().unwrap(); // the same config: the same ring
//! assert_eq!((summary.keys, summary.current.as_str()), (vec!["k1".to_owned()], "k1"));
//! ```

use std::sync::{Arc, Mutex, PoisonError, RwLock, RwLockReadGuard};

use serde::Serialize;

use crate::ConfigError;
use crate::ids::UserId;
use crate::service::SigningConfig;
use crate::token::{KeyRing, TokenError, Verified, Verifier, sign_query};

type Load = dyn Fn() -> Result<SigningConfig, ConfigError> + Send + Sync;

/// Where a reload reads `[signing]` from. [`SigningSource::fixed`] keeps
/// the settings a service started with (inline keys as they were, the
/// `keys_file` read again); `cadenza edge` and `cadenza control` load their
/// whole config again (file, environment, `--set` flags), so inline keys,
/// `signing.current`, `leeway` and `max_lifetime` change too.
#[derive(Clone)]
pub struct SigningSource(Arc<Load>);

impl SigningSource {
    /// These settings; a reload reads only their `keys_file` again.
    pub fn fixed(config: SigningConfig) -> Self {
        Self(Arc::new(move || Ok(config.clone())))
    }

    /// Settings from `load`, called on every reload.
    pub fn new(load: impl Fn() -> Result<SigningConfig, ConfigError> + Send + Sync + 'static) -> Self {
        Self(Arc::new(load))
    }

    /// The settings as they are now.
    pub fn load(&self) -> Result<SigningConfig, ConfigError> {
        (self.0)()
    }
}

impl std::fmt::Debug for SigningSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningSource")
    }
}

/// The key ids of a ring and the one that signs: what a reload answers
/// and logs. Never a secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RingSummary {
    /// Every key id, in ring order.
    pub keys: Vec<String>,
    /// The key new URLs are signed with.
    pub current: String,
}

impl RingSummary {
    pub fn of(ring: &KeyRing) -> Self {
        Self { keys: ring.ids().map(ToString::to_string).collect(), current: ring.current().id().to_string() }
    }
}

/// A service's signing keys and token time rules, swappable at run time.
#[derive(Debug)]
pub struct LiveKeys {
    current: RwLock<Arc<Verifier>>,
    /// Held for a whole reload, so reloads run one at a time.
    source: Mutex<SigningSource>,
}

impl LiveKeys {
    /// The keys of `config`, checked; reloads read the same settings (see
    /// [`SigningSource::fixed`]) until [`Self::set_source`].
    pub fn new(config: &SigningConfig) -> Result<Self, ConfigError> {
        let verifier = config.checked_verifier()?;
        Ok(Self {
            current: RwLock::new(Arc::new(verifier)),
            source: Mutex::new(SigningSource::fixed(config.clone())),
        })
    }

    /// Read `[signing]` from `source` on later reloads.
    pub fn set_source(&self, source: SigningSource) {
        *self.source.lock().unwrap_or_else(PoisonError::into_inner) = source;
    }

    fn read(&self) -> RwLockReadGuard<'_, Arc<Verifier>> {
        // Nothing panics while holding the write lock (a pointer swap), but
        // a poisoned lock still holds a whole ring: use it.
        self.current.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// [`Verifier::verify`] against the ring in use.
    pub fn verify(&self, path: &str, query: Option<&str>, now: u64) -> Result<Verified, TokenError> {
        self.read().verify(path, query, now)
    }

    /// The query string authorising `uid` to GET `path` until `exp`,
    /// signed with the ring's current key (see [`sign_query`]).
    pub fn sign(&self, path: &str, uid: &UserId, exp: u64) -> String {
        sign_query(self.read().ring().current(), path, uid, exp)
    }

    /// The verifier in use now (a snapshot; a later reload does not change it).
    pub fn snapshot(&self) -> Arc<Verifier> {
        self.read().clone()
    }

    /// The ring in use now, by key id.
    pub fn summary(&self) -> RingSummary {
        RingSummary::of(self.read().ring())
    }

    /// Read `[signing]` again and swap the new ring in; on any error keep
    /// the ring in use and return the error (naming the file or key). Does
    /// blocking file I/O: async callers run it on a blocking thread.
    pub fn reload(&self) -> Result<RingSummary, ConfigError> {
        let source = self.source.lock().unwrap_or_else(PoisonError::into_inner);
        let fresh = Arc::new(source.load()?.checked_verifier()?);
        let summary = RingSummary::of(fresh.ring());
        let old =
            std::mem::replace(&mut *self.current.write().unwrap_or_else(PoisonError::into_inner), fresh);
        // The old ring is freed here, outside the lock (or by the last
        // request still holding a snapshot).
        drop(old);
        Ok(summary)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::{KeyFile, KeySpec};
    use crate::token::SigningKey;

    const PATH: &str = "/a/0123456789abcdef0123456789abcdef.ogg";

    fn key(id: &str, byte: u8) -> SigningKey {
        SigningKey::new(id.parse().unwrap(), vec![byte; 32]).unwrap()
    }

    fn write(path: &std::path::Path, keys: &[&SigningKey]) {
        let file = KeyFile { keys: keys.iter().map(|k| KeySpec::from_key(k)).collect() };
        std::fs::write(path, file.to_toml()).unwrap();
    }

    #[test]
    fn a_reload_swaps_the_ring_and_a_failed_one_keeps_it() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("keys.toml");
        let (k1, k2) = (key("k1", 1), key("k2", 2));
        write(&file, &[&k1]);
        let config = SigningConfig { keys_file: Some(file.clone()), ..SigningConfig::default() };
        let keys = LiveKeys::new(&config).unwrap();
        let now = crate::unix_now();
        let uid: UserId = "u1".parse().unwrap();
        let old_url = keys.sign(PATH, &uid, now + 600);
        assert!(old_url.contains("kid=k1"));
        let snapshot = keys.snapshot();

        // k2 appended: both verify, k2 signs.
        write(&file, &[&k1, &k2]);
        let summary = keys.reload().unwrap();
        assert_eq!(summary, RingSummary { keys: vec!["k1".into(), "k2".into()], current: "k2".into() });
        let new_url = keys.sign(PATH, &uid, now + 600);
        assert!(new_url.contains("kid=k2"));
        assert!(keys.verify(PATH, Some(&old_url), now).is_ok());
        assert!(keys.verify(PATH, Some(&new_url), now).is_ok());
        // A snapshot taken before is the ring it was.
        assert_eq!(snapshot.verify(PATH, Some(&new_url), now), Err(TokenError::UnknownKey));

        // Every way the file can be wrong: the error names the file, keeps
        // the ring, and never quotes a secret.
        let secret = k2.secret_base64();
        let broken = [
            ("unterminated string", format!("[[keys]]\nid = \"k2\"\nsecret = \"{secret}\n")),
            ("short secret", "[[keys]]\nid = \"k2\"\nsecret = \"c2hvcnQ\"\n".to_owned()),
            ("bad id", format!("[[keys]]\nid = \"k 2\"\nsecret = \"{secret}\"\n")),
            ("no keys", String::new()),
            ("duplicate", format!("[[keys]]\nid = \"k2\"\nsecret = \"{secret}\"\n").repeat(2)),
        ];
        for (what, text) in broken {
            std::fs::write(&file, &text).unwrap();
            let err = keys.reload().unwrap_err().to_string();
            assert!(err.contains("keys.toml") || err.contains("signing.keys"), "{what}: {err}");
            assert!(!err.contains(&secret), "{what}: the error quotes the secret: {err}");
            assert_eq!(keys.summary().keys, ["k1", "k2"], "{what}: the ring changed");
            assert!(keys.verify(PATH, Some(&new_url), now).is_ok(), "{what}");
        }
        std::fs::remove_file(&file).unwrap();
        let err = keys.reload().unwrap_err().to_string();
        assert!(err.contains(&file.display().to_string()), "{err}");
        assert_eq!(keys.summary().current, "k2");

        // k1 retired: its URLs are refused, k2's still verify.
        write(&file, &[&k2]);
        assert_eq!(keys.reload().unwrap().keys, ["k2"]);
        assert_eq!(keys.verify(PATH, Some(&old_url), now), Err(TokenError::UnknownKey));
        assert!(keys.verify(PATH, Some(&new_url), now).is_ok());
    }

    #[test]
    fn a_source_reads_every_setting_again() {
        let (k1, k2) = (key("k1", 1), key("k2", 2));
        let config = SigningConfig { keys: vec![KeySpec::from_key(&k1)], ..SigningConfig::default() };
        let keys = LiveKeys::new(&config).unwrap();
        let next = Arc::new(Mutex::new(config.clone()));
        let read = next.clone();
        keys.set_source(SigningSource::new(move || Ok(read.lock().unwrap().clone())));

        // Inline keys with `current` pinning the older one.
        next.lock().unwrap().keys.push(KeySpec::from_key(&k2));
        next.lock().unwrap().current = Some("k1".into());
        assert_eq!(keys.reload().unwrap().current, "k1");
        // `current` naming a key not in the ring is refused; nothing changes.
        next.lock().unwrap().current = Some("k9".into());
        let err = keys.reload().unwrap_err().to_string();
        assert!(err.contains("signing.current"), "{err}");
        assert_eq!(keys.summary().current, "k1");
        // So are limits out of range.
        next.lock().unwrap().current = None;
        next.lock().unwrap().leeway = crate::units::HumanDuration::secs(3600);
        let err = keys.reload().unwrap_err().to_string();
        assert!(err.contains("signing.leeway"), "{err}");
        assert_eq!(keys.summary().current, "k1");
        // And an error from the source itself.
        keys.set_source(SigningSource::new(|| {
            Err(ConfigError::invalid("signing.keys_file", "/nowhere", "not readable"))
        }));
        assert!(keys.reload().unwrap_err().to_string().contains("/nowhere"));
        assert_eq!(
            keys.summary(),
            RingSummary { keys: vec!["k1".into(), "k2".into()], current: "k1".into() }
        );
    }
}
