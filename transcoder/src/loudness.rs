//! EBU R128 / ITU-R BS.1770 loudness of a master, a rendition or an album,
//! and the playback gain derived from it.

use cadenza_config::manifest::Loudness;
use ebur128::{Channel, EbuR128, Mode};

/// Playback target, in LUFS.
pub const TARGET_LUFS: f64 = -14.0;
/// Highest true peak playback may reach after the gain, in dBTP.
pub const CEILING_DBTP: f64 = -1.0;
/// ReplayGain 2.0 reference loudness, in LUFS.
pub const REPLAYGAIN_REFERENCE_LUFS: f64 = -18.0;

/// Frames fed to the meter per call.
const BLOCK: usize = 1 << 16;

/// Why loudness could not be measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LoudnessError {
    /// Integrated loudness is −∞: digital silence, or everything below the
    /// −70 LUFS absolute gate.
    Silent,
    /// The meter refused the format (never for 1–2 channels at 8–384 kHz).
    Meter,
}

/// A loudness meter fed as audio streams past: integrated loudness,
/// loudness range and true peak (EBU R128 / ITU-R BS.1770-4, EBU Tech
/// 3342). Mono is measured as dual mono (both speakers), which is how it is
/// played. Kept after [`Meter::loudness`] so an album can be measured as
/// one programme from its tracks' meters ([`album`]).
pub(crate) struct Meter {
    inner: EbuR128,
}

impl std::fmt::Debug for Meter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Meter")
            .field("channels", &self.inner.channels())
            .field("rate", &self.inner.rate())
            .finish()
    }
}

impl Meter {
    pub(crate) fn new(channels: u8, rate: u32) -> Result<Self, LoudnessError> {
        let mut inner = EbuR128::new(u32::from(channels), rate, Mode::I | Mode::LRA | Mode::TRUE_PEAK)
            .map_err(|_| LoudnessError::Meter)?;
        if channels == 1 {
            inner.set_channel(0, Channel::DualMono).map_err(|_| LoudnessError::Meter)?;
        }
        Ok(Self { inner })
    }

    /// Feed the next frames (one plane per channel, equal lengths).
    pub(crate) fn add(&mut self, planes: &[Vec<f32>]) -> Result<(), LoudnessError> {
        let frames = planes.first().map_or(0, Vec::len);
        let mut start = 0;
        while start < frames {
            let end = (start + BLOCK).min(frames);
            let block: Vec<&[f32]> = planes.iter().map(|p| &p[start..end]).collect();
            self.inner.add_frames_planar_f32(&block).map_err(|_| LoudnessError::Meter)?;
            start = end;
        }
        Ok(())
    }

    /// The loudness of everything fed so far; [`LoudnessError::Silent`] when
    /// nothing rose above the −70 LUFS gate.
    pub(crate) fn loudness(&self) -> Result<Loudness, LoudnessError> {
        album(&[self])
    }

    fn true_peak(&self) -> Result<f64, LoudnessError> {
        let mut peak = 0.0f64;
        for ch in 0..self.inner.channels() {
            peak = peak.max(self.inner.true_peak(ch).map_err(|_| LoudnessError::Meter)?);
        }
        Ok(peak)
    }
}

/// The loudness of several meters' audio taken as one programme (an
/// album): integrated loudness and range over all their gating blocks
/// together, the highest true peak.
pub(crate) fn album(meters: &[&Meter]) -> Result<Loudness, LoudnessError> {
    let integrated = EbuR128::loudness_global_multiple(meters.iter().map(|m| &m.inner))
        .map_err(|_| LoudnessError::Meter)?;
    if !integrated.is_finite() {
        return Err(LoudnessError::Silent);
    }
    let range = EbuR128::loudness_range_multiple(meters.iter().map(|m| &m.inner))
        .map_err(|_| LoudnessError::Meter)?;
    let mut peak = 0.0f64;
    for m in meters {
        peak = peak.max(m.true_peak()?);
    }
    let true_peak_dbtp = 20.0 * peak.log10();
    Ok(Loudness {
        integrated_lufs: round2(integrated),
        loudness_range_lu: round2(if range.is_finite() { range.max(0.0) } else { 0.0 }),
        true_peak_dbtp: round2(true_peak_dbtp),
        gain_db: round2(gain_db(integrated, true_peak_dbtp)),
    })
}

/// Measure planar audio in one go.
#[cfg(test)]
pub(crate) fn measure(planes: &[Vec<f32>], rate: u32) -> Result<Loudness, LoudnessError> {
    let mut meter = Meter::new(planes.len() as u8, rate)?;
    meter.add(planes)?;
    meter.loudness()
}

/// The gain that brings `integrated_lufs` to [`TARGET_LUFS`] without taking
/// the true peak above [`CEILING_DBTP`]: `min(−14 − I, −1 − TP)`.
pub fn gain_db(integrated_lufs: f64, true_peak_dbtp: f64) -> f64 {
    (TARGET_LUFS - integrated_lufs).min(CEILING_DBTP - true_peak_dbtp)
}

/// Round to hundredths: the precision loudness is meaningful at, and stable
/// JSON. Adding `0.0` turns a `-0.0` into `0.0`.
fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0 + 0.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(amplitude: f32, frames: usize) -> Vec<f32> {
        (0..frames)
            .map(|i| (2.0 * std::f32::consts::PI * 997.0 * i as f32 / 48_000.0).sin() * amplitude)
            .collect()
    }

    #[test]
    fn gain_is_limited_by_loudness_or_peak() {
        // Quiet and peaky: the peak limits.
        assert_eq!(gain_db(-30.0, -3.0), 2.0);
        // Quiet with headroom: the loudness target.
        assert_eq!(gain_db(-20.0, -12.0), 6.0);
        // Loud master: turned down.
        assert_eq!(gain_db(-8.0, 0.5), -6.0);
    }

    #[test]
    fn full_scale_sine_measures_as_expected() {
        // A 997 Hz sine at 0 dBFS in both channels reads −3.01 LUFS per
        // channel, so −0.0 LUFS for stereo (BS.1770 sums channel powers).
        let s = sine(1.0, 48_000 * 5);
        let l = measure(&[s.clone(), s.clone()], 48_000).unwrap();
        assert!((l.integrated_lufs - 0.0).abs() < 0.1, "{l:?}");
        assert!(l.true_peak_dbtp.abs() < 0.1, "{l:?}");
        assert_eq!(l.gain_db, gain_db(l.integrated_lufs, l.true_peak_dbtp));
        // Mono is dual mono: the same loudness as the stereo pair.
        let m = measure(&[s], 48_000).unwrap();
        assert!((m.integrated_lufs - l.integrated_lufs).abs() < 0.05, "{m:?}");
    }

    #[test]
    fn rounding_never_yields_negative_zero() {
        assert!(round2(-0.004).is_sign_positive());
        assert_eq!(round2(-16.306), -16.31);
    }

    #[test]
    fn silence_is_an_error() {
        assert_eq!(measure(&vec![vec![0.0; 48_000]; 2], 48_000), Err(LoudnessError::Silent));
    }

    #[test]
    fn album_is_one_programme_and_range_is_measured() {
        // Two tracks 10 dB apart: the album is between them, nearer the
        // louder (power average), its peak the louder's, and its range
        // wide.
        let loud = vec![sine(0.5, 48_000 * 20); 2];
        let quiet = vec![sine(0.158, 48_000 * 20); 2];
        let mut a = Meter::new(2, 48_000).unwrap();
        a.add(&loud).unwrap();
        let mut b = Meter::new(2, 48_000).unwrap();
        b.add(&quiet).unwrap();
        let (la, lb) = (a.loudness().unwrap(), b.loudness().unwrap());
        assert!((la.integrated_lufs - lb.integrated_lufs - 10.0).abs() < 0.1, "{la:?} {lb:?}");
        assert!(la.loudness_range_lu < 0.5, "a steady tone has no range: {la:?}");
        let both = album(&[&a, &b]).unwrap();
        assert!(
            both.integrated_lufs < la.integrated_lufs && both.integrated_lufs > lb.integrated_lufs - 0.01
        );
        assert!((both.integrated_lufs - (la.integrated_lufs - 2.6)).abs() < 0.2, "{both:?}");
        assert_eq!(both.true_peak_dbtp, la.true_peak_dbtp);
        assert!(both.loudness_range_lu > 8.0, "{both:?}");
        // Feeding in pieces is the same as at once.
        let mut c = Meter::new(2, 48_000).unwrap();
        for part in [0..1000, 1000..250_000, 250_000..960_000] {
            c.add(&[loud[0][part.clone()].to_vec(), loud[1][part].to_vec()]).unwrap();
        }
        assert_eq!(c.loudness().unwrap(), la);
    }
}
