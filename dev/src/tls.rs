//! The dev stack's self-signed certificate: made once in `<data>/tls/`,
//! reused across starts, renewed when it is near its end.
//!
//! Valid for `localhost`, `127.0.0.1` and `::1`, for 365 days (the longest a
//! browser or Mozilla's TLS guidelines accept), ECDSA P-256.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// Lifetime of a new certificate.
const VALID_DAYS: i64 = 365;
/// A certificate this close to its end is replaced at start-up.
const RENEW_BEFORE: Duration = Duration::from_secs(30 * 86_400);

/// Where the pair lives.
#[derive(Clone, Debug)]
pub(crate) struct DevCert {
    pub(crate) cert: PathBuf,
    pub(crate) key: PathBuf,
}

/// The certificate and key under `data_dir/tls`, made if missing or due.
pub(crate) fn ensure(data_dir: &Path) -> Result<DevCert, String> {
    let dir = data_dir.join("tls");
    let pair = DevCert { cert: dir.join("cert.pem"), key: dir.join("key.pem") };
    if pair.cert.exists() && pair.key.exists() && !due(&pair.cert) {
        return Ok(pair);
    }
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut params =
        rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned(), "::1".to_owned()])
            .map_err(|e| e.to_string())?;
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(VALID_DAYS - 1);
    params.distinguished_name.push(rcgen::DnType::CommonName, "cadenza dev edge");
    let key = rcgen::KeyPair::generate().map_err(|e| e.to_string())?;
    let cert = params.self_signed(&key).map_err(|e| e.to_string())?;
    crate::secrets::write_private(&pair.key, key.serialize_pem().as_bytes())
        .map_err(|e| format!("{}: {e}", pair.key.display()))?;
    std::fs::write(&pair.cert, cert.pem()).map_err(|e| format!("{}: {e}", pair.cert.display()))?;
    Ok(pair)
}

/// Whether the certificate at `path` was written so long ago that it ends
/// within [`RENEW_BEFORE`] (we wrote it, so its age tells its end).
fn due(path: &Path) -> bool {
    let lifetime = Duration::from_secs((VALID_DAYS as u64 - 1) * 86_400);
    let written = std::fs::metadata(path).and_then(|m| m.modified()).unwrap_or(SystemTime::UNIX_EPOCH);
    SystemTime::now().duration_since(written).is_ok_and(|age| age + RENEW_BEFORE >= lifetime)
}
