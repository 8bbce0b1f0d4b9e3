//! Signed edge URLs: `/a/<file_id>.ogg?exp=<unix>&uid=<user>&kid=<key>&sig=<mac>`.
//!
//! The MAC is HMAC-SHA256 over a canonical, length-delimited string of every
//! field the edge acts on:
//!
//! ```text
//! "cadenza-url-v1" ‖ len(kid) ":" kid ‖ len(path) ":" path ‖ len(exp) ":" exp ‖ len(uid) ":" uid
//! ```
//!
//! Lengths are decimal and every field is length-prefixed, so no two
//! different (path, exp, uid, kid) tuples share a canonical string — there is
//! no delimiter to smuggle. `sig` is the 32-byte tag in unpadded base64url
//! (exactly 43 characters).
//!
//! Verification is strict and ordered so that nothing about the key leaks:
//! the query must hold exactly the four parameters, once each, in the
//! alphabet each allows; the key is looked up by `kid`; the tag is compared in
//! constant time; only then are the times checked (so a forged token learns
//! nothing from being told it is expired). Each failure has a stable reason
//! code ([`TokenError::reason`]) for the response header and the rejection
//! counter.

use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::ids::{KeyId, UserId};

type HmacSha256 = Hmac<Sha256>;

/// Domain-separation tag at the start of every canonical string.
pub const CANONICAL_TAG: &str = "cadenza-url-v1";
/// Shortest accepted secret, in bytes.
pub const MIN_SECRET_LEN: usize = 32;
/// Length of `sig=` in characters: 32 bytes in unpadded base64url.
pub const SIG_LEN: usize = 43;
/// Longest accepted query string; anything longer is not ours.
pub const MAX_QUERY_LEN: usize = 512;
/// Longest accepted `exp=` value (digits); 12 digits reach the year 33658.
const MAX_EXP_DIGITS: usize = 12;

/// One HMAC key with its id. `Debug` never shows the secret.
#[derive(Clone)]
pub struct SigningKey {
    id: KeyId,
    secret: Vec<u8>,
    /// HMAC state with the key already absorbed; cloned per use.
    keyed: HmacSha256,
}

/// Why a key or key ring was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("key {id:?}: secret must be at least {MIN_SECRET_LEN} bytes, got {len}")]
    ShortSecret { id: String, len: usize },
    #[error("key {id:?}: secret is not unpadded base64url")]
    SecretEncoding { id: String },
    #[error("key ring is empty: configure at least one signing key")]
    Empty,
    #[error("key id {0:?} appears twice in the key ring")]
    Duplicate(String),
    #[error("current key {0:?} is not in the key ring")]
    UnknownCurrent(String),
}

impl SigningKey {
    /// A key from raw secret bytes (at least [`MIN_SECRET_LEN`]).
    pub fn new(id: KeyId, secret: Vec<u8>) -> Result<Self, KeyError> {
        if secret.len() < MIN_SECRET_LEN {
            return Err(KeyError::ShortSecret { id: id.to_string(), len: secret.len() });
        }
        let keyed =
            <HmacSha256 as KeyInit>::new_from_slice(&secret).expect("HMAC accepts keys of any length");
        Ok(Self { id, secret, keyed })
    }

    /// A key from its unpadded base64url secret, the form config files hold.
    pub fn from_base64(id: KeyId, secret_b64: &str) -> Result<Self, KeyError> {
        let secret = URL_SAFE_NO_PAD
            .decode(secret_b64.trim())
            .map_err(|_| KeyError::SecretEncoding { id: id.to_string() })?;
        Self::new(id, secret)
    }

    /// A fresh key with 32 random bytes from the OS-seeded CSPRNG.
    pub fn generate(id: KeyId) -> Self {
        use rand::Rng as _;
        let mut secret = vec![0u8; MIN_SECRET_LEN];
        rand::rng().fill_bytes(&mut secret);
        Self::new(id, secret).expect("generated secret has the minimum length")
    }

    pub fn id(&self) -> &KeyId {
        &self.id
    }

    /// The secret in unpadded base64url, for writing a key file.
    pub fn secret_base64(&self) -> String {
        URL_SAFE_NO_PAD.encode(&self.secret)
    }

    /// The keyed HMAC over the canonical string of these fields.
    fn mac(&self, path: &str, exp: u64, uid: &str, kid: &str) -> HmacSha256 {
        let mut mac = self.keyed.clone();
        write_canonical(path, exp, uid, kid, |piece| mac.update(piece));
        mac
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey").field("id", &self.id).field("secret", &"<redacted>").finish()
    }
}

/// The keys a process knows, by id. A signer uses [`KeyRing::current`]; a
/// verifier accepts any key in the ring, so a rotation adds the new key
/// everywhere first, then makes it current, then retires the old one.
#[derive(Clone, Debug)]
pub struct KeyRing {
    keys: Vec<SigningKey>,
    current: usize,
}

impl KeyRing {
    /// A ring of `keys`; `current` names the signing key (default: the last).
    pub fn new(keys: Vec<SigningKey>, current: Option<&KeyId>) -> Result<Self, KeyError> {
        if keys.is_empty() {
            return Err(KeyError::Empty);
        }
        for (i, k) in keys.iter().enumerate() {
            if keys[..i].iter().any(|o| o.id == k.id) {
                return Err(KeyError::Duplicate(k.id.to_string()));
            }
        }
        let current = match current {
            None => keys.len() - 1,
            Some(id) => keys
                .iter()
                .position(|k| &k.id == id)
                .ok_or_else(|| KeyError::UnknownCurrent(id.to_string()))?,
        };
        Ok(Self { keys, current })
    }

    /// The key new URLs are signed with.
    pub fn current(&self) -> &SigningKey {
        &self.keys[self.current]
    }

    /// The key named `kid`, if the ring holds it.
    pub fn get(&self, kid: &str) -> Option<&SigningKey> {
        self.keys.iter().find(|k| k.id.as_str() == kid)
    }

    pub fn ids(&self) -> impl Iterator<Item = &KeyId> {
        self.keys.iter().map(|k| &k.id)
    }
}

/// The canonical string the MAC covers (see the module docs).
pub fn canonical(path: &str, exp: u64, uid: &str, kid: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(CANONICAL_TAG.len() + path.len() + uid.len() + kid.len() + 40);
    write_canonical(path, exp, uid, kid, |piece| out.extend_from_slice(piece));
    out
}

/// Feed the canonical string to `sink` piece by piece, without allocating:
/// the verifier streams it straight into the HMAC on every request.
fn write_canonical(path: &str, exp: u64, uid: &str, kid: &str, mut sink: impl FnMut(&[u8])) {
    let mut exp_buf = [0u8; 20];
    let exp = decimal(exp, &mut exp_buf);
    sink(CANONICAL_TAG.as_bytes());
    for field in [kid.as_bytes(), path.as_bytes(), exp, uid.as_bytes()] {
        let mut len_buf = [0u8; 20];
        sink(decimal(field.len() as u64, &mut len_buf));
        sink(b":");
        sink(field);
    }
}

/// `n` in decimal ASCII, written into the end of `buf`.
fn decimal(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[i..];
        }
    }
}

/// The query string (without `?`) that authorises `uid` to GET `path` until
/// `exp` (unix seconds), signed with `key`.
pub fn sign_query(key: &SigningKey, path: &str, uid: &UserId, exp: u64) -> String {
    let tag = key.mac(path, exp, uid.as_str(), key.id.as_str()).finalize().into_bytes();
    format!("exp={exp}&uid={uid}&kid={}&sig={}", key.id, URL_SAFE_NO_PAD.encode(tag))
}

/// Time rules for tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TokenPolicy {
    /// Clock skew tolerated between signer and verifier, both ways.
    pub leeway: Duration,
    /// Longest a token may live: `exp` further than this (plus leeway) in the
    /// future is refused, so a leaked signer cannot mint eternal URLs.
    pub max_lifetime: Duration,
}

/// Why a token was refused. [`TokenError::reason`] is the stable code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("no token in the query string")]
    Missing,
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    #[error("unknown signing key")]
    UnknownKey,
    #[error("signature does not match")]
    BadSignature,
    #[error("token expired")]
    Expired,
    #[error("token expiry is further in the future than the maximum lifetime")]
    LifetimeExceeded,
}

impl TokenError {
    /// Stable reason code for headers, metrics and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            TokenError::Missing => "token_missing",
            TokenError::Malformed(_) => "token_malformed",
            TokenError::UnknownKey => "token_unknown_key",
            TokenError::BadSignature => "token_bad_signature",
            TokenError::Expired => "token_expired",
            TokenError::LifetimeExceeded => "token_lifetime_exceeded",
        }
    }

    /// Every reason code, for pre-registering metric label values.
    pub const REASONS: [&'static str; 6] = [
        "token_missing",
        "token_malformed",
        "token_unknown_key",
        "token_bad_signature",
        "token_expired",
        "token_lifetime_exceeded",
    ];
}

/// What a valid token says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    pub uid: UserId,
    pub kid: KeyId,
    pub exp: u64,
}

/// Checks tokens against a key ring and a [`TokenPolicy`].
#[derive(Clone, Debug)]
pub struct Verifier {
    ring: KeyRing,
    policy: TokenPolicy,
}

impl Verifier {
    pub fn new(ring: KeyRing, policy: TokenPolicy) -> Self {
        Self { ring, policy }
    }

    pub fn ring(&self) -> &KeyRing {
        &self.ring
    }

    /// Verify that `query` (the raw query string, without `?`) authorises a
    /// GET of `path` at unix time `now`.
    pub fn verify(&self, path: &str, query: Option<&str>, now: u64) -> Result<Verified, TokenError> {
        let q = parse_query(query.unwrap_or(""))?;
        let key = self.ring.get(q.kid).ok_or(TokenError::UnknownKey)?;
        key.mac(path, q.exp, q.uid, q.kid).verify_slice(&q.sig).map_err(|_| TokenError::BadSignature)?;
        let leeway = self.policy.leeway.as_secs();
        if now > q.exp.saturating_add(leeway) {
            return Err(TokenError::Expired);
        }
        if q.exp > now.saturating_add(self.policy.max_lifetime.as_secs()).saturating_add(leeway) {
            return Err(TokenError::LifetimeExceeded);
        }
        Ok(Verified {
            uid: q.uid.parse().map_err(|_| TokenError::Malformed("uid"))?,
            kid: key.id.clone(),
            exp: q.exp,
        })
    }
}

struct RawToken<'a> {
    exp: u64,
    uid: &'a str,
    kid: &'a str,
    sig: [u8; 32],
}

/// Strict parse: exactly `exp`, `uid`, `kid`, `sig`, once each, any order,
/// no other parameters, no percent-encoding, each value in its alphabet.
fn parse_query(query: &str) -> Result<RawToken<'_>, TokenError> {
    if query.is_empty() {
        return Err(TokenError::Missing);
    }
    if query.len() > MAX_QUERY_LEN {
        return Err(TokenError::Malformed("query too long"));
    }
    let (mut exp, mut uid, mut kid, mut sig) = (None, None, None, None);
    for pair in query.split('&') {
        let (name, value) = pair.split_once('=').ok_or(TokenError::Malformed("parameter without '='"))?;
        let slot = match name {
            "exp" => &mut exp,
            "uid" => &mut uid,
            "kid" => &mut kid,
            "sig" => &mut sig,
            _ => return Err(TokenError::Malformed("unexpected parameter")),
        };
        if slot.replace(value).is_some() {
            return Err(TokenError::Malformed("duplicated parameter"));
        }
    }
    if exp.is_none() && uid.is_none() && kid.is_none() && sig.is_none() {
        return Err(TokenError::Missing);
    }
    let exp = exp.ok_or(TokenError::Malformed("missing exp"))?;
    let uid = uid.ok_or(TokenError::Malformed("missing uid"))?;
    let kid = kid.ok_or(TokenError::Malformed("missing kid"))?;
    let sig = sig.ok_or(TokenError::Malformed("missing sig"))?;

    let exp_ok = !exp.is_empty()
        && exp.len() <= MAX_EXP_DIGITS
        && exp.bytes().all(|c| c.is_ascii_digit())
        && (exp == "0" || !exp.starts_with('0'));
    if !exp_ok {
        return Err(TokenError::Malformed("exp"));
    }
    let exp: u64 = exp.parse().map_err(|_| TokenError::Malformed("exp"))?;
    if !crate::ids::is_opaque_id(uid, UserId::MAX_LEN) {
        return Err(TokenError::Malformed("uid"));
    }
    if !crate::ids::is_opaque_id(kid, KeyId::MAX_LEN) {
        return Err(TokenError::Malformed("kid"));
    }
    if sig.len() != SIG_LEN {
        return Err(TokenError::Malformed("sig length"));
    }
    let mut tag = [0u8; 32];
    match URL_SAFE_NO_PAD.decode_slice(sig, &mut tag) {
        Ok(32) => {}
        _ => return Err(TokenError::Malformed("sig encoding")),
    }
    Ok(RawToken { exp, uid, kid, sig: tag })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000;
    const PATH: &str = "/a/0123456789abcdef0123456789abcdef.ogg";

    fn key(id: &str, byte: u8) -> SigningKey {
        SigningKey::new(id.parse().unwrap(), vec![byte; 32]).unwrap()
    }

    fn verifier() -> Verifier {
        let ring = KeyRing::new(vec![key("k1", 1), key("k2", 2)], None).unwrap();
        Verifier::new(
            ring,
            TokenPolicy { leeway: Duration::from_secs(30), max_lifetime: Duration::from_secs(86_400) },
        )
    }

    fn good(exp: u64) -> String {
        sign_query(&key("k2", 2), PATH, &"u1".parse().unwrap(), exp)
    }

    fn sig_of(q: &str) -> &str {
        q.rsplit_once("sig=").unwrap().1
    }

    #[test]
    fn valid_tokens_verify_with_any_key_in_the_ring() {
        let v = verifier();
        let ok = v.verify(PATH, Some(&good(NOW + 3600)), NOW).unwrap();
        assert_eq!((ok.uid.as_str(), ok.kid.as_str(), ok.exp), ("u1", "k2", NOW + 3600));
        // An older key still in the ring verifies too (rotation).
        let old = sign_query(&key("k1", 1), PATH, &"u1".parse().unwrap(), NOW + 60);
        assert!(v.verify(PATH, Some(&old), NOW).is_ok());
        // Parameter order does not matter.
        let q = good(NOW + 60);
        let reordered = format!("sig={}&kid=k2&uid=u1&exp={}", sig_of(&q), NOW + 60);
        assert!(v.verify(PATH, Some(&reordered), NOW).is_ok());
    }

    #[test]
    fn leeway_applies_both_ways() {
        let v = verifier();
        assert!(v.verify(PATH, Some(&good(NOW - 30)), NOW).is_ok());
        assert_eq!(v.verify(PATH, Some(&good(NOW - 31)), NOW), Err(TokenError::Expired));
        assert!(v.verify(PATH, Some(&good(NOW + 86_400 + 30)), NOW).is_ok());
        assert_eq!(v.verify(PATH, Some(&good(NOW + 86_400 + 31)), NOW), Err(TokenError::LifetimeExceeded));
    }

    /// One row per way a token can be wrong.
    #[test]
    fn every_way_a_token_can_be_wrong() {
        let v = verifier();
        let q = good(NOW + 600);
        let sig = sig_of(&q).to_owned();
        let exp = NOW + 600;
        let other_path = "/a/fedcba9876543210fedcba9876543210.ogg";
        let mut flipped = sig.clone().into_bytes();
        flipped[0] = if flipped[0] == b'A' { b'B' } else { b'A' };
        let flipped = String::from_utf8(flipped).unwrap();
        let forged_unknown = sign_query(&key("k9", 9), PATH, &"u1".parse().unwrap(), exp);
        let wrong_secret = sign_query(&key("k2", 7), PATH, &"u1".parse().unwrap(), exp);

        let cases: Vec<(&str, &str, String, TokenError)> = vec![
            ("tampered path", other_path, q.clone(), TokenError::BadSignature),
            (
                "tampered expiry",
                PATH,
                q.replace(&exp.to_string(), &(exp + 1).to_string()),
                TokenError::BadSignature,
            ),
            ("swapped user", PATH, q.replace("uid=u1", "uid=u2"), TokenError::BadSignature),
            (
                "swapped kid to another ring key",
                PATH,
                q.replace("kid=k2", "kid=k1"),
                TokenError::BadSignature,
            ),
            ("flipped signature", PATH, q.replace(&sig, &flipped), TokenError::BadSignature),
            ("wrong secret", PATH, wrong_secret, TokenError::BadSignature),
            ("unknown kid", PATH, forged_unknown, TokenError::UnknownKey),
            ("expired", PATH, good(NOW - 3600), TokenError::Expired),
            ("too far in the future", PATH, good(NOW + 10 * 86_400), TokenError::LifetimeExceeded),
            ("no query", PATH, String::new(), TokenError::Missing),
            (
                "malformed base64",
                PATH,
                q.replace(&sig, &format!("{}*", &sig[..42])),
                TokenError::Malformed("sig encoding"),
            ),
            ("padded base64", PATH, format!("{q}="), TokenError::Malformed("sig length")),
            ("short sig", PATH, q.replace(&sig, &sig[..40]), TokenError::Malformed("sig length")),
            (
                "non-canonical base64 tail",
                PATH,
                q.replace(&sig, &format!("{}{}", &sig[..42], noncanonical_tail(&sig))),
                TokenError::Malformed("sig encoding"),
            ),
            ("duplicated exp", PATH, format!("{q}&exp={exp}"), TokenError::Malformed("duplicated parameter")),
            ("duplicated sig", PATH, format!("{q}&sig={sig}"), TokenError::Malformed("duplicated parameter")),
            ("extra parameter", PATH, format!("{q}&x=1"), TokenError::Malformed("unexpected parameter")),
            (
                "parameter without value separator",
                PATH,
                format!("{q}&flag"),
                TokenError::Malformed("parameter without '='"),
            ),
            ("missing sig", PATH, format!("exp={exp}&uid=u1&kid=k2"), TokenError::Malformed("missing sig")),
            ("signed exp", PATH, q.replace("exp=", "exp=+"), TokenError::Malformed("exp")),
            ("leading-zero exp", PATH, q.replace("exp=", "exp=0"), TokenError::Malformed("exp")),
            (
                "huge exp",
                PATH,
                q.replace(&format!("exp={exp}"), "exp=99999999999999999999"),
                TokenError::Malformed("exp"),
            ),
            ("percent-encoded uid", PATH, q.replace("uid=u1", "uid=u%31"), TokenError::Malformed("uid")),
            ("uid with space", PATH, q.replace("uid=u1", "uid=u 1"), TokenError::Malformed("uid")),
            ("empty kid", PATH, q.replace("kid=k2", "kid="), TokenError::Malformed("kid")),
            (
                "overlong query",
                PATH,
                format!("{q}&{}", "a".repeat(600)),
                TokenError::Malformed("query too long"),
            ),
        ];
        for (name, path, query, want) in cases {
            assert_eq!(v.verify(path, Some(&query), NOW), Err(want.clone()), "case: {name}");
        }
    }

    /// The last base64 character of a 32-byte tag carries 2 unused bits;
    /// return a character that differs only in those bits.
    fn noncanonical_tail(sig: &str) -> char {
        const ALPHA: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let last = sig.as_bytes()[42];
        let idx = ALPHA.iter().position(|&c| c == last).unwrap();
        ALPHA[idx ^ 1] as char
    }

    #[test]
    fn canonical_string_is_unambiguous() {
        // Moving bytes between adjacent fields changes the canonical string.
        assert_ne!(canonical("/a/x", 1, "ab", "k"), canonical("/a/x", 1, "a", "bk"));
        assert_ne!(canonical("/a/x1", 1, "u", "k"), canonical("/a/x", 11, "u", "k"));
        assert!(canonical("/p", 5, "u", "k").starts_with(CANONICAL_TAG.as_bytes()));
        // The exact bytes, so a change to the format cannot slip by.
        assert_eq!(
            canonical("/a/x.ogg", 1_800_000_000, "u1", "k2"),
            b"cadenza-url-v12:k28:/a/x.ogg10:18000000002:u1"
        );
        assert_eq!(canonical("/p", 0, "u", "k"), b"cadenza-url-v11:k2:/p1:01:u");
        let mut buf = [0u8; 20];
        assert_eq!(decimal(u64::MAX, &mut buf), u64::MAX.to_string().as_bytes());
    }

    #[test]
    fn key_ring_rules() {
        assert_eq!(KeyRing::new(vec![], None).unwrap_err(), KeyError::Empty);
        assert_eq!(
            KeyRing::new(vec![key("a", 1), key("a", 2)], None).unwrap_err(),
            KeyError::Duplicate("a".into())
        );
        let ring = KeyRing::new(vec![key("a", 1), key("b", 2)], None).unwrap();
        assert_eq!(ring.current().id().as_str(), "b");
        let ring = KeyRing::new(vec![key("a", 1), key("b", 2)], Some(&"a".parse().unwrap())).unwrap();
        assert_eq!(ring.current().id().as_str(), "a");
        assert!(KeyRing::new(vec![key("a", 1)], Some(&"z".parse().unwrap())).is_err());
        assert!(matches!(
            SigningKey::new("s".parse().unwrap(), vec![0; 31]),
            Err(KeyError::ShortSecret { len: 31, .. })
        ));
        assert!(matches!(
            SigningKey::from_base64("s".parse().unwrap(), "not base64!"),
            Err(KeyError::SecretEncoding { .. })
        ));
        let generated = SigningKey::generate("g".parse().unwrap());
        let again = SigningKey::from_base64("g".parse().unwrap(), &generated.secret_base64()).unwrap();
        assert_eq!(again.secret, generated.secret);
        assert!(!format!("{generated:?}").contains(&generated.secret_base64()));
    }
}
