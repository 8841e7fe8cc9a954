//! The strong-Wolfe line search of lbfgs, ported from torch/optim/lbfgs.py.
//!
//! PyTorch mixes Python floats and 0-dim tensors here; [`N`] follows which is which.

use tch::Tensor;

use super::ops::copy_of;
use crate::error::Result;

/// A scalar of the line search as PyTorch holds it: a Python float, or a 0-dim
/// tensor of the parameters' dtype (`single`: float32), whose arithmetic and
/// comparisons run in that dtype. Tracking which is which keeps the search's
/// decisions and steps bit for bit those of torch.optim.LBFGS.
#[derive(Debug, Clone, Copy)]
pub(super) struct N {
    pub(super) v: f64,
    tensor: bool,
    single: bool,
}

impl N {
    /// A Python float.
    pub(super) fn py(v: f64) -> N {
        N {
            v,
            tensor: false,
            single: false,
        }
    }

    /// A 0-dim tensor holding `v` (already a value of its dtype).
    pub(super) fn tensor(v: f64, single: bool) -> N {
        N {
            v,
            tensor: true,
            single,
        }
    }

    /// Both operands as the binary op sees them, and the result's kind.
    fn operands(self, o: N) -> (f64, f64, bool, bool) {
        let tensor = self.tensor || o.tensor;
        let single = tensor && (self.single || o.single);
        let r = |x: f64| if single { x as f32 as f64 } else { x };
        (r(self.v), r(o.v), tensor, single)
    }

    fn op(self, o: N, f: impl Fn(f64, f64) -> f64) -> N {
        let (a, b, tensor, single) = self.operands(o);
        let v = f(a, b);
        N {
            v: if single { v as f32 as f64 } else { v },
            tensor,
            single,
        }
    }

    fn add(self, o: N) -> N {
        self.op(o, |a, b| a + b)
    }
    fn sub(self, o: N) -> N {
        self.op(o, |a, b| a - b)
    }
    fn mul(self, o: N) -> N {
        self.op(o, |a, b| a * b)
    }
    fn div(self, o: N) -> N {
        self.op(o, |a, b| a / b)
    }
    fn gt(self, o: N) -> bool {
        let (a, b, _, _) = self.operands(o);
        a > b
    }
    fn lt(self, o: N) -> bool {
        o.gt(self)
    }
    fn ge(self, o: N) -> bool {
        let (a, b, _, _) = self.operands(o);
        a >= b
    }
    fn le(self, o: N) -> bool {
        o.ge(self)
    }
    fn abs(self) -> N {
        N {
            v: self.v.abs(),
            ..self
        }
    }
    fn sqrt(self) -> N {
        let v = self.v.sqrt();
        N {
            v: if self.single { v as f32 as f64 } else { v },
            ..self
        }
    }
}

fn py(v: f64) -> N {
    N::py(v)
}

/// Python's `max(a, b)`: `a` unless `b > a`.
fn py_max(a: N, b: N) -> N {
    if b.gt(a) {
        b
    } else {
        a
    }
}

/// Python's `min(a, b)`: `a` unless `b < a`.
fn py_min(a: N, b: N) -> N {
    if b.lt(a) {
        b
    } else {
        a
    }
}

/// `_cubic_interpolate`: the minimiser of the cubic through two points with
/// their slopes, clamped to `bounds` (by default the interval of the points).
pub(super) fn cubic_interpolate(
    (x1, f1, g1): (N, N, N),
    (x2, f2, g2): (N, N, N),
    bounds: Option<(N, N)>,
) -> N {
    let (xmin_bound, xmax_bound) = bounds.unwrap_or(if x1.le(x2) { (x1, x2) } else { (x2, x1) });
    let d1 = g1.add(g2).sub(py(3.0).mul(f1.sub(f2)).div(x1.sub(x2)));
    let d2_square = d1.mul(d1).sub(g1.mul(g2));
    if d2_square.ge(py(0.0)) {
        let d2 = d2_square.sqrt();
        let min_pos = if x1.le(x2) {
            x2.sub(
                x2.sub(x1)
                    .mul(g2.add(d2).sub(d1).div(g2.sub(g1).add(py(2.0).mul(d2)))),
            )
        } else {
            x1.sub(
                x1.sub(x2)
                    .mul(g1.add(d2).sub(d1).div(g1.sub(g2).add(py(2.0).mul(d2)))),
            )
        };
        py_min(py_max(min_pos, xmin_bound), xmax_bound)
    } else {
        xmin_bound.add(xmax_bound).div(py(2.0))
    }
}

/// The result of a line search: loss, flat gradient, step and evaluations used.
pub(super) struct Found {
    pub(super) loss: f64,
    pub(super) grad: Tensor,
    pub(super) t: N,
    pub(super) evals: i64,
}

/// A bracket: steps, losses, gradients and directional derivatives.
type Bracket = (Vec<N>, Vec<N>, Vec<Tensor>, Vec<N>);

/// `_strong_wolfe` with c1=1e-4, c2=0.9, tolerance_change=1e-9 (PyTorch passes
/// none of them from the optimizer settings). `obj(t)` evaluates loss and flat
/// gradient at `x + t * d` and restores `x`; `gtd` is `g . d`.
pub(super) fn strong_wolfe(
    obj: &mut dyn FnMut(f64) -> Result<(f64, Tensor)>,
    mut t: N,
    d: &Tensor,
    f: f64,
    g: &Tensor,
    gtd: N,
    max_ls: i64,
) -> Result<Found> {
    let single = d.kind() == tch::Kind::Float;
    let dot = |g: &Tensor| -> Result<N> { Ok(N::tensor(g.f_dot(d)?.f_double_value(&[])?, single)) };
    let (c1, c2, tolerance_change) = (py(1e-4), py(-0.9), py(1e-9));
    let f = py(f);
    let d_norm = N::tensor(d.f_abs()?.f_max()?.f_double_value(&[])?, single);
    let g = copy_of(g)?;
    let eval = |obj: &mut dyn FnMut(f64) -> Result<(f64, Tensor)>, t: N| -> Result<(N, Tensor)> {
        let (l, g) = obj(t.v)?;
        Ok((py(l), g))
    };
    let (mut f_new, mut g_new) = eval(obj, t)?;
    let mut evals = 1;
    let mut gtd_new = dot(&g_new)?;
    let (mut t_prev, mut f_prev, mut g_prev, mut gtd_prev) = (py(0.0), f, g.shallow_clone(), gtd);
    let mut done = false;
    let mut ls_iter = 0;
    let mut found: Option<Bracket> = None;
    while ls_iter < max_ls {
        // check conditions
        if f_new.gt(f.add(c1.mul(t).mul(gtd))) || (ls_iter > 1 && f_new.ge(f_prev)) {
            found = Some((
                vec![t_prev, t],
                vec![f_prev, f_new],
                vec![g_prev, copy_of(&g_new)?],
                vec![gtd_prev, gtd_new],
            ));
            break;
        }
        if gtd_new.abs().le(c2.mul(gtd)) {
            found = Some((
                vec![t],
                vec![f_new],
                vec![g_new.shallow_clone()],
                vec![gtd_new],
            ));
            done = true;
            break;
        }
        if gtd_new.ge(py(0.0)) {
            found = Some((
                vec![t_prev, t],
                vec![f_prev, f_new],
                vec![g_prev, copy_of(&g_new)?],
                vec![gtd_prev, gtd_new],
            ));
            break;
        }
        // interpolate
        let min_step = t.add(py(0.01).mul(t.sub(t_prev)));
        let max_step = t.mul(py(10.0));
        let tmp = t;
        t = cubic_interpolate(
            (t_prev, f_prev, gtd_prev),
            (t, f_new, gtd_new),
            Some((min_step, max_step)),
        );
        // next step
        t_prev = tmp;
        f_prev = f_new;
        g_prev = copy_of(&g_new)?;
        gtd_prev = gtd_new;
        (f_new, g_new) = eval(obj, t)?;
        evals += 1;
        gtd_new = dot(&g_new)?;
        ls_iter += 1;
    }
    // reached max number of iterations?
    let (mut bracket, mut bracket_f, mut bracket_g, mut bracket_gtd) = match found {
        Some(b) if ls_iter != max_ls => b,
        _ => (
            vec![py(0.0), t],
            vec![f, f_new],
            vec![g, g_new.shallow_clone()],
            vec![gtd, gtd_new],
        ),
    };

    // zoom phase: a point satisfying the criteria lies in the bracket
    let mut insuf_progress = false;
    let order = |bf: &[N]| {
        if bf[0].le(bf[bf.len() - 1]) {
            (0, 1)
        } else {
            (1, 0)
        }
    };
    let (mut low_pos, mut high_pos) = order(&bracket_f);
    while !done && ls_iter < max_ls {
        // line-search bracket is so small
        if bracket[1]
            .sub(bracket[0])
            .abs()
            .mul(d_norm)
            .lt(tolerance_change)
        {
            break;
        }
        // compute new trial value
        t = cubic_interpolate(
            (bracket[0], bracket_f[0], bracket_gtd[0]),
            (bracket[1], bracket_f[1], bracket_gtd[1]),
            None,
        );
        let (bmax, bmin) = (
            py_max(bracket[0], bracket[1]),
            py_min(bracket[0], bracket[1]),
        );
        let eps = py(0.1).mul(bmax.sub(bmin));
        if py_min(bmax.sub(t), t.sub(bmin)).lt(eps) {
            // interpolation close to boundary
            if insuf_progress || t.ge(bmax) || t.le(bmin) {
                // evaluate at 0.1 away from boundary
                t = if t.sub(bmax).abs().lt(t.sub(bmin).abs()) {
                    bmax.sub(eps)
                } else {
                    bmin.add(eps)
                };
                insuf_progress = false;
            } else {
                insuf_progress = true;
            }
        } else {
            insuf_progress = false;
        }
        // evaluate new point
        (f_new, g_new) = eval(obj, t)?;
        evals += 1;
        gtd_new = dot(&g_new)?;
        ls_iter += 1;
        if f_new.gt(f.add(c1.mul(t).mul(gtd))) || f_new.ge(bracket_f[low_pos]) {
            // Armijo condition not satisfied or not lower than lowest point
            bracket[high_pos] = t;
            bracket_f[high_pos] = f_new;
            bracket_g[high_pos] = copy_of(&g_new)?;
            bracket_gtd[high_pos] = gtd_new;
            (low_pos, high_pos) = order(&bracket_f);
        } else {
            if gtd_new.abs().le(c2.mul(gtd)) {
                // Wolfe conditions satisfied
                done = true;
            } else if gtd_new
                .mul(bracket[high_pos].sub(bracket[low_pos]))
                .ge(py(0.0))
            {
                // old high becomes new low
                bracket[high_pos] = bracket[low_pos];
                bracket_f[high_pos] = bracket_f[low_pos];
                bracket_g[high_pos] = bracket_g[low_pos].shallow_clone();
                bracket_gtd[high_pos] = bracket_gtd[low_pos];
            }
            // new point becomes new low
            bracket[low_pos] = t;
            bracket_f[low_pos] = f_new;
            bracket_g[low_pos] = copy_of(&g_new)?;
            bracket_gtd[low_pos] = gtd_new;
        }
    }
    Ok(Found {
        loss: bracket_f[low_pos].v,
        grad: bracket_g[low_pos].shallow_clone(),
        t: bracket[low_pos],
        evals,
    })
}
