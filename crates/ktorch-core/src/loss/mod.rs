//! Loss functions: the 21 losses of the original, built from a name and settings.
//!
//! | loss | PyTorch | settings (positional order, defaults) | tensors: outputs `x`, targets `y` |
//! |---|---|---|---|
//! | `ce` | `cross_entropy` | weight, ignore=-100, smoothing=0, reduce | `[input]`, `[target]` |
//! | `nll` | `nll_loss` | weight, ignore=-100, reduce | `[input]`, `[target]` |
//! | `bce` | `binary_cross_entropy` | weight, reduce | `[input]`, `[target]` or `[target, weight]` |
//! | `bcelogits` | `binary_cross_entropy_with_logits` | weight (the pos_weight), reduce | `[input]`, `[target]` or `[target, weight]` |
//! | `multisoft` | `multilabel_soft_margin_loss` | weight, reduce | `[input]`, `[target]` |
//! | `mse` | `mse_loss` | reduce | `[input]`, `[target]` |
//! | `l1` | `l1_loss` | reduce | `[input]`, `[target]` |
//! | `kl` | `kl_div` | log=false (log target), reduce (also `batchmean`) | `[input]`, `[target]` |
//! | `multilabel` | `multilabel_margin_loss` | reduce | `[input]`, `[target]` |
//! | `softmargin` | `soft_margin_loss` | reduce | `[input]`, `[target]` |
//! | `smoothl1` | `smooth_l1_loss` | beta=1, reduce | `[input]`, `[target]` |
//! | `huber` | `huber_loss` | delta=1, reduce | `[input]`, `[target]` |
//! | `hinge` | `hinge_embedding_loss` | margin=1, reduce | `[input]`, `[target]` |
//! | `cosineloss` | `cosine_embedding_loss` | margin=0, reduce | 3 tensors: input1, input2, target |
//! | `margin` | `margin_ranking_loss` | margin=0, reduce | 3 tensors: input1, input2, target |
//! | `multimargin` | `multi_margin_loss` | p=1, margin=1, weight, reduce | `[input]`, `[target]` |
//! | `triplet` | `triplet_margin_loss` | margin=1, p=2, eps=1e-6, swap=false, reduce | 3 tensors: anchor, positive, negative |
//! | `poissonloss` | `poisson_nll_loss` | log=true, full=false, eps=1e-8, reduce | `[input]`, `[target]` |
//! | `ctc` | `ctc_loss` | blank=0, zeroinf=false, reduce | 4 tensors: log_probs, targets, input_lengths, target_lengths |
//! | `pairwise` | `pairwise_distance` | p=2, eps=1e-6, keepdim=false | 2 tensors: x1, x2 |
//! | `similar` | `cosine_similarity` | dim=1, eps=1e-8 | 2 tensors: x1, x2 |
//!
//! `reduce` is one of `none`, `mean` (the default) or `sum`; a symbol given as the
//! last positional setting is always the reduction (`("ce", "sum")`,
//! `("ce", w, -100, 0.1, "none")`). The losses that take 3 or 4 tensors take
//! them as the outputs followed by the targets, split any way with at least one
//! output: `x=[x1, x2], y=[target]` or `x=[x1], y=[x2, target]`.

mod compute;
mod settings;
#[cfg(test)]
mod tests;

use tch::{Device, Tensor};

use crate::error::{Error, Result};
use crate::value::Value;

use settings::Setting;

/// How a loss reduces its element losses to the result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reduce {
    /// No reduction: one loss an element (or a sample).
    None,
    /// The mean of the losses.
    Mean,
    /// The sum of the losses.
    Sum,
    /// The sum divided by the batch size (`kl` only).
    BatchMean,
}

impl Reduce {
    /// The reduction's name, as given in settings.
    pub fn name(self) -> &'static str {
        match self {
            Reduce::None => "none",
            Reduce::Mean => "mean",
            Reduce::Sum => "sum",
            Reduce::BatchMean => "batchmean",
        }
    }

    fn from_name(s: &str) -> Option<Reduce> {
        match s {
            "none" => Some(Reduce::None),
            "mean" => Some(Reduce::Mean),
            "sum" => Some(Reduce::Sum),
            "batchmean" => Some(Reduce::BatchMean),
            _ => None,
        }
    }

    /// libtorch's reduction code (batchmean sums; the caller divides).
    fn torch(self) -> tch::Reduction {
        match self {
            Reduce::None => tch::Reduction::None,
            Reduce::Mean => tch::Reduction::Mean,
            Reduce::Sum | Reduce::BatchMean => tch::Reduction::Sum,
        }
    }
}

/// The names of every loss, in the order of the reference.
pub const LOSS_TYPES: &[&str] = &[
    "ce",
    "nll",
    "bce",
    "bcelogits",
    "multisoft",
    "mse",
    "l1",
    "kl",
    "multilabel",
    "softmargin",
    "smoothl1",
    "huber",
    "hinge",
    "cosineloss",
    "margin",
    "multimargin",
    "triplet",
    "poissonloss",
    "ctc",
    "pairwise",
    "similar",
];

/// A loss function with its settings; see the [module docs](crate::loss) for every
/// loss, its settings and the tensors its [`forward`](Loss::forward) takes.
///
/// Settings are given by position (in the order of the table) or by keyword;
/// null leaves a setting at its default. Keywords also accept the PyTorch
/// spellings `reduction`, `ignore_index`, `label_smoothing`, `zero_infinity`,
/// `log_target` (kl) and `log_input` (poissonloss); for `bcelogits`, `weight`
/// is PyTorch's `pos_weight` (as in the original) and `posweight` or
/// `pos_weight` name it too. Batch weights of `bce`/`bcelogits` are given as a
/// second target tensor instead, as in the original.
///
/// Targets are converted where the meaning is plain: integer class targets of
/// any integer dtype become long (`ce`, `nll`, `multimargin`, `multilabel`,
/// `ctc`), other targets take the dtype of the (floating) output. Class targets
/// are checked against the number of classes before libtorch sees them, and
/// elementwise losses (`mse`, `l1`, `smoothl1`, `huber`, `bce`, `bcelogits`,
/// `softmargin`, `multisoft`) require the target to have the output's size
/// rather than broadcasting it. Weights move to the output's device and dtype.
#[derive(Debug)]
pub struct Loss {
    kind: String,
    set: Setting,
    reduce: Option<Reduce>,
}

impl Clone for Loss {
    fn clone(&self) -> Self {
        Loss {
            kind: self.kind.clone(),
            set: self.set.clone(),
            reduce: self.reduce,
        }
    }
}

impl Loss {
    /// Builds a loss from its name and settings, e.g. `("ce", [w, -100, 0.1, "sum"])`.
    pub fn new(name: &str, pos: &[Value], kw: &[(String, Value)]) -> Result<Loss> {
        let (set, reduce) = settings::parse(name, pos, kw)?;
        Ok(Loss {
            kind: name.to_string(),
            set,
            reduce,
        })
    }

    /// The loss name.
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// The reduction, or `None` for the distances (`pairwise`, `similar`).
    pub fn reduce(&self) -> Option<Reduce> {
        self.reduce
    }

    /// The settings by name in positional order: all of them, or (`all` false)
    /// only those that differ from the defaults. Weights are tensors (or null).
    pub fn options(&self, all: bool) -> Result<Vec<(String, Value)>> {
        let mine = settings::values(&self.set, self.reduce);
        if all {
            return Ok(mine);
        }
        let default = Loss::new(&self.kind, &[], &[])?;
        let defaults = settings::values(&default.set, default.reduce);
        Ok(mine
            .into_iter()
            .zip(defaults)
            .filter(|(a, b)| a != b)
            .map(|(a, _)| a)
            .collect())
    }

    /// Moves the weight tensors held in the settings to `device`.
    pub fn to_device(&mut self, device: Device) -> Result<()> {
        self.set.move_to(device).map_err(|e| self.named(e.into()))
    }

    /// Computes the loss from model output(s) `x` and target(s) `y`.
    pub fn forward(&self, x: &[Tensor], y: &[Tensor]) -> Result<Tensor> {
        compute::forward(&self.kind, &self.set, self.reduce, x, y, false).map_err(|e| self.named(e))
    }

    /// [`Loss::forward`] on targets already checked with [`Loss::check_targets`]:
    /// no range check, so no read of the device (a run checks a pass's targets
    /// once, then computes each batch's loss this way).
    pub fn forward_checked(&self, x: &[Tensor], y: &[Tensor]) -> Result<Tensor> {
        compute::forward(&self.kind, &self.set, self.reduce, x, y, true).map_err(|e| self.named(e))
    }

    /// Checks targets `y` (a whole pass's) against an output `x` of the module:
    /// class indices within the output's classes, probabilities within [0, 1],
    /// with the errors [`Loss::forward`] gives.
    pub fn check_targets(&self, x: &[Tensor], y: &[Tensor]) -> Result<()> {
        compute::check_targets(&self.kind, &self.set, x, y).map_err(|e| self.named(e))
    }

    /// libtorch's own messages get the loss name in front, like the others.
    fn named(&self, e: Error) -> Error {
        match e {
            Error::Torch(m) if !m.starts_with(&format!("{}:", self.kind)) => {
                Error::Torch(format!("{}: {m}", self.kind))
            }
            e => e,
        }
    }
}

impl Loss {
    /// The loss's weight tensors, to move or convert with a model.
    pub(crate) fn movable(&self) -> Vec<Tensor> {
        self.set
            .weight()
            .map(Tensor::shallow_clone)
            .into_iter()
            .collect()
    }

    /// A deep copy (`clone`): the same settings, its weights copied to new memory.
    pub fn deep_clone(&self) -> Result<Loss> {
        let mut l = self.clone();
        if let Some(w) = l.set.weight_mut() {
            if let Some(t) = w.as_ref() {
                *w = Some(t.f_detach_copy()?);
            }
        }
        Ok(l)
    }

    /// The loss with its reduction `mean` made `sum` (other reductions kept).
    pub(crate) fn summed(&self) -> Loss {
        let mut l = self.clone();
        if l.reduce == Some(Reduce::Mean) {
            l.reduce = Some(Reduce::Sum);
        }
        l
    }

    /// True where the loss's mean divides by the class weights of the targets rather than
    /// by their number: `ce` and `nll` reduced by `mean`, with class targets `y` for output
    /// `x` (not class probabilities), as libtorch divides by the sum of the weights (1
    /// without weights) of the targets that are not ignored ([`Loss::class_total`]).
    pub(crate) fn class_mean(&self, x: &Tensor, y: &Tensor) -> bool {
        self.reduce == Some(Reduce::Mean)
            && match &self.set {
                Setting::Ce { .. } => !(y.is_floating_point() && y.size() == x.size()),
                Setting::Nll { .. } => true,
                _ => false,
            }
    }

    /// The divisor of a [`Loss::class_mean`] for class targets `y`: the sum of the class
    /// weights (1 without weights) of the targets that are not ignored, as a float64 scalar
    /// on `y`'s device (0 for other losses).
    pub(crate) fn class_total(&self, y: &Tensor) -> Result<Tensor> {
        let _g = tch::no_grad_guard();
        let (weight, ignore) = match &self.set {
            Setting::Ce { weight, ignore, .. } | Setting::Nll { weight, ignore } => {
                (weight, *ignore)
            }
            _ => return Ok(Tensor::f_zeros([], (tch::Kind::Double, y.device()))?),
        };
        let y = y.f_to_kind(tch::Kind::Int64)?.f_reshape([-1])?;
        let kept = y.f_ne(ignore)?;
        Ok(match weight {
            None => kept.f_sum(tch::Kind::Double)?,
            Some(w) => {
                let w = w.f_to_device(y.device())?.f_to_kind(tch::Kind::Double)?;
                let i = y.f_masked_fill(&kept.f_logical_not()?, 0)?;
                w.f_index_select(0, &i)?
                    .f_mul(&kept)?
                    .f_sum(tch::Kind::Double)?
            }
        })
    }

    /// The loss's weight tensors (class weights, bce's positive weights), where set.
    pub fn weights(&self) -> Vec<Tensor> {
        self.movable()
    }

    /// Moves or converts the loss's weights (class weights, bce's positive
    /// weights) as `p` says; a loss without weights is unchanged.
    pub fn to(&self, p: &crate::device::Place) -> Result<()> {
        p.check_floating()?;
        crate::device::convert_in_place(&self.movable(), p)
    }
}

impl crate::sync::Share for Loss {}
