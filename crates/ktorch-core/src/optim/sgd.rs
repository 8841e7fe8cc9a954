//! Stochastic gradient descent with momentum, dampening, weight decay and nesterov.

use tch::Tensor;

use super::fused::{self, Bucket};
use super::ops::{add_scaled, add_scaled_, add_scaled_kept_, copy_of, grad_of, nonneg, ParamState};
use crate::args::Args;
use crate::error::{err, Result};
use crate::value::Value;

/// Setting names in positional order.
pub(super) const NAMES: &[&str] = &["lr", "momentum", "dampening", "decay", "nesterov"];

/// sgd settings: lr=.01, momentum=0, dampening=0, decay=0, nesterov=false.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Sgd {
    pub(super) lr: f64,
    momentum: f64,
    dampening: f64,
    decay: f64,
    nesterov: bool,
}

impl Default for Sgd {
    fn default() -> Self {
        Sgd {
            lr: 0.01,
            momentum: 0.0,
            dampening: 0.0,
            decay: 0.0,
            nesterov: false,
        }
    }
}

impl Sgd {
    /// `self` overridden by the given settings, checked as torch.optim.SGD does.
    pub(super) fn parse(&self, a: &Args) -> Result<Sgd> {
        let f = a.kind();
        let s = Sgd {
            lr: nonneg("lr", a.float("lr", self.lr)?)?,
            momentum: nonneg("momentum", a.float("momentum", self.momentum)?)?,
            dampening: a.float("dampening", self.dampening)?,
            decay: nonneg("decay", a.float("decay", self.decay)?)?,
            nesterov: a.bool("nesterov", self.nesterov)?,
        };
        if s.nesterov && (s.momentum <= 0.0 || s.dampening != 0.0) {
            return Err(err(
                f,
                "nesterov momentum requires a momentum and zero dampening",
            ));
        }
        Ok(s)
    }

    pub(super) fn values(&self) -> Vec<(&'static str, Value)> {
        vec![
            ("lr", self.lr.into()),
            ("momentum", self.momentum.into()),
            ("dampening", self.dampening.into()),
            ("decay", self.decay.into()),
            ("nesterov", self.nesterov.into()),
        ]
    }

    /// One step for every parameter with a gradient: libtorch's fused kernel for those it
    /// takes ([`fused::split`]), `_single_tensor_sgd` for the others.
    pub(super) fn step(&self, params: &[Tensor], state: &mut [ParamState]) -> Result<()> {
        fused::step_split(
            params,
            state,
            false,
            |b, s| self.fused(b, s),
            |p, s| self.single(p, s),
        )
    }

    /// torch.optim.sgd `_fused_sgd` for one device and dtype. torch.optim makes the
    /// momentum buffers on the first step of all parameters at once (`is_first_step`);
    /// here parameters that have a buffer and those that do not yet go in separate calls.
    fn fused(&self, b: &Bucket, state: &mut [ParamState]) -> Result<()> {
        let s = ktorch_shim::SgdSettings {
            weight_decay: self.decay,
            momentum: self.momentum,
            lr: self.lr,
            dampening: self.dampening,
            nesterov: self.nesterov,
            maximize: false,
        };
        if self.momentum == 0.0 {
            return Ok(ktorch_shim::fused_sgd_(
                &b.params,
                &b.grads,
                &[] as &[Tensor],
                &s,
                false,
            )?);
        }
        // the parameters without a buffer yet get one, and a call of their own
        let fresh: Vec<usize> = (0..b.idx.len())
            .filter(|&k| !state[b.idx[k]].has("momentum_buffer"))
            .collect();
        if !fresh.is_empty() {
            let (mut np, mut ng, mut nb) = (Vec::new(), Vec::new(), Vec::new());
            for &k in &fresh {
                let buf = b.grads[k].f_empty_like()?;
                nb.push(buf.shallow_clone());
                state[b.idx[k]].set("momentum_buffer", buf);
                np.push(b.params[k]);
                ng.push(&b.grads[k]);
            }
            ktorch_shim::fused_sgd_(&np, &ng, &nb, &s, true)?;
        }
        if fresh.len() < b.idx.len() {
            let (mut op, mut og, mut ob) = (Vec::new(), Vec::new(), Vec::new());
            for (k, &i) in b.idx.iter().enumerate() {
                if fresh.contains(&k) {
                    continue;
                }
                op.push(b.params[k]);
                og.push(&b.grads[k]);
                ob.push(
                    state[i]
                        .get_ref("momentum_buffer")
                        .ok_or_else(|| crate::error::invalid("momentum buffer missing"))?,
                );
            }
            ktorch_shim::fused_sgd_(&op, &og, &ob, &s, false)?;
        }
        Ok(())
    }

    /// torch.optim.sgd `_single_tensor_sgd` for one parameter.
    pub(super) fn single(&self, p: &Tensor, st: &mut ParamState) -> Result<()> {
        let Some(mut grad) = grad_of(p)? else {
            return Ok(());
        };
        if self.decay != 0.0 {
            grad = add_scaled(&grad, p, self.decay)?;
        }
        if self.momentum != 0.0 {
            let buf = match st.get("momentum_buffer") {
                None => {
                    let b = copy_of(&grad)?;
                    st.set("momentum_buffer", b.shallow_clone());
                    b
                }
                Some(mut b) => {
                    let _ = b.f_mul_scalar_(self.momentum)?;
                    add_scaled_(&mut b, &grad, 1.0 - self.dampening)?;
                    b
                }
            };
            grad = if self.nesterov {
                add_scaled(&grad, &buf, self.momentum)?
            } else {
                buf
            };
        }
        add_scaled_kept_(&mut p.shallow_clone(), &grad, -self.lr, st, "-lr")
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{check, kws};
    use crate::value::Value;

    #[test]
    fn plain() {
        check("sgd", &[0.1.into()], &[], 5, |_, p, g, _| p - 0.1 * g);
    }

    #[test]
    fn momentum_dampening_decay() {
        let (lr, m, damp, wd) = (0.05, 0.9, 0.1, 0.01);
        let pos: Vec<Value> = vec![lr.into(), m.into(), damp.into(), wd.into()];
        check("sgd", &pos, &[], 6, |t, p, g, st| {
            let g = g + wd * p;
            let b = if t == 1 {
                g.copy()
            } else {
                m * &st[0] + (1.0 - damp) * &g
            };
            *st = vec![b.copy()];
            p - lr * b
        });
    }

    #[test]
    fn nesterov() {
        let (lr, m) = (0.05, 0.8);
        let kw = kws(&[("momentum", m.into()), ("nesterov", true.into())]);
        check("sgd", &[lr.into()], &kw, 6, |t, p, g, st| {
            let b = if t == 1 { g.copy() } else { m * &st[0] + g };
            *st = vec![b.copy()];
            p - lr * (g + m * b)
        });
    }
}
