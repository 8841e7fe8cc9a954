//! L-BFGS, ported from torch/optim/lbfgs.py: all parameters form one flat vector.

use std::collections::VecDeque;

use tch::Tensor;

use super::linesearch::{strong_wolfe, N};
use super::ops::{add_scaled_, copy_of, grad_of, nonneg};
use crate::args::Args;
use crate::error::{err, invalid, Result};
use crate::value::Value;

/// Setting names in positional order.
pub(super) const NAMES: &[&str] = &[
    "lr",
    "iter",
    "eval",
    "gradtol",
    "changetol",
    "history",
    "search",
];

/// lbfgs settings: lr=1, iter=20, eval=iter*5/4, gradtol=1e-7, changetol=1e-9,
/// history=100, search=none or "strong_wolfe".
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Lbfgs {
    pub(super) lr: f64,
    iter: i64,
    /// `None`: derived from `iter` as PyTorch does (`iter * 5 // 4`).
    eval: Option<i64>,
    gradtol: f64,
    changetol: f64,
    history: i64,
    wolfe: bool,
}

impl Default for Lbfgs {
    fn default() -> Self {
        Lbfgs {
            lr: 1.0,
            iter: 20,
            eval: None,
            gradtol: 1e-7,
            changetol: 1e-9,
            history: 100,
            wolfe: false,
        }
    }
}

fn positive(f: &str, name: &str, n: i64) -> Result<i64> {
    if n > 0 {
        Ok(n)
    } else {
        Err(err(f, format!("{name} must be positive, given {n}")))
    }
}

impl Lbfgs {
    /// `self` overridden by the given settings; search takes "strong_wolfe" or "none".
    pub(super) fn parse(&self, a: &Args) -> Result<Lbfgs> {
        let f = a.kind();
        let wolfe = match a.str("search")?.as_deref() {
            None => self.wolfe,
            Some("strong_wolfe") => true,
            Some("none") | Some("") => false,
            Some(s) => {
                return Err(err(
                    f,
                    format!("search: unrecognized value `{s}`, expecting strong_wolfe or none"),
                ))
            }
        };
        let eval = if a.has("eval") {
            Some(positive(f, "eval", a.int("eval", 0)?)?)
        } else {
            self.eval
        };
        Ok(Lbfgs {
            lr: nonneg("lr", a.float("lr", self.lr)?)?,
            iter: positive(f, "iter", a.int("iter", self.iter)?)?,
            eval,
            gradtol: nonneg("gradtol", a.float("gradtol", self.gradtol)?)?,
            changetol: nonneg("changetol", a.float("changetol", self.changetol)?)?,
            history: positive(f, "history", a.int("history", self.history)?)?,
            wolfe,
        })
    }

    fn max_eval(&self) -> i64 {
        self.eval.unwrap_or(self.iter * 5 / 4)
    }

    pub(super) fn values(&self) -> Vec<(&'static str, Value)> {
        vec![
            ("lr", self.lr.into()),
            ("iter", self.iter.into()),
            ("eval", self.max_eval().into()),
            ("gradtol", self.gradtol.into()),
            ("changetol", self.changetol.into()),
            ("history", self.history.into()),
            (
                "search",
                if self.wolfe {
                    "strong_wolfe".into()
                } else {
                    Value::Null
                },
            ),
        ]
    }
}

/// The optimizer-wide state PyTorch keeps under the first parameter.
#[derive(Debug, Default)]
pub(super) struct State {
    func_evals: i64,
    n_iter: i64,
    d: Option<Tensor>,
    t: f64,
    old_dirs: VecDeque<Tensor>,
    old_stps: VecDeque<Tensor>,
    ro: VecDeque<Tensor>,
    /// `None` for PyTorch's initial `H_diag = 1`.
    h_diag: Option<Tensor>,
    prev_flat_grad: Option<Tensor>,
    prev_loss: f64,
}

impl State {
    /// Every tensor of the history, to move or convert with the parameters.
    pub(super) fn tensors(&self) -> Vec<&Tensor> {
        let mut ts: Vec<&Tensor> = self.d.iter().collect();
        ts.extend(self.old_dirs.iter().chain(&self.old_stps).chain(&self.ro));
        ts.extend(self.h_diag.iter().chain(self.prev_flat_grad.iter()));
        ts
    }

    /// The history as named values (counts, scalars, tensor copies; the lists as
    /// lists), to save; [`State::from_parts`] reads them back.
    pub(super) fn parts(&self) -> Result<Vec<(String, Value)>> {
        let t = |x: &Option<Tensor>| -> Result<Value> {
            Ok(x.as_ref()
                .map(copy_of)
                .transpose()?
                .map_or(Value::Null, Value::Tensor))
        };
        let list = |v: &VecDeque<Tensor>| -> Result<Value> {
            Ok(Value::List(
                v.iter()
                    .map(|x| Ok(Value::Tensor(copy_of(x)?)))
                    .collect::<Result<_>>()?,
            ))
        };
        Ok(vec![
            ("func_evals".into(), Value::Int(self.func_evals)),
            ("n_iter".into(), Value::Int(self.n_iter)),
            ("d".into(), t(&self.d)?),
            ("t".into(), Value::Float(self.t)),
            ("old_dirs".into(), list(&self.old_dirs)?),
            ("old_stps".into(), list(&self.old_stps)?),
            ("ro".into(), list(&self.ro)?),
            ("H_diag".into(), t(&self.h_diag)?),
            ("prev_flat_grad".into(), t(&self.prev_flat_grad)?),
            ("prev_loss".into(), Value::Float(self.prev_loss)),
        ])
    }

    /// The history from [`State::parts`], its tensors put on `like`'s dtype and device;
    /// every flat tensor must have `n` elements (the parameters' total).
    pub(super) fn from_parts(kv: &[(String, Value)], n: i64, like: &Tensor) -> Result<State> {
        let get = |k: &str| kv.iter().find(|(n, _)| n == k).map(|(_, v)| v);
        let tensor = |k: &str, v: &Value, flat: bool| -> Result<Tensor> {
            // a scalar stands for a 0-dim tensor (ro, H_diag), as a state read out gives it
            let scalar;
            let x = match v {
                Value::Tensor(x) => x,
                Value::Float(_) | Value::Int(_) if !flat => {
                    scalar = Tensor::from(v.as_float(k)?);
                    &scalar
                }
                _ => return Err(invalid(format!("lbfgs history `{k}`: expecting a tensor"))),
            };
            if flat && x.size() != [n] {
                return Err(invalid(format!(
                    "lbfgs history `{k}` has shape {:?}, the parameters {n} element(s)",
                    x.size()
                )));
            }
            Ok(x.f_to_device_(like.device(), like.f_kind()?, false, true)?)
        };
        let opt = |k: &str, flat: bool| -> Result<Option<Tensor>> {
            match get(k) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => tensor(k, v, flat).map(Some),
            }
        };
        let list = |k: &str, flat: bool| -> Result<VecDeque<Tensor>> {
            match get(k) {
                None => Ok(VecDeque::new()),
                Some(Value::List(xs)) => xs.iter().map(|v| tensor(k, v, flat)).collect(),
                Some(_) => Err(invalid(format!("lbfgs history `{k}`: expecting a list"))),
            }
        };
        let int = |k: &str| get(k).map_or(Ok(0), |v| v.as_int(k));
        let float = |k: &str| get(k).map_or(Ok(0.0), |v| v.as_float(k));
        if let Some((k, _)) = kv.iter().find(|(k, _)| {
            !matches!(
                k.as_str(),
                "func_evals"
                    | "n_iter"
                    | "d"
                    | "t"
                    | "old_dirs"
                    | "old_stps"
                    | "ro"
                    | "H_diag"
                    | "prev_flat_grad"
                    | "prev_loss"
            )
        }) {
            return Err(invalid(format!("unknown lbfgs history `{k}`")));
        }
        let s = State {
            func_evals: int("func_evals")?,
            n_iter: int("n_iter")?,
            d: opt("d", true)?,
            t: float("t")?,
            old_dirs: list("old_dirs", true)?,
            old_stps: list("old_stps", true)?,
            ro: list("ro", false)?,
            h_diag: opt("H_diag", false)?,
            prev_flat_grad: opt("prev_flat_grad", true)?,
            prev_loss: float("prev_loss")?,
        };
        if s.old_dirs.len() != s.old_stps.len() || s.old_dirs.len() != s.ro.len() {
            return Err(invalid(
                "lbfgs history: old_dirs, old_stps and ro differ in length",
            ));
        }
        Ok(s)
    }

    /// A copy to go back to after a step. A step replaces the direction, the history
    /// entries and `h_diag` with new tensors and updates only `prev_flat_grad` in
    /// place, so that one is copied and the others are shared.
    pub(super) fn snapshot(&self) -> Result<State> {
        let share = |v: &VecDeque<Tensor>| v.iter().map(Tensor::shallow_clone).collect();
        Ok(State {
            func_evals: self.func_evals,
            n_iter: self.n_iter,
            d: self.d.as_ref().map(Tensor::shallow_clone),
            t: self.t,
            old_dirs: share(&self.old_dirs),
            old_stps: share(&self.old_stps),
            ro: share(&self.ro),
            h_diag: self.h_diag.as_ref().map(Tensor::shallow_clone),
            prev_flat_grad: self.prev_flat_grad.as_ref().map(copy_of).transpose()?,
            prev_loss: self.prev_loss,
        })
    }
}

/// Every gradient as one flat vector, zeros for undefined gradients.
fn gather_flat_grad(params: &[Tensor]) -> Result<Tensor> {
    let mut views = Vec::with_capacity(params.len());
    for p in params {
        views.push(match grad_of(p)? {
            Some(g) => g.f_reshape([-1])?,
            None => Tensor::f_zeros([p.numel() as i64], (p.kind(), p.device()))?,
        });
    }
    Ok(Tensor::f_cat(&views, 0)?)
}

/// `params += step_size * update`, the flat update cut to each parameter's shape.
fn add_grad(params: &[Tensor], step_size: f64, update: &Tensor) -> Result<()> {
    let mut offset = 0i64;
    for p in params {
        let n = p.numel() as i64;
        add_scaled_(
            &mut p.shallow_clone(),
            &update.f_narrow(0, offset, n)?.f_view_as(p)?,
            step_size,
        )?;
        offset += n;
    }
    Ok(())
}

/// `max(|x|) <= tol`, compared in the tensor's dtype as PyTorch does.
fn max_le(x: &Tensor, tol: f64) -> Result<bool> {
    Ok(x.f_abs()?.f_max()?.f_le(tol)?.f_int64_value(&[])? != 0)
}

fn value(t: &Tensor) -> Result<f64> {
    Ok(t.f_double_value(&[])?)
}

/// Runs the closure with gradients on: the loss tensor and its value.
fn evaluate(closure: &mut dyn FnMut() -> Result<Tensor>) -> Result<(Tensor, f64)> {
    let loss = tch::with_grad(&mut *closure)?;
    let v = loss.f_double_value(&[])?;
    Ok((loss, v))
}

/// `LBFGS.step(closure)`; returns the loss of the first evaluation.
pub(super) fn step(
    s: &Lbfgs,
    params: &[Tensor],
    state: &mut State,
    closure: &mut dyn FnMut() -> Result<Tensor>,
) -> Result<Tensor> {
    let (max_iter, max_eval) = (s.iter, s.max_eval());
    let single = params.first().is_some_and(|p| p.kind() == tch::Kind::Float);
    let (orig_loss, mut loss) = evaluate(closure)?;
    let mut current_evals = 1;
    state.func_evals += 1;
    let mut flat_grad = gather_flat_grad(params)?;
    let mut opt_cond = max_le(&flat_grad, s.gradtol)?;
    // optimal condition
    if opt_cond {
        return Ok(orig_loss);
    }
    let mut n_iter = 0;
    while n_iter < max_iter {
        n_iter += 1;
        state.n_iter += 1;
        // compute gradient descent direction
        let last = state
            .d
            .as_ref()
            .map(Tensor::shallow_clone)
            .zip(state.prev_flat_grad.as_ref().map(Tensor::shallow_clone));
        let d = match last {
            Some((d, prev)) if state.n_iter > 1 => direction(s, state, &flat_grad, &prev, &d)?,
            _ => {
                state.old_dirs.clear();
                state.old_stps.clear();
                state.ro.clear();
                state.h_diag = None;
                flat_grad.f_neg()?
            }
        };
        state.d = Some(d.shallow_clone());
        match &mut state.prev_flat_grad {
            Some(prev) => prev.f_copy_(&flat_grad)?,
            None => state.prev_flat_grad = Some(copy_of(&flat_grad)?),
        }
        state.prev_loss = loss;
        // compute step length: 1.0 / sum is reciprocal() in PyTorch, min(1.0, .) keeps the tensor if smaller
        let t = if state.n_iter == 1 {
            let inv = flat_grad.f_abs()?.f_sum(None)?.f_reciprocal()?;
            if value(&inv)? < 1.0 {
                N::tensor(value(&inv.f_mul_scalar(s.lr)?)?, single)
            } else {
                N::py(s.lr)
            }
        } else {
            N::py(s.lr)
        };
        state.t = t.v;
        // directional derivative: below tolerance
        let gtd = flat_grad.f_dot(&d)?;
        if gtd.f_gt(-s.changetol)?.f_int64_value(&[])? != 0 {
            break;
        }
        let mut ls_func_evals = 0;
        if s.wolfe {
            let x_init: Vec<Tensor> = params.iter().map(copy_of).collect::<Result<_>>()?;
            let mut obj = |t: f64| -> Result<(f64, Tensor)> {
                add_grad(params, t, &d)?;
                let (_, l) = evaluate(closure)?;
                let g = gather_flat_grad(params)?;
                for (p, x) in params.iter().zip(&x_init) {
                    p.shallow_clone().f_copy_(x)?;
                }
                Ok((l, g))
            };
            let gtd = N::tensor(value(&gtd)?, single);
            let found = strong_wolfe(
                &mut obj,
                t,
                &d,
                loss,
                &flat_grad,
                gtd,
                max_eval - current_evals,
            )?;
            (loss, flat_grad, state.t, ls_func_evals) =
                (found.loss, found.grad, found.t.v, found.evals);
            add_grad(params, state.t, &d)?;
            opt_cond = max_le(&flat_grad, s.gradtol)?;
        } else {
            // fixed step, then re-evaluate unless this is the last iteration
            add_grad(params, state.t, &d)?;
            if n_iter != max_iter {
                loss = evaluate(closure)?.1;
                flat_grad = gather_flat_grad(params)?;
                opt_cond = max_le(&flat_grad, s.gradtol)?;
                ls_func_evals = 1;
            }
        }
        current_evals += ls_func_evals;
        state.func_evals += ls_func_evals;
        // check conditions
        if n_iter == max_iter || current_evals >= max_eval || opt_cond {
            break;
        }
        // lack of progress
        if max_le(&d.f_mul_scalar(state.t)?, s.changetol)?
            || (loss - state.prev_loss).abs() < s.changetol
        {
            break;
        }
    }
    Ok(orig_loss)
}

/// The two-loop recursion: updates the history with the last step and returns
/// the new direction `-H g`.
fn direction(
    s: &Lbfgs,
    st: &mut State,
    flat_grad: &Tensor,
    prev: &Tensor,
    d: &Tensor,
) -> Result<Tensor> {
    let y = flat_grad.f_sub(prev)?;
    let stp = d.f_mul_scalar(st.t)?;
    let ys = y.f_dot(&stp)?;
    if ys.f_gt(1e-10)?.f_int64_value(&[])? != 0 {
        // updating memory
        if st.old_dirs.len() as i64 == s.history {
            st.old_dirs.pop_front();
            st.old_stps.pop_front();
            st.ro.pop_front();
        }
        st.h_diag = Some(ys.f_div(&y.f_dot(&y)?)?);
        st.old_dirs.push_back(y);
        st.old_stps.push_back(stp);
        st.ro.push_back(ys.f_reciprocal()?);
    }
    let num_old = st.old_dirs.len();
    let mut al = Vec::with_capacity(num_old);
    let mut q = flat_grad.f_neg()?;
    for i in (0..num_old).rev() {
        let a = st.old_stps[i].f_dot(&q)?.f_mul(&st.ro[i])?;
        add_scaled_(&mut q, &st.old_dirs[i], -value(&a)?)?;
        al.push(a);
    }
    al.reverse();
    // r = d = q * H_diag
    let mut r = match &st.h_diag {
        Some(h) => q.f_mul(h)?,
        None => q,
    };
    for (i, al_i) in al.iter().enumerate() {
        let be_i = st.old_dirs[i].f_dot(&r)?.f_mul(&st.ro[i])?;
        add_scaled_(&mut r, &st.old_stps[i], value(&al_i.f_sub(&be_i)?)?)?;
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use tch::{Kind, Tensor};

    use super::super::testutil::{backward, kws, params};
    use super::super::Optimizer;
    use crate::value::Value;

    fn zero_grads(ps: &[Tensor]) {
        for p in ps {
            let mut g = p.grad();
            if g.defined() {
                let _ = g.zero_();
            }
        }
    }

    #[test]
    fn converges_on_least_squares() {
        for search in ["none", "strong_wolfe"] {
            let ps = params();
            let mut o = Optimizer::new(
                "lbfgs",
                ps.iter().map(Tensor::shallow_clone).collect(),
                &[],
                &kws(&[("search", search.into())]),
            )
            .expect("new");
            let first = o
                .step_with(&mut || Ok(backward(&ps)))
                .expect("step")
                .double_value(&[]);
            for _ in 0..4 {
                let _ = o.step_with(&mut || Ok(backward(&ps))).expect("step");
            }
            let _ = backward(&ps);
            let gmax = ps
                .iter()
                .map(|p| p.grad().abs().max().double_value(&[]))
                .fold(0.0, f64::max);
            let last = super::super::testutil::loss(&ps).double_value(&[]);
            assert!(
                gmax < 1e-4 && last < first,
                "{search}: gradient {gmax}, loss {first} -> {last}"
            );
        }
    }

    #[test]
    fn restore_puts_back_parameters_and_state() {
        for search in ["none", "strong_wolfe"] {
            let make = || {
                let ps = params();
                let o = Optimizer::new(
                    "lbfgs",
                    ps.iter().map(Tensor::shallow_clone).collect(),
                    &[],
                    &kws(&[("search", search.into()), ("iter", 3i64.into())]),
                )
                .expect("new");
                (ps, o)
            };
            let (ps, mut o) = make();
            // a first step builds history, so the saved state is not the empty one
            let _ = o.step_with(&mut || Ok(backward(&ps))).expect("step");
            let at: Vec<Tensor> = ps.iter().map(|p| p.detach().copy()).collect();
            let saved = o.save_lbfgs().expect("save").expect("lbfgs saves");
            let _ = o.step_with(&mut || Ok(backward(&ps))).expect("step");
            assert!(
                ps.iter().zip(&at).any(|(p, a)| !p.equal(a)),
                "{search}: moved"
            );
            o.restore_lbfgs(saved).expect("restore");
            for (p, a) in ps.iter().zip(&at) {
                assert!(p.equal(a), "{search}: parameters put back");
            }
            // the step after restoring is the step the saved point would have taken
            let _ = o.step_with(&mut || Ok(backward(&ps))).expect("step");
            let (ps2, mut o2) = make();
            for _ in 0..2 {
                let _ = o2.step_with(&mut || Ok(backward(&ps2))).expect("step");
            }
            for (p, q) in ps.iter().zip(&ps2) {
                assert!(p.equal(q), "{search}: same as without the undone step");
            }
        }
        let sgd = Optimizer::new("sgd", params(), &[], &[]).expect("sgd");
        assert!(sgd.save_lbfgs().expect("save").is_none());
    }

    fn rosenbrock(xy: &Tensor) -> Tensor {
        let (x, y) = (xy.select(0, 0), xy.select(0, 1));
        let a: Tensor = (&x - 1.0).square();
        let b: Tensor = (y - x.square()).square();
        a + b * 100.0
    }

    #[test]
    fn converges_on_rosenbrock() {
        for (search, lr, steps) in [("strong_wolfe", 1.0, 10), ("none", 0.5, 60)] {
            let xy = Tensor::from_slice(&[-1.5f64, 2.0]).set_requires_grad(true);
            let kw = kws(&[("search", search.into()), ("history", 10i64.into())]);
            let mut o = Optimizer::new("lbfgs", vec![xy.shallow_clone()], &[Value::from(lr)], &kw)
                .expect("new");
            for _ in 0..steps {
                let _ = o
                    .step_with(&mut || {
                        zero_grads(&[xy.shallow_clone()]);
                        let l = rosenbrock(&xy);
                        l.backward();
                        Ok(l)
                    })
                    .expect("step");
            }
            let err = (&xy - Tensor::from_slice(&[1.0f64, 1.0]))
                .abs()
                .max()
                .double_value(&[]);
            assert!(
                err < 1e-4,
                "{search}: {:?}",
                Vec::<f64>::try_from(&xy.to_kind(Kind::Double)).expect("xy")
            );
        }
    }
}
