//! The `evaluator:` section of a workload evaluator ([`WorkloadSpec`]): the
//! workload, the models' sections and the trace seed; its checks against
//! the model the `type:` names; and the evaluator built from it.
//!
//! The sections are whatever [`MODELS`] lists, so serde's derive cannot see
//! their fields: (de)serialization is written here, in the shape the derive
//! gave (`workload`, the sections in table order, `seed`) and with its
//! messages (`unknown field`, `missing field`, `duplicate field`).

use std::fmt;
use std::path::Path;
use std::sync::LazyLock;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Unexpected, Visitor};
use serde::ser::SerializeStruct;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::model::{RawSection, Section, SectionBox, WorkloadModel};
use super::{MODELS, Metrics, Scenario, ScenarioSpec, finite, model};
use crate::error::Problem;
use crate::eval::{EvalContext, EvalError, Evaluator, Measurement};
use crate::space::{Config, Space};

/// The `evaluator:` section of a workload evaluator: the workload, and the
/// sections of the model(s) the `type` names.
///
/// ```yaml
/// evaluator:
///   type: pool                 # pool | cache | gc | service
///   workload: {series: data/elb_request_count_8c0756.csv, scenario: peak, horizon: 7d}
///   pool: {size: pool_size, service_time_ms: 12, cost_per_connection: 1}
/// ```
///
/// `service` takes `pool` and `cache` (and `gc` when the runtime collects
/// garbage) plus an optional `service` section (see
/// [`super::service::ServiceSpec`]).
#[derive(Debug, Clone, PartialEq)]
pub struct WorkloadSpec {
    /// The load the configurations must serve.
    pub workload: ScenarioSpec,
    /// The sections given, by model name, in the order of [`MODELS`].
    sections: Vec<(&'static str, SectionBox)>,
    /// Seed of generated request traces (the same trace for every trial, so
    /// that configurations are compared on the same requests).
    pub seed: u64,
}

/// The fields of a workload spec: `workload`, one per model, `seed`.
static FIELDS: LazyLock<Vec<&'static str>> = LazyLock::new(|| {
    std::iter::once("workload").chain(MODELS.iter().map(|m| m.name())).chain(std::iter::once("seed")).collect()
});

impl WorkloadSpec {
    /// The section of type `T`, if the spec gives it.
    pub fn section<T: Section>(&self) -> Option<&T> {
        self.sections.iter().find_map(|(_, s)| s.get())
    }

    /// Does the spec give the section of model `name`?
    pub fn has_section(&self, name: &str) -> bool {
        self.sections.iter().any(|(n, _)| *n == name)
    }

    /// Take out the section of model `name`.
    pub fn remove_section(&mut self, name: &str) -> Option<SectionBox> {
        let i = self.sections.iter().position(|(n, _)| *n == name)?;
        Some(self.sections.remove(i).1)
    }

    /// Check the workload, that the sections `model` needs are given and no
    /// other, and every section given.
    pub fn check(&self, model: &dyn WorkloadModel, space: &Space, problems: &mut Vec<Problem>) {
        self.workload.check("evaluator.workload", problems);
        let required = model.required();
        for section in MODELS.iter().map(|m| m.name()) {
            let given = self.has_section(section);
            if given && !model.reads(section) {
                problems.push(Problem::new(
                    format!("evaluator.{section}"),
                    format!("is not used by a `{}` evaluator; {}", model.name(), alternatives(model, section)),
                ));
            }
            if !given && required.contains(&section) {
                problems.push(Problem::new(
                    format!("evaluator.{section}"),
                    format!("missing; a `{}` evaluator needs its `{section}:` section", model.name()),
                ));
            }
        }
        for (name, section) in &self.sections {
            section.check(&format!("evaluator.{name}"), space, problems);
        }
    }

    /// Metrics `model` reports under this spec.
    pub fn metrics(&self, model: &dyn WorkloadModel) -> Vec<String> {
        model.metrics(self)
    }

    /// Build the scenario (reading and forecasting the telemetry) and the model.
    pub fn build(&self, model: &dyn WorkloadModel, base_dir: &Path) -> crate::Result<WorkloadEvaluator> {
        let scenario = self.workload.build(base_dir)?;
        tracing::info!("workload: {}", scenario.label);
        let built = model.build(self, &scenario, base_dir)?;
        Ok(WorkloadEvaluator { metrics: model.metrics(self), scenario, model: built })
    }

    /// Fields written: `workload`, the sections given, `seed`.
    pub(crate) fn field_count(&self) -> usize {
        2 + self.sections.len()
    }

    /// Write the fields into a struct being serialized (the evaluator spec
    /// puts its `type` first).
    pub(crate) fn serialize_fields<S: SerializeStruct>(&self, state: &mut S) -> Result<(), S::Error> {
        state.serialize_field("workload", &self.workload)?;
        for name in MODELS.iter().map(|m| m.name()) {
            match self.sections.iter().find(|(n, _)| *n == name) {
                Some((_, section)) => state.serialize_field(name, section)?,
                None => state.skip_field(name)?,
            }
        }
        state.serialize_field("seed", &self.seed)
    }
}

/// What to say besides "remove it" of a section `model` does not read: the
/// models that read it and every section `model` needs.
fn alternatives(model: &dyn WorkloadModel, section: &str) -> String {
    let needs = model.required();
    let fits: Vec<String> = MODELS
        .iter()
        .filter(|m| m.name() != model.name() && m.reads(section) && needs.iter().all(|s| m.reads(s)))
        .map(|m| format!("`type: {}`", m.name()))
        .collect();
    if fits.is_empty() { "remove it".to_string() } else { format!("remove it or use {}", fits.join(" or ")) }
}

impl Serialize for WorkloadSpec {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut state = s.serialize_struct("WorkloadSpec", self.field_count())?;
        self.serialize_fields(&mut state)?;
        state.end()
    }
}

impl<'de> Deserialize<'de> for WorkloadSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_struct("WorkloadSpec", FIELDS.as_slice(), SpecVisitor)
    }
}

/// A key of a workload spec.
enum Field {
    Workload,
    Section(&'static dyn WorkloadModel),
    Seed,
}

impl<'de> Deserialize<'de> for Field {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_identifier(FieldVisitor)
    }
}

struct FieldVisitor;

impl Visitor<'_> for FieldVisitor {
    type Value = Field;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("field identifier")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Field, E> {
        match v {
            "workload" => Ok(Field::Workload),
            "seed" => Ok(Field::Seed),
            name => model(name).map(Field::Section).ok_or_else(|| E::unknown_field(name, FIELDS.as_slice())),
        }
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Field, E> {
        self.visit_str(&String::from_utf8_lossy(v))
    }

    /// Fields by index, as serde's derive reads them from formats that
    /// number them.
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Field, E> {
        let expected = format!("field index 0 <= i < {}", FIELDS.len());
        match FIELDS.get(v as usize) {
            Some(name) => self.visit_str(name),
            None => Err(E::invalid_value(Unexpected::Unsigned(v), &expected.as_str())),
        }
    }
}

struct SpecVisitor;

/// A section's value, parsed by its model (`~` is no section).
struct SectionSeed(&'static dyn WorkloadModel);

impl<'de> DeserializeSeed<'de> for SectionSeed {
    type Value = Option<(&'static str, SectionBox)>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        let Some(value) = Option::<serde_yaml::Value>::deserialize(d)? else { return Ok(None) };
        let section = self.0.parse_section(RawSection(value)).map_err(|e| e.0.raise::<D::Error>())?;
        Ok(Some((self.0.name(), section)))
    }
}

/// The spec, its sections in the order of [`MODELS`].
fn assemble(workload: ScenarioSpec, mut sections: Vec<(&'static str, SectionBox)>, seed: u64) -> WorkloadSpec {
    sections.sort_by_key(|(name, _)| MODELS.iter().position(|m| m.name() == *name));
    WorkloadSpec { workload, sections, seed }
}

impl<'de> Visitor<'de> for SpecVisitor {
    type Value = WorkloadSpec;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("struct WorkloadSpec")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<WorkloadSpec, A::Error> {
        let (mut workload, mut seed) = (None, None);
        let (mut seen, mut sections) = (Vec::new(), Vec::new());
        while let Some(field) = map.next_key::<Field>()? {
            match field {
                Field::Workload if workload.is_some() => return Err(de::Error::duplicate_field("workload")),
                Field::Workload => workload = Some(map.next_value()?),
                Field::Seed if seed.is_some() => return Err(de::Error::duplicate_field("seed")),
                Field::Seed => seed = Some(map.next_value()?),
                Field::Section(m) if seen.contains(&m.name()) => return Err(de::Error::duplicate_field(m.name())),
                Field::Section(m) => {
                    seen.push(m.name());
                    sections.extend(map.next_value_seed(SectionSeed(m))?);
                }
            }
        }
        let workload = workload.ok_or_else(|| de::Error::missing_field("workload"))?;
        Ok(assemble(workload, sections, seed.unwrap_or_default()))
    }

    /// In field order, as serde's derive reads structs from sequences.
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<WorkloadSpec, A::Error> {
        let expected = format!("struct WorkloadSpec with {} elements", FIELDS.len());
        let workload = seq.next_element()?.ok_or_else(|| de::Error::invalid_length(0, &expected.as_str()))?;
        let mut sections = Vec::new();
        for &m in MODELS {
            sections.extend(seq.next_element_seed(SectionSeed(m))?.flatten());
        }
        Ok(assemble(workload, sections, seq.next_element()?.unwrap_or_default()))
    }
}

/// A workload model over its scenario, as an [`Evaluator`].
pub struct WorkloadEvaluator {
    /// What the model reports (known from the spec).
    metrics: Vec<String>,
    scenario: Scenario,
    model: Box<dyn super::BuiltModel>,
}

impl WorkloadEvaluator {
    /// The load the configurations are scored against.
    pub fn scenario(&self) -> &Scenario {
        &self.scenario
    }

    /// The model's metrics for one configuration.
    pub fn score(&self, config: &Config) -> Result<Metrics, EvalError> {
        finite(self.model.score(config, &self.scenario)?)
    }
}

impl Evaluator for WorkloadEvaluator {
    fn evaluate(&self, config: &Config, _ctx: &EvalContext) -> Result<Measurement, EvalError> {
        let start = std::time::Instant::now();
        let metrics = self.score(config)?;
        Ok(Measurement::new(metrics, start.elapsed()))
    }

    fn metrics(&self) -> Vec<String> {
        self.metrics.clone()
    }

    fn deterministic(&self) -> bool {
        true
    }
}
