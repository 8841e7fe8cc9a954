//! Test helpers: a small least-squares problem and tensor comparisons.

use tch::{Kind, Tensor};

use super::Optimizer;
use crate::value::Value;

/// Parameters `w` (3x2) and `b` (2), requiring gradients, with fixed values.
pub(super) fn params() -> Vec<Tensor> {
    let w = Tensor::from_slice(&[0.5f32, -0.3, 0.8, 0.1, -0.6, 0.4])
        .reshape([3, 2])
        .set_requires_grad(true);
    let b = Tensor::from_slice(&[0.2f32, -0.1]).set_requires_grad(true);
    vec![w, b]
}

/// Detached copies of `ps` that require gradients, for the hand-written reference.
pub(super) fn copies(ps: &[Tensor]) -> Vec<Tensor> {
    ps.iter()
        .map(|p| p.detach().copy().set_requires_grad(true))
        .collect()
}

/// Fixed data: x (5x3) and y (5x2).
fn data() -> (Tensor, Tensor) {
    let x = Tensor::from_slice(&[
        1.0f32, 0.5, -1.0, 0.3, -0.7, 2.0, -1.2, 0.4, 0.9, 0.8, 1.5, -0.2, -0.5, -1.1, 0.6,
    ])
    .reshape([5, 3]);
    let y = Tensor::from_slice(&[1.0f32, -1.0, 0.5, 2.0, -0.3, 0.7, 1.2, -0.8, 0.0, 0.4])
        .reshape([5, 2]);
    (x, y)
}

/// Mean squared error of `x w + b` against `y`.
pub(super) fn loss(ps: &[Tensor]) -> Tensor {
    let (x, y) = data();
    (x.matmul(&ps[0]) + &ps[1] - y).square().mean(Kind::Float)
}

/// Zeroes gradients, computes the loss and its gradients.
pub(super) fn backward(ps: &[Tensor]) -> Tensor {
    for p in ps {
        let mut g = p.grad();
        if g.defined() {
            let _ = g.zero_();
        }
    }
    let l = loss(ps);
    l.backward();
    l
}

/// Asserts that two parameter lists hold the same values (to `tol`, relative).
pub(super) fn assert_close(a: &[Tensor], b: &[Tensor], tol: f64) {
    for (x, y) in a.iter().zip(b) {
        let diff = (x - y).abs().max().double_value(&[]);
        let scale = y.abs().max().double_value(&[]).max(1e-12);
        assert!(
            diff / scale <= tol,
            "mismatch: {x:?} vs {y:?}, relative {}",
            diff / scale
        );
    }
}

/// Runs `steps` steps of optimizer `name` on [`params`] and the reference update
/// `f(step, p, grad, state)` (returning the new value of `p`) on copies, and compares.
pub(super) fn check<F>(name: &str, pos: &[Value], kw: &[(String, Value)], steps: i64, mut f: F)
where
    F: FnMut(i64, &Tensor, &Tensor, &mut Vec<Tensor>) -> Tensor,
{
    let ps = params();
    let refs = copies(&ps);
    let mut o = Optimizer::new(
        name,
        ps.iter().map(Tensor::shallow_clone).collect(),
        pos,
        kw,
    )
    .expect("new");
    let mut states: Vec<Vec<Tensor>> = refs.iter().map(|_| Vec::new()).collect();
    for t in 1..=steps {
        let _ = backward(&ps);
        o.step().expect("step");
        let _ = backward(&refs);
        tch::no_grad(|| {
            for (r, st) in refs.iter().zip(states.iter_mut()) {
                let new = f(t, &r.detach(), &r.grad(), st);
                r.shallow_clone().copy_(&new);
            }
        });
    }
    assert_close(&ps, &refs, 1e-5);
}

/// Keyword settings from pairs.
pub(super) fn kws(xs: &[(&str, Value)]) -> Vec<(String, Value)> {
    xs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
}
