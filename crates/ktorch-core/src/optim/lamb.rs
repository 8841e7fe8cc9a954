//! LAMB: Adam-style updates scaled per parameter by a trust ratio ||w|| / ||update||.
//!
//! The rule follows timm's `timm/optim/lamb.py` single-tensor code (with the
//! trust ratio always applied, as the original ktorch does) and is, step `t`
//! counted per parameter, for each parameter `w` with a defined gradient `g`:
//!
//! 1. `globalnorm`: `n = ||(||g_1||, ||g_2||, ...)||`, the 2-norm of the gradients of
//!    every parameter of every group, computed once per step before any update;
//!    `g = g / max(n, 1)` (clipping the global norm to 1; `p.grad` is left as is).
//! 2. `m = m.lerp(g, 1 - beta1)`; `v = beta2 * v + (1 - beta2) * g * g`.
//! 3. with `unbiased`: `b1 = 1 - beta1^t`, `b2 = 1 - beta2^t`, else `b1 = b2 = 1`;
//!    `u = (m / b1) / (sqrt(v) / sqrt(b2) + eps)`.
//! 4. `decay != 0`: `u = u + decay * w`.
//! 5. `r = ||w|| / ||u||`, or 1 where either norm is 0; with `trustclip`,
//!    `r = clamp(r, trustmin, trustmax)`.
//! 6. `w = w - lr * (u * r)`.
//!
//! (timm, by default, skips step 5 when decay is 0 and clips the ratio to at most 1.)
//!
//! Steps 2-6 run as `_foreach_*` ops over all parameters of a device and dtype at once
//! (one ktorch-shim call; the trust ratios of step 5 computed together on the stacked
//! norms), for the parameters the fused kernels would take ([`fused::split`]); the
//! others are updated one by one with the same arithmetic.

use tch::Tensor;

use super::fused::{self, Bucket};
use super::ops::{add_scaled_, grad_of, nonneg, unit, ParamState};
use super::{Group, Settings};
use crate::args::Args;
use crate::error::{err, Result};
use crate::value::Value;

/// Setting names in positional order.
pub(super) const NAMES: &[&str] = &[
    "lr",
    "beta1",
    "beta2",
    "eps",
    "decay",
    "unbiased",
    "globalnorm",
    "trustclip",
    "trustmin",
    "trustmax",
];

/// lamb settings: lr=.001, beta1=.9, beta2=.999, eps=1e-8, decay=0, unbiased=true,
/// globalnorm=true, trustclip=true, trustmin=0, trustmax=1.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Lamb {
    pub(super) lr: f64,
    beta1: f64,
    beta2: f64,
    eps: f64,
    decay: f64,
    unbiased: bool,
    globalnorm: bool,
    trustclip: bool,
    trustmin: f64,
    trustmax: f64,
}

impl Default for Lamb {
    fn default() -> Self {
        Lamb {
            lr: 0.001,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            decay: 0.0,
            unbiased: true,
            globalnorm: true,
            trustclip: true,
            trustmin: 0.0,
            trustmax: 1.0,
        }
    }
}

impl Lamb {
    /// `self` overridden by the given settings.
    pub(super) fn parse(&self, a: &Args) -> Result<Lamb> {
        let f = a.kind();
        let s = Lamb {
            lr: nonneg("lr", a.float("lr", self.lr)?)?,
            beta1: unit("beta1", a.float("beta1", self.beta1)?)?,
            beta2: unit("beta2", a.float("beta2", self.beta2)?)?,
            eps: nonneg("eps", a.float("eps", self.eps)?)?,
            decay: nonneg("decay", a.float("decay", self.decay)?)?,
            unbiased: a.bool("unbiased", self.unbiased)?,
            globalnorm: a.bool("globalnorm", self.globalnorm)?,
            trustclip: a.bool("trustclip", self.trustclip)?,
            trustmin: nonneg("trustmin", a.float("trustmin", self.trustmin)?)?,
            trustmax: nonneg("trustmax", a.float("trustmax", self.trustmax)?)?,
        };
        if s.trustmin > s.trustmax {
            return Err(err(
                f,
                format!(
                    "trustmin {} greater than trustmax {}",
                    s.trustmin, s.trustmax
                ),
            ));
        }
        Ok(s)
    }

    pub(super) fn values(&self) -> Vec<(&'static str, Value)> {
        vec![
            ("lr", self.lr.into()),
            ("beta1", self.beta1.into()),
            ("beta2", self.beta2.into()),
            ("eps", self.eps.into()),
            ("decay", self.decay.into()),
            ("unbiased", self.unbiased.into()),
            ("globalnorm", self.globalnorm.into()),
            ("trustclip", self.trustclip.into()),
            ("trustmin", self.trustmin.into()),
            ("trustmax", self.trustmax.into()),
        ]
    }

    /// One LAMB update of a group's parameters; `clip` is `max(n, 1)` of rule 1. The
    /// parameters the fused kernels would take ([`fused::split`]) are updated with
    /// `_foreach_*` ops, one shim call per device and dtype; the others one by one.
    pub(super) fn step(
        &self,
        params: &[Tensor],
        state: &mut [ParamState],
        clip: Option<&Tensor>,
    ) -> Result<()> {
        let clip = clip.filter(|_| self.globalnorm);
        fused::step_split(
            params,
            state,
            false,
            |b, s| self.foreach(b, s, clip),
            |p, s| self.single(p, s, clip),
        )
    }

    /// `(1 - beta1^t, 1 - beta2^t)` for step `t` with `unbiased`, else `(1, 1)`.
    fn bias_corrections(&self, step: i64) -> (f64, f64) {
        let step = step as f64;
        if self.unbiased {
            (1.0 - self.beta1.powf(step), 1.0 - self.beta2.powf(step))
        } else {
            (1.0, 1.0)
        }
    }

    /// The update of one device and dtype's parameters with `_foreach_*` ops (one shim call).
    fn foreach(&self, b: &Bucket, state: &mut [ParamState], clip: Option<&Tensor>) -> Result<()> {
        let n = b.idx.len();
        let (mut m, mut v) = (Vec::with_capacity(n), Vec::with_capacity(n));
        let (mut bc1, mut bc2) = (Vec::new(), Vec::new());
        for (&i, p) in b.idx.iter().zip(&b.params) {
            let st = &mut state[i];
            m.push(st.buffer("exp_avg", p, 0.0)?);
            v.push(st.buffer("exp_avg_sq", p, 0.0)?);
            st.step += 1;
            if self.unbiased {
                let (c1, c2) = self.bias_corrections(st.step);
                bc1.push(c1);
                bc2.push(c2.powf(0.5));
            }
        }
        let st = ktorch_shim::LambState {
            exp_avgs: &m,
            exp_avg_sqs: &v,
            bias_correction1: &bc1,
            bias_correction2_sqrt: &bc2,
        };
        let s = ktorch_shim::LambSettings {
            lr: self.lr,
            beta1: self.beta1,
            beta2: self.beta2,
            eps: self.eps,
            weight_decay: self.decay,
            trustclip: self.trustclip,
            trustmin: self.trustmin,
            trustmax: self.trustmax,
        };
        Ok(ktorch_shim::foreach_lamb_(
            &b.params, &b.grads, st, clip, &s,
        )?)
    }

    /// The update of one parameter (those the foreach path does not take).
    fn single(&self, p: &Tensor, st: &mut ParamState, clip: Option<&Tensor>) -> Result<()> {
        let Some(mut grad) = grad_of(p)? else {
            return Ok(());
        };
        if let Some(c) = clip {
            grad = grad.f_div(c)?;
        }
        let mut exp_avg = st.buffer("exp_avg", p, 0.0)?;
        let mut exp_avg_sq = st.buffer("exp_avg_sq", p, 0.0)?;
        st.step += 1;
        let (bias_correction1, bias_correction2) = self.bias_corrections(st.step);
        let _ = exp_avg.f_lerp_(&grad, 1.0 - self.beta1)?;
        let _ = exp_avg_sq.f_mul_scalar_(self.beta2)?;
        let _ = exp_avg_sq.f_addcmul_(&grad.f_mul_scalar(1.0 - self.beta2)?, &grad)?;
        let mut denom = exp_avg_sq
            .f_sqrt()?
            .f_div_scalar(bias_correction2.powf(0.5))?;
        let _ = denom.f_add_scalar_(self.eps)?;
        let mut update = exp_avg.f_div_scalar(bias_correction1)?;
        let _ = update.f_div_(&denom)?;
        if self.decay != 0.0 {
            add_scaled_(&mut update, p, self.decay)?;
        }
        let _ = update.f_mul_(&self.trust_ratio(&p.f_norm()?, &update.f_norm()?)?)?;
        add_scaled_(&mut p.shallow_clone(), &update, -self.lr)?;
        Ok(())
    }

    /// `||w|| / ||u||`, 1 where either norm is 0, clamped with `trustclip`.
    fn trust_ratio(&self, w_norm: &Tensor, u_norm: &Tensor) -> Result<Tensor> {
        let ratio = w_norm.f_div(u_norm)?;
        let both = w_norm.f_gt(0.0)?.f_logical_and(&u_norm.f_gt(0.0)?)?;
        let r = ratio.f_where_self(&both, &ratio.f_ones_like()?)?;
        Ok(if self.trustclip {
            r.f_clamp(self.trustmin, self.trustmax)?
        } else {
            r
        })
    }
}

/// Rule 1: `max(n, 1)` for the global gradient norm `n` over every group (one
/// `_foreach_norm` over every gradient, then the norm of the norms), or
/// `None` when no lamb group asks for it or no parameter has a gradient.
pub(super) fn global_clip(groups: &[Group]) -> Result<Option<Tensor>> {
    if !groups
        .iter()
        .any(|g| matches!(&g.settings, Settings::Lamb(s) if s.globalnorm))
    {
        return Ok(None);
    }
    let mut grads = Vec::new();
    for p in groups.iter().flat_map(|g| g.params.iter()) {
        if let Some(g) = grad_of(p)? {
            grads.push(g);
        }
    }
    if grads.is_empty() {
        return Ok(None);
    }
    let mut clip = ktorch_shim::foreach_norm_total(&grads)?;
    let _ = clip.f_clamp_min_(1.0)?;
    Ok(Some(clip))
}

#[cfg(test)]
mod tests {
    use tch::Tensor;

    use tch::Kind;

    use super::super::ops::ParamState;
    use super::super::testutil::{assert_close, backward, copies, kws, params};
    use super::super::{Optimizer, Settings};
    use crate::value::Value;

    /// Steps lamb and the rule of the file docs written out, and compares.
    fn run(kw: &[(&str, Value)], lr: f64, decay: f64) {
        let get = |k: &str, d: bool| {
            kw.iter()
                .find(|(n, _)| *n == k)
                .map_or(d, |(_, v)| *v == Value::Bool(true))
        };
        let (unbiased, globalnorm, trustclip) = (
            get("unbiased", true),
            get("globalnorm", true),
            get("trustclip", true),
        );
        let (b1, b2, eps, tmin, tmax): (f64, f64, f64, f64, f64) = (0.9, 0.99, 1e-6, 0.1, 0.9);
        let ps = params();
        let refs = copies(&ps);
        let mut all = kws(kw);
        all.extend(kws(&[
            ("decay", decay.into()),
            ("trustmin", tmin.into()),
            ("trustmax", tmax.into()),
        ]));
        let pos: Vec<Value> = vec![lr.into(), b1.into(), b2.into(), eps.into()];
        let mut o = Optimizer::new(
            "lamb",
            ps.iter().map(Tensor::shallow_clone).collect(),
            &pos,
            &all,
        )
        .expect("new");
        let mut st: Vec<(Tensor, Tensor)> = refs
            .iter()
            .map(|p| (p.zeros_like(), p.zeros_like()))
            .collect();
        for t in 1..=6 {
            let _ = backward(&ps);
            o.step().expect("step");
            let _ = backward(&refs);
            tch::no_grad(|| {
                let n = refs
                    .iter()
                    .map(|p| p.grad().square().sum(None).double_value(&[]))
                    .sum::<f64>()
                    .sqrt();
                for (p, (m, v)) in refs.iter().zip(st.iter_mut()) {
                    let g = if globalnorm {
                        p.grad() / n.max(1.0)
                    } else {
                        p.grad()
                    };
                    *m = b1 * &*m + (1.0 - b1) * &g;
                    *v = b2 * &*v + (1.0 - b2) * &g * &g;
                    let (c1, c2) = if unbiased {
                        (1.0 - b1.powi(t), 1.0 - b2.powi(t))
                    } else {
                        (1.0, 1.0)
                    };
                    let u = (&*m / c1) / (v.sqrt() / c2.sqrt() + eps) + decay * p;
                    let (wn, un) = (p.norm().double_value(&[]), u.norm().double_value(&[]));
                    let mut r = if wn > 0.0 && un > 0.0 { wn / un } else { 1.0 };
                    if trustclip {
                        r = r.clamp(tmin, tmax);
                    }
                    p.shallow_clone().copy_(&(p - lr * r * u));
                }
            });
        }
        assert_close(&ps, &refs, 1e-5);
    }

    #[test]
    fn lamb_default_rule() {
        run(&[], 0.05, 0.0);
        run(&[], 0.05, 0.1);
    }

    #[test]
    fn lamb_flags() {
        run(&[("unbiased", false.into())], 0.05, 0.01);
        run(&[("globalnorm", false.into())], 0.05, 0.01);
        run(&[("trustclip", false.into())], 0.05, 0.01);
    }

    /// Parameters of several shapes, dtypes and layouts: a float matrix, a float vector,
    /// a double vector, a non-contiguous float matrix (updated one by one), a zero-size
    /// float tensor, and a float vector that gets no gradient.
    fn mixed() -> Vec<Tensor> {
        let leaf = |t: Tensor| t.detach().set_requires_grad(true);
        vec![
            leaf(Tensor::from_slice(&[0.5f32, -0.3, 0.8, 0.1, -0.6, 0.4]).reshape([3, 2])),
            leaf(Tensor::from_slice(&[0.2f32, -0.1, 0.7])),
            leaf(Tensor::from_slice(&[0.3f64, -0.9])),
            leaf(
                Tensor::from_slice(&[0.1f32, 0.2, -0.3, 0.4, 0.5, -0.6])
                    .reshape([2, 3])
                    .tr(),
            ),
            leaf(Tensor::zeros([0, 4], (Kind::Float, tch::Device::Cpu))),
            leaf(Tensor::from_slice(&[1.0f32, 2.0])),
        ]
    }

    /// Gradients of `sum(p * c + p^2)` (`c` fixed per step) for all but the last parameter.
    fn set_grads(ps: &[Tensor], t: f64) {
        for (i, p) in ps.iter().take(ps.len() - 1).enumerate() {
            let mut g = p.grad();
            if g.defined() {
                let _ = g.zero_();
            }
            let c = (p.detach().ones_like() * ((t + 1.0).sin() * 3.0 + i as f64 * 0.4))
                .cumsum(0, None::<Kind>);
            (p * c + p.square()).sum(None::<Kind>).backward();
        }
    }

    /// Rule 1 written out: `max(||(||g_1||, ...)||, 1)` over every gradient.
    fn reference_clip(ps: &[Tensor]) -> Tensor {
        let norms: Vec<Tensor> = ps
            .iter()
            .map(Tensor::grad)
            .filter(Tensor::defined)
            .map(|g| g.norm())
            .collect();
        Tensor::stack(&norms, 0).norm().clamp_min(1.0)
    }

    #[test]
    fn lamb_foreach_equals_per_parameter_update() {
        let f = |xs: &[f64]| xs.iter().map(|&x| x.into()).collect::<Vec<Value>>();
        let cases = [
            kws(&[]),
            kws(&[("unbiased", false.into())]),
            kws(&[("globalnorm", false.into())]),
            kws(&[("trustclip", false.into())]),
        ];
        for kw in cases {
            let (ps, refs) = (mixed(), mixed());
            assert!(!ps[3].is_contiguous());
            // two groups: the first with weight decay, the second without and its own trust range
            let pos = f(&[0.05, 0.8, 0.95, 1e-6, 0.1]);
            let mut o = Optimizer::new(
                "lamb",
                ps[..3].iter().map(Tensor::shallow_clone).collect(),
                &pos,
                &kw,
            )
            .expect("new");
            let second = kws(&[
                ("decay", 0.0.into()),
                ("trustmin", 0.2.into()),
                ("trustmax", 3.0.into()),
            ]);
            o.add(
                1,
                ps[3..].iter().map(Tensor::shallow_clone).collect(),
                &[],
                &second,
            )
            .expect("add");
            let groups: Vec<(std::ops::Range<usize>, super::Lamb)> = o
                .groups
                .iter()
                .zip([0..3, 3..6])
                .map(|(g, r)| match &g.settings {
                    Settings::Lamb(s) => (r, s.clone()),
                    _ => unreachable!(),
                })
                .collect();
            let mut states: Vec<ParamState> = refs.iter().map(|_| ParamState::default()).collect();
            for t in 0..8 {
                set_grads(&ps, t as f64);
                set_grads(&refs, t as f64);
                o.step().expect("step");
                let _g = tch::no_grad_guard();
                let clip = reference_clip(&refs);
                for (r, s) in &groups {
                    let c = Some(&clip).filter(|_| s.globalnorm);
                    for i in r.clone() {
                        s.single(&refs[i], &mut states[i], c).expect("single");
                    }
                }
            }
            // assert_close reduces with max, which a zero-size tensor has none of
            let sized = |xs: &[Tensor]| -> Vec<Tensor> {
                xs.iter()
                    .filter(|x| x.numel() > 0)
                    .map(Tensor::shallow_clone)
                    .collect()
            };
            assert_close(&sized(&ps), &sized(&refs), 1e-6);
            assert_eq!(ps[4].size(), [0, 4]);
            assert_close(&ps[5..], &[Tensor::from_slice(&[1.0f32, 2.0])], 0.0);
            let st: Vec<&ParamState> = o.groups.iter().flat_map(|g| g.state.iter()).collect();
            for (i, (a, b)) in st.iter().zip(&states).enumerate() {
                assert_eq!(a.step, b.step, "step count of parameter {i}");
                for name in ["exp_avg", "exp_avg_sq"] {
                    match (a.get(name), b.get(name)) {
                        (Some(x), Some(y)) => assert_close(&sized(&[x]), &sized(&[y]), 1e-6),
                        (x, y) => assert_eq!(x.is_some(), y.is_some(), "{name} of {i}"),
                    }
                }
            }
            assert_eq!(st[5].step, 0, "no gradient, no step");
            assert!(st[..5].iter().all(|s| s.step == 8), "step counts");
        }
    }
}
