//! Optimizers with parameter groups: sgd, adam, adamw, adagrad, rmsprop, lbfgs, lamb.

use tch::Tensor;

use crate::error::{err, Result};
use crate::value::Value;

/// An optimizer: a kind, default settings and parameter groups with per-parameter state.
#[derive(Debug)]
pub struct Optimizer {
    kind: String,
}

/// The names of every optimizer.
pub const OPTIMIZER_TYPES: &[&str] = &[];

impl Optimizer {
    /// A new optimizer; `params` empty gives an optimizer with no groups.
    pub fn new(name: &str, _params: Vec<Tensor>, _pos: &[Value], _kw: &[(String, Value)]) -> Result<Optimizer> {
        Err(err("opt", format!("unrecognized optimizer: {name}")))
    }

    /// The optimizer name.
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// Number of parameter groups.
    pub fn groups(&self) -> usize {
        0
    }

    /// Adds a group (g == groups) or edits group g (g < groups), appending `params`.
    pub fn add(&mut self, _g: i64, _params: Vec<Tensor>, _pos: &[Value], _kw: &[(String, Value)]) -> Result<()> {
        Err(err("opt", "not implemented"))
    }

    /// The parameters of group `g`.
    pub fn group_params(&self, _g: usize) -> Vec<Tensor> {
        Vec::new()
    }

    /// Every parameter, group by group.
    pub fn params(&self) -> Vec<Tensor> {
        Vec::new()
    }

    /// One update from the current gradients (errors for lbfgs, which needs a closure).
    pub fn step(&mut self) -> Result<()> {
        Err(err("step", "not implemented"))
    }

    /// One update that may re-evaluate the loss: `closure` sets gradients and returns the loss.
    /// Returns the loss of the first evaluation.
    pub fn step_with(&mut self, _closure: &mut dyn FnMut() -> Result<Tensor>) -> Result<Tensor> {
        Err(err("step", "not implemented"))
    }

    /// Learning rate of each group.
    pub fn lr(&self) -> Vec<f64> {
        Vec::new()
    }

    /// Sets the learning rate: one value for all groups or one per group.
    pub fn set_lr(&mut self, _lr: &[f64]) -> Result<()> {
        Err(err("lr", "not implemented"))
    }

    /// The settings of group `g` (or the defaults with no groups) by name.
    pub fn settings(&self, _g: usize) -> Vec<(String, Value)> {
        Vec::new()
    }
}
