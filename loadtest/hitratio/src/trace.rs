//! A deterministic Zipf trace: object ids `0..distinct`, popularity rank
//! shuffled so that popular ids are spread over the key space.

/// SplitMix64: tiny, fast, and good enough to drive a workload generator.
/// Hand-written so a seed gives the same trace on every platform and with
/// every version of every dependency.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
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

    /// Uniform in `[0, 1)`, 53 bits.
    pub(crate) fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in `0..n` (Lemire's multiply-shift; the bias is < n / 2^64).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }
}

/// Zipf over ranks `0..n`: P(rank r) ∝ 1 / (r + 1)^alpha, sampled by inverse
/// CDF (a precomputed cumulative table and a binary search).
#[derive(Debug)]
pub(crate) struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    pub(crate) fn new(n: usize, alpha: f64) -> Self {
        assert!(n > 0, "Zipf over an empty set");
        let mut cdf = Vec::with_capacity(n);
        let mut total = 0.0;
        for r in 0..n {
            total += 1.0 / ((r + 1) as f64).powf(alpha);
            cdf.push(total);
        }
        for c in &mut cdf {
            *c /= total;
        }
        Self { cdf }
    }

    pub(crate) fn sample(&self, rng: &mut Rng) -> usize {
        let u = rng.next_f64();
        self.cdf.partition_point(|&c| c <= u).min(self.cdf.len() - 1)
    }
}

/// `requests` object ids in `0..distinct`, Zipf(`alpha`) by popularity, with
/// the rank → id map a seeded random permutation (popularity is not
/// correlated with id, hence not with key order or hash). With `phases` > 1
/// the trace is cut into that many equal parts and each part draws a new
/// permutation: the popular set changes completely at each boundary, to see
/// how fast a policy forgets.
pub(crate) fn zipf_trace(distinct: usize, requests: usize, alpha: f64, seed: u64, phases: usize) -> Vec<u32> {
    assert!(u32::try_from(distinct).is_ok(), "at most 2^32 distinct slices");
    let phases = phases.max(1);
    let mut rng = Rng::new(seed);
    let zipf = Zipf::new(distinct, alpha);
    let mut id_of_rank: Vec<u32> = (0..distinct as u32).collect();
    let mut trace = Vec::with_capacity(requests);
    for phase in 0..phases {
        for i in (1..distinct).rev() {
            let j = rng.below(i as u64 + 1) as usize;
            id_of_rank.swap(i, j);
        }
        let end = requests * (phase + 1) / phases;
        while trace.len() < end {
            trace.push(id_of_rank[zipf.sample(&mut rng)]);
        }
    }
    trace
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_trace() {
        assert_eq!(zipf_trace(1000, 5000, 1.0, 7, 1), zipf_trace(1000, 5000, 1.0, 7, 1));
        assert_ne!(zipf_trace(1000, 5000, 1.0, 7, 1), zipf_trace(1000, 5000, 1.0, 8, 1));
    }

    #[test]
    fn zipf_frequencies_follow_the_law() {
        // With alpha = 1 and n = 100, P(rank 0) = 1 / H(100) ≈ 0.1928 and
        // P(rank 1) is half of that.
        let zipf = Zipf::new(100, 1.0);
        let mut rng = Rng::new(1);
        let mut counts = [0u32; 100];
        let draws = 1_000_000;
        for _ in 0..draws {
            counts[zipf.sample(&mut rng)] += 1;
        }
        let p0 = f64::from(counts[0]) / f64::from(draws);
        let p1 = f64::from(counts[1]) / f64::from(draws);
        assert!((p0 - 0.1928).abs() < 0.003, "{p0}");
        assert!((p1 - 0.0964).abs() < 0.003, "{p1}");
        assert!(counts[99] > 0);
    }
}
