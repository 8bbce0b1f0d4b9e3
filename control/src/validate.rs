//! Field checks shared by the request handlers. Each returns a 400
//! [`ApiError`] whose message starts with the field's path
//! (`albums[1].release_date: …`) and echoes the bad value, shortened.

use crate::error::ApiError;

/// Longest id of an artist, album or user: the edge's opaque-id limit.
pub(crate) const MAX_ID_LEN: usize = 64;

/// Shorten untrusted input before echoing it in a message.
pub(crate) fn echo(s: &str) -> String {
    const MAX: usize = 64;
    if s.chars().count() <= MAX {
        return format!("{s:?}");
    }
    let short: String = s.chars().take(MAX).collect();
    format!("{short:?}…")
}

/// An opaque id: 1-64 characters of `[A-Za-z0-9_-]`.
pub(crate) fn id(path: &str, value: &str) -> Result<String, ApiError> {
    if cadenza_config::ids::is_opaque_id(value, MAX_ID_LEN) {
        Ok(value.to_owned())
    } else {
        Err(ApiError::invalid(format!(
            "{path}: must be 1-{MAX_ID_LEN} characters of [A-Za-z0-9_-], got {}",
            echo(value)
        )))
    }
}

/// Display text: trimmed, 1..=max characters, no control characters.
pub(crate) fn text(path: &str, value: &str, max: usize) -> Result<String, ApiError> {
    let t = value.trim();
    if t.is_empty() {
        return Err(ApiError::invalid(format!("{path}: must not be empty")));
    }
    if t.chars().count() > max {
        return Err(ApiError::invalid(format!(
            "{path}: must be at most {max} characters, got {}",
            t.chars().count()
        )));
    }
    if t.chars().any(char::is_control) {
        return Err(ApiError::invalid(format!(
            "{path}: must not contain control characters, got {}",
            echo(t)
        )));
    }
    Ok(t.to_owned())
}

/// A calendar date `YYYY-MM-DD` that exists (leap years included).
pub(crate) fn date(path: &str, value: &str) -> Result<String, ApiError> {
    let bad =
        || ApiError::invalid(format!("{path}: must be a calendar date YYYY-MM-DD, got {}", echo(value)));
    let b = value.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return Err(bad());
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let s = &value[r];
        s.bytes().all(|c| c.is_ascii_digit()).then(|| s.parse().ok()).flatten()
    };
    let (year, month, day) = match (num(0..4), num(5..7), num(8..10)) {
        (Some(y), Some(m), Some(d)) => (y, m, d),
        _ => return Err(bad()),
    };
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return Err(bad()),
    };
    if year == 0 || day == 0 || day > days {
        return Err(bad());
    }
    Ok(value.to_owned())
}

/// An ISRC (ISO 3901): `CC XXX YY NNNNN` — country letters, registrant
/// code, year, designation — written with or without hyphens, any case.
/// Returns the canonical 12-character upper-case form.
pub(crate) fn isrc(path: &str, value: &str) -> Result<String, ApiError> {
    let canon: String = value.chars().filter(|c| *c != '-').map(|c| c.to_ascii_uppercase()).collect();
    let b = canon.as_bytes();
    let ok = b.len() == 12
        && b[..2].iter().all(u8::is_ascii_uppercase)
        && b[2..5].iter().all(u8::is_ascii_alphanumeric)
        && b[5..].iter().all(u8::is_ascii_digit);
    if ok {
        Ok(canon)
    } else {
        Err(ApiError::invalid(format!(
            "{path}: must be an ISRC like \"SE-XYZ-24-00001\", got {}",
            echo(value)
        )))
    }
}

/// An ISO 3166-1 alpha-2 country code (any case in, upper case out).
pub(crate) fn country(path: &str, value: &str) -> Result<String, ApiError> {
    let code = value.to_ascii_uppercase();
    if code.len() == 2 && COUNTRIES.split(' ').any(|c| c == code) {
        Ok(code)
    } else {
        Err(ApiError::invalid(format!(
            "{path}: must be an ISO 3166-1 alpha-2 country code like \"SE\", got {}",
            echo(value)
        )))
    }
}

/// The 249 officially assigned ISO 3166-1 alpha-2 codes, plus `XK`
/// (Kosovo, user-assigned but used by every store front).
const COUNTRIES: &str = "\
AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ \
BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV BW BY BZ \
CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ \
DE DJ DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR \
GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY \
HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP \
KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY \
MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ \
NA NC NE NF NG NI NL NO NP NR NU NZ OM \
PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW \
SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ \
TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ \
VA VC VE VG VI VN VU WF WS XK YE YT ZA ZM ZW";

/// Unix seconds → the unix milliseconds the database keeps, for times
/// between 1970 and the end of year 9999.
pub(crate) fn unix_seconds(path: &str, value: i64) -> Result<i64, ApiError> {
    const MAX: i64 = 253_402_300_799; // 9999-12-31T23:59:59Z
    if (0..=MAX).contains(&value) {
        Ok(value * 1000)
    } else {
        Err(ApiError::invalid(format!("{path}: must be unix seconds between 0 and {MAX}, got {value}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn countries() {
        let all: Vec<&str> = COUNTRIES.split(' ').collect();
        assert_eq!(all.len(), 250);
        let mut sorted = all.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted, all, "sorted and unique");
        assert_eq!(country("c", "se").unwrap(), "SE");
        assert_eq!(country("c", "US").unwrap(), "US");
        for bad in ["", "S", "SWE", "ZZ", "UK", "S1", "é"] {
            let e = country("country", bad).unwrap_err();
            assert!(format!("{e:?}").contains("country"), "{bad}");
        }
    }

    #[test]
    fn dates() {
        for good in ["2024-02-29", "2000-02-29", "1999-12-31", "0001-01-01"] {
            assert_eq!(date("d", good).unwrap(), good);
        }
        for bad in [
            "",
            "2023-02-29",
            "1900-02-29",
            "2024-13-01",
            "2024-00-10",
            "2024-04-31",
            "2024-1-01",
            "24-01-01",
            "2024/01/01",
            "2024-01-01T00",
            "+024-01-01",
            "0000-01-01",
        ] {
            assert!(date("d", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn isrcs() {
        assert_eq!(isrc("i", "SE-XYZ-24-00001").unwrap(), "SEXYZ2400001");
        assert_eq!(isrc("i", "usrc17607839").unwrap(), "USRC17607839");
        for bad in ["", "SEXYZ240000", "S1XYZ2400001", "SEXYZ24A0001", "SEX!Z2400001"] {
            assert!(isrc("i", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn texts_and_ids() {
        assert_eq!(text("t", "  Blue  ", 10).unwrap(), "Blue");
        assert!(text("t", "   ", 10).is_err());
        assert!(text("t", "a\u{0}b", 10).is_err());
        assert!(text("t", &"é".repeat(11), 10).is_err());
        assert!(text("t", &"é".repeat(10), 10).is_ok());
        assert!(id("i", "art_1-A").is_ok());
        for bad in ["", "a/b", "a b", "ä", &"x".repeat(65)] {
            assert!(id("i", bad).is_err(), "{bad}");
        }
        assert_eq!(echo(&"x".repeat(100)).chars().count(), 64 + 3);
    }

    #[test]
    fn times() {
        assert_eq!(unix_seconds("t", 1).unwrap(), 1000);
        assert!(unix_seconds("t", -1).is_err());
        assert!(unix_seconds("t", 253_402_300_800).is_err());
    }
}
