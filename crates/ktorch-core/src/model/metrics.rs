//! Run metrics: accumulated on the device batch by batch, collected once per run.

use tch::{Kind, Tensor};

use crate::error::{err, Result};

/// A metric a run can return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// Mean of the batch losses.
    Loss,
    /// One loss per batch.
    BatchLoss,
    /// 100 * correct / count, with predictions the argmax of the first output's last dim.
    Accuracy,
    /// Predicted class per row.
    Predict,
    /// First output of the module, all batches.
    Output,
    /// Second output (hidden state) of the last batch.
    Hidden,
    /// Third output (cell state) of the last batch.
    HiddenCell,
    /// Gradient norm before clipping, one per training batch.
    GradNorm,
}

impl Metric {
    /// Every metric.
    pub const ALL: &'static [Metric] = &[
        Metric::Loss,
        Metric::BatchLoss,
        Metric::Accuracy,
        Metric::Predict,
        Metric::Output,
        Metric::Hidden,
        Metric::HiddenCell,
        Metric::GradNorm,
    ];

    /// The metric's name.
    pub fn name(self) -> &'static str {
        match self {
            Metric::Loss => "loss",
            Metric::BatchLoss => "batchloss",
            Metric::Accuracy => "accuracy",
            Metric::Predict => "predict",
            Metric::Output => "output",
            Metric::Hidden => "hidden",
            Metric::HiddenCell => "hiddencell",
            Metric::GradNorm => "gradnorm",
        }
    }

    /// The metric called `name`.
    pub fn from_name(name: &str) -> Option<Metric> {
        Metric::ALL.iter().copied().find(|m| m.name() == name)
    }
}

/// Per-run accumulators, kept as tensors on the device.
#[derive(Debug, Default)]
pub(crate) struct Accum {
    losses: Vec<Tensor>,
    correct: Option<Tensor>,
    count: i64,
    predict: Vec<Tensor>,
    output: Vec<Tensor>,
    hidden: Option<Tensor>,
    cell: Option<Tensor>,
    norms: Vec<Tensor>,
    seen: usize,
}

impl Accum {
    /// True if the metrics need the loss.
    pub(crate) fn wants_loss(ms: &[Metric]) -> bool {
        ms.iter()
            .any(|m| matches!(m, Metric::Loss | Metric::BatchLoss))
    }

    /// Adds one batch: loss, outputs, targets.
    pub(crate) fn add(
        &mut self,
        ms: &[Metric],
        loss: Option<&Tensor>,
        outs: &[Tensor],
        y: Option<&Tensor>,
        norm: Option<&Tensor>,
    ) -> Result<()> {
        let _g = tch::no_grad_guard();
        for m in ms {
            match m {
                Metric::Loss | Metric::BatchLoss => {
                    // loss and batchloss share one list; converted to double once, at the end
                    if let Some(l) = loss {
                        if self.losses.len() < self.batches_seen() + 1 {
                            // losses come detached (training) or without a graph (testrun)
                            self.losses.push(l.shallow_clone());
                        }
                    }
                }
                Metric::Accuracy => {
                    let y = y.ok_or_else(|| err("accuracy", "no target defined"))?;
                    let p = predict(first(outs)?)?;
                    let c = p
                        .f_eq_tensor(&y.f_to_kind(Kind::Int64)?.f_view_as(&p)?)?
                        .f_sum(Kind::Int64)?;
                    self.correct = Some(match self.correct.take() {
                        None => c,
                        Some(a) => a.f_add(&c)?,
                    });
                    self.count += p.size().first().copied().unwrap_or(1);
                }
                Metric::Predict => self.predict.push(predict(first(outs)?)?),
                Metric::Output => self.output.push(first(outs)?.f_detach()?),
                Metric::Hidden => self.hidden = outs.get(1).map(Tensor::f_detach).transpose()?,
                Metric::HiddenCell => self.cell = outs.get(2).map(Tensor::f_detach).transpose()?,
                Metric::GradNorm => {
                    if let Some(n) = norm {
                        self.norms.push(n.f_detach()?.f_to_kind(Kind::Double)?);
                    }
                }
            }
        }
        self.seen += 1;
        Ok(())
    }

    fn batches_seen(&self) -> usize {
        self.seen
    }

    /// The metric values; `order` undoes a shuffle for predict/output.
    pub(crate) fn finish(
        self,
        ms: &[Metric],
        order: Option<&Tensor>,
    ) -> Result<Vec<(Metric, Option<Tensor>)>> {
        let _g = tch::no_grad_guard();
        let unshuffle = |t: Tensor| -> Result<Tensor> {
            match order {
                Some(p) if t.size().first() == p.size().first() => {
                    let p = p.f_to_device(t.device())?;
                    Ok(t.f_index_select(0, &p.f_argsort(0, false)?)?)
                }
                _ => Ok(t),
            }
        };
        // the batch losses, stacked once for both loss metrics
        // the batch losses, stacked once for both loss metrics; one batch needs no stack
        let batch = match self.losses.len() {
            0 => None,
            1 if !ms.contains(&Metric::BatchLoss) => Some(self.losses[0].f_to_kind(Kind::Double)?),
            _ => Some(Tensor::f_stack(&self.losses, 0)?.f_to_kind(Kind::Double)?),
        };
        let mut out = Vec::with_capacity(ms.len());
        for m in ms {
            let v = match m {
                Metric::Loss => match &batch {
                    None => None,
                    Some(b) if b.dim() == 0 => Some(b.shallow_clone()),
                    Some(b) if b.numel() == 1 => Some(b.f_reshape([])?),
                    Some(b) => Some(b.f_mean(Kind::Double)?),
                },
                Metric::BatchLoss => batch.as_ref().map(Tensor::shallow_clone),
                Metric::Accuracy => match &self.correct {
                    Some(c) if self.count > 0 => Some(
                        c.f_to_kind(Kind::Double)?
                            .f_mul_scalar(100.0 / self.count as f64)?,
                    ),
                    _ => None,
                },
                Metric::Predict => cat(&self.predict)?.map(unshuffle).transpose()?,
                Metric::Output => cat(&self.output)?.map(unshuffle).transpose()?,
                Metric::Hidden => self.hidden.as_ref().map(Tensor::shallow_clone),
                Metric::HiddenCell => self.cell.as_ref().map(Tensor::shallow_clone),
                Metric::GradNorm => {
                    if self.norms.is_empty() {
                        None
                    } else {
                        Some(Tensor::f_stack(&self.norms, 0)?)
                    }
                }
            };
            out.push((*m, v));
        }
        Ok(out)
    }
}

fn cat(ts: &[Tensor]) -> Result<Option<Tensor>> {
    if ts.is_empty() {
        return Ok(None);
    }
    Ok(Some(Tensor::f_cat(ts, 0)?))
}

fn first(outs: &[Tensor]) -> Result<&Tensor> {
    outs.first()
        .ok_or_else(|| err("metrics", "the module returned no output"))
}

fn predict(x: &Tensor) -> Result<Tensor> {
    let d = x.dim() as i64;
    if d == 0 {
        return Err(err("predict", "output has no dimensions"));
    }
    Ok(x.f_argmax(d - 1, false)?)
}
