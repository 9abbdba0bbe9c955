//! Relations between parameters a configuration must satisfy to be tried at
//! all (`young_mb < heap_mb`, `min_idle <= pool_size`, `a + 2*b <= 100`):
//! linear inequalities over numeric parameters. A relation that mentions an
//! inactive parameter does not apply.

use serde::{Deserialize, Serialize};

use super::{Config, Domain, Space};

/// `Σ coefficient·parameter + constant` compared with 0: `< 0` when strict, else `<= 0`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Relation {
    /// As the spec wrote it.
    pub text: String,
    terms: Vec<(String, f64)>,
    constant: f64,
    strict: bool,
}

/// One side of a relation: terms by parameter, and a constant.
fn side(text: &str, space: &Space, whole: &str) -> Result<(Vec<(String, f64)>, f64), String> {
    let mut terms: Vec<(String, f64)> = Vec::new();
    let mut constant = 0.0;
    // Split on + and - that start a term (not the sign of an exponent, as in 1e-3).
    let chars: Vec<char> = text.chars().collect();
    let mut parts: Vec<String> = Vec::new();
    let mut current = String::new();
    for (i, &c) in chars.iter().enumerate() {
        let exponent = i > 0 && matches!(chars[i - 1], 'e' | 'E') && i > 1 && chars[i - 2].is_ascii_digit();
        if (c == '+' || c == '-') && !exponent && !current.trim().is_empty() {
            parts.push(std::mem::take(&mut current));
        }
        current.push(c);
    }
    parts.push(current);
    for part in parts.iter().map(|p| p.replace(' ', "")).filter(|p| !p.is_empty()) {
        let (sign, body) = match part.strip_prefix('-') {
            Some(rest) => (-1.0, rest.to_string()),
            None => (1.0, part.trim_start_matches('+').to_string()),
        };
        let (coef, name) = match body.split_once('*') {
            Some((c, n)) => {
                let c: f64 = c.parse().map_err(|_| format!("`{c}` in `{whole}` is not a number"))?;
                (c, n.to_string())
            }
            None => match body.parse::<f64>() {
                Ok(v) => {
                    constant += sign * v;
                    continue;
                }
                Err(_) => (1.0, body),
            },
        };
        let p = space.param(&name).ok_or_else(|| {
            format!("`{name}` in `{whole}` is not a parameter; relations name numeric parameters of the space")
        })?;
        if !matches!(p.domain, Domain::Float { .. } | Domain::Int { .. }) {
            return Err(format!("`{name}` in `{whole}` is not numeric; relations compare int and float parameters"));
        }
        if !coef.is_finite() {
            return Err(format!("`{whole}`: coefficients must be finite"));
        }
        match terms.iter_mut().find(|t| t.0 == name) {
            Some(t) => t.1 += sign * coef,
            None => terms.push((name, sign * coef)),
        }
    }
    Ok((terms, constant))
}

impl Relation {
    /// Parse `lhs OP rhs` (OP one of `<`, `<=`, `>`, `>=`; each side a sum of numbers,
    /// parameters and `number*parameter`) over the numeric parameters of `space`.
    pub fn parse(text: &str, space: &Space) -> Result<Relation, String> {
        let ops = ["<=", ">=", "<", ">"];
        let Some((at, op)) = ops.iter().filter_map(|op| text.find(op).map(|i| (i, *op))).min_by_key(|(i, _)| *i) else {
            return Err(format!("`{text}` has no comparison; write e.g. `young_mb < heap_mb` or `a + b <= 100`"));
        };
        let (lhs, rhs) = (&text[..at], &text[at + op.len()..]);
        if ops.iter().any(|o| rhs.contains(o)) {
            return Err(format!("`{text}` has more than one comparison; write one relation per entry"));
        }
        let (l, lc) = side(lhs, space, text)?;
        let (r, rc) = side(rhs, space, text)?;
        // lhs - rhs OP 0; `>` and `>=` flip to `<` and `<=`.
        let flip = if op.starts_with('>') { -1.0 } else { 1.0 };
        let mut terms: Vec<(String, f64)> = l;
        for (name, c) in r {
            match terms.iter_mut().find(|t| t.0 == name) {
                Some(t) => t.1 -= c,
                None => terms.push((name, -c)),
            }
        }
        terms.iter_mut().for_each(|t| t.1 *= flip);
        terms.retain(|t| t.1 != 0.0);
        if terms.is_empty() {
            return Err(format!("`{text}` names no parameter (or they cancel out)"));
        }
        Ok(Relation { text: text.trim().to_string(), terms, constant: flip * (lc - rc), strict: !op.ends_with('=') })
    }

    /// How far `config` is from satisfying the relation (0 when it does, or when one of its
    /// parameters is inactive).
    pub fn violation(&self, config: &Config) -> f64 {
        let mut sum = self.constant;
        for (name, c) in &self.terms {
            match config.get(name).and_then(|v| v.as_f64()) {
                Some(v) => sum += c * v,
                None => return 0.0,
            }
        }
        if sum < 0.0 || (!self.strict && sum == 0.0) { 0.0 } else { sum.max(f64::MIN_POSITIVE) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::space::Value;

    fn space() -> Space {
        Space::parse(
            "- {name: young_mb, type: int, low: 16, high: 4096}\n- {name: heap_mb, type: int, low: 64, high: 8192}\n\
             - {name: ratio, type: float, low: 0, high: 1}\n- {name: mode, type: categorical, choices: [a, b]}\n",
            "t",
        )
        .unwrap()
    }

    fn config(young: i64, heap: i64, ratio: f64) -> Config {
        Config::from([
            ("young_mb".to_string(), Value::Int(young)),
            ("heap_mb".to_string(), Value::Int(heap)),
            ("ratio".to_string(), Value::Float(ratio)),
        ])
    }

    #[test]
    fn linear_relations_hold_or_say_by_how_much_they_fail() {
        let s = space();
        let r = Relation::parse("young_mb < heap_mb", &s).unwrap();
        assert_eq!(r.violation(&config(100, 200, 0.5)), 0.0);
        assert_eq!(r.violation(&config(200, 200, 0.5)), f64::MIN_POSITIVE, "strict: equal is out");
        assert_eq!(r.violation(&config(300, 200, 0.5)), 100.0);
        let r = Relation::parse("2*young_mb + 1e-3 >= heap_mb - 10", &s).unwrap();
        assert_eq!(r.violation(&config(100, 210, 0.5)), 0.0);
        assert!(r.violation(&config(100, 300, 0.5)) > 0.0);
        let r = Relation::parse("ratio <= 0.5", &s).unwrap();
        assert_eq!(r.violation(&config(1, 1, 0.5)), 0.0);
        assert_eq!(r.violation(&Config::new()), 0.0, "inactive parameters: the relation does not apply");
    }

    #[test]
    fn bad_relations_say_what_is_wrong() {
        let s = space();
        let err = |t: &str| Relation::parse(t, &s).unwrap_err();
        assert!(err("young_mb heap_mb").contains("no comparison"));
        assert!(err("young < heap_mb").contains("`young` in `young < heap_mb` is not a parameter"));
        assert!(err("mode < 3").contains("not numeric"));
        assert!(err("1 < 2").contains("names no parameter"));
        assert!(err("young_mb < heap_mb < 9").contains("more than one comparison"));
        assert!(err("x*young_mb < 3").contains("`x` in"));
    }
}
