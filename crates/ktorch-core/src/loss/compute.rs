//! The forward calculation of each loss: argument checks, target conversions, libtorch calls.

use tch::{Kind, Tensor};

use super::settings::Setting;
use super::Reduce;
use crate::bail;
use crate::error::Result;

/// Checks the targets `y` (all of a pass's, or one batch's) against output `x`
/// as [`forward`] does: class indices within the output's classes, probabilities
/// within [0, 1]. Reads the device once.
pub(super) fn check_targets(f: &str, s: &Setting, x: &[Tensor], y: &[Tensor]) -> Result<()> {
    use Setting::*;
    let (Some(x), Some(y)) = (x.first(), y.first()) else {
        return Ok(());
    };
    match s {
        // class indices (class probabilities of the output's size need no check)
        Ce { ignore, .. } if !(y.is_floating_point() && y.size().get(1..) == x.size().get(1..)) => {
            let c = classes_dim1(f, x)?;
            let y = class_targets(f, y, " (or class probabilities of the output's size)")?;
            check_range(f, &y, 0, c, Some(*ignore))?;
        }
        Nll { ignore, .. } => {
            let c = classes_dim1(f, x)?;
            check_range(f, &class_targets(f, y, "")?, 0, c, Some(*ignore))?;
        }
        Bce { .. } => unit(f, y, "target")?,
        MultiLabel => {
            let c = x.size().last().copied().unwrap_or(1);
            check_range(f, &class_targets(f, y, "")?, -1, c, None)?;
        }
        _ => {}
    }
    Ok(())
}

/// Computes loss `f` with settings `s`; libtorch errors come back without the name.
/// With `trusted`, the targets were checked already ([`check_targets`]): no
/// range check reads the device (the output of bce is still checked on CUDA,
/// where libtorch asserts rather than raises).
pub(super) fn forward(
    f: &str,
    s: &Setting,
    reduce: Option<Reduce>,
    x: &[Tensor],
    y: &[Tensor],
    trusted: bool,
) -> Result<Tensor> {
    if x.iter().chain(y).any(|t| !t.defined()) {
        bail!(f, "undefined tensor given");
    }
    let r = reduce.unwrap_or(Reduce::None);
    let red = r.torch();
    use Setting::*;
    Ok(match s {
        Ce {
            weight,
            ignore,
            smoothing,
        } => {
            let (x, y) = pair(f, x, y)?;
            let c = classes_dim1(f, x)?;
            let y = if y.is_floating_point() && y.size() == x.size() {
                like(y, x)?
            } else {
                let y = class_targets(f, y, " (or class probabilities of the output's size)")?;
                if !trusted {
                    check_range(f, &y, 0, c, Some(*ignore))?;
                }
                y
            };
            x.f_cross_entropy_loss(&y, fit(weight, x)?.as_ref(), red, *ignore, *smoothing)?
        }
        Nll { weight, ignore } => {
            let (x, y) = pair(f, x, y)?;
            let c = classes_dim1(f, x)?;
            let y = class_targets(f, y, "")?;
            if !trusted {
                check_range(f, &y, 0, c, Some(*ignore))?;
            }
            x.f_nll_loss(&y, fit(weight, x)?.as_ref(), red, *ignore)?
        }
        Bce { weight } => {
            let (x, y, w) = weighted(f, x, y)?;
            let w = match (fit(weight, x)?, w) {
                (Some(a), Some(b)) => Some(a.f_mul(&b)?),
                (a, b) => a.or(b),
            };
            let w = w.map(|w| w.f_expand_as(x)).transpose()?;
            if !trusted || x.device() != tch::Device::Cpu {
                unit(f, x, "output")?;
            }
            if !trusted {
                unit(f, &y, "target")?;
            }
            x.f_binary_cross_entropy(&y, w.as_ref(), red)?
        }
        BceLogits { pos_weight } => {
            let (x, y, w) = weighted(f, x, y)?;
            x.f_binary_cross_entropy_with_logits(&y, w.as_ref(), fit(pos_weight, x)?.as_ref(), red)?
        }
        MultiSoft { weight } => {
            let (x, y) = same(f, x, y)?;
            multisoft(f, x, &y, fit(weight, x)?.as_ref(), r)?
        }
        Mse => {
            let (x, y) = same(f, x, y)?;
            x.f_mse_loss(&y, red)?
        }
        L1 => {
            let (x, y) = same(f, x, y)?;
            x.f_l1_loss(&y, red)?
        }
        Kl { log } => {
            let (x, y) = pair(f, x, y)?;
            let l = x.f_kl_div(&like(y, x)?, red, *log)?;
            match (r, x.size().first()) {
                (Reduce::BatchMean, Some(n)) => l.f_div_scalar(*n)?,
                _ => l,
            }
        }
        MultiLabel => {
            let (x, y) = pair(f, x, y)?;
            let c = x.size().last().copied().unwrap_or(1);
            let y = class_targets(f, y, "")?;
            if !trusted {
                check_range(f, &y, -1, c, None)?;
            }
            x.f_multilabel_margin_loss(&y, red)?
        }
        SoftMargin => {
            let (x, y) = same(f, x, y)?;
            x.f_soft_margin_loss(&y, red)?
        }
        SmoothL1 { beta } => {
            let (x, y) = same(f, x, y)?;
            x.f_smooth_l1_loss(&y, red, *beta)?
        }
        Huber { delta } => {
            let (x, y) = same(f, x, y)?;
            x.f_huber_loss(&y, red, *delta)?
        }
        Hinge { margin } => {
            let (x, y) = pair(f, x, y)?;
            x.f_hinge_embedding_loss(&like(y, x)?, *margin, red)?
        }
        CosineLoss { margin } => {
            let [a, b, t] = spread::<3>(f, x, y, "input1, input2, target")?;
            Tensor::f_cosine_embedding_loss(a, b, &like(t, a)?, *margin, red)?
        }
        Margin { margin } => {
            let [a, b, t] = spread::<3>(f, x, y, "input1, input2, target")?;
            Tensor::f_margin_ranking_loss(a, b, &like(t, a)?, *margin, red)?
        }
        MultiMargin { p, margin, weight } => {
            let (x, y) = pair(f, x, y)?;
            multimargin(f, x, y, *p, *margin, fit(weight, x)?.as_ref(), r)?
        }
        Triplet {
            margin,
            p,
            eps,
            swap,
        } => {
            let [a, b, c] = spread::<3>(f, x, y, "anchor, positive, negative")?;
            Tensor::f_triplet_margin_loss(a, b, c, *margin, *p, *eps, *swap, red)?
        }
        Poisson { log, full, eps } => {
            let (x, y) = pair(f, x, y)?;
            x.f_poisson_nll_loss(&like(y, x)?, *log, *full, *eps, red)?
        }
        Ctc { blank, zeroinf } => {
            let [lp, t, il, tl] =
                spread::<4>(f, x, y, "log_probs, targets, input_lengths, target_lengths")?;
            ctc(f, lp, t, il, tl, *blank, *zeroinf, red)?
        }
        Pairwise { p, eps, keepdim } => {
            let [a, b] = spread::<2>(f, x, y, "x1, x2")?;
            Tensor::f_pairwise_distance(a, b, *p, *eps, *keepdim)?
        }
        Similar { dim, eps } => {
            let [a, b] = spread::<2>(f, x, y, "x1, x2")?;
            Tensor::f_cosine_similarity(a, b, *dim, *eps)?
        }
    })
}

/// One output and one target.
fn pair<'a>(f: &str, x: &'a [Tensor], y: &'a [Tensor]) -> Result<(&'a Tensor, &'a Tensor)> {
    match (x, y) {
        ([x], [y]) => Ok((x, y)),
        _ => bail!(
            f,
            "expects 1 output and 1 target, given {} and {}",
            x.len(),
            y.len()
        ),
    }
}

/// One output and one target of the same size, in the output's dtype.
fn same<'a>(f: &str, x: &'a [Tensor], y: &'a [Tensor]) -> Result<(&'a Tensor, Tensor)> {
    let (x, y) = pair(f, x, y)?;
    same_size(f, x, y)?;
    Ok((x, like(y, x)?))
}

fn same_size(f: &str, x: &Tensor, y: &Tensor) -> Result<()> {
    if x.size() != y.size() {
        bail!(
            f,
            "output size {:?} does not match target size {:?}",
            x.size(),
            y.size()
        );
    }
    Ok(())
}

/// One output, its target and an optional batch weight (bce, bcelogits).
fn weighted<'a>(
    f: &str,
    x: &'a [Tensor],
    y: &'a [Tensor],
) -> Result<(&'a Tensor, Tensor, Option<Tensor>)> {
    let (x, y, w) = match (x, y) {
        ([x], [y]) => (x, y, None),
        ([x], [y, w]) => (x, y, Some(w)),
        _ => bail!(
            f,
            "expects 1 output and 1-2 targets (target, batch weight), given {} and {}",
            x.len(),
            y.len()
        ),
    };
    same_size(f, x, y)?;
    Ok((x, like(y, x)?, w.map(|w| like(w, x)).transpose()?))
}

/// `N` tensors given as outputs then targets, with at least one output.
fn spread<'a, const N: usize>(
    f: &str,
    x: &'a [Tensor],
    y: &'a [Tensor],
    what: &str,
) -> Result<[&'a Tensor; N]> {
    let all: Vec<&Tensor> = x.iter().chain(y).collect();
    match <[&Tensor; N]>::try_from(all) {
        Ok(a) if !x.is_empty() => Ok(a),
        _ => bail!(
            f,
            "expects {N} tensors ({what}) as outputs then targets, given {} and {}",
            x.len(),
            y.len()
        ),
    }
}

/// `t` in the dtype of a floating output `x`.
fn like(t: &Tensor, x: &Tensor) -> Result<Tensor> {
    let k = x.f_kind()?;
    if x.is_floating_point() && t.f_kind()? != k {
        Ok(t.f_to_kind(k)?)
    } else {
        Ok(t.shallow_clone())
    }
}

/// A setting's weight on the output's device, in its dtype.
fn fit(w: &Option<Tensor>, x: &Tensor) -> Result<Option<Tensor>> {
    match w {
        None => Ok(None),
        Some(w) => {
            let k = if x.is_floating_point() {
                x.f_kind()?
            } else {
                w.f_kind()?
            };
            Ok(Some(w.f_to_device_(x.device(), k, false, false)?))
        }
    }
}

/// Class targets as long integers; floating targets are refused.
fn class_targets(f: &str, y: &Tensor, alt: &str) -> Result<Tensor> {
    match y.f_kind()? {
        Kind::Int64 => Ok(y.shallow_clone()),
        Kind::Bool | Kind::Uint8 | Kind::Int8 | Kind::Int16 | Kind::Int => {
            Ok(y.f_to_kind(Kind::Int64)?)
        }
        k => bail!(f, "expects integer class targets{alt}, given {k:?}"),
    }
}

/// Classes on dim 1 (dim 0 for a single sample): ce, nll.
fn classes_dim1(f: &str, x: &Tensor) -> Result<i64> {
    match x.size().as_slice() {
        [] => bail!(
            f,
            "expects an output of class scores with 1 or more dimensions, given a scalar"
        ),
        [c] => Ok(*c),
        [_, c, ..] => Ok(*c),
    }
}

/// Probabilities must lie in [0, 1]: on a GPU libtorch asserts on the device.
fn unit(f: &str, t: &Tensor, what: &str) -> Result<()> {
    let inside = t.f_ge(0.0)?.f_logical_and(&t.f_le(1.0)?)?;
    if !flag(&inside.f_all()?)? {
        bail!(f, "all elements of the {what} should be between 0 and 1");
    }
    Ok(())
}

fn flag(t: &Tensor) -> Result<bool> {
    Ok(t.f_int64_value(&[])? != 0)
}

/// Class targets must lie in `lo..hi` (or equal `ignore`): out of range, libtorch
/// reads out of bounds or trips a device assertion that ends the process.
fn check_range(f: &str, y: &Tensor, lo: i64, hi: i64, ignore: Option<i64>) -> Result<()> {
    let mut bad = y.f_lt(lo)?.f_logical_or(&y.f_ge(hi)?)?;
    if let Some(i) = ignore {
        bad = bad.f_logical_and(&y.f_ne(i)?)?;
    }
    if flag(&bad.f_any()?)? {
        let v = y
            .f_masked_select(&bad)?
            .f_reshape([-1])?
            .f_int64_value(&[0])?;
        let also = ignore.map_or(String::new(), |i| format!(" or {i}"));
        bail!(
            f,
            "target {v} out of range, expecting {lo} to {}{also}",
            hi - 1
        );
    }
    Ok(())
}

/// PyTorch's `multilabel_soft_margin_loss`, spelled out as it is there.
fn multisoft(f: &str, x: &Tensor, y: &Tensor, w: Option<&Tensor>, r: Reduce) -> Result<Tensor> {
    let c = match x.size().last() {
        Some(c) => *c,
        None => bail!(
            f,
            "expects an output with 1 or more dimensions, given a scalar"
        ),
    };
    let pos = y.f_mul(&x.f_log_sigmoid()?)?;
    let neg = y
        .f_neg()?
        .f_add_scalar(1.0)?
        .f_mul(&x.f_neg()?.f_log_sigmoid()?)?;
    let mut l = pos.f_add(&neg)?.f_neg()?;
    if let Some(w) = w {
        l = l.f_mul(w)?;
    }
    let l = l
        .f_sum_dim_intlist([-1i64].as_slice(), false, None::<Kind>)?
        .f_div_scalar(c)?;
    reduced(l, r)
}

/// PyTorch's `multi_margin_loss` (tch has no binding for its forward):
/// per sample, `sum over j != y of w[y] * max(0, margin - x[y] + x[j])^p / C`.
fn multimargin(
    f: &str,
    x: &Tensor,
    y: &Tensor,
    p: i64,
    margin: f64,
    w: Option<&Tensor>,
    r: Reduce,
) -> Result<Tensor> {
    let (x2, c) = match x.size().as_slice() {
        [c] => (x.f_unsqueeze(0)?, *c),
        [_, c] => (x.shallow_clone(), *c),
        s => bail!(
            f,
            "expects an output of 1 or 2 dimensions, given {}",
            s.len()
        ),
    };
    let n = x2.size()[0];
    if c == 0 {
        bail!(f, "expects an output with at least one class");
    }
    let y = class_targets(f, y, "")?;
    if y.dim() > 1 || y.numel() as i64 != n {
        bail!(
            f,
            "expects {n} target(s) in a vector, given size {:?}",
            y.size()
        );
    }
    check_range(f, &y, 0, c, None)?;
    if let Some(w) = w {
        if w.numel() as i64 != c {
            bail!(f, "expects {c} class weights, given {}", w.numel());
        }
    }
    let idx = y.f_reshape([n, 1])?;
    let z = x2
        .f_sub(&x2.f_gather(1, &idx, false)?)?
        .f_add_scalar(margin)?
        .f_clamp_min(0.0)?;
    let mut z = if p == 2 { z.f_square()? } else { z };
    if let Some(w) = w {
        z = z.f_mul(&w.f_index_select(0, &y.f_reshape([-1])?)?.f_unsqueeze(1)?)?;
    }
    let l = z
        .f_scatter_value(1, &idx, 0.0)?
        .f_sum_dim_intlist([1i64].as_slice(), false, None::<Kind>)?
        .f_div_scalar(c)?;
    match r {
        Reduce::None if x.dim() == 1 => Ok(l.f_reshape(y.size())?),
        _ => reduced(l, r),
    }
}

fn reduced(l: Tensor, r: Reduce) -> Result<Tensor> {
    Ok(match r {
        Reduce::None => l,
        Reduce::Mean => l.f_mean(None::<Kind>)?,
        Reduce::Sum | Reduce::BatchMean => l.f_sum(None::<Kind>)?,
    })
}

/// Connectionist temporal classification: lengths become long integers and
/// the targets that the lengths select are checked against the classes, since
/// libtorch reads the log probabilities at unchecked target indices.
#[allow(clippy::too_many_arguments)]
fn ctc(
    f: &str,
    lp: &Tensor,
    t: &Tensor,
    il: &Tensor,
    tl: &Tensor,
    blank: i64,
    zeroinf: bool,
    red: tch::Reduction,
) -> Result<Tensor> {
    let (n, c) = match lp.size().as_slice() {
        [_, c] => (None, *c),
        [_, n, c] => (Some(*n), *c),
        s => bail!(
            f,
            "expects log_probs of 2 or 3 dimensions (time, batch, class), given {}",
            s.len()
        ),
    };
    if blank >= c {
        bail!(f, "blank {blank} out of range for {c} classes");
    }
    let t = class_targets(f, t, "")?;
    let il = class_targets(f, il, "")?;
    let tl = class_targets(f, tl, "")?;
    let want = n.unwrap_or(1);
    for (what, l) in [("input", &il), ("target", &tl)] {
        if l.dim() > 1 || l.numel() as i64 != want {
            bail!(
                f,
                "expects {want} {what} length(s) in a vector, given size {:?}",
                l.size()
            );
        }
    }
    let lens = Vec::<i64>::try_from(&tl.f_to(tch::Device::Cpu)?.f_reshape([-1])?)?;
    if let Some(v) = lens.iter().find(|v| **v < 0) {
        bail!(f, "target lengths must be non-negative, given {v}");
    }
    // the targets that the lengths select
    let used = match t.size().as_slice() {
        [s] => {
            let total: i64 = if n.is_some() {
                lens.iter().sum()
            } else {
                lens[0]
            };
            t.f_narrow(0, 0, total.min(*s))?
        }
        [rows, s] if n.is_some() && *rows == want => {
            let cols = Tensor::f_arange(*s, (Kind::Int64, t.device()))?.f_unsqueeze(0)?;
            let keep = cols.f_lt_tensor(&tl.f_reshape([-1, 1])?.f_to(t.device())?)?;
            t.f_masked_select(&keep)?
        }
        s => bail!(
            f,
            "targets of size {s:?} do not fit log_probs of size {:?}",
            lp.size()
        ),
    };
    check_range(f, &used, 0, c, None)?;
    Ok(Tensor::f_ctc_loss_tensor(
        lp, &t, &il, &tl, blank, red, zeroinf,
    )?)
}
