//! Helpers shared by the module catalogue's tests.

use tch::{Kind, Tensor};

use crate::nn::Module;
use crate::value::Value;

/// A `(type, settings...)` spec.
pub(crate) fn spec(kind: &str, args: Vec<Value>) -> Value {
    let mut v = vec![Value::from(kind)];
    v.extend(args);
    Value::Tuple(v)
}

/// A keyword dict.
pub(crate) fn kw(pairs: Vec<(&str, Value)>) -> Value {
    Value::Dict(pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
}

/// Builds a module from its type and settings.
pub(crate) fn make(kind: &str, args: Vec<Value>) -> Module {
    Module::from_value(&spec(kind, args)).unwrap_or_else(|e| panic!("{kind}: {e}"))
}

/// The error message building the spec gives.
pub(crate) fn build_err(kind: &str, args: Vec<Value>) -> String {
    match Module::from_value(&spec(kind, args)) {
        Ok(_) => panic!("{kind}: expected an error"),
        Err(e) => e.to_string(),
    }
}

/// Parameter names with sizes.
pub(crate) fn shapes(m: &Module) -> Vec<(String, Vec<i64>)> {
    m.named_parameters()
        .into_iter()
        .map(|(k, t)| (k, t.size()))
        .collect()
}

/// Buffer names with sizes.
pub(crate) fn buffer_shapes(m: &Module) -> Vec<(String, Vec<i64>)> {
    m.named_buffers()
        .into_iter()
        .map(|(k, t)| (k, t.size()))
        .collect()
}

/// Expected names and sizes written compactly.
pub(crate) fn named(xs: &[(&str, &[i64])]) -> Vec<(String, Vec<i64>)> {
    xs.iter()
        .map(|(k, s)| (k.to_string(), s.to_vec()))
        .collect()
}

/// Random normal input of the given size.
pub(crate) fn randn(size: &[i64]) -> Tensor {
    Tensor::randn(size, (Kind::Float, tch::Device::Cpu))
}

/// Asserts equal sizes and values within a float tolerance.
pub(crate) fn assert_close(a: &Tensor, b: &Tensor) {
    assert_eq!(a.size(), b.size(), "sizes differ");
    let d = (a - b).abs().max().double_value(&[]);
    assert!(d < 1e-5, "max difference {d}");
}

/// A float tensor of values.
pub(crate) fn floats(xs: &[f64]) -> Tensor {
    Tensor::from_slice(xs).to_kind(Kind::Float)
}

/// One forward output.
pub(crate) fn fwd(m: &Module, xs: &[&Tensor]) -> Tensor {
    let xs: Vec<Tensor> = xs.iter().map(|t| t.shallow_clone()).collect();
    m.forward_first(&xs)
        .unwrap_or_else(|e| panic!("{}: {e}", m.kind()))
}

/// Asserts every value of `t` lies in `[-bound, bound]` and the spread is near the bound.
pub(crate) fn assert_uniform(t: &Tensor, bound: f64) {
    let mx = t.abs().max().double_value(&[]);
    assert!(mx <= bound + 1e-7, "max {mx} beyond bound {bound}");
    if t.numel() >= 50 {
        assert!(mx > 0.8 * bound, "max {mx} far below bound {bound}");
    }
}
