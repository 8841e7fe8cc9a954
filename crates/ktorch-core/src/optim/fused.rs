//! Grouping of a parameter group for libtorch's fused optimizer kernels (`_fused_sgd_`,
//! `_fused_adam_`, `_fused_adamw_`, `_fused_adagrad_`, through ktorch-shim), which update
//! every parameter of a list in one call, and for rmsprop's and lamb's `_foreach_*` updates
//! (one shim call each too).
//!
//! As torch.optim does for `fused=True`, the parameters with gradients are split by device
//! and dtype, one call per split. A parameter goes to the per-parameter update instead when
//! the kernels cannot take it: a sparse, differently typed or differently placed gradient,
//! a dtype other than float16/bfloat16/float32/float64, a device without the kernel, or a
//! non-contiguous parameter or gradient. Parameters without gradients are skipped, as before.

use ktorch_shim::Slot;
use tch::Tensor;

use super::ops::ParamState;
use crate::error::Result;

/// Parameters of one device and dtype for one fused call: their indices in the group,
/// the parameters and their gradients.
#[derive(Debug, Default)]
pub(super) struct Bucket<'a> {
    pub(super) idx: Vec<usize>,
    pub(super) params: Vec<&'a Tensor>,
    pub(super) grads: Vec<Tensor>,
}

/// One optimizer step over `params`: `many` for each bucket of parameters the fused
/// kernels take ([`split`]), `one` for each other parameter with a gradient.
pub(super) fn step_split(
    params: &[Tensor],
    state: &mut [ParamState],
    cpu_only: bool,
    mut many: impl FnMut(&Bucket, &mut [ParamState]) -> Result<()>,
    mut one: impl FnMut(&Tensor, &mut ParamState) -> Result<()>,
) -> Result<()> {
    let (buckets, rest) = split(params, cpu_only)?;
    for b in &buckets {
        many(b, state)?;
    }
    for i in rest {
        one(&params[i], &mut state[i])?;
    }
    Ok(())
}

/// The parameters with gradients of a group: buckets of one device and dtype for the
/// fused kernels, and the indices of the parameters for the per-parameter update. One
/// shim call reads every gradient and decides ([`ktorch_shim::fused_plan`]).
pub(super) fn split(params: &[Tensor], cpu_only: bool) -> Result<(Vec<Bucket<'_>>, Vec<usize>)> {
    let (grads, slots) = ktorch_shim::fused_plan(params, cpu_only)?;
    let mut buckets: Vec<Bucket<'_>> = Vec::new();
    let mut rest = Vec::new();
    for (i, ((p, g), slot)) in params.iter().zip(grads).zip(slots).enumerate() {
        match (slot, g) {
            (Slot::Fused(k), Some(g)) => {
                if buckets.len() <= k {
                    buckets.resize_with(k + 1, Bucket::default);
                }
                let b = &mut buckets[k];
                b.idx.push(i);
                b.params.push(p);
                b.grads.push(g);
            }
            (Slot::Single, _) => rest.push(i),
            _ => {}
        }
    }
    Ok((buckets, rest))
}

/// The step tensors of a bucket's parameters (0-dim float32 on their device, holding
/// each state's step count), incremented by one as torch.optim does before a fused call;
/// the states' counts follow.
pub(super) fn next_steps(b: &Bucket, state: &mut [ParamState]) -> Result<Vec<Tensor>> {
    let mut steps = Vec::with_capacity(b.idx.len());
    for (&i, p) in b.idx.iter().zip(&b.params) {
        steps.push(state[i].step_tensor(p)?);
    }
    ktorch_shim::foreach_add_scalar_(&steps, 1.0)?;
    for &i in &b.idx {
        state[i].stepped();
    }
    Ok(steps)
}

#[cfg(test)]
mod tests {
    use tch::{Kind, Tensor};

    use super::super::ops::ParamState;
    use super::super::testutil::{assert_close, backward, copies, kws, params};
    use super::super::{Optimizer, Settings};
    use crate::value::Value;

    /// An optimizer name with settings by position and by name.
    type Case = (&'static str, Vec<Value>, Vec<(String, Value)>);

    /// Settings that exercise every option of the fused kernels.
    fn cases() -> Vec<Case> {
        let f = |xs: &[f64]| xs.iter().map(|&x| x.into()).collect::<Vec<Value>>();
        vec![
            ("sgd", f(&[0.1]), vec![]),
            ("sgd", f(&[0.1, 0.9, 0.2, 0.01]), vec![]),
            (
                "sgd",
                f(&[0.05, 0.8, 0.0, 0.02]),
                kws(&[("nesterov", true.into())]),
            ),
            ("adam", f(&[0.01, 0.8, 0.95, 1e-6, 0.05]), vec![]),
            (
                "adam",
                f(&[0.01, 0.8, 0.95, 1e-6, 0.05]),
                kws(&[("amsgrad", true.into())]),
            ),
            ("adamw", f(&[0.01, 0.9, 0.99, 1e-8, 0.1]), vec![]),
            (
                "adamw",
                f(&[0.01, 0.9, 0.99, 1e-8, 0.1]),
                kws(&[("amsgrad", true.into())]),
            ),
            ("adagrad", f(&[0.1, 0.05, 0.01, 0.2, 1e-10]), vec![]),
            ("rmsprop", f(&[0.01, 0.9, 1e-8, 0.01]), vec![]),
            (
                "rmsprop",
                f(&[0.005, 0.99, 1e-7, 0.01, 0.9]),
                kws(&[("centered", true.into())]),
            ),
        ]
    }

    /// The per-parameter update of `s` for `p` (the path the fused kernels replace).
    fn single(s: &Settings, p: &Tensor, st: &mut ParamState) {
        let _g = tch::no_grad_guard();
        match s {
            Settings::Sgd(s) => s.single(p, st),
            Settings::Adam(s) => s.single(p, st, false),
            Settings::AdamW(s) => s.single(p, st, true),
            Settings::Adagrad(s) => s.single(p, st),
            Settings::Rmsprop(s) => s.single(p, st),
            _ => unreachable!(),
        }
        .expect("single");
    }

    #[test]
    fn fused_within_rounding_of_single_tensor() {
        for (name, pos, kw) in cases() {
            let ps = params();
            let refs = copies(&ps);
            let mut o = over(name, &pos, &kw, &ps);
            let s = Settings::defaults(name)
                .expect("defaults")
                .update(name, &pos, &kw)
                .expect("settings");
            let mut states: Vec<ParamState> = refs.iter().map(|_| ParamState::default()).collect();
            for _ in 0..20 {
                let _ = backward(&ps);
                o.step().expect("step");
                let _ = backward(&refs);
                for (r, st) in refs.iter().zip(states.iter_mut()) {
                    single(&s, r, st);
                }
            }
            assert_close(&ps, &refs, 1e-5);
        }
    }

    /// An optimizer over `ps`.
    fn over(name: &str, pos: &[Value], kw: &[(String, Value)], ps: &[Tensor]) -> Optimizer {
        Optimizer::new(
            name,
            ps.iter().map(Tensor::shallow_clone).collect(),
            pos,
            kw,
        )
        .expect("new")
    }

    /// A parameter alone in its own optimizer (a list of one).
    fn alone(name: &str, pos: &[Value], kw: &[(String, Value)], p: &Tensor) -> Optimizer {
        over(name, pos, kw, std::slice::from_ref(p))
    }

    #[test]
    fn mixed_groups_split_and_fall_back() {
        let leaf = |t: Tensor| t.detach().set_requires_grad(true);
        for (name, pos, kw) in cases() {
            // float, double, non-contiguous, no gradient
            let mk = || {
                vec![
                    leaf(Tensor::from_slice(&[0.5f32, -0.3, 0.8])),
                    leaf(Tensor::from_slice(&[0.2f64, -0.1])),
                    leaf(
                        Tensor::from_slice(&[0.1f32, 0.2, -0.3, 0.4, 0.5, -0.6])
                            .reshape([2, 3])
                            .tr(),
                    ),
                    leaf(Tensor::from_slice(&[1.0f32, 2.0])),
                ]
            };
            let (ps, refs) = (mk(), mk());
            assert!(!ps[2].is_contiguous());
            let mut o = over(name, &pos, &kw, &ps);
            let mut each: Vec<Optimizer> = refs.iter().map(|p| alone(name, &pos, &kw, p)).collect();
            // gradients c (fixed per step) from the loss sum(p * c), the last parameter left out
            let set_grads = |xs: &[Tensor], t: f64| {
                for (i, p) in xs.iter().take(3).enumerate() {
                    let mut g = p.grad();
                    if g.defined() {
                        let _ = g.zero_();
                    }
                    let c = (p.detach().ones_like() * (t.sin() + i as f64 * 0.3))
                        .cumsum(0, None::<Kind>);
                    (p * c).sum(None::<Kind>).backward();
                }
            };
            for t in 0..10 {
                set_grads(&ps, t as f64);
                set_grads(&refs, t as f64);
                o.step().expect("step");
                for e in each.iter_mut() {
                    e.step().expect("step");
                }
            }
            assert_close(&ps, &refs, 1e-6);
            assert_close(&ps[3..], &[Tensor::from_slice(&[1.0f32, 2.0])], 0.0);
            let st = &o.groups[0].state;
            assert_eq!(st[3].step, 0, "{name}: no gradient, no step");
            if name != "sgd" {
                assert!(st[..3].iter().all(|s| s.step == 10), "{name}: step counts");
            }
        }
    }
}
