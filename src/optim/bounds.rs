//! The boundary transform shared by the optimizers that search an
//! unbounded space (CMA-ES's genotype, the gradient optimizer's `z`):
//! pycma's `BoundTransform`. `z` is mirrored periodically into
//! `[-a, 1+a]`, then the outer zones of width `2a` are bent quadratically
//! onto `[0, a]` and `[1-a, 1]`. Smooth, onto, the identity on
//! `[a, 1-a]`: every point is feasible, optima on a face stay reachable
//! (with zero slope there), and there is none of the bias that clipping or
//! resampling puts on a search.

/// Width `a` of the quadratic zones (unit-cube units).
pub(crate) const MARGIN: f64 = 0.05;

/// `z` → (cube coordinate, dx/dz); a non-finite `z` maps to the centre.
pub(crate) fn to_unit(z: f64) -> (f64, f64) {
    let a = MARGIN;
    if !z.is_finite() {
        return (0.5, 0.0);
    }
    if (a..=1.0 - a).contains(&z) {
        return (z, 1.0);
    }
    let len = 1.0 + 2.0 * a;
    let mut u = (z + a).rem_euclid(2.0 * len);
    let mut sign = 1.0;
    if u > len {
        u = 2.0 * len - u;
        sign = -1.0;
    }
    let v = u - a;
    let (x, s) = if v < a {
        ((v + a) * (v + a) / (4.0 * a), (v + a) / (2.0 * a))
    } else if v > 1.0 - a {
        (1.0 - (1.0 + a - v) * (1.0 + a - v) / (4.0 * a), (1.0 + a - v) / (2.0 * a))
    } else {
        (v, 1.0)
    };
    (x.clamp(0.0, 1.0), sign * s)
}

/// A `z` in `[-a, 1+a]` that [`to_unit`] maps to `x`.
pub(crate) fn from_unit(x: f64) -> f64 {
    let a = MARGIN;
    let x = if x.is_nan() { 0.5 } else { x.clamp(0.0, 1.0) };
    if x < a {
        -a + (4.0 * a * x).sqrt()
    } else if x > 1.0 - a {
        1.0 + a - (4.0 * a * (1.0 - x)).sqrt()
    } else {
        x
    }
}

/// `z` shifted by whole periods of [`to_unit`] into `[-a, 1+3a)`: the same
/// point of the cube, with small numbers.
pub(crate) fn wrap(z: f64) -> f64 {
    (z + MARGIN).rem_euclid(2.0 * (1.0 + 2.0 * MARGIN)) - MARGIN
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smooth_onto_the_cube_and_round_trips() {
        for k in 0..=1000 {
            let x = k as f64 / 1000.0;
            assert!((to_unit(from_unit(x)).0 - x).abs() < 1e-12, "{x}");
        }
        for k in -5000..5000 {
            let z = k as f64 * 0.00173;
            let (x, slope) = to_unit(z);
            assert!((0.0..=1.0).contains(&x));
            assert!((to_unit(wrap(z)).0 - x).abs() < 1e-12, "wrap changed z {z}");
            let h = 1e-7;
            let numeric = (to_unit(z + h).0 - to_unit(z - h).0) / (2.0 * h);
            assert!((numeric - slope).abs() < 1e-5, "z {z}: slope {slope} vs {numeric}");
        }
        // A face is reached with zero slope: a minimum there is smooth in z.
        assert_eq!(to_unit(-MARGIN), (0.0, 0.0));
        assert_eq!(to_unit(1.0 + MARGIN).0, 1.0);
        assert_eq!(to_unit(f64::NAN), (0.5, 0.0));
    }
}
