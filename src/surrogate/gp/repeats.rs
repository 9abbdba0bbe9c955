//! Repeated measurements of one point as one row of the GP: its mean, with a noise variance
//! divided by its count. The likelihood stays exact: the spread of the repeats around their
//! mean adds `−SS/(2σ_n²) − ½ Σ(n_i − 1) ln(2πσ_n²) − ½ Σ ln n_i` (what the mean leaves
//! out), so repeats
//! still tell the fit how noisy the measurements are, while the covariance matrix is only as
//! large as the number of distinct points (and never singular from duplicates).

use std::collections::HashMap;

/// Rows grouped by identical (kernel-view) inputs.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Repeats {
    /// One input per distinct point, in order of first appearance.
    pub x: Vec<Vec<f64>>,
    /// The mean output of each distinct point.
    pub y: Vec<f64>,
    /// Noise weight of each distinct point: 1 / its count.
    pub w: Vec<f64>,
    /// For each input row, its distinct point.
    pub rows: Vec<usize>,
    /// What the means leave out of the likelihood.
    pub spread: Spread,
}

/// The repeats' spread about their means, as the likelihood needs it.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub(super) struct Spread {
    /// Sum over points of the squared deviations of the repeats from their mean.
    pub ss: f64,
    /// Sum over points of (count − 1).
    pub extra: usize,
    /// Sum over points of ln(count).
    pub log_counts: f64,
}

impl Repeats {
    /// Group `(x[i], y[i])` by identical `x` (bit for bit).
    pub fn group(x: &[&Vec<f64>], y: &[f64]) -> Repeats {
        let mut index: HashMap<Vec<u64>, usize> = HashMap::new();
        let mut members: Vec<Vec<f64>> = Vec::new();
        let mut out =
            Repeats { x: Vec::new(), y: Vec::new(), w: Vec::new(), rows: Vec::new(), spread: Spread::default() };
        for (xi, &yi) in x.iter().zip(y) {
            let key: Vec<u64> = xi.iter().map(|v| v.to_bits()).collect();
            let g = *index.entry(key).or_insert_with(|| {
                out.x.push((*xi).clone());
                members.push(Vec::new());
                members.len() - 1
            });
            members[g].push(yi);
            out.rows.push(g);
        }
        for m in &members {
            let mean = m.iter().sum::<f64>() / m.len() as f64;
            out.y.push(mean);
            out.w.push(1.0 / m.len() as f64);
            out.spread.ss += m.iter().map(|v| (v - mean).powi(2)).sum::<f64>();
            out.spread.extra += m.len() - 1;
            out.spread.log_counts += (m.len() as f64).ln();
        }
        out
    }
}

impl Spread {
    /// The log-likelihood term of the repeats' spread at noise variance `sn2`, and its
    /// derivative with respect to `ln sn2`.
    pub fn term(&self, sn2: f64) -> (f64, f64) {
        let extra = self.extra as f64;
        let value =
            -self.ss / (2.0 * sn2) - 0.5 * extra * (2.0 * std::f64::consts::PI * sn2).ln() - 0.5 * self.log_counts;
        (value, self.ss / (2.0 * sn2) - 0.5 * extra)
    }
}
