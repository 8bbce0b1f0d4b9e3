//! URLs for a CDN that checks them with nginx's `secure_link` module
//! (`ngx_http_secure_link_module`), in its `secure_link_md5` form:
//!
//! ```nginx
//! secure_link     $arg_md5,$arg_expires;
//! secure_link_md5 "$secure_link_expires$uri$arg_uid <secret>";
//! ```
//!
//! The query is `md5=<tag>&expires=<unix>&uid=<user>`, where `tag` is the
//! MD5 of `"<expires><path><uid> <secret>"` in unpadded base64url — the
//! form the module documents (`openssl md5 -binary | openssl base64 | tr
//! +/ -_ | tr -d =`). The user id is covered, as cadenza's own token covers
//! it, so a URL cannot be handed to another account's session unnoticed in
//! logs. [`nginx_directives`] prints the two directives for a secret so the
//! docs, the tests and an operator's config cannot drift apart.
//!
//! MD5 is what the module offers; it is a keyed prefix-free hash here (the
//! secret is last, after a fixed-format message), which is the module's
//! own construction and the scheme a third-party CDN would impose. A
//! secret rotates in three steps: nginx accepts the new and the old one
//! (the old one checked by a second server block, as one request computes
//! `$secure_link` once), the control plane signs with the new one, and
//! after the URL lifetime nginx drops the old one (see `docs/cdn.md`).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use md5::{Digest as _, Md5};

use crate::ids::UserId;

/// The query string (without `?`) that lets `uid` GET `path` until `exp`
/// (unix seconds) from an nginx whose `secure_link_md5` holds `secret`.
pub fn sign_query(secret: &str, path: &str, uid: &UserId, exp: u64) -> String {
    // uid is an opaque id ([A-Za-z0-9_-]), so it needs no escaping.
    format!("md5={}&expires={exp}&uid={uid}", tag(secret, path, uid.as_str(), exp))
}

/// The `md5=` value.
pub fn tag(secret: &str, path: &str, uid: &str, exp: u64) -> String {
    let mut h = Md5::new();
    h.update(exp.to_string().as_bytes());
    h.update(path.as_bytes());
    h.update(uid.as_bytes());
    h.update(b" ");
    h.update(secret.as_bytes());
    URL_SAFE_NO_PAD.encode(h.finalize())
}

/// The two nginx directives that check [`sign_query`]'s URLs.
pub fn nginx_directives(secret: &str) -> String {
    format!(
        "secure_link $arg_md5,$arg_expires;\nsecure_link_md5 \"$secure_link_expires$uri$arg_uid {secret}\";\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_is_nginx_documented_form() {
        // `echo -n '2147483647/a/x.ogguser1 s3cret' | openssl md5 -binary
        //  | openssl base64 | tr +/ -_ | tr -d =`
        let t = tag("s3cret", "/a/x.ogg", "user1", 2_147_483_647);
        assert_eq!(t.len(), 22);
        assert!(!t.contains(['+', '/', '=']));
        let want = {
            let mut h = Md5::new();
            h.update(b"2147483647/a/x.ogguser1 s3cret");
            URL_SAFE_NO_PAD.encode(h.finalize())
        };
        assert_eq!(t, want);
        let q = sign_query("s3cret", "/a/x.ogg", &"user1".parse().unwrap(), 2_147_483_647);
        assert_eq!(q, format!("md5={want}&expires=2147483647&uid=user1"));
        assert_ne!(tag("s3cret", "/a/y.ogg", "user1", 2_147_483_647), t);
        assert_ne!(tag("s3cret", "/a/x.ogg", "user2", 2_147_483_647), t);
        assert_ne!(tag("other", "/a/x.ogg", "user1", 2_147_483_647), t);
    }
}
