//! Linear layers and embeddings.

use tch::Tensor;

use crate::args::Args;
use crate::error::{err, Result};
use crate::nn::container::layer_clone;
use crate::nn::{uniform, want_inputs, Layer, Module};
use crate::value::Value;

pub(crate) const TYPES: &[&str] = &["linear"];

pub(crate) fn build(kind: &str, pos: &[Value], kw: &[(String, Value)], _kids: Vec<(String, Module)>) -> Result<Module> {
    match kind {
        "linear" => {
            let a = Args::parse(kind, &["in", "out", "bias"], pos, kw)?;
            let (i, o, bias) = (a.req_pos("in")?, a.req_pos("out")?, a.bool("bias", true)?);
            // PyTorch's default: kaiming_uniform(a=sqrt(5)) gives bound 1/sqrt(in), bias likewise.
            let bound = 1.0 / (i as f64).sqrt();
            let mut m = Module::new(kind, Linear { bias }).with_param("weight", uniform(&[o, i], bound)?)?;
            if bias {
                m = m.with_param("bias", uniform(&[o], bound)?)?;
            }
            Ok(m)
        }
        _ => Err(err("module", format!("unrecognized module type: {kind}"))),
    }
}

#[derive(Debug, Clone)]
struct Linear {
    bias: bool,
}

impl Layer for Linear {
    fn forward(&self, m: &Module, xs: &[Tensor]) -> Result<Vec<Tensor>> {
        want_inputs(m.kind(), xs, 1, 1)?;
        let b = if self.bias { Some(m.p(1)) } else { None };
        Ok(vec![xs[0].f_linear(m.p(0), b)?])
    }
    layer_clone!();
}
