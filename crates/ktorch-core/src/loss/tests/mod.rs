//! Tests of the losses: helpers shared by the value and option tests.

mod options;
mod values;

use super::*;
pub(super) use tch::{Kind, Reduction, Tensor};

pub(super) const REDS: [(&str, Reduction); 3] = [
    ("none", Reduction::None),
    ("mean", Reduction::Mean),
    ("sum", Reduction::Sum),
];

pub(super) fn s(x: &str) -> Value {
    Value::from(x)
}

pub(super) fn loss(name: &str, pos: Vec<Value>) -> Loss {
    Loss::new(name, &pos, &[]).expect(name)
}

pub(super) fn loss_kw(name: &str, pos: Vec<Value>, kw: &[(&str, Value)]) -> Result<Loss> {
    let kw: Vec<(String, Value)> = kw.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
    Loss::new(name, &pos, &kw)
}

pub(super) fn run(l: &Loss, x: &[&Tensor], y: &[&Tensor]) -> Result<Tensor> {
    let c = |v: &[&Tensor]| v.iter().map(|t| t.shallow_clone()).collect::<Vec<_>>();
    l.forward(&c(x), &c(y))
}

pub(super) fn fwd(l: &Loss, x: &[&Tensor], y: &[&Tensor]) -> Tensor {
    run(l, x, y).unwrap_or_else(|e| panic!("{}: {e}", l.kind()))
}

pub(super) fn dbl(v: &[f64], shape: &[i64]) -> Tensor {
    Tensor::from_slice(v).reshape(shape)
}

pub(super) fn randn(shape: &[i64]) -> Tensor {
    Tensor::randn(shape, (Kind::Double, tch::Device::Cpu))
}

pub(super) fn close(a: &Tensor, b: &Tensor) {
    assert_eq!(a.size(), b.size(), "sizes");
    assert_eq!(a.kind(), b.kind(), "kinds");
    assert!(a.allclose(b, 1e-7, 1e-10, false), "{a} vs {b}");
}

pub(super) fn error(r: Result<impl std::fmt::Debug>) -> String {
    r.expect_err("expected an error").to_string()
}
