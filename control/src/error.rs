//! Errors: [`ControlError`] at the crate boundary (start-up, migrations,
//! the listener) and [`ApiError`] for HTTP answers.
//!
//! Every API error leaves as
//! `{"error":{"status":<int>,"code":"<snake_case>","message":"<text>"}}`.
//! [`ErrorKind::status_and_code`] is the one place that maps a kind to its
//! HTTP status and reason code, as axum's rejections do.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::types::{ErrorBody, ErrorResponse};

/// Why the control plane could not start, migrate or keep serving.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("invalid configuration: {0}")]
    Config(#[from] cadenza_config::ConfigError),
    #[error("database {url}: {source}")]
    Database {
        /// The configured URL with any password replaced by `***`.
        url: String,
        source: sqlx::Error,
    },
    #[error("database {url}: migration failed: {source}")]
    Migrate { url: String, source: sqlx::migrate::MigrateError },
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: std::net::SocketAddr, source: std::io::Error },
    #[error("listener failed: {0}")]
    Io(#[from] std::io::Error),
}

/// What went wrong with a request; decides status and code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ErrorKind {
    /// Malformed JSON, path or field value.
    InvalidRequest,
    /// `quality` is not a rung of the ladder.
    InvalidQuality,
    /// Request body over the route's limit.
    PayloadTooLarge,
    /// No or an unknown bearer token.
    Unauthorized,
    /// A valid credential that may not do this.
    Forbidden,
    /// No such route.
    NotFound,
    /// No such method on the route.
    MethodNotAllowed,
    TrackNotFound,
    AlbumNotFound,
    ArtistNotFound,
    PlaylistNotFound,
    /// The track's audio features are not measured yet.
    NotAnalysed,
    UserNotFound,
    /// `If-Match` named a snapshot that is no longer current.
    PreconditionFailed,
    /// Over the user's rate limit for the route's category.
    RateLimited,
    /// The process has `playback.max_in_flight` stream answers in progress.
    Overloaded,
    /// The album is embargoed until its `release_at`.
    NotReleased,
    /// The track has no registered audio files.
    NoAudio,
    /// A create collided with an existing entity.
    AlreadyExists,
    /// No ingest job with that id.
    JobNotFound,
    /// A track of a new ingest job already has a queued or running one.
    IngestInProgress,
    /// The lease a worker presented is not the job's current one: it was
    /// claimed again by another worker, or is no longer running.
    LeaseLost,
    /// No edge POPs are configured.
    NoEdges,
    /// No rendition with that file id.
    FileNotFound,
    /// No CDN with that name in the registry.
    CdnNotFound,
    /// The CDN is defined in the config file, which the API cannot change.
    ManagedByConfig,
    /// A signing key reload failed (a bad key file or `[signing]`); the
    /// key ring in use stays.
    SigningReloadFailed,
    /// No warm job with that id.
    WarmJobNotFound,
    /// The warm job has ended; it cannot be cancelled.
    WarmJobEnded,
    /// A warm job names no published audio at the rungs asked for.
    NothingToWarm,
    /// No POP a warm job could run on.
    NoWarmablePops,
    /// The origin budget cannot move the job's bytes before its deadline.
    DeadlineUnreachable,
    /// The database is unreachable or overloaded; a retry may help.
    Unavailable,
    /// A bug or an unexpected database failure; details go to the log only.
    Internal,
}

impl ErrorKind {
    /// The HTTP status and the stable reason code of each kind.
    pub(crate) fn status_and_code(self) -> (StatusCode, &'static str) {
        use ErrorKind::*;
        match self {
            InvalidRequest => (StatusCode::BAD_REQUEST, "invalid_request"),
            InvalidQuality => (StatusCode::BAD_REQUEST, "invalid_quality"),
            PayloadTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Forbidden => (StatusCode::FORBIDDEN, "forbidden"),
            NotFound => (StatusCode::NOT_FOUND, "not_found"),
            MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            TrackNotFound => (StatusCode::NOT_FOUND, "track_not_found"),
            AlbumNotFound => (StatusCode::NOT_FOUND, "album_not_found"),
            ArtistNotFound => (StatusCode::NOT_FOUND, "artist_not_found"),
            PlaylistNotFound => (StatusCode::NOT_FOUND, "playlist_not_found"),
            NotAnalysed => (StatusCode::NOT_FOUND, "not_analysed"),
            UserNotFound => (StatusCode::NOT_FOUND, "user_not_found"),
            PreconditionFailed => (StatusCode::PRECONDITION_FAILED, "snapshot_mismatch"),
            RateLimited => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            Overloaded => (StatusCode::TOO_MANY_REQUESTS, "overloaded"),
            NotReleased => (StatusCode::FORBIDDEN, "not_released"),
            NoAudio => (StatusCode::CONFLICT, "no_audio"),
            AlreadyExists => (StatusCode::CONFLICT, "already_exists"),
            JobNotFound => (StatusCode::NOT_FOUND, "job_not_found"),
            IngestInProgress => (StatusCode::CONFLICT, "ingest_in_progress"),
            LeaseLost => (StatusCode::CONFLICT, "lease_lost"),
            NoEdges => (StatusCode::SERVICE_UNAVAILABLE, "no_edges"),
            CdnNotFound => (StatusCode::NOT_FOUND, "cdn_not_found"),
            FileNotFound => (StatusCode::NOT_FOUND, "file_not_found"),
            ManagedByConfig => (StatusCode::CONFLICT, "managed_by_config"),
            SigningReloadFailed => (StatusCode::INTERNAL_SERVER_ERROR, "signing_reload_failed"),
            WarmJobNotFound => (StatusCode::NOT_FOUND, "warm_job_not_found"),
            WarmJobEnded => (StatusCode::CONFLICT, "warm_job_ended"),
            NothingToWarm => (StatusCode::UNPROCESSABLE_ENTITY, "nothing_to_warm"),
            NoWarmablePops => (StatusCode::UNPROCESSABLE_ENTITY, "no_warmable_pops"),
            DeadlineUnreachable => (StatusCode::UNPROCESSABLE_ENTITY, "deadline_unreachable"),
            Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            Internal => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

/// An error answer: a kind and a lower-case message naming what was wrong.
#[derive(Debug)]
pub(crate) struct ApiError {
    kind: ErrorKind,
    message: String,
    /// `WWW-Authenticate` challenge for 401s (RFC 6750 §3).
    challenge: Option<&'static str>,
    /// `Retry-After` seconds for 429s.
    retry_after: Option<u64>,
}

impl ApiError {
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self { kind, message: message.into(), challenge: None, retry_after: None }
    }

    /// 429 `rate_limited`, retry after `seconds` (at least 1).
    pub(crate) fn rate_limited(category: &str, seconds: u64) -> Self {
        let seconds = seconds.max(1);
        Self {
            retry_after: Some(seconds),
            ..Self::new(
                ErrorKind::RateLimited,
                format!("too many {category} requests; retry after {seconds} s"),
            )
        }
    }

    /// 429 `overloaded`: this process sheds load; retry after `seconds`.
    pub(crate) fn overloaded(seconds: u64) -> Self {
        let seconds = seconds.max(1);
        Self {
            retry_after: Some(seconds),
            ..Self::new(
                ErrorKind::Overloaded,
                format!("too many stream requests in progress; retry after {seconds} s"),
            )
        }
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidRequest, message)
    }

    /// 401 for a request without credentials.
    pub(crate) fn missing_token() -> Self {
        Self {
            challenge: Some(r#"Bearer realm="cadenza""#),
            ..Self::new(ErrorKind::Unauthorized, "missing bearer token in the authorization header")
        }
    }

    /// 401 for credentials that are malformed or unknown.
    pub(crate) fn invalid_token(message: impl Into<String>) -> Self {
        Self {
            challenge: Some(r#"Bearer realm="cadenza", error="invalid_token""#),
            ..Self::new(ErrorKind::Unauthorized, message)
        }
    }

    /// A failure whose details must not reach the client: logged here,
    /// answered as a bare 500.
    pub(crate) fn internal(context: &str, error: &dyn std::fmt::Display) -> Self {
        tracing::error!(%error, context, "internal error");
        Self::new(ErrorKind::Internal, "internal error")
    }

    /// The same error with its message rewritten (a bulk import names the
    /// line instead of the batch index).
    pub(crate) fn map_message(mut self, f: impl FnOnce(&str) -> String) -> Self {
        self.message = f(&self.message);
        self
    }

    /// The same error with `suffix` appended to its message.
    pub(crate) fn with_note(self, suffix: &str) -> Self {
        self.map_message(|m| format!("{m}{suffix}"))
    }

    pub(crate) fn message(&self) -> &str {
        &self.message
    }

    /// The error as a body, for answers that carry one error per item.
    pub(crate) fn body(&self) -> ErrorBody {
        let (status, code) = self.kind.status_and_code();
        ErrorBody { status: status.as_u16(), code: code.to_owned(), message: self.message.clone() }
    }

    #[cfg(test)]
    pub(crate) fn kind(&self) -> ErrorKind {
        self.kind
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
                tracing::warn!(error = %e, "database unavailable");
                Self::new(ErrorKind::Unavailable, "database unavailable, try again")
            }
            _ => Self::internal("database", &e),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, _) = self.kind.status_and_code();
        let body = ErrorResponse { error: self.body() };
        let mut response = (status, Json(body)).into_response();
        if let Some(challenge) = self.challenge {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
        }
        if let Some(seconds) = self.retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_a_snake_case_code_and_an_error_status() {
        use ErrorKind::*;
        for kind in [
            InvalidRequest,
            InvalidQuality,
            PayloadTooLarge,
            Unauthorized,
            Forbidden,
            NotFound,
            MethodNotAllowed,
            TrackNotFound,
            AlbumNotFound,
            ArtistNotFound,
            PlaylistNotFound,
            NotAnalysed,
            UserNotFound,
            PreconditionFailed,
            RateLimited,
            Overloaded,
            NotReleased,
            NoAudio,
            AlreadyExists,
            JobNotFound,
            IngestInProgress,
            LeaseLost,
            NoEdges,
            Unavailable,
            Internal,
        ] {
            let (status, code) = kind.status_and_code();
            assert!(status.is_client_error() || status.is_server_error());
            assert!(code.bytes().all(|c| c.is_ascii_lowercase() || c == b'_'));
        }
    }
}
