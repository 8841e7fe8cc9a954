//! Activation functions.

use tch::Tensor;

use crate::args::Args;
use crate::error::{err, Result};
use crate::nn::container::layer_clone;
use crate::nn::{want_inputs, Layer, Module};
use crate::value::Value;

pub(crate) const TYPES: &[&str] = &["relu"];

pub(crate) fn build(kind: &str, pos: &[Value], kw: &[(String, Value)], _kids: Vec<(String, Module)>) -> Result<Module> {
    match kind {
        "relu" => {
            let a = Args::parse(kind, &["inplace"], pos, kw)?;
            a.bool("inplace", false)?;
            Ok(Module::new(kind, Act::Relu))
        }
        _ => Err(err("module", format!("unrecognized module type: {kind}"))),
    }
}

#[derive(Debug, Clone)]
enum Act {
    Relu,
}

impl Layer for Act {
    fn forward(&self, m: &Module, xs: &[Tensor]) -> Result<Vec<Tensor>> {
        want_inputs(m.kind(), xs, 1, 1)?;
        let x = &xs[0];
        Ok(vec![match self {
            Act::Relu => x.f_relu()?,
        }])
    }
    layer_clone!();
}
