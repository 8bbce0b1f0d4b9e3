//! The bitrate ladder every track is published in.
//!
//! Ogg Vorbis held at a nominal bitrate (the transcoder calibrates VBR passes
//! to it, or uses ABR; see `docs/transcoder.md`): 96, 160 and 320 kbps at the
//! master's rate when it is 44.1 or 48 kHz (stereo), and 24 kbps as 22.05 kHz
//! mono, because libvorbis has no 24 kbps mode at 44.1 kHz stereo and, of the
//! formats it accepts, 22.05 kHz mono scored best on an objective quality
//! measure.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One rung of the ladder, named by its nominal bitrate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Rung {
    /// 24 kbps, 22.05 kHz mono: data saver.
    K24,
    /// 96 kbps stereo: "normal" on cellular.
    K96,
    /// 160 kbps stereo: the highest free-tier quality.
    K160,
    /// 320 kbps stereo: premium "very high".
    K320,
}

/// Every rung, lowest first.
pub const LADDER: [Rung; 4] = [Rung::K24, Rung::K96, Rung::K160, Rung::K320];

impl Rung {
    /// Nominal bitrate in kbit/s.
    pub const fn kbps(self) -> u32 {
        match self {
            Rung::K24 => 24,
            Rung::K96 => 96,
            Rung::K160 => 160,
            Rung::K320 => 320,
        }
    }

    /// The bitrate as text (`"320"`), for labels that must not allocate.
    pub const fn kbps_str(self) -> &'static str {
        match self {
            Rung::K24 => "24",
            Rung::K96 => "96",
            Rung::K160 => "160",
            Rung::K320 => "320",
        }
    }

    /// The rung for a nominal bitrate, if there is one.
    pub fn from_kbps(kbps: u32) -> Option<Self> {
        LADDER.into_iter().find(|r| r.kbps() == kbps)
    }

    /// Output channel count.
    pub const fn channels(self) -> u8 {
        match self {
            Rung::K24 => 1,
            _ => 2,
        }
    }

    /// Output sample rate for a master at `master_rate` Hz: 24 kbps is always
    /// 22 050 Hz; the others keep 44.1 or 48 kHz and resample anything else to
    /// 44.1 kHz.
    pub const fn output_rate(self, master_rate: u32) -> u32 {
        match self {
            Rung::K24 => 22_050,
            _ if master_rate == 48_000 => 48_000,
            _ => 44_100,
        }
    }

    /// The largest rung whose bitrate is at most `kbps`, if any.
    pub fn at_most(kbps: u32) -> Option<Self> {
        LADDER.into_iter().rev().find(|r| r.kbps() <= kbps)
    }
}

impl fmt::Display for Rung {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.kbps())
    }
}

/// Why a string is not a rung.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("quality must be one of 24, 96, 160, 320, got {0:?}")]
pub struct RungError(pub String);

impl FromStr for Rung {
    type Err = RungError;
    fn from_str(s: &str) -> Result<Self, RungError> {
        Some(s)
            .filter(|s| !s.is_empty() && s.len() <= 3 && s.bytes().all(|c| c.is_ascii_digit()))
            .and_then(|s| s.parse::<u32>().ok())
            .and_then(Rung::from_kbps)
            .ok_or_else(|| RungError(crate::ids::truncate(s)))
    }
}

/// Serialised as the bare number of kbit/s (`320`), the form players and
/// manifests use.
impl Serialize for Rung {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u32(self.kbps())
    }
}

impl<'de> Deserialize<'de> for Rung {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = u32::deserialize(d)?;
        Rung::from_kbps(n).ok_or_else(|| serde::de::Error::custom(RungError(n.to_string())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kbps_str_is_kbps_as_text() {
        for rung in LADDER {
            assert_eq!(rung.kbps_str(), rung.kbps().to_string());
        }
    }

    #[test]
    fn ladder_formats() {
        assert_eq!(LADDER.map(Rung::kbps), [24, 96, 160, 320]);
        assert_eq!(Rung::K24.output_rate(44_100), 22_050);
        assert_eq!(Rung::K24.channels(), 1);
        assert_eq!(Rung::K320.output_rate(48_000), 48_000);
        assert_eq!(Rung::K160.output_rate(96_000), 44_100);
        assert_eq!(Rung::K96.channels(), 2);
    }

    #[test]
    fn at_most_picks_the_highest_allowed() {
        assert_eq!(Rung::at_most(320), Some(Rung::K320));
        assert_eq!(Rung::at_most(200), Some(Rung::K160));
        assert_eq!(Rung::at_most(24), Some(Rung::K24));
        assert_eq!(Rung::at_most(23), None);
    }

    #[test]
    fn parse_and_serde() {
        assert_eq!("160".parse::<Rung>(), Ok(Rung::K160));
        assert!("128".parse::<Rung>().is_err());
        assert!("+160".parse::<Rung>().is_err());
        assert_eq!(serde_json::to_string(&Rung::K96).unwrap(), "96");
        assert_eq!(serde_json::from_str::<Rung>("320").unwrap(), Rung::K320);
        assert!(serde_json::from_str::<Rung>("321").is_err());
    }
}
