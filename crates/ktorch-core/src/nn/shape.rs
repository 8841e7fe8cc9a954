//! Placeholder for the shape family (filled in below).

use crate::error::{err, Result};
use crate::nn::Module;
use crate::value::Value;

pub(crate) const TYPES: &[&str] = &[];

pub(crate) fn build(kind: &str, _pos: &[Value], _kw: &[(String, Value)], _kids: Vec<(String, Module)>) -> Result<Module> {
    Err(err("module", format!("unrecognized module type: {kind}")))
}
