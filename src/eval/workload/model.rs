//! What a workload model is to knobs: a [`WorkloadModel`] (its name, the
//! sections of the spec it reads, its metrics, how it is built), the
//! [`Section`] of the spec it owns, and the [`BuiltModel`] that scores
//! configurations. The table of models is [`super::MODELS`].

use std::any::Any;
use std::fmt;
use std::path::Path;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Metrics, Scenario, WorkloadSpec};
use crate::error::{Problem, Result};
use crate::eval::EvalError;
use crate::eval::buffer::{Buffered, Captured};
use crate::space::{Config, Space};

/// A model's section of a workload spec (`pool:` for the pool model): its
/// fields, read with serde, and its checks against the space.
pub trait Section: Serialize + DeserializeOwned + Clone + PartialEq + fmt::Debug + Send + Sync + 'static {
    /// Check the section; push every problem found at its field's path
    /// under `path` (e.g. `evaluator.pool.size`).
    fn check(&self, path: &str, space: &Space, problems: &mut Vec<Problem>);
}

/// A workload model: what `type: NAME` evaluates. Implementations are unit
/// structs listed once in [`super::MODELS`].
pub trait WorkloadModel: Send + Sync {
    /// Its `type:` in a spec, which is also the name of its own section.
    fn name(&self) -> &'static str;

    /// Read its own section: `raw.parse::<MySpec>()`.
    fn parse_section(&self, raw: RawSection) -> std::result::Result<SectionBox, SectionError>;

    /// The sections a spec of this type must have: its own.
    fn required(&self) -> Vec<&'static str> {
        vec![self.name()]
    }

    /// Further sections it reads when they are given (none).
    fn optional(&self) -> Vec<&'static str> {
        Vec::new()
    }

    /// Does a spec of this type read `section`?
    fn reads(&self, section: &str) -> bool {
        self.required().contains(&section) || self.optional().contains(&section)
    }

    /// The metrics it reports under `spec`.
    fn metrics(&self, spec: &WorkloadSpec) -> Vec<String>;

    /// The model over `scenario` (after [`WorkloadSpec::check`] found no
    /// problem); relative paths are resolved against `base_dir`.
    fn build(&self, spec: &WorkloadSpec, scenario: &Scenario, base_dir: &Path) -> Result<Box<dyn BuiltModel>>;
}

impl fmt::Debug for dyn WorkloadModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl PartialEq for dyn WorkloadModel {
    fn eq(&self, other: &Self) -> bool {
        self.name() == other.name()
    }
}

/// `evaluator.SECTION: missing`: building a model whose section the spec
/// lacks (which [`WorkloadSpec::check`] reports first).
pub(crate) fn missing(section: &str) -> crate::Error {
    crate::Error::Config(format!("evaluator.{section}: missing"))
}

/// A list of metric names, owned.
pub(crate) fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// A model built over its scenario, ready to score configurations.
pub trait BuiltModel: Send + Sync {
    /// The model's metrics for one configuration under `scenario`.
    fn score(&self, config: &Config, scenario: &Scenario) -> std::result::Result<Metrics, EvalError>;
}

/// A section as read from a spec, before its model parses it.
pub struct RawSection(pub(crate) serde_yaml::Value);

/// Why a section did not parse; raised again in the spec format's own error
/// type, so that the message reads as serde's for any other field.
#[derive(Debug)]
pub struct SectionError(pub(crate) Captured);

impl RawSection {
    /// Parse the section as a `T`.
    pub fn parse<T: Section>(self) -> std::result::Result<SectionBox, SectionError> {
        T::deserialize(Buffered::<Captured>::new(self.0)).map(SectionBox::new).map_err(SectionError)
    }
}

/// A parsed section of any model.
pub struct SectionBox(Box<dyn AnySection>);

/// What [`WorkloadSpec`] needs of a section whose type only its model knows.
trait AnySection: Send + Sync {
    fn as_any(&self) -> &dyn Any;
    fn clone_box(&self) -> Box<dyn AnySection>;
    fn eq_dyn(&self, other: &dyn AnySection) -> bool;
    fn debug(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result;
    fn to_value(&self) -> std::result::Result<serde_yaml::Value, serde_yaml::Error>;
    fn check(&self, path: &str, space: &Space, problems: &mut Vec<Problem>);
}

impl<T: Section> AnySection for T {
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn clone_box(&self) -> Box<dyn AnySection> {
        Box::new(self.clone())
    }
    fn eq_dyn(&self, other: &dyn AnySection) -> bool {
        other.as_any().downcast_ref::<T>().is_some_and(|o| self == o)
    }
    fn debug(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
    fn to_value(&self) -> std::result::Result<serde_yaml::Value, serde_yaml::Error> {
        serde_yaml::to_value(self)
    }
    fn check(&self, path: &str, space: &Space, problems: &mut Vec<Problem>) {
        Section::check(self, path, space, problems)
    }
}

impl SectionBox {
    /// Box a section.
    pub fn new<T: Section>(section: T) -> SectionBox {
        SectionBox(Box::new(section))
    }

    /// The section, if it is a `T`.
    pub fn get<T: Section>(&self) -> Option<&T> {
        self.0.as_any().downcast_ref()
    }

    /// Check the section (see [`Section::check`]).
    pub fn check(&self, path: &str, space: &Space, problems: &mut Vec<Problem>) {
        self.0.check(path, space, problems)
    }
}

impl Clone for SectionBox {
    fn clone(&self) -> Self {
        SectionBox(self.0.clone_box())
    }
}

impl fmt::Debug for SectionBox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.debug(f)
    }
}

impl PartialEq for SectionBox {
    fn eq(&self, other: &Self) -> bool {
        self.0.eq_dyn(&*other.0)
    }
}

/// Serialized through a YAML value: the section's type is known only to its
/// model, and a value writes the same JSON and YAML as the type itself
/// (fields in order, numbers as they were).
impl Serialize for SectionBox {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.0.to_value().map_err(serde::ser::Error::custom)?.serialize(s)
    }
}
