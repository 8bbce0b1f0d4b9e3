//! The demo music renderer: note events mixed additively into a stereo
//! buffer. All maths is basic IEEE arithmetic so output is bit-identical
//! everywhere.

use super::{DEMO_RATE, MAX_DEMO_SECONDS};

const TAU: f64 = std::f64::consts::TAU;
const TABLE_LEN: usize = 4096;
/// Peak level of a rendered track before the noise floor: −1 dBFS.
const PEAK: f32 = 0.891;
/// Amplitude of the uniform noise floor (about −75 dBFS RMS). Real
/// recordings always have one (room tone, preamp and converter noise); a
/// perfectly clean synthetic signal leaves libvorbis' ABR mode nothing to
/// spend 160 or 320 kbps on, and it undershoots by up to 17 %.
const NOISE_FLOOR: f32 = 0.0003;

/// SplitMix64: a tiny, well-mixed, seedable PRNG.
#[derive(Debug, Clone)]
pub(crate) struct SplitMix64(u64);

impl SplitMix64 {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0; the bias is irrelevant here).
    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    /// Uniform in [−1, 1).
    fn noise(&mut self) -> f32 {
        ((self.next_u64() >> 40) as f32 / (1u64 << 23) as f32) - 1.0
    }
}

/// sin(x) by range reduction and a Taylor series (error < 1e-12).
fn sin(x: f64) -> f64 {
    let x = x - TAU * (x / TAU).round();
    let x2 = x * x;
    let mut term = x;
    let mut sum = x;
    let mut n = 1.0;
    for _ in 0..12 {
        term *= -x2 / ((n + 1.0) * (n + 2.0));
        sum += term;
        n += 2.0;
    }
    sum
}

/// e^x for x ≤ 0 (envelope coefficients), by halving into range and
/// squaring back.
fn exp_neg(x: f64) -> f64 {
    let mut y = x.min(0.0);
    let mut halvings = 0;
    while y < -0.5 && halvings < 64 {
        y *= 0.5;
        halvings += 1;
    }
    let mut term = 1.0;
    let mut sum = 1.0;
    for n in 1..20 {
        term *= y / f64::from(n);
        sum += term;
    }
    for _ in 0..halvings {
        sum *= sum;
    }
    sum
}

/// Frequency of a MIDI note: 440 · 2^((n − 69) / 12), via an exact table of
/// semitone ratios so no `powf` is needed.
fn midi_hz(note: i32) -> f64 {
    // 2^(k/12) for k = 0..11, to 17 significant digits.
    const SEMI: [f64; 12] = [
        1.0,
        1.059_463_094_359_295_3,
        1.122_462_048_309_373,
        1.189_207_115_002_721,
        1.259_921_049_894_873_2,
        1.334_839_854_170_034_4,
        std::f64::consts::SQRT_2,
        1.498_307_076_876_681_5,
        1.587_401_051_968_199_5,
        1.681_792_830_507_429,
        1.781_797_436_280_678_6,
        1.887_748_625_363_386_9,
    ];
    let d = note - 69;
    let octave = d.div_euclid(12);
    let mut f = 440.0 * SEMI[d.rem_euclid(12) as usize];
    for _ in 0..octave.max(0) {
        f *= 2.0;
    }
    for _ in 0..(-octave).max(0) {
        f *= 0.5;
    }
    f
}

/// One cycle of a waveform with the given partial amplitudes, peak 1.
fn wavetable(partials: &[f64]) -> Vec<f32> {
    let mut t: Vec<f64> = (0..TABLE_LEN)
        .map(|i| {
            let ph = TAU * i as f64 / TABLE_LEN as f64;
            partials.iter().enumerate().map(|(k, a)| a * sin(ph * (k + 1) as f64)).sum()
        })
        .collect();
    let peak = t.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1e-9);
    t.iter_mut().for_each(|v| *v /= peak);
    t.into_iter().map(|v| v as f32).collect()
}

fn lookup(table: &[f32], phase: f64) -> f32 {
    let pos = phase * TABLE_LEN as f64;
    let i = pos as usize % TABLE_LEN;
    let frac = (pos - pos.floor()) as f32;
    let a = table[i];
    let b = table[(i + 1) % TABLE_LEN];
    a + (b - a) * frac
}

/// A pitched note.
struct Note<'t> {
    start: usize,
    /// Gate length in frames; the release follows.
    gate: usize,
    freq: f64,
    table: &'t [f32],
    attack_s: f64,
    /// Time constant of the decay toward `sustain`, seconds.
    decay_s: f64,
    sustain: f32,
    release_s: f64,
    gain: f32,
    /// −1 (left) … 1 (right).
    pan: f64,
}

/// A percussive noise burst.
#[derive(Clone, Copy)]
struct Hit {
    len_s: f64,
    decay_s: f64,
    /// One-zero high-pass amount: 0 = none, 1 = bright.
    hp: f32,
    gain: f32,
    pan: f64,
}

const SNARE: Hit = Hit { len_s: 0.25, decay_s: 0.07, hp: 0.5, gain: 0.28, pan: 0.1 };

struct Mix {
    l: Vec<f32>,
    r: Vec<f32>,
}

impl Mix {
    fn pan_gains(pan: f64) -> (f32, f32) {
        let theta = (pan.clamp(-1.0, 1.0) + 1.0) * TAU / 8.0;
        (sin(theta + TAU / 4.0) as f32, sin(theta) as f32)
    }

    fn note(&mut self, n: &Note<'_>) {
        let rate = f64::from(DEMO_RATE);
        let attack = ((n.attack_s * rate) as usize).max(1);
        let release = ((n.release_s * rate) as usize).max(1);
        let decay = exp_neg(-1.0 / (n.decay_s * rate)) as f32;
        let (gl, gr) = Self::pan_gains(n.pan);
        let step = n.freq / rate;
        let mut phase = 0.0f64;
        let mut dec = 1.0f32;
        let total = n.gate + release;
        for i in 0..total {
            let at = n.start + i;
            if at >= self.l.len() {
                break;
            }
            let mut env = if i < attack {
                i as f32 / attack as f32
            } else {
                dec *= decay;
                n.sustain + (1.0 - n.sustain) * dec
            };
            if i >= n.gate {
                env *= 1.0 - (i - n.gate) as f32 / release as f32;
            }
            let s = lookup(n.table, phase) * env * n.gain;
            self.l[at] += s * gl;
            self.r[at] += s * gr;
            phase += step;
            if phase >= 1.0 {
                phase -= 1.0;
            }
        }
    }

    fn kick(&mut self, start: usize, gain: f32) {
        let rate = f64::from(DEMO_RATE);
        let len = (0.35 * rate) as usize;
        let sweep = exp_neg(-1.0 / (0.03 * rate));
        let amp_decay = exp_neg(-1.0 / (0.22 * rate)) as f32;
        let (mut f_extra, mut amp, mut phase) = (110.0f64, gain, 0.0f64);
        for at in start..(start + len).min(self.l.len()) {
            let s = sin(TAU * phase) as f32 * amp;
            self.l[at] += s;
            self.r[at] += s;
            phase = (phase + (45.0 + f_extra) / rate).fract();
            f_extra *= sweep;
            amp *= amp_decay;
        }
    }

    /// A noise burst through a one-zero high-pass (`hp` 0 = none, 1 = bright).
    fn noise_hit(&mut self, rng: &mut SplitMix64, start: usize, h: &Hit) {
        let Hit { len_s, decay_s, hp, gain, pan } = *h;
        let rate = f64::from(DEMO_RATE);
        let len = (len_s * rate) as usize;
        let decay = exp_neg(-1.0 / (decay_s * rate)) as f32;
        let (gl, gr) = Self::pan_gains(pan);
        let (mut amp, mut prev) = (gain, 0.0f32);
        for at in start..(start + len).min(self.l.len()) {
            let x = rng.noise();
            let s = (x - hp * prev) * amp;
            prev = x;
            self.l[at] += s * gl;
            self.r[at] += s * gr;
            amp *= decay;
        }
    }
}

/// Scale degrees (0 = tonic) of four-chord progressions in a major key.
const PROGRESSIONS: [[usize; 4]; 6] = [
    [0, 4, 5, 3], // I V vi IV
    [5, 3, 0, 4], // vi IV I V
    [0, 5, 3, 4], // I vi IV V
    [1, 4, 0, 5], // ii V I vi
    [0, 3, 4, 3], // I IV V IV
    [3, 0, 4, 5], // IV I V vi
];
const MAJOR: [i32; 7] = [0, 2, 4, 5, 7, 9, 11];

/// MIDI note of scale degree `d` (may exceed 6) above `tonic`.
fn degree(tonic: i32, d: usize) -> i32 {
    tonic + MAJOR[d % 7] + 12 * (d / 7) as i32
}

/// `note` moved by octaves into `lo..lo + 12`.
fn into_range(mut note: i32, lo: i32) -> i32 {
    while note < lo {
        note += 12;
    }
    while note >= lo + 12 {
        note -= 12;
    }
    note
}

/// Render track `index` of the album seeded by `seed`, `seconds` long
/// (clamped to 1..=[`MAX_DEMO_SECONDS`]), as planar stereo at
/// [`super::DEMO_RATE`], peak-normalised to −1 dBFS over a −75 dBFS noise
/// floor, with a short fade-in and a fade-out.
pub fn render(seed: u64, index: usize, seconds: u32) -> [Vec<f32>; 2] {
    let seconds = seconds.clamp(1, MAX_DEMO_SECONDS);
    let frames = seconds as usize * DEMO_RATE as usize;
    let mut rng = SplitMix64::new(seed ^ (index as u64 + 1).wrapping_mul(0xa076_1d64_78bd_642f));
    let tonic = 57 + rng.below(12) as i32; // A3 … G#4
    let bpm = 84 + rng.below(36) as u32;
    let progression = PROGRESSIONS[rng.below(PROGRESSIONS.len())];
    let bass_pattern: [usize; 8] =
        [[0, 0, 4, 0, 0, 4, 7, 4], [0, 7, 0, 7, 0, 4, 0, 2], [0, 0, 0, 4, 7, 7, 4, 0]][rng.below(3)];
    let arp_shape: [usize; 4] = [[0, 1, 2, 1], [0, 2, 1, 2], [2, 1, 0, 1]][rng.below(3)];

    let pad = wavetable(&[1.0, 0.5, 0.33, 0.2, 0.14, 0.1, 0.07, 0.05]);
    let bass = wavetable(&[1.0, 0.55, 0.2, 0.08]);
    let bell = wavetable(&[1.0, 0.0, 0.11, 0.0, 0.04, 0.0, 0.02, 0.0, 0.012]);

    let beat = (60.0 / f64::from(bpm) * f64::from(DEMO_RATE)) as usize;
    let bar = 4 * beat;
    let mut mix = Mix { l: vec![0.0; frames], r: vec![0.0; frames] };
    let mut bar_start = 0;
    let mut bar_no = 0usize;
    while bar_start < frames {
        let d = progression[bar_no % 4];
        let chord = [degree(tonic, d), degree(tonic, d + 2), degree(tonic, d + 4)];
        // Pad: the triad around middle C, two slightly detuned voices per
        // note spread left and right.
        for (k, &n) in chord.iter().enumerate() {
            let f = midi_hz(into_range(n, 55));
            for (detune, pan) in [(0.9985, -0.6), (1.0015, 0.6)] {
                mix.note(&Note {
                    start: bar_start,
                    gate: bar,
                    freq: f * detune,
                    table: &pad,
                    attack_s: 0.25,
                    decay_s: 1.2,
                    sustain: 0.6,
                    release_s: 0.4,
                    gain: 0.07 - 0.01 * k as f32,
                    pan,
                });
            }
        }
        // Bass: eighth notes from the pattern, plucked.
        let root = into_range(chord[0], 36);
        for (i, &step) in bass_pattern.iter().enumerate() {
            mix.note(&Note {
                start: bar_start + i * beat / 2,
                gate: beat / 2 - beat / 16,
                freq: midi_hz(root + step as i32),
                table: &bass,
                attack_s: 0.005,
                decay_s: 0.18,
                sustain: 0.35,
                release_s: 0.05,
                gain: if i % 2 == 0 { 0.30 } else { 0.22 },
                pan: 0.0,
            });
        }
        // Arpeggio from the second bar: sixteenths over the chord an octave
        // up, alternating sides, accent on the beat.
        if bar_no >= 1 {
            for i in 0..16 {
                let n = chord[arp_shape[i % 4]] + 12 * (1 + (i / 8) as i32);
                mix.note(&Note {
                    start: bar_start + i * beat / 4,
                    gate: beat / 8,
                    freq: midi_hz(into_range(n, 67) + if i >= 8 { 12 } else { 0 }),
                    table: &bell,
                    attack_s: 0.002,
                    decay_s: 0.25,
                    sustain: 0.0,
                    release_s: 0.3,
                    gain: if i % 4 == 0 { 0.09 } else { 0.06 },
                    pan: if i % 2 == 0 { -0.4 } else { 0.4 },
                });
            }
        }
        // Drums from the second bar: kick on 1 and 3 (and a pickup on the
        // "and" of 4 every other bar), snare on 2 and 4, hats on eighths.
        if bar_no >= 1 {
            mix.kick(bar_start, 0.55);
            mix.kick(bar_start + 2 * beat, 0.5);
            if bar_no % 2 == 1 {
                mix.kick(bar_start + 3 * beat + beat / 2, 0.35);
            }
            for b in [1, 3] {
                let at = bar_start + b * beat;
                mix.noise_hit(&mut rng, at, &SNARE);
                mix.note(&Note {
                    start: at,
                    gate: beat / 8,
                    freq: 190.0,
                    table: &bass,
                    attack_s: 0.001,
                    decay_s: 0.04,
                    sustain: 0.0,
                    release_s: 0.02,
                    gain: 0.2,
                    pan: 0.0,
                });
            }
            for e in 0..8 {
                let gain = if e % 2 == 1 { 0.09 } else { 0.05 };
                let hat = Hit { len_s: 0.06, decay_s: 0.015, hp: 0.95, gain, pan: 0.3 };
                mix.noise_hit(&mut rng, bar_start + e * beat / 2, &hat);
            }
        }
        bar_start += bar;
        bar_no += 1;
    }

    // Peak-normalise, add the noise floor, then fade in over 20 ms and out
    // over the last 1.5 s (or a tenth of a short track).
    let peak = mix.l.iter().chain(&mix.r).fold(0.0f32, |m, s| m.max(s.abs())).max(1e-9);
    let scale = PEAK / peak;
    let fade_in = (DEMO_RATE / 50) as usize;
    let fade_out = (frames / 10).min(3 * DEMO_RATE as usize / 2).max(1);
    let mut hiss = SplitMix64::new(rng.next_u64());
    for (i, (l, r)) in mix.l.iter_mut().zip(mix.r.iter_mut()).enumerate() {
        let mut g = 1.0;
        if i < fade_in {
            g *= i as f32 / fade_in as f32;
        }
        let left = frames - i;
        if left < fade_out {
            g *= left as f32 / fade_out as f32;
        }
        *l = (*l * scale + hiss.noise() * NOISE_FLOOR) * g;
        *r = (*r * scale + hiss.noise() * NOISE_FLOOR) * g;
    }
    [mix.l, mix.r]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maths_helpers_are_accurate() {
        for i in -40..40 {
            let x = f64::from(i) * 0.37;
            assert!((sin(x) - x.sin()).abs() < 1e-9, "sin({x})");
            assert!((exp_neg(-x.abs()) - (-x.abs()).exp()).abs() < 1e-9, "exp({x})");
        }
        assert!((midi_hz(69) - 440.0).abs() < 1e-9);
        assert!((midi_hz(57) - 220.0).abs() < 1e-9);
        assert!((midi_hz(60) - 261.625_565_300_598_6).abs() < 1e-6);
    }

    #[test]
    fn render_is_deterministic_stereo_and_normalised() {
        let a = render(42, 0, 3);
        assert_eq!(a[0].len(), 3 * DEMO_RATE as usize);
        assert_eq!(a, render(42, 0, 3));
        assert_ne!(a, render(42, 1, 3));
        assert_ne!(a[0], a[1], "left and right should differ");
        let peak = a.iter().flatten().fold(0.0f32, |m, s| m.max(s.abs()));
        assert!(peak <= PEAK + NOISE_FLOOR && peak > 0.5, "peak {peak}");
    }
}
