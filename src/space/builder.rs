//! Building a [`Space`] in code, with the same checks (and the same
//! messages, every problem at once) as the `space:` list of a spec file:
//! the builder writes that list and hands it to the one parser.
//!
//! ```
//! use knobs::space::Space;
//!
//! let space = Space::builder()
//!     .int("pool_size", 1, 256).default(64)
//!     .float("cache_ttl_s", 1.0, 86400.0).log().default(3600.0)
//!     .categorical("eviction", ["lru", "lfu"]).default("lru")
//!     .float("lfu_decay", 0.5, 0.99).default(0.9).when("eviction", ["lfu"])
//!     .build()
//!     .unwrap();
//! assert_eq!(space.dim(), 4);
//! assert_eq!(space.baseline().unwrap()["pool_size"], knobs::space::Value::Int(64));
//!
//! // Every problem at once, with its field path.
//! let err = Space::builder().float("x", 1.0, 0.0).int("x", 0, 3).build().unwrap_err();
//! assert!(err.to_string().contains("2 problems"), "{err}");
//! ```

use serde_yaml::{Mapping, Value as Yaml};

use super::{Domain, Param, Space, Value};
use crate::error::Result;

/// Parameters declared one after another; modifiers (`log`, `step`,
/// `default`, `when`) apply to the parameter declared last.
#[derive(Debug, Clone)]
pub struct SpaceBuilder {
    params: Vec<Mapping>,
    /// A modifier called before any parameter: reported by `build`.
    orphan: Option<&'static str>,
}

fn key(k: &str) -> Yaml {
    Yaml::String(k.to_string())
}

fn yaml_of(v: Value) -> Yaml {
    match v {
        Value::Bool(b) => Yaml::Bool(b),
        Value::Int(i) => Yaml::Number(i.into()),
        Value::Float(f) => Yaml::Number(f.into()),
        Value::Str(s) => Yaml::String(s),
    }
}

impl SpaceBuilder {
    /// No parameter yet. (No `Default`: `default` is the baseline modifier.)
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        SpaceBuilder { params: Vec::new(), orphan: None }
    }

    fn param(mut self, name: &str, ty: &str, extra: Vec<(&str, Yaml)>) -> Self {
        let mut m = Mapping::new();
        m.insert(key("name"), Yaml::String(name.to_string()));
        m.insert(key("type"), Yaml::String(ty.to_string()));
        for (k, v) in extra {
            m.insert(key(k), v);
        }
        self.params.push(m);
        self
    }

    fn modify(mut self, what: &'static str, k: &str, v: Yaml) -> Self {
        match self.params.last_mut() {
            Some(m) => {
                m.insert(key(k), v);
            }
            None => self.orphan = self.orphan.or(Some(what)),
        }
        self
    }

    /// A float parameter in `[low, high]`.
    pub fn float(self, name: &str, low: f64, high: f64) -> Self {
        self.param(name, "float", vec![("low", Yaml::Number(low.into())), ("high", Yaml::Number(high.into()))])
    }

    /// An integer parameter in `[low, high]`.
    pub fn int(self, name: &str, low: i64, high: i64) -> Self {
        self.param(name, "int", vec![("low", Yaml::Number(low.into())), ("high", Yaml::Number(high.into()))])
    }

    /// A categorical parameter with these choices (strings, numbers or bools).
    pub fn categorical<V: Into<Value>>(self, name: &str, choices: impl IntoIterator<Item = V>) -> Self {
        let list = choices.into_iter().map(|c| yaml_of(c.into())).collect();
        self.param(name, "categorical", vec![("choices", Yaml::Sequence(list))])
    }

    /// A bool parameter.
    pub fn bool(self, name: &str) -> Self {
        self.param(name, "bool", Vec::new())
    }

    /// Search the last parameter on a log scale (its low must be > 0).
    pub fn log(self) -> Self {
        self.modify("log", "log", Yaml::Bool(true))
    }

    /// Only values `low + k·step` for the last parameter.
    pub fn step(self, step: impl Into<Value>) -> Self {
        self.modify("step", "step", yaml_of(step.into()))
    }

    /// Today's value of the last parameter: the baseline. Give every
    /// parameter one, or none.
    pub fn default(self, value: impl Into<Value>) -> Self {
        self.modify("default", "default", yaml_of(value.into()))
    }

    /// The last parameter is active only when `param` (declared earlier)
    /// has one of `values`.
    pub fn when<V: Into<Value>>(self, param: &str, values: impl IntoIterator<Item = V>) -> Self {
        let list = values.into_iter().map(|v| yaml_of(v.into())).collect();
        let mut m = Mapping::new();
        m.insert(key(param), Yaml::Sequence(list));
        self.modify("when", "when", Yaml::Mapping(m))
    }

    /// The checked space, or every problem found, with field paths like
    /// `space.x.low`.
    pub fn build(self) -> Result<Space> {
        if let Some(what) = self.orphan {
            return Err(crate::error::Error::invalid(
                "space builder",
                "space",
                format!("`{what}` was called before any parameter was declared"),
            ));
        }
        let list = Yaml::Sequence(self.params.into_iter().map(Yaml::Mapping).collect());
        Space::from_yaml(&list, "space", "space builder")
    }
}

/// A parameter as the `space:` list of a spec file writes it.
fn param_yaml(p: &Param) -> Mapping {
    let mut m = Mapping::new();
    m.insert(key("name"), Yaml::String(p.name.clone()));
    let num = |v: f64| Yaml::Number(v.into());
    match &p.domain {
        Domain::Float { low, high, log, step } => {
            m.insert(key("type"), Yaml::String("float".into()));
            m.insert(key("low"), num(*low));
            m.insert(key("high"), num(*high));
            m.insert(key("log"), Yaml::Bool(*log));
            if let Some(step) = step {
                m.insert(key("step"), num(*step));
            }
        }
        Domain::Int { low, high, log, step } => {
            m.insert(key("type"), Yaml::String("int".into()));
            m.insert(key("low"), Yaml::Number((*low).into()));
            m.insert(key("high"), Yaml::Number((*high).into()));
            m.insert(key("log"), Yaml::Bool(*log));
            if *step != 1 {
                m.insert(key("step"), Yaml::Number((*step).into()));
            }
        }
        Domain::Categorical { choices } => {
            m.insert(key("type"), Yaml::String("categorical".into()));
            m.insert(key("choices"), Yaml::Sequence(choices.iter().cloned().map(yaml_of).collect()));
        }
        Domain::Bool => {
            m.insert(key("type"), Yaml::String("bool".into()));
        }
    }
    if let Some(d) = &p.default {
        m.insert(key("default"), yaml_of(d.clone()));
    }
    if !p.when.is_empty() {
        let mut w = Mapping::new();
        for c in &p.when {
            w.insert(key(&c.param), Yaml::Sequence(c.any_of.iter().cloned().map(yaml_of).collect()));
        }
        m.insert(key("when"), Yaml::Mapping(w));
    }
    m
}

impl Space {
    /// Check a space that did not come through the parser (e.g. read back
    /// from storage) with the parser's own rules; `source` names it.
    pub(crate) fn recheck(&self, source: &str) -> Result<()> {
        let list = Yaml::Sequence(self.params.iter().map(|p| Yaml::Mapping(param_yaml(p))).collect());
        Space::from_yaml(&list, "space", source).map(|_| ())
    }
}

impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}

impl From<i32> for Value {
    fn from(v: i32) -> Self {
        Value::Int(v.into())
    }
}

impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Float(v)
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Str(v.to_string())
    }
}

impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Str(v)
    }
}
