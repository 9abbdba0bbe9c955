//! The `evaluator:` section of a spec ([`EvaluatorSpec`]): which evaluator,
//! its checks, its metrics, building it, and its serde form.
//!
//! The form is serde's internally tagged enum (`{type: pool, ...}`), but the
//! workload types come from [`workload::MODELS`] at run time, which a derive
//! cannot see: the fields are read whole (as serde's own buffer does), the
//! `type` picks the evaluator, and the fields are read again into its spec
//! with the input format's errors ([`Buffered`]). Serialization writes the
//! same calls the derive made.

use std::fmt;
use std::path::Path;
use std::sync::LazyLock;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Unexpected, Visitor};
#[cfg(feature = "forecast")]
use serde::ser::SerializeStruct;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_yaml::Value;

use super::buffer::Buffered;
#[cfg(feature = "forecast")]
use super::workload::{self, WorkloadModel, WorkloadSpec};
use super::{CommandEvaluator, CommandSpec, Evaluator, FunctionEvaluator, FunctionSpec, functions};
use crate::error::{Error, Problem, Result};
use crate::space::Space;

/// `{type: external}`: knobs does not evaluate the trials; the clients of
/// `knobs serve` do, and tell the results over HTTP. Studies created through
/// the API without an evaluator get this one.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExternalSpec {
    /// The metrics the clients report, if declared: the objectives and
    /// constraints are then checked against them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<Vec<String>>,
}

/// The `evaluator:` section of a spec, by its `type:`.
#[derive(Debug, Clone, PartialEq)]
pub enum EvaluatorSpec {
    /// `type: function`: a test function of [`functions`].
    Function(FunctionSpec),
    /// `type: command`: an external program run per trial.
    Command(CommandSpec),
    /// `type: pool`, `cache`, `gc`, `service`, …: a workload model of
    /// [`workload::MODELS`] over its spec (feature `forecast`).
    #[cfg(feature = "forecast")]
    Workload {
        /// The model the `type` names.
        model: &'static dyn WorkloadModel,
        /// The workload and the models' sections.
        spec: WorkloadSpec,
    },
    /// `type: external`: the API's clients evaluate.
    External(ExternalSpec),
}

impl EvaluatorSpec {
    /// Check the evaluator against the space; push every problem found
    /// (paths start with `evaluator`).
    pub fn check(&self, space: &Space, problems: &mut Vec<Problem>) {
        match self {
            EvaluatorSpec::Function(f) => f.check(space, problems),
            EvaluatorSpec::Command(c) => c.check(space, problems),
            #[cfg(feature = "forecast")]
            EvaluatorSpec::Workload { model, spec } => spec.check(*model, space, problems),
            EvaluatorSpec::External(e) => {
                if e.metrics.as_ref().is_some_and(|m| m.is_empty() || m.iter().any(String::is_empty)) {
                    problems.push(Problem::new(
                        "evaluator.metrics",
                        "name at least one metric, none empty, or leave it out",
                    ));
                }
            }
        }
    }

    /// The workload model this spec names, if it names one.
    #[cfg(feature = "forecast")]
    pub fn workload(&self) -> Option<(&'static dyn WorkloadModel, &WorkloadSpec)> {
        match self {
            #[cfg(feature = "forecast")]
            EvaluatorSpec::Workload { model, spec } => Some((*model, spec)),
            _ => None,
        }
    }

    /// Build the evaluator (after `check` found no problem); relative paths
    /// (telemetry, traces) are resolved against `base_dir`.
    pub fn build(&self, space: &Space, #[allow(unused_variables)] base_dir: &Path) -> Result<Box<dyn Evaluator>> {
        Ok(match self {
            EvaluatorSpec::Function(f) => Box::new(FunctionEvaluator::new(f, space)?),
            // Before any trial is stored, the program is checked too (a typo in its path must
            // not cost the study its baseline), reported with the section's other problems.
            EvaluatorSpec::Command(c) => match (CommandEvaluator::new(c, space), c.check_program(base_dir)) {
                (Ok(e), None) => Box::new(e),
                (Err(Error::Invalid(mut found)), Some(p)) => {
                    found.items.push(p);
                    return Err(Error::Invalid(found));
                }
                (Err(e), _) => return Err(e),
                (Ok(_), Some(p)) => {
                    return Err(Error::Invalid(crate::error::Problems { source: "spec".into(), items: vec![p] }));
                }
            },
            #[cfg(feature = "forecast")]
            EvaluatorSpec::Workload { model, spec } => Box::new(spec.build(*model, base_dir)?),
            EvaluatorSpec::External(_) => {
                return Err(crate::error::Error::Config(
                    "evaluator: an `external` study is evaluated by the clients of `knobs serve`, who ask for \
                     trials and tell results over HTTP; to evaluate here, give the spec a `function`, `command` \
                     or workload-model evaluator"
                        .into(),
                ));
            }
        })
    }

    /// What can be checked of the evaluator without building it and without running anything
    /// beyond what the spec checks: that a command's program exists and is executable.
    pub fn check_runnable(&self, base_dir: &Path) -> Option<Problem> {
        match self {
            EvaluatorSpec::Command(c) => c.check_program(base_dir),
            _ => None,
        }
    }

    /// Whether the evaluator this spec builds measures a configuration the same way every time
    /// (a test function, a workload model; see [`Evaluator::deterministic`]), known without
    /// building it.
    pub fn deterministic(&self) -> bool {
        !matches!(self, EvaluatorSpec::Command(_) | EvaluatorSpec::External(_))
    }

    /// Metrics this evaluator reports, when known before running.
    pub fn metrics(&self) -> Option<Vec<String>> {
        match self {
            EvaluatorSpec::Function(f) => Some(match functions::Function::from_name(&f.name) {
                Some(function) => function.metrics().iter().map(|m| m.to_string()).collect(),
                None => vec![functions::METRIC.to_string()],
            }),
            EvaluatorSpec::Command(_) => None,
            #[cfg(feature = "forecast")]
            EvaluatorSpec::Workload { model, spec } => Some(spec.metrics(*model)),
            EvaluatorSpec::External(e) => e.metrics.clone(),
        }
    }

    /// Every `type:` a spec may name: `function`, `command`, the workload
    /// models, `external`.
    pub fn types() -> &'static [&'static str] {
        TYPES.as_slice()
    }
}

static TYPES: LazyLock<Vec<&'static str>> = LazyLock::new(|| {
    #[cfg(feature = "forecast")]
    let models = workload::MODELS.iter().map(|m| m.name());
    #[cfg(not(feature = "forecast"))]
    let models = std::iter::empty();
    ["function", "command"].into_iter().chain(models).chain(["external"]).collect()
});

/// The evaluators serde's derive still writes.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case", rename = "EvaluatorSpec")]
enum Derived<'a> {
    Function(&'a FunctionSpec),
    Command(&'a CommandSpec),
    External(&'a ExternalSpec),
}

impl Serialize for EvaluatorSpec {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            EvaluatorSpec::Function(f) => Derived::Function(f).serialize(s),
            EvaluatorSpec::Command(c) => Derived::Command(c).serialize(s),
            EvaluatorSpec::External(e) => Derived::External(e).serialize(s),
            // The calls the derive made: a struct led by the tag.
            #[cfg(feature = "forecast")]
            EvaluatorSpec::Workload { model, spec } => {
                let mut state = s.serialize_struct("WorkloadSpec", spec.field_count() + 1)?;
                state.serialize_field("type", model.name())?;
                spec.serialize_fields(&mut state)?;
                state.end()
            }
        }
    }
}

/// What a `type:` names.
#[derive(Clone, Copy)]
enum Type {
    Function,
    Command,
    #[cfg(feature = "forecast")]
    Workload(&'static dyn WorkloadModel),
    External,
}

impl Type {
    fn named(name: &str) -> Option<Type> {
        match name {
            "function" => Some(Type::Function),
            "command" => Some(Type::Command),
            "external" => Some(Type::External),
            #[cfg(feature = "forecast")]
            other => workload::model(other).map(Type::Workload),
            #[cfg(not(feature = "forecast"))]
            _ => None,
        }
    }

    /// The evaluator of this type from its fields (the tag taken out).
    fn read<E: de::Error>(self, fields: Value) -> std::result::Result<EvaluatorSpec, E> {
        let d = Buffered::<E>::new(fields);
        Ok(match self {
            Type::Function => EvaluatorSpec::Function(FunctionSpec::deserialize(d)?),
            Type::Command => EvaluatorSpec::Command(CommandSpec::deserialize(d)?),
            #[cfg(feature = "forecast")]
            Type::Workload(model) => EvaluatorSpec::Workload { model, spec: WorkloadSpec::deserialize(d)? },
            Type::External => EvaluatorSpec::External(ExternalSpec::deserialize(d)?),
        })
    }
}

/// Reads the tag as serde's derive reads a variant name.
struct TypeVisitor;

impl Visitor<'_> for TypeVisitor {
    type Value = Type;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("variant identifier")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<Type, E> {
        Type::named(v).ok_or_else(|| E::unknown_variant(v, EvaluatorSpec::types()))
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> std::result::Result<Type, E> {
        self.visit_str(&String::from_utf8_lossy(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> std::result::Result<Type, E> {
        let types = EvaluatorSpec::types();
        match types.get(v as usize) {
            Some(name) => self.visit_str(name),
            None => {
                let expected = format!("variant index 0 <= i < {}", types.len());
                Err(E::invalid_value(Unexpected::Unsigned(v), &expected.as_str()))
            }
        }
    }
}

impl<'de> DeserializeSeed<'de> for TypeVisitor {
    type Value = Type;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<Type, D::Error> {
        d.deserialize_identifier(self)
    }
}

/// Reads an evaluator's tag and fields as serde's derive reads an
/// internally tagged enum.
struct SpecVisitor;

impl<'de> Visitor<'de> for SpecVisitor {
    type Value = (Type, Value);

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("internally tagged enum EvaluatorSpec")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<(Type, Value), A::Error> {
        let tag = Value::String("type".into());
        let (mut kind, mut fields) = (None, serde_yaml::Mapping::new());
        while let Some(key) = map.next_key::<Value>()? {
            if key == tag {
                if kind.is_some() {
                    return Err(de::Error::duplicate_field("type"));
                }
                kind = Some(map.next_value_seed(TypeVisitor)?);
            } else if fields.contains_key(&key) {
                let shown = key.as_str().map_or_else(|| format!("{key:?}"), str::to_string);
                return Err(de::Error::custom(format_args!("duplicate field `{shown}`")));
            } else {
                let value = map.next_value()?;
                fields.insert(key, value);
            }
        }
        Ok((kind.ok_or_else(|| de::Error::missing_field("type"))?, Value::Mapping(fields)))
    }

    /// `[type, field, field, ...]`, which the derive also reads.
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<(Type, Value), A::Error> {
        let kind = seq.next_element_seed(TypeVisitor)?.ok_or_else(|| de::Error::missing_field("type"))?;
        Ok((kind, Value::deserialize(de::value::SeqAccessDeserializer::new(seq))?))
    }
}

impl<'de> Deserialize<'de> for EvaluatorSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        // Read the fields into their type after the input is done with, as
        // the derive does: errors then carry no position in the input.
        let (kind, fields) = d.deserialize_any(SpecVisitor)?;
        kind.read(fields)
    }
}
