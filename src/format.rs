//! How numbers are shown to people: one place, so that the tables, logs,
//! reports and messages of every face print them alike. The bottom floor.

/// Short human formatting of a number (6 significant digits).
pub fn fmt_num(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return format!("{v}");
    }
    let a = v.abs();
    if (1e-3..1e7).contains(&a) {
        let digits = (5 - a.log10().floor() as i32).clamp(0, 9) as usize;
        let s = format!("{v:.digits$}");
        if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_string() } else { s }
    } else {
        format!("{v:.5e}")
    }
}

/// A spread (a standard deviation, half an interval) to two significant digits, as precisely
/// as it is worth printing: `26000`, `0.0013`, `3.1e-5`.
pub fn fmt_spread(x: f64) -> String {
    if x == 0.0 || !x.is_finite() {
        return fmt_num(x);
    }
    if !(1e-3..1e7).contains(&x.abs()) {
        return format!("{x:.1e}");
    }
    let grain = 10f64.powi(x.abs().log10().floor() as i32 - 1);
    fmt_num((x / grain).round() * grain)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spreads_get_two_digits() {
        assert_eq!(fmt_spread(32516.2), "33000");
        assert_eq!(fmt_spread(0.00123), "0.0012");
        assert_eq!(fmt_spread(3.1e-4), "3.1e-4");
        assert_eq!(fmt_spread(1.0), "1");
        assert_eq!(fmt_spread(0.0), "0");
    }
}
