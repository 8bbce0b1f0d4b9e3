//! The dev stack's certificates, made once in `<data>/tls/` and reused:
//!
//! - `ca.pem` (with `ca-key.pem`): a local certificate authority, valid ten
//!   years, the file a client trusts (`curl --cacert`, stack.json's
//!   `tls_ca_file`) — as mkcert does, so that a verifier holding to
//!   RFC 5280 accepts the chain, which a bare self-signed leaf fails;
//! - `cert.pem` / `key.pem`: the edges' certificate, signed by that
//!   authority, for `localhost`, `127.0.0.1` and `::1`, ECDSA P-256,
//!   valid 364 days (Mozilla's guidelines allow at most 366) and renewed
//!   at start-up when it is within 30 days of its end. Renewal keeps the
//!   authority, so clients keep trusting the stack.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SerialNumber,
};

const CA_DAYS: i64 = 3650;
const LEAF_DAYS: i64 = 364;
/// A leaf this close to its end is replaced at start-up.
const RENEW_BEFORE: Duration = Duration::from_secs(30 * 86_400);

/// The files of the dev stack's TLS.
#[derive(Clone, Debug)]
pub(crate) struct DevCert {
    /// The authority clients trust.
    pub(crate) ca: PathBuf,
    /// The edges' certificate and key.
    pub(crate) cert: PathBuf,
    pub(crate) key: PathBuf,
}

/// The authority and the edges' pair under `data_dir/tls`, made if missing
/// and the leaf renewed if due.
pub(crate) fn ensure(data_dir: &Path) -> Result<DevCert, String> {
    let dir = data_dir.join("tls");
    let ca_key_path = dir.join("ca-key.pem");
    let pair = DevCert { ca: dir.join("ca.pem"), cert: dir.join("cert.pem"), key: dir.join("key.pem") };
    let have_ca = pair.ca.exists() && ca_key_path.exists();
    if have_ca && pair.cert.exists() && pair.key.exists() && !due(&pair.cert) {
        return Ok(pair);
    }
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let ca_key = if have_ca {
        KeyPair::from_pem(&read(&ca_key_path)?).map_err(|e| format!("{}: {e}", ca_key_path.display()))?
    } else {
        let mut params = ca_params();
        valid_for(&mut params, CA_DAYS);
        let key = KeyPair::generate().map_err(|e| e.to_string())?;
        let cert = params.self_signed(&key).map_err(|e| e.to_string())?;
        write_private(&ca_key_path, &key.serialize_pem())?;
        std::fs::write(&pair.ca, cert.pem()).map_err(|e| format!("{}: {e}", pair.ca.display()))?;
        key
    };
    // The issuer is the authority's name, key usages and key: the same
    // parameters it was made from, so the leaf's authority key identifier
    // matches the authority's subject key identifier.
    let issuer = Issuer::new(ca_params(), ca_key);

    let mut params =
        CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned(), "::1".to_owned()])
            .map_err(|e| e.to_string())?;
    params.distinguished_name.push(DnType::CommonName, "cadenza dev edge");
    params.use_authority_key_identifier_extension = true;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    valid_for(&mut params, LEAF_DAYS);
    let key = KeyPair::generate().map_err(|e| e.to_string())?;
    let cert = params.signed_by(&key, &issuer).map_err(|e| e.to_string())?;
    write_private(&pair.key, &key.serialize_pem())?;
    std::fs::write(&pair.cert, cert.pem()).map_err(|e| format!("{}: {e}", pair.cert.display()))?;
    Ok(pair)
}

/// The authority's name and role (validity and serial are set when it is
/// made).
fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CommonName, "cadenza dev CA");
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages =
        vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    params
}

/// From a day ago (clock skew) for `days`, with a random positive serial.
fn valid_for(params: &mut CertificateParams, days: i64) {
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(days - 1);
    let mut serial: Vec<u8> = cadenza_config::ids::random_id(16).into_bytes();
    // DER integers are signed: clear the top bit so the serial is positive.
    serial[0] &= 0x7f;
    params.serial_number = Some(SerialNumber::from_slice(&serial));
}

fn read(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))
}

fn write_private(path: &Path, text: &str) -> Result<(), String> {
    crate::secrets::write_private(path, text.as_bytes()).map_err(|e| format!("{}: {e}", path.display()))
}

/// Whether the leaf at `path` ends within [`RENEW_BEFORE`]: we wrote it, so
/// its age tells its end.
fn due(path: &Path) -> bool {
    let lifetime = Duration::from_secs((LEAF_DAYS as u64 - 1) * 86_400);
    let written = std::fs::metadata(path).and_then(|m| m.modified()).unwrap_or(SystemTime::UNIX_EPOCH);
    SystemTime::now().duration_since(written).is_ok_and(|age| age + RENEW_BEFORE >= lifetime)
}
