//! Parameter spaces: what can be tuned, its domain, today's value, and the
//! mapping to and from the unit cube the optimizers work in.
//!
//! Encoding, per domain (every decoded value is reachable and ints/steps/
//! choices get equal shares of the cube):
//! - float, linear: `u = (x - low) / (high - low)`;
//! - float, log: the same on `ln x`;
//! - float or int with a step, int linear: `n` grid values, `[0,1]` cut into
//!   `n` equal bins, a value encodes to its bin centre;
//! - int, log: continuous on `ln` over `[low - 0.5, high + 0.5]`, rounded;
//! - categorical and bool: `n` equal bins, one per choice.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::cube::Dim;
use crate::error::Problem;

mod builder;
mod parse;
mod relation;

pub use builder::SpaceBuilder;
pub use parse::MAX_PARAMS;
pub(crate) use parse::parse_space;
pub use relation::Relation;

/// A parameter value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Value {
    /// A `bool` parameter's value.
    Bool(bool),
    /// An `int` parameter's value (also a categorical choice written as an integer).
    Int(i64),
    /// A `float` parameter's value.
    Float(f64),
    /// A categorical choice written as text.
    Str(String),
}

impl Value {
    /// The type's name as a spec writes it: `bool`, `int`, `float` or `string`.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float",
            Value::Str(_) => "string",
        }
    }
    /// The value as a number (an `Int` widened); `None` for a bool or a string.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::Int(i) => Some(i as f64),
            Value::Float(f) => Some(f),
            _ => None,
        }
    }
    /// Same value for the purpose of choices and conditions (1 == 1.0).
    pub fn same(&self, other: &Value) -> bool {
        match (self, other) {
            (Value::Str(a), Value::Str(b)) => a == b,
            (Value::Bool(a), Value::Bool(b)) => a == b,
            _ => match (self.as_f64(), other.as_f64()) {
                (Some(a), Some(b)) => a == b,
                _ => false,
            },
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) => write!(f, "{x}"),
            Value::Str(s) => write!(f, "{s}"),
        }
    }
}

/// A configuration: parameter name → value (active parameters only).
pub type Config = BTreeMap<String, Value>;

/// The set of values a parameter can take.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Domain {
    /// Reals in `[low, high]`; searched on a log scale when `log` (then
    /// `low > 0`); rounded to multiples of `step` from `low` when given.
    Float {
        /// Smallest value.
        low: f64,
        /// Largest value.
        high: f64,
        /// Search `ln(value)` uniformly rather than the value.
        log: bool,
        /// Only `low + k·step` values.
        step: Option<f64>,
    },
    /// Integers in `[low, high]` in steps of `step` from `low`; log-scaled when `log`.
    Int {
        /// Smallest value.
        low: i64,
        /// Largest value.
        high: i64,
        /// Search `ln(value)` uniformly rather than the value.
        log: bool,
        /// Only `low + k·step` values (1 for every integer).
        step: i64,
    },
    /// One of a list of values, unordered.
    Categorical {
        /// The values, in the order the spec lists them.
        choices: Vec<Value>,
    },
    /// `true` or `false`.
    Bool,
}

/// Active only when every listed parameter has one of the listed values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Condition {
    /// The parameter the condition looks at (declared before this one).
    pub param: String,
    /// The values of it that make this parameter active.
    pub any_of: Vec<Value>,
}

/// One parameter of a space: a knob of the system being tuned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Param {
    /// Its name (unique in the space), as configurations key it.
    pub name: String,
    /// The values it can take.
    pub domain: Domain,
    /// Today's production value: the baseline.
    pub default: Option<Value>,
    /// All must hold for the parameter to be active.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub when: Vec<Condition>,
    /// Choices that are searched and measured but never recommended unless asked for (e.g.
    /// `synchronous: off`, which can lose data): categorical and bool parameters only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub risky: Vec<Value>,
}

/// An ordered, validated list of parameters, and the relations between them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Space {
    /// The parameters, in the order declared (one unit-cube coordinate each).
    pub params: Vec<Param>,
    /// Relations every configuration tried must satisfy (`young_mb < heap_mb`): points that
    /// break one are refused before they become trials (see [`Space::violation`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub relations: Vec<Relation>,
}

fn bins(u: f64, n: u64) -> u64 {
    let n_f = n.max(1) as f64;
    ((u * n_f).floor().max(0.0) as u64).min(n.max(1) - 1)
}

fn centre(k: u64, n: u64) -> f64 {
    (k as f64 + 0.5) / n.max(1) as f64
}

impl Domain {
    /// How the optimizer should treat this coordinate.
    pub fn dim(&self) -> Dim {
        match self {
            Domain::Float { step: Some(_), .. } | Domain::Int { log: false, .. } => {
                Dim::Integer { levels: self.levels().unwrap_or(1) }
            }
            Domain::Float { .. } | Domain::Int { log: true, .. } => Dim::Continuous,
            Domain::Categorical { choices } => Dim::Categorical { choices: choices.len() as u32 },
            Domain::Bool => Dim::Categorical { choices: 2 },
        }
    }

    /// Number of distinct values, when finite.
    pub fn levels(&self) -> Option<u64> {
        match *self {
            Domain::Float { low, high, step: Some(s), .. } => Some(((high - low) / s + 1e-9).floor() as u64 + 1),
            Domain::Float { .. } => None,
            Domain::Int { low, high, step, .. } => Some(((high - low) / step.max(1)) as u64 + 1),
            Domain::Categorical { ref choices } => Some(choices.len() as u64),
            Domain::Bool => Some(2),
        }
    }

    /// Map a unit-cube coordinate to a value (clamped into `[0,1]` first; NaN → 0.5).
    pub fn decode(&self, u: f64) -> Value {
        let u = if u.is_nan() { 0.5 } else { u.clamp(0.0, 1.0) };
        match *self {
            Domain::Float { low, high, step: Some(s), .. } => {
                let k = bins(u, self.levels().unwrap_or(1));
                Value::Float((low + k as f64 * s).min(high))
            }
            Domain::Float { low, high, log: true, .. } => {
                let (a, b) = (low.ln(), high.ln());
                Value::Float((a + u * (b - a)).exp().clamp(low, high))
            }
            Domain::Float { low, high, .. } => Value::Float((low + u * (high - low)).clamp(low, high)),
            Domain::Int { low, high, log: true, .. } => {
                let (a, b) = ((low as f64 - 0.5).ln(), (high as f64 + 0.5).ln());
                let v = (a + u * (b - a)).exp().round() as i64;
                Value::Int(v.clamp(low, high))
            }
            Domain::Int { low, step, .. } => {
                let k = bins(u, self.levels().unwrap_or(1));
                Value::Int(low + k as i64 * step)
            }
            Domain::Categorical { ref choices } => choices[bins(u, choices.len() as u64) as usize].clone(),
            Domain::Bool => Value::Bool(bins(u, 2) == 1),
        }
    }

    /// Map a value into `[0,1]`; `None` when the value is not in the domain.
    pub fn encode(&self, v: &Value) -> Option<f64> {
        if !self.contains(v) {
            return None;
        }
        Some(match *self {
            Domain::Float { low, step: Some(s), .. } => {
                let k = ((v.as_f64()? - low) / s).round() as u64;
                centre(k, self.levels().unwrap_or(1))
            }
            Domain::Float { low, high, log: true, .. } => {
                let (a, b) = (low.ln(), high.ln());
                if b == a { 0.5 } else { ((v.as_f64()?.ln() - a) / (b - a)).clamp(0.0, 1.0) }
            }
            Domain::Float { low, high, .. } => {
                if high == low {
                    0.5
                } else {
                    ((v.as_f64()? - low) / (high - low)).clamp(0.0, 1.0)
                }
            }
            Domain::Int { low, high, log: true, .. } => {
                let (a, b) = ((low as f64 - 0.5).ln(), (high as f64 + 0.5).ln());
                ((v.as_f64()?.ln() - a) / (b - a)).clamp(0.0, 1.0)
            }
            Domain::Int { low, step, .. } => {
                let k = ((v.as_f64()? as i64 - low) / step) as u64;
                centre(k, self.levels().unwrap_or(1))
            }
            Domain::Categorical { ref choices } => {
                let k = choices.iter().position(|c| c.same(v))? as u64;
                centre(k, choices.len() as u64)
            }
            Domain::Bool => centre(matches!(v, Value::Bool(true)) as u64, 2),
        })
    }

    /// Whether `v` is a value of this domain (type, bounds, grid).
    pub fn contains(&self, v: &Value) -> bool {
        match *self {
            Domain::Float { low, high, step, .. } => {
                let Some(x) = v.as_f64() else { return false };
                if !x.is_finite() || x < low || x > high {
                    return false;
                }
                match step {
                    Some(s) => {
                        let k = (x - low) / s;
                        (k - k.round()).abs() <= 1e-9 * k.abs().max(1.0)
                    }
                    None => true,
                }
            }
            Domain::Int { low, high, step, .. } => match v {
                Value::Int(i) => *i >= low && *i <= high && (i - low) % step.max(1) == 0,
                Value::Float(f) if f.fract() == 0.0 && f.is_finite() => {
                    Domain::Int { low, high, log: false, step }.contains(&Value::Int(*f as i64))
                }
                _ => false,
            },
            Domain::Categorical { ref choices } => choices.iter().any(|c| c.same(v)),
            Domain::Bool => matches!(v, Value::Bool(_)),
        }
    }

    /// Put `v` into this domain's own representation (e.g. `3.0` for an int → `3`).
    pub fn normalize(&self, v: &Value) -> Value {
        match (self, v) {
            (Domain::Int { .. }, Value::Float(f)) => Value::Int(*f as i64),
            (Domain::Float { .. }, Value::Int(i)) => Value::Float(*i as f64),
            (Domain::Categorical { choices }, _) => {
                choices.iter().find(|c| c.same(v)).cloned().unwrap_or_else(|| v.clone())
            }
            _ => v.clone(),
        }
    }

    /// `v` rounded to the precision that matters for this domain, as recommendations show and
    /// confirmation re-measures it: a float without a step to four significant digits of its
    /// range (of its value, on a log scale), kept within the bounds; every other value as is.
    pub fn round(&self, v: &Value) -> Value {
        let (Domain::Float { low, high, log, step: None }, Some(x)) = (self, v.as_f64()) else { return v.clone() };
        let magnitude = if *log { x.abs() } else { high - low };
        if magnitude.is_nan() || magnitude <= 0.0 || !x.is_finite() {
            return v.clone();
        }
        // Decimal places that keep four significant digits (negative: round to tens, ...).
        let places = 3 - magnitude.log10().floor() as i32;
        let rounded = if places >= 0 {
            format!("{x:.0$}", places.min(17) as usize).parse().unwrap_or(x)
        } else {
            let grain = 10f64.powi(-places);
            (x / grain).round() * grain
        };
        Value::Float(rounded.clamp(*low, *high))
    }

    /// What a valid value looks like, for error messages.
    pub fn describe(&self) -> String {
        match self {
            Domain::Float { low, high, log, step } => {
                let mut s = format!("a float in [{low}, {high}]");
                if let Some(st) = step {
                    s.push_str(&format!(" on the grid {low} + k*{st}"));
                }
                if *log {
                    s.push_str(" (log scale)");
                }
                s
            }
            Domain::Int { low, high, step, .. } => {
                if *step > 1 {
                    format!("an int in [{low}, {high}] on the grid {low} + k*{step}")
                } else {
                    format!("an int in [{low}, {high}]")
                }
            }
            Domain::Categorical { choices } => {
                format!("one of [{}]", choices.iter().map(|c| c.to_string()).collect::<Vec<_>>().join(", "))
            }
            Domain::Bool => "true or false".to_string(),
        }
    }
}

impl Space {
    /// Declare a space in code (see [`SpaceBuilder`]).
    pub fn builder() -> SpaceBuilder {
        SpaceBuilder::new()
    }

    /// Parse a `space` list written in YAML (`- {name: x, type: float, low: 0, high: 1}` …),
    /// with the checks of a spec file; messages name `source`.
    pub fn parse(text: &str, source: &str) -> crate::Result<Space> {
        Space::from_yaml(&crate::yaml::load(text, source)?, "space", source)
    }

    /// Parse a `space` list given as JSON (as a protocol message carries
    /// it), with the checks of a spec file: every problem is reported, paths
    /// start with `path`, messages name `source`.
    pub(crate) fn from_json(v: &serde_json::Value, path: &str, source: &str) -> crate::Result<Space> {
        let yaml: serde_yaml::Value = serde_yaml::to_value(v)
            .map_err(|e| crate::error::Error::invalid(source, path, format!("not a list of parameters: {e}")))?;
        Space::from_yaml(&yaml, path, source)
    }

    /// Parse a `space` list on its own (not inside a spec file): every
    /// problem is reported, paths start with `path`, messages name `source`.
    pub(crate) fn from_yaml(v: &serde_yaml::Value, path: &str, source: &str) -> crate::Result<Space> {
        let mut problems = Vec::new();
        parse_space(v, path, &mut problems).ok_or_else(|| {
            crate::error::Error::Invalid(crate::error::Problems { source: source.to_string(), items: problems })
        })
    }

    /// The number of parameters (the unit cube's dimension).
    pub fn dim(&self) -> usize {
        self.params.len()
    }

    /// One [`Dim`] per parameter, for the optimizer.
    pub fn dims(&self) -> Vec<Dim> {
        self.params.iter().map(|p| p.domain.dim()).collect()
    }

    /// The parameter named `name`.
    pub fn param(&self, name: &str) -> Option<&Param> {
        self.params.iter().find(|p| p.name == name)
    }

    fn active(&self, p: &Param, config: &Config) -> bool {
        p.when.iter().all(|c| config.get(&c.param).is_some_and(|v| c.any_of.iter().any(|a| a.same(v))))
    }

    /// Unit-cube point → configuration of the active parameters.
    pub fn decode(&self, x: &[f64]) -> Config {
        let mut config = Config::new();
        for (p, &u) in self.params.iter().zip(x) {
            if self.active(p, &config) {
                config.insert(p.name.clone(), p.domain.decode(u));
            }
        }
        config
    }

    /// The gradient of a function of the configuration, from its
    /// derivatives in each parameter's own units (`gradient`: name →
    /// derivative) to unit-cube coordinates at `x`, by the chain rule through
    /// each encoding: linear floats scale by `high - low`, log floats by
    /// `value * ln(high / low)`, log ints (which optimizers treat as
    /// continuous) by the same for the value before rounding; linear ints,
    /// stepped floats, categoricals, bools and inactive parameters get 0
    /// (their value is piecewise constant in the cube). `None` when the
    /// derivative of an active float or log int is missing or not finite.
    pub fn unit_gradient(&self, x: &[f64], gradient: &BTreeMap<String, f64>) -> Option<Vec<f64>> {
        let config = self.decode(x);
        self.params
            .iter()
            .zip(x)
            .map(|(p, &u)| {
                let Some(value) = config.get(&p.name) else { return Some(0.0) };
                let du = match p.domain {
                    Domain::Float { low, high, log: false, step: None } => high - low,
                    Domain::Float { low, high, log: true, step: None } => value.as_f64()? * (high / low).ln(),
                    Domain::Int { low, high, log: true, .. } => {
                        let (a, b) = ((low as f64 - 0.5).ln(), (high as f64 + 0.5).ln());
                        (a + u.clamp(0.0, 1.0) * (b - a)).exp() * (b - a)
                    }
                    _ => return Some(0.0),
                };
                Some(gradient.get(&p.name).copied().filter(|g| g.is_finite())? * du)
            })
            .collect()
    }

    /// Configuration → unit-cube point. Inactive or missing parameters take
    /// their default's coordinate (or the cube's centre without a default).
    /// Fails naming the first parameter whose value is not in its domain.
    pub fn encode(&self, config: &Config) -> Result<Vec<f64>, String> {
        self.params
            .iter()
            .map(|p| match config.get(&p.name) {
                Some(v) => p.domain.encode(v).ok_or_else(|| format!("{}: {v} is not {}", p.name, p.domain.describe())),
                None => Ok(p.default.as_ref().and_then(|d| p.domain.encode(d)).unwrap_or(0.5)),
            })
            .collect()
    }

    /// `config` with every value rounded to the precision that matters ([`Domain::round`]).
    pub fn round(&self, config: &Config) -> Config {
        config
            .iter()
            .map(|(name, v)| (name.clone(), self.param(name).map_or_else(|| v.clone(), |p| p.domain.round(v))))
            .collect()
    }

    /// How far `config` is from satisfying the space's relations (0 when it satisfies them all).
    pub fn violation(&self, config: &Config) -> f64 {
        self.relations.iter().map(|r| r.violation(config)).sum()
    }

    /// The risky choices `config` makes, as `(parameter, value)`.
    pub fn risky_choices(&self, config: &Config) -> Vec<(String, Value)> {
        self.params
            .iter()
            .filter_map(|p| {
                let v = config.get(&p.name)?;
                p.risky.iter().any(|r| r.same(v)).then(|| (p.name.clone(), v.clone()))
            })
            .collect()
    }

    /// The baseline (every active parameter at its default), if every
    /// parameter has a default.
    pub fn baseline(&self) -> Option<Config> {
        let mut config = Config::new();
        for p in &self.params {
            let d = p.default.as_ref()?;
            if self.active(p, &config) {
                config.insert(p.name.clone(), p.domain.normalize(d));
            }
        }
        Some(config)
    }

    /// A partial configuration completed with the defaults (parameters it
    /// leaves out take theirs; inactive conditional ones are dropped), checked
    /// as [`Space::check_config`] checks, and its unit-cube position.
    pub fn with_defaults(&self, partial: &Config) -> Result<(Config, Vec<f64>), Vec<Problem>> {
        let mut config: Config = self
            .params
            .iter()
            .filter_map(|p| p.default.as_ref().map(|d| (p.name.clone(), p.domain.normalize(d))))
            .collect();
        config.extend(partial.iter().map(|(k, v)| (k.clone(), v.clone())));
        let config = self.check_config(&config)?;
        let x = self.encode(&config).map_err(|e| vec![Problem::new("", e)])?;
        Ok((config, x))
    }

    /// A configuration given by a user (e.g. from a protocol message), relations included:
    /// every active parameter present and in its domain, no unknown names.
    /// Each problem's path is the parameter's name.
    pub fn check_config(&self, config: &Config) -> Result<Config, Vec<Problem>> {
        let mut errors = Vec::new();
        let mut out = Config::new();
        for name in config.keys() {
            if self.param(name).is_none() {
                errors.push(Problem::new(name.as_str(), "not a parameter of this space"));
            }
        }
        for p in &self.params {
            if !self.active(p, &out) {
                continue;
            }
            match config.get(&p.name) {
                Some(v) if p.domain.contains(v) => {
                    out.insert(p.name.clone(), p.domain.normalize(v));
                }
                Some(v) => errors.push(Problem::new(p.name.as_str(), format!("{v} is not {}", p.domain.describe()))),
                None => errors.push(Problem::new(p.name.as_str(), "missing")),
            }
        }
        if errors.is_empty() {
            for r in self.relations.iter().filter(|r| r.violation(&out) > 0.0) {
                errors.push(Problem::new("(relations)", format!("breaks `{}`", r.text)));
            }
        }
        if errors.is_empty() { Ok(out) } else { Err(errors) }
    }
}

#[cfg(test)]
mod tests;
