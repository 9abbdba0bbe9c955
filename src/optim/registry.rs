//! The registry: the name used in a spec → an optimizer constructor.
//!
//! Adding an optimizer `foo` takes exactly this:
//!
//! 1. `src/optim/foo.rs` (a `foo/` folder once it outgrows one file), with a
//!    `pub mod foo;` in `src/optim/mod.rs`. It holds the options struct
//!    (serde, `deny_unknown_fields`, every option defaulted, checked with
//!    `OptionCheck` so that all bad options are reported at once),
//!    `pub(crate) const CODEC: StateCodec = StateCodec::new("foo", 1)`, and
//!    the optimizer implementing [`Optimizer`]: `name()` is `CODEC.name`,
//!    `snapshot`/`restore` go through `CODEC` with the problem's dimension,
//!    tickets come from a `Tickets` counter and pending candidates live in a
//!    `Pending` book whose `settle` sorts told results into own and foreign.
//! 2. One entry in `ENTRIES` below: `CODEC.name`, a one-line summary (the
//!    `knobs optimizers` listing) and the constructor.
//! 3. One example spec, `configs/examples/foo.yaml`.
//! 4. `foo` in the `suite!` list at the top of `tests/suite/optimizers.rs`:
//!    the shared suite then runs every property on it as
//!    `optimizers::foo::<property>`; `every_registered_optimizer_is_in_the_suite`
//!    fails until the name is there.
//!
//! The recorded trajectories (`tests/suite/trajectories.rs`) cover the
//! optimizers listed there; a new one joins them when they are recorded
//! again.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::{Optimizer, Problem};
use crate::error::{Error, Problem as SpecProblem, Problems, Result};

/// The optimizer section of a spec: a name plus that optimizer's options.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OptimizerSpec {
    /// A registered optimizer name ([`names`]).
    pub name: String,
    #[serde(default)]
    /// That optimizer's options; empty for the defaults.
    pub options: OptimizerOptions,
}

impl OptimizerSpec {
    /// The optimizer `name` with its default options.
    pub fn named(name: &str) -> Self {
        OptimizerSpec { name: name.to_string(), options: OptimizerOptions::default() }
    }
}

/// An optimizer's options by name, as a spec's optimizer section gives them
/// (`sigma0: 0.3`). They are read into the optimizer's config struct when it
/// is built, so an unknown or ill-typed option is reported then, with every
/// other problem of the spec.
///
/// ```
/// use knobs::optim::{OptimizerOptions, OptimizerSpec};
///
/// let options = OptimizerOptions::new().with("population", 24)?.with("sigma0", 0.2)?;
/// let spec = OptimizerSpec { name: "cmaes".into(), options };
/// # Ok::<(), knobs::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct OptimizerOptions(serde_json::Map<String, serde_json::Value>);

impl OptimizerOptions {
    /// No options: the optimizer's defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// These options with `key` set to `value` (a number, string, bool or
    /// anything serializable).
    pub fn with(mut self, key: &str, value: impl Serialize) -> Result<Self> {
        self.0.insert(key.to_string(), serde_json::to_value(value).map_err(Error::json)?);
        Ok(self)
    }

    /// Every field of a typed config (e.g. [`super::cmaes::CmaEsConfig`]).
    pub fn from_config(config: &impl Serialize) -> Result<Self> {
        match serde_json::to_value(config).map_err(Error::json)? {
            serde_json::Value::Object(map) => Ok(OptimizerOptions(map)),
            other => Err(Error::Config(format!("optimizer options must be a struct of named fields, got `{other}`"))),
        }
    }

    /// Options from `KEY=VALUE` words (as `knobs stdio --option` takes
    /// them): a value that reads as JSON (`0.3`, `true`, `[1,2]`) is taken
    /// as such, anything else as a string.
    pub fn parse_pairs<S: AsRef<str>>(pairs: &[S]) -> Result<Self> {
        let mut options = OptimizerOptions::new();
        for pair in pairs {
            let pair = pair.as_ref();
            let Some((key, value)) = pair.split_once('=') else {
                return Err(Error::Config(format!("option `{pair}` must be KEY=VALUE")));
            };
            let value = serde_json::from_str(value).unwrap_or_else(|_| serde_json::Value::String(value.to_string()));
            options.0.insert(key.trim().to_string(), value);
        }
        Ok(options)
    }

    pub(crate) fn from_map(map: serde_json::Map<String, serde_json::Value>) -> Self {
        OptimizerOptions(map)
    }
}

/// Builds an optimizer (given its registry name, for the errors) from the
/// problem and its options.
type Ctor = fn(&'static str, &Problem, &OptimizerOptions) -> Result<Box<dyn Optimizer>>;

struct Entry {
    name: &'static str,
    summary: &'static str,
    /// Whether it searches several objectives at once (a Pareto study); the others are
    /// refused there.
    pareto: bool,
    ctor: Ctor,
}

/// Read the options into the optimizer's config. When that fails, each option is read on its
/// own (every option has a default), so that every bad one is reported at its path at once.
fn options<C: DeserializeOwned>(name: &str, opts: &OptimizerOptions) -> Result<C> {
    let whole = match serde_json::from_value(serde_json::Value::Object(opts.0.clone())) {
        Ok(config) => return Ok(config),
        Err(e) => e,
    };
    let mut items = Vec::new();
    for (key, value) in &opts.0 {
        let one = serde_json::Map::from_iter([(key.clone(), value.clone())]);
        if let Err(e) = serde_json::from_value::<C>(serde_json::Value::Object(one)) {
            items.push(SpecProblem::new(format!("optimizer.{key}"), plain_words(&e.to_string())));
        }
    }
    if items.is_empty() {
        items.push(SpecProblem::new(format!("optimizer ({name})"), plain_words(&whole.to_string())));
    }
    Err(Error::Invalid(Problems { source: "spec".into(), items }))
}

/// A deserializer's message in a user's words: `expected usize` → `expected a whole number >= 0`.
fn plain_words(message: &str) -> String {
    let mut m = message.to_string();
    for (rust, words) in [
        ("expected usize", "expected a whole number >= 0"),
        ("expected u64", "expected a whole number >= 0"),
        ("expected u32", "expected a whole number >= 0"),
        ("expected u16", "expected a whole number >= 0"),
        ("expected u8", "expected a whole number >= 0"),
        ("expected i64", "expected a whole number"),
        ("expected i32", "expected a whole number"),
        ("expected f64", "expected a number"),
        ("expected f32", "expected a number"),
        ("expected a boolean", "expected true or false"),
        ("unknown field", "unknown option"),
    ] {
        m = m.replace(rust, words);
    }
    m
}

const ENTRIES: &[Entry] = &[
    Entry {
        name: super::random::CODEC.name,
        summary: "uniform random sampling (the baseline to beat)",
        pareto: true,
        ctor: |n, p, o| Ok(Box::new(super::random::RandomSearch::new(p, options(n, o)?))),
    },
    Entry {
        name: super::sobol::CODEC.name,
        summary: "scrambled Sobol quasi-random points (even coverage)",
        pareto: true,
        ctor: |n, p, o| Ok(Box::new(super::sobol::Sobol::new(p, options(n, o)?))),
    },
    Entry {
        name: super::genetic::CODEC.name,
        summary: "genetic algorithm: tournament selection, SBX/uniform crossover, polynomial mutation, elitism",
        pareto: false,
        ctor: |n, p, o| Ok(Box::new(super::genetic::Genetic::new(p, options(n, o)?)?)),
    },
    Entry {
        name: super::cmaes::CODEC.name,
        summary: "CMA-ES with IPOP/BIPOP restarts (strong general-purpose evolution strategy)",
        pareto: false,
        ctor: |n, p, o| Ok(Box::new(super::cmaes::CmaEs::new(p, options(n, o)?)?)),
    },
    Entry {
        name: super::swarm::CODEC.name,
        summary: "particle swarm with constriction and a ring neighbourhood",
        pareto: false,
        ctor: |n, p, o| Ok(Box::new(super::swarm::ParticleSwarm::new(p, options(n, o)?)?)),
    },
    Entry {
        name: super::annealing::CODEC.name,
        summary: "simulated annealing, adaptive steps, parallel chains",
        pareto: false,
        ctor: |n, p, o| Ok(Box::new(super::annealing::Annealing::new(p, options(n, o)?)?)),
    },
    Entry {
        name: super::bayes::CODEC.name,
        summary: "Bayesian optimization: Gaussian process (Matern-5/2, ARD) + log expected improvement",
        pareto: false,
        ctor: |n, p, o| Ok(Box::new(super::bayes::Bayes::new(p, options(n, o)?)?)),
    },
    Entry {
        name: super::gradient::CODEC.name,
        summary: "multi-start L-BFGS with finite-difference gradients (SPSA when noisy), for smooth objectives",
        pareto: false,
        ctor: |n, p, o| Ok(Box::new(super::gradient::Gradient::new(p, options(n, o)?)?)),
    },
    Entry {
        name: super::nsga::NSGA2.name,
        summary: "NSGA-II: Pareto search by non-dominated sorting and crowding distance (two objectives)",
        pareto: true,
        ctor: |n, p, o| Ok(Box::new(super::nsga::Nsga::nsga2(p, options(n, o)?)?)),
    },
    Entry {
        name: super::nsga::NSGA3.name,
        summary: "NSGA-III: Pareto search with reference directions (three or more objectives)",
        pareto: true,
        ctor: |n, p, o| Ok(Box::new(super::nsga::Nsga::nsga3(p, options(n, o)?)?)),
    },
    Entry {
        name: super::parego::CODEC.name,
        summary: "ParEGO: Pareto search for expensive evaluations, a GP on a random scalarization per ask",
        pareto: true,
        ctor: |n, p, o| Ok(Box::new(super::parego::ParEgo::new(p, options(n, o)?)?)),
    },
    Entry {
        name: super::auto::CODEC.name,
        summary: "picks and switches among the others from budget, dimension, parameter types (the default)",
        pareto: true,
        ctor: |n, p, o| match p.objectives {
            1 => Ok(Box::new(super::auto::Auto::new(p, options(n, o)?)?)),
            _ => super::auto::pareto(p, options(n, o)?),
        },
    },
];

/// Every registered optimizer name, in registry order.
pub fn names() -> Vec<&'static str> {
    ENTRIES.iter().map(|e| e.name).collect()
}

/// `(name, one-line summary)` for help texts.
pub fn summaries() -> Vec<(&'static str, &'static str)> {
    ENTRIES.iter().map(|e| (e.name, e.summary)).collect()
}

/// `Ok` for a registered name, else what would be valid.
pub fn check_name(name: &str) -> std::result::Result<(), String> {
    if ENTRIES.iter().any(|e| e.name == name) {
        Ok(())
    } else {
        Err(format!("unknown optimizer `{name}`; valid: {}", names().join(", ")))
    }
}

/// Check a spec's optimizer options without its space, so that their problems are reported
/// with the spec's others: every option is one the optimizer has, of the right type, with a
/// value its own checks accept (none of them depends on the space; the spec is built against
/// the real space afterwards all the same).
pub fn check_options(spec: &OptimizerSpec) -> Vec<SpecProblem> {
    let stand_in = Problem::new(vec![super::Dim::Continuous; 2], 0);
    match build(spec, &stand_in) {
        Err(Error::Invalid(ps)) => ps.items.into_iter().filter(|p| p.path.starts_with("optimizer")).collect(),
        _ => Vec::new(),
    }
}

/// The optimizers that search several objectives at once, for a Pareto study.
pub fn pareto_names() -> Vec<&'static str> {
    ENTRIES.iter().filter(|e| e.pareto).map(|e| e.name).collect()
}

/// `Ok` when the optimizer `name` can search `objectives` objectives at once, else why not and
/// which can (one objective: every optimizer can).
pub fn check_objectives(name: &str, objectives: usize) -> std::result::Result<(), String> {
    match ENTRIES.iter().find(|e| e.name == name) {
        Some(e) if objectives > 1 && !e.pareto => Err(format!(
            "`{name}` searches one objective; a Pareto study (`pareto: true`) needs one of: {}",
            pareto_names().join(", ")
        )),
        _ => Ok(()),
    }
}

/// Build the optimizer a spec names.
pub fn build(spec: &OptimizerSpec, problem: &Problem) -> Result<Box<dyn Optimizer>> {
    match ENTRIES.iter().find(|e| e.name == spec.name) {
        Some(e) => match check_objectives(e.name, problem.objectives) {
            Ok(()) => (e.ctor)(e.name, problem, &spec.options),
            Err(message) => Err(Error::Invalid(Problems {
                source: "spec".into(),
                items: vec![SpecProblem::new("optimizer.name", message)],
            })),
        },
        None => Err(Error::Invalid(Problems {
            source: "spec".into(),
            items: vec![SpecProblem::new("optimizer.name", check_name(&spec.name).unwrap_err())],
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::optim::cmaes::CmaEsConfig;

    #[test]
    fn every_ill_typed_option_is_reported_in_plain_words() {
        let spec = OptimizerSpec {
            name: "cmaes".into(),
            options: OptimizerOptions::new().with("population", -3).unwrap().with("sigma0", "big").unwrap(),
        };
        let problems = check_options(&spec);
        let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(paths, ["optimizer.population", "optimizer.sigma0"], "{problems:?}");
        assert!(problems.iter().all(|p| !p.message.contains("usize") && !p.message.contains("f64")), "{problems:?}");
        assert!(problems[0].message.contains("a whole number >= 0"), "{problems:?}");
    }

    #[test]
    fn options_from_a_config_from_pairs_and_by_key_build_the_same_optimizer_options() {
        let config = CmaEsConfig { population: Some(24), ..CmaEsConfig::default() };
        let typed = OptimizerOptions::from_config(&config).unwrap();
        let back: CmaEsConfig = options("cmaes", &typed).unwrap();
        assert_eq!(back, config);
        let pairs = OptimizerOptions::parse_pairs(&["population=24", "restarts=none"]).unwrap();
        let keyed = OptimizerOptions::new().with("population", 24).unwrap().with("restarts", "none").unwrap();
        assert_eq!(pairs, keyed);
        let err = OptimizerOptions::parse_pairs(&["population"]).unwrap_err().to_string();
        assert!(err.contains("KEY=VALUE"), "{err}");
        // An unknown option is refused when the optimizer is built, naming it.
        let bad = OptimizerOptions::new().with("sigma", 0.3).unwrap();
        assert!(options::<CmaEsConfig>("cmaes", &bad).unwrap_err().to_string().contains("sigma"));
    }
}
