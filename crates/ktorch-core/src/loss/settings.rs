//! The settings of each loss: names, defaults, parsing and their values as options.

use tch::{Device, Tensor};

use super::{Reduce, LOSS_TYPES};
use crate::args::Args;
use crate::bail;
use crate::error::{err, Result};
use crate::value::Value;

/// Setting names of each loss in positional order; `reduce` is always last.
const NAMES: &[(&str, &[&str])] = &[
    ("ce", &["weight", "ignore", "smoothing", "reduce"]),
    ("nll", &["weight", "ignore", "reduce"]),
    ("bce", &["weight", "reduce"]),
    ("bcelogits", &["weight", "reduce"]),
    ("multisoft", &["weight", "reduce"]),
    ("mse", &["reduce"]),
    ("l1", &["reduce"]),
    ("kl", &["log", "reduce"]),
    ("multilabel", &["reduce"]),
    ("softmargin", &["reduce"]),
    ("smoothl1", &["beta", "reduce"]),
    ("huber", &["delta", "reduce"]),
    ("hinge", &["margin", "reduce"]),
    ("cosineloss", &["margin", "reduce"]),
    ("margin", &["margin", "reduce"]),
    ("multimargin", &["p", "margin", "weight", "reduce"]),
    ("triplet", &["margin", "p", "eps", "swap", "reduce"]),
    ("poissonloss", &["log", "full", "eps", "reduce"]),
    ("ctc", &["blank", "zeroinf", "reduce"]),
    ("pairwise", &["p", "eps", "keepdim"]),
    ("similar", &["dim", "eps"]),
];

/// The settings of one loss, other than the reduction.
#[derive(Debug)]
pub(super) enum Setting {
    Ce {
        weight: Option<Tensor>,
        ignore: i64,
        smoothing: f64,
    },
    Nll {
        weight: Option<Tensor>,
        ignore: i64,
    },
    Bce {
        weight: Option<Tensor>,
    },
    BceLogits {
        pos_weight: Option<Tensor>,
    },
    MultiSoft {
        weight: Option<Tensor>,
    },
    Mse,
    L1,
    Kl {
        log: bool,
    },
    MultiLabel,
    SoftMargin,
    SmoothL1 {
        beta: f64,
    },
    Huber {
        delta: f64,
    },
    Hinge {
        margin: f64,
    },
    CosineLoss {
        margin: f64,
    },
    Margin {
        margin: f64,
    },
    MultiMargin {
        p: i64,
        margin: f64,
        weight: Option<Tensor>,
    },
    Triplet {
        margin: f64,
        p: f64,
        eps: f64,
        swap: bool,
    },
    Poisson {
        log: bool,
        full: bool,
        eps: f64,
    },
    Ctc {
        blank: i64,
        zeroinf: bool,
    },
    Pairwise {
        p: f64,
        eps: f64,
        keepdim: bool,
    },
    Similar {
        dim: i64,
        eps: f64,
    },
}

fn copy(w: &Option<Tensor>) -> Option<Tensor> {
    w.as_ref().map(Tensor::shallow_clone)
}

impl Clone for Setting {
    fn clone(&self) -> Self {
        use Setting::*;
        match self {
            Ce {
                weight,
                ignore,
                smoothing,
            } => Ce {
                weight: copy(weight),
                ignore: *ignore,
                smoothing: *smoothing,
            },
            Nll { weight, ignore } => Nll {
                weight: copy(weight),
                ignore: *ignore,
            },
            Bce { weight } => Bce {
                weight: copy(weight),
            },
            BceLogits { pos_weight } => BceLogits {
                pos_weight: copy(pos_weight),
            },
            MultiSoft { weight } => MultiSoft {
                weight: copy(weight),
            },
            MultiMargin { p, margin, weight } => MultiMargin {
                p: *p,
                margin: *margin,
                weight: copy(weight),
            },
            Mse => Mse,
            L1 => L1,
            Kl { log } => Kl { log: *log },
            MultiLabel => MultiLabel,
            SoftMargin => SoftMargin,
            SmoothL1 { beta } => SmoothL1 { beta: *beta },
            Huber { delta } => Huber { delta: *delta },
            Hinge { margin } => Hinge { margin: *margin },
            CosineLoss { margin } => CosineLoss { margin: *margin },
            Margin { margin } => Margin { margin: *margin },
            Triplet {
                margin,
                p,
                eps,
                swap,
            } => Triplet {
                margin: *margin,
                p: *p,
                eps: *eps,
                swap: *swap,
            },
            Poisson { log, full, eps } => Poisson {
                log: *log,
                full: *full,
                eps: *eps,
            },
            Ctc { blank, zeroinf } => Ctc {
                blank: *blank,
                zeroinf: *zeroinf,
            },
            Pairwise { p, eps, keepdim } => Pairwise {
                p: *p,
                eps: *eps,
                keepdim: *keepdim,
            },
            Similar { dim, eps } => Similar {
                dim: *dim,
                eps: *eps,
            },
        }
    }
}

impl Setting {
    /// The class weights (or bce's positive weights), where set.
    pub(super) fn weight(&self) -> Option<&Tensor> {
        match self {
            Setting::Ce { weight, .. }
            | Setting::Nll { weight, .. }
            | Setting::Bce { weight }
            | Setting::MultiSoft { weight }
            | Setting::MultiMargin { weight, .. } => weight.as_ref(),
            Setting::BceLogits { pos_weight } => pos_weight.as_ref(),
            _ => None,
        }
    }

    pub(super) fn weight_mut(&mut self) -> Option<&mut Option<Tensor>> {
        match self {
            Setting::Ce { weight, .. }
            | Setting::Nll { weight, .. }
            | Setting::Bce { weight }
            | Setting::MultiSoft { weight }
            | Setting::MultiMargin { weight, .. } => Some(weight),
            Setting::BceLogits { pos_weight } => Some(pos_weight),
            _ => None,
        }
    }

    pub(super) fn move_to(&mut self, device: Device) -> std::result::Result<(), tch::TchError> {
        if let Some(Some(w)) = self.weight_mut() {
            *w = w.f_to(device)?;
        }
        Ok(())
    }
}

/// The declared setting names of a loss.
pub(super) fn names(name: &str) -> Option<&'static [&'static str]> {
    NAMES.iter().find(|(n, _)| *n == name).map(|(_, s)| *s)
}

/// PyTorch spellings accepted for keywords.
fn canonical<'a>(loss: &str, key: &'a str) -> &'a str {
    match (loss, key) {
        (_, "reduction") => "reduce",
        (_, "ignore_index") => "ignore",
        (_, "label_smoothing") => "smoothing",
        (_, "zero_infinity") => "zeroinf",
        ("bcelogits", "posweight" | "pos_weight") => "weight",
        ("kl", "log_target") => "log",
        ("poissonloss", "log_input") => "log",
        _ => key,
    }
}

/// Parses the settings of loss `name`: a trailing positional symbol is the reduction.
pub(super) fn parse(
    name: &str,
    pos: &[Value],
    kw: &[(String, Value)],
) -> Result<(Setting, Option<Reduce>)> {
    let names = names(name).ok_or_else(|| {
        err(
            "loss",
            crate::error::unrecognized("loss", "loss", name, LOSS_TYPES),
        )
    })?;
    let has_reduce = names.last() == Some(&"reduce");
    let mut kw: Vec<(String, Value)> = kw
        .iter()
        .map(|(k, v)| (canonical(name, k).to_string(), v.clone()))
        .collect();
    for (i, (k, _)) in kw.iter().enumerate() {
        if kw[..i].iter().any(|(j, _)| j == k) {
            bail!(name, "option {k} given more than once");
        }
    }
    let mut pos = pos.to_vec();
    if has_reduce && matches!(pos.last(), Some(Value::Str(_))) {
        let r = pos.pop().unwrap_or(Value::Null);
        if kw.iter().any(|(k, _)| k == "reduce") {
            bail!(name, "option reduce given by position and by name");
        }
        if pos.len() >= names.len() {
            bail!(
                name,
                "expecting at most {} positional setting(s) before the reduction, given {}",
                names.len() - 1,
                pos.len()
            );
        }
        kw.push(("reduce".to_string(), r));
    }
    let a = Args::parse(name, names, &pos, &kw)?;
    let reduce = if has_reduce {
        Some(reduction(&a, name == "kl")?)
    } else {
        None
    };
    Ok((setting(name, &a)?, reduce))
}

fn reduction(a: &Args, batchmean: bool) -> Result<Reduce> {
    let allowed: &[&str] = if batchmean {
        &["none", "batchmean", "mean", "sum"]
    } else {
        &["none", "mean", "sum"]
    };
    let s = a.choice("reduce", "mean", allowed)?;
    Reduce::from_name(&s).ok_or_else(|| err(a.kind(), format!("reduce: unrecognized value `{s}`")))
}

/// A 1-dim tensor of class weights.
fn class_weight(a: &Args) -> Result<Option<Tensor>> {
    let w = a.tensor("weight")?;
    if let Some(w) = &w {
        if w.dim() != 1 {
            bail!(
                a.kind(),
                "weight expects a 1-dim tensor of class weights, given {}-dim",
                w.dim()
            );
        }
    }
    Ok(w)
}

fn setting(name: &str, a: &Args) -> Result<Setting> {
    let f = a.kind();
    Ok(match name {
        "ce" => Setting::Ce {
            weight: class_weight(a)?,
            ignore: a.int("ignore", -100)?,
            smoothing: a.float_in("smoothing", 0.0, 0.0, 1.0)?,
        },
        "nll" => Setting::Nll {
            weight: class_weight(a)?,
            ignore: a.int("ignore", -100)?,
        },
        "bce" => Setting::Bce {
            weight: a.tensor("weight")?,
        },
        "bcelogits" => Setting::BceLogits {
            pos_weight: a.tensor("weight")?,
        },
        "multisoft" => Setting::MultiSoft {
            weight: a.tensor("weight")?,
        },
        "mse" => Setting::Mse,
        "l1" => Setting::L1,
        "kl" => Setting::Kl {
            log: a.bool("log", false)?,
        },
        "multilabel" => Setting::MultiLabel,
        "softmargin" => Setting::SoftMargin,
        "smoothl1" => Setting::SmoothL1 {
            beta: a.nonneg("beta", 1.0)?,
        },
        "huber" => {
            let delta = a.float("delta", 1.0)?;
            if delta.is_nan() || delta <= 0.0 {
                bail!(f, "delta must be positive, given {delta}");
            }
            Setting::Huber { delta }
        }
        "hinge" => Setting::Hinge {
            margin: a.float("margin", 1.0)?,
        },
        "cosineloss" => Setting::CosineLoss {
            margin: a.float("margin", 0.0)?,
        },
        "margin" => Setting::Margin {
            margin: a.float("margin", 0.0)?,
        },
        "multimargin" => {
            let p = a.int("p", 1)?;
            if p != 1 && p != 2 {
                bail!(f, "p must be 1 or 2, given {p}");
            }
            Setting::MultiMargin {
                p,
                margin: a.float("margin", 1.0)?,
                weight: class_weight(a)?,
            }
        }
        "triplet" => Setting::Triplet {
            margin: a.float("margin", 1.0)?,
            p: a.float("p", 2.0)?,
            eps: a.float("eps", 1e-6)?,
            swap: a.bool("swap", false)?,
        },
        "poissonloss" => Setting::Poisson {
            log: a.bool("log", true)?,
            full: a.bool("full", false)?,
            eps: a.float("eps", 1e-8)?,
        },
        "ctc" => {
            let blank = a.int("blank", 0)?;
            if blank < 0 {
                bail!(f, "blank must be non-negative, given {blank}");
            }
            Setting::Ctc {
                blank,
                zeroinf: a.bool("zeroinf", false)?,
            }
        }
        "pairwise" => Setting::Pairwise {
            p: a.float("p", 2.0)?,
            eps: a.float("eps", 1e-6)?,
            keepdim: a.bool("keepdim", false)?,
        },
        "similar" => Setting::Similar {
            dim: a.int("dim", 1)?,
            eps: a.float("eps", 1e-8)?,
        },
        _ => {
            return Err(err(
                "loss",
                crate::error::unrecognized("loss", "loss", name, LOSS_TYPES),
            ))
        }
    })
}

fn tensor(w: &Option<Tensor>) -> Value {
    w.as_ref()
        .map_or(Value::Null, |t| Value::Tensor(t.shallow_clone()))
}

/// Every setting by name, in positional order, the reduction last.
pub(super) fn values(s: &Setting, reduce: Option<Reduce>) -> Vec<(String, Value)> {
    use Setting::*;
    let f = Value::Float;
    let mut v: Vec<(&str, Value)> = match s {
        Ce {
            weight,
            ignore,
            smoothing,
        } => {
            vec![
                ("weight", tensor(weight)),
                ("ignore", Value::Int(*ignore)),
                ("smoothing", f(*smoothing)),
            ]
        }
        Nll { weight, ignore } => vec![("weight", tensor(weight)), ("ignore", Value::Int(*ignore))],
        Bce { weight } | MultiSoft { weight } => vec![("weight", tensor(weight))],
        BceLogits { pos_weight } => vec![("weight", tensor(pos_weight))],
        Mse | L1 | MultiLabel | SoftMargin => vec![],
        Kl { log } => vec![("log", Value::Bool(*log))],
        SmoothL1 { beta } => vec![("beta", f(*beta))],
        Huber { delta } => vec![("delta", f(*delta))],
        Hinge { margin } | CosineLoss { margin } | Margin { margin } => {
            vec![("margin", f(*margin))]
        }
        MultiMargin { p, margin, weight } => {
            vec![
                ("p", Value::Int(*p)),
                ("margin", f(*margin)),
                ("weight", tensor(weight)),
            ]
        }
        Triplet {
            margin,
            p,
            eps,
            swap,
        } => vec![
            ("margin", f(*margin)),
            ("p", f(*p)),
            ("eps", f(*eps)),
            ("swap", Value::Bool(*swap)),
        ],
        Poisson { log, full, eps } => {
            vec![
                ("log", Value::Bool(*log)),
                ("full", Value::Bool(*full)),
                ("eps", f(*eps)),
            ]
        }
        Ctc { blank, zeroinf } => vec![
            ("blank", Value::Int(*blank)),
            ("zeroinf", Value::Bool(*zeroinf)),
        ],
        Pairwise { p, eps, keepdim } => {
            vec![
                ("p", f(*p)),
                ("eps", f(*eps)),
                ("keepdim", Value::Bool(*keepdim)),
            ]
        }
        Similar { dim, eps } => vec![("dim", Value::Int(*dim)), ("eps", f(*eps))],
    };
    if let Some(r) = reduce {
        v.push(("reduce", Value::from(r.name())));
    }
    v.into_iter().map(|(k, x)| (k.to_string(), x)).collect()
}
