//! Test functions (being written).
use serde::{Deserialize, Serialize};
use super::{EvalContext, EvalError, Evaluator, Measurement};
use crate::error::{Problem, Result};
use crate::space::{Config, Space};

pub const METRIC: &str = "value";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FunctionSpec { pub name: String }
impl FunctionSpec { pub fn check(&self, _space: &Space, _problems: &mut Vec<Problem>) {} }
pub struct FunctionEvaluator;
impl FunctionEvaluator { pub fn new(_s: &FunctionSpec, _space: &Space) -> Result<Self> { Ok(FunctionEvaluator) } }
impl Evaluator for FunctionEvaluator {
    fn evaluate(&self, _c: &Config, _ctx: &EvalContext) -> Result<Measurement, EvalError> { Err(EvalError::Fatal("todo".into())) }
}
