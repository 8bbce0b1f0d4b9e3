//! Bearer-token authentication (RFC 6750 §2.1).
//!
//! - User tokens are random strings handed out once; the database holds only
//!   their SHA-256, so a leaked database holds no usable token. A request's
//!   token is hashed and looked up by that hash.
//! - The admin token comes from the config. It is compared in constant time
//!   over the SHA-256 of both sides, so neither the length nor a prefix of
//!   the real token leaks through timing. So is the ingest worker token,
//!   which opens only `/v1/ingest/*` (where the admin token works too).
//!
//! Tokens are never logged.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use sha2::{Digest, Sha256};

use crate::api::AppState;
use crate::db::users::User;
use crate::error::{ApiError, ErrorKind};

/// Longest bearer token accepted; longer ones are not ours.
const MAX_TOKEN_LEN: usize = 512;

/// Lower-case hex SHA-256 of a token: the form stored in `api_tokens`.
pub(crate) fn token_sha256(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A fresh user token: 43 characters of `[A-Za-z0-9]` (≈ 256 bits) from
/// the OS-seeded CSPRNG.
pub(crate) fn new_token() -> String {
    cadenza_config::ids::random_id(43)
}

/// The token of `Authorization: Bearer <token>`; `Ok(None)` without the
/// header. The scheme is case-insensitive; the token must be RFC 6750
/// `b64token` characters.
fn bearer(parts: &Parts) -> Result<Option<&str>, ApiError> {
    let Some(value) = parts.headers.get(AUTHORIZATION) else {
        return Ok(None);
    };
    let malformed = || ApiError::invalid_token("authorization header must be \"Bearer <token>\"");
    let value = value.to_str().map_err(|_| malformed())?;
    let (scheme, token) = value.split_once(' ').ok_or_else(malformed)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(malformed());
    }
    let token = token.trim_start_matches(' ');
    let b64token = |c: u8| c.is_ascii_alphanumeric() || b"-._~+/".contains(&c);
    let body = token.trim_end_matches('=');
    if token.is_empty() || token.len() > MAX_TOKEN_LEN || !body.bytes().all(b64token) {
        return Err(malformed());
    }
    Ok(Some(token))
}

/// Extractor: the user named by a valid bearer token, or a 401.
#[derive(Debug, Clone)]
pub(crate) struct AuthUser(pub(crate) User);

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer(parts)?.ok_or_else(ApiError::missing_token)?;
        match state.user_of_token(&token_sha256(token)).await? {
            Some(user) => Ok(AuthUser(user)),
            None => Err(ApiError::invalid_token("unknown or revoked bearer token")),
        }
    }
}

/// Extractor: the request carries the configured admin token. Without a
/// token: 401; with a wrong one: 403.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Admin;

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer(parts)?.ok_or_else(ApiError::missing_token)?;
        if state.config().admin_token.matches(token) {
            Ok(Admin)
        } else {
            Err(ApiError::new(ErrorKind::Forbidden, "bearer token is not the admin token"))
        }
    }
}

/// Extractor: the request carries the ingest worker token
/// (`ingest.worker_token`) or the admin token, for `/v1/ingest/*`. Without
/// a token: 401; with another one: 403. The worker token opens nothing
/// else.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Worker;

impl FromRequestParts<AppState> for Worker {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer(parts)?.ok_or_else(ApiError::missing_token)?;
        let config = state.config();
        // Both compared, always, so timing does not tell which one matched.
        let worker = config.ingest.worker_token.matches(token);
        let admin = config.admin_token.matches(token);
        if worker | admin {
            Ok(Worker)
        } else {
            Err(ApiError::new(
                ErrorKind::Forbidden,
                "bearer token is neither the worker token nor the admin token",
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::http::Request;

    use super::*;

    fn parts(auth: Option<&str>) -> Parts {
        let mut b = Request::builder().uri("/");
        if let Some(a) = auth {
            b = b.header(AUTHORIZATION, a);
        }
        b.body(()).unwrap().into_parts().0
    }

    #[test]
    fn bearer_parsing() {
        assert_eq!(bearer(&parts(None)).unwrap(), None);
        assert_eq!(bearer(&parts(Some("Bearer abc"))).unwrap(), Some("abc"));
        assert_eq!(bearer(&parts(Some("bearer a.b-c_~+/=="))).unwrap(), Some("a.b-c_~+/=="));
        for bad in ["Basic abc", "Bearer", "Bearer ", "Bearerabc", "Bearer a b", "Bearer a=b"] {
            let e = bearer(&parts(Some(bad))).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Unauthorized, "{bad}");
        }
        let long = format!("Bearer {}", "a".repeat(MAX_TOKEN_LEN + 1));
        assert!(bearer(&parts(Some(&long))).is_err());
    }

    #[test]
    fn token_hash_is_hex_sha256() {
        assert_eq!(token_sha256("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        let t = new_token();
        assert_eq!(t.len(), 43);
        assert_ne!(t, new_token());
    }
}
