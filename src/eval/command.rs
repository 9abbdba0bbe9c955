//! Command evaluator (being written).
use serde::{Deserialize, Serialize};
use super::{EvalContext, EvalError, Evaluator, Measurement};
use crate::error::{Problem, Result};
use crate::space::{Config, Space};


#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandSpec { pub command: Vec<String> }
impl CommandSpec { pub fn check(&self, _space: &Space, _problems: &mut Vec<Problem>) {} }
pub struct CommandEvaluator;
impl CommandEvaluator { pub fn new(_s: &CommandSpec, _space: &Space) -> Result<Self> { Ok(CommandEvaluator) } }
impl Evaluator for CommandEvaluator {
    fn evaluate(&self, _c: &Config, _ctx: &EvalContext) -> Result<Measurement, EvalError> { Err(EvalError::Fatal("todo".into())) }
}
