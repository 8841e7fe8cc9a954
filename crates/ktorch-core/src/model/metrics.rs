//! Run metrics: accumulated on the device batch by batch, collected once per run.

use tch::{Kind, Tensor};

use crate::dist::Group;
use crate::error::{err, invalid, Result};

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
    /// Second output (hidden state) of every batch, joined along dim 0.
    Hidden,
    /// Third output (cell state) of every batch, joined along dim 0.
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
    hidden: Vec<Tensor>,
    cell: Vec<Tensor>,
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
                Metric::Hidden => keep_state("hidden", &mut self.hidden, outs.get(1))?,
                Metric::HiddenCell => keep_state("hiddencell", &mut self.cell, outs.get(2))?,
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

    /// Adds a batch of which this process has no rows (a pass split over a process group):
    /// its loss and gradient norm (the global batch's), no outputs.
    pub(crate) fn add_empty(
        &mut self,
        ms: &[Metric],
        loss: Option<&Tensor>,
        norm: Option<&Tensor>,
    ) -> Result<()> {
        let _g = tch::no_grad_guard();
        if let Some(l) = loss {
            if ms
                .iter()
                .any(|m| matches!(m, Metric::Loss | Metric::BatchLoss))
            {
                self.losses.push(l.shallow_clone());
            }
        }
        if let (Some(n), true) = (norm, ms.contains(&Metric::GradNorm)) {
            self.norms.push(n.f_detach()?.f_to_kind(Kind::Double)?);
        }
        self.seen += 1;
        Ok(())
    }

    /// Makes the metrics of a pass split over process group `g` those of the whole data:
    /// accuracy counts summed over the ranks, predictions and outputs gathered in the data's
    /// row order (`layout`: the rows of each batch), on device `dev`. Losses and gradient
    /// norms are the global batches' already; hidden states stay this rank's.
    pub(crate) fn gather(
        &mut self,
        g: &Group,
        dev: tch::Device,
        layout: &[i64],
        ms: &[Metric],
    ) -> Result<()> {
        let _g = tch::no_grad_guard();
        if ms.contains(&Metric::Accuracy) {
            let c = match &self.correct {
                Some(c) => c.f_to_device(dev)?.f_to_kind(Kind::Int64)?.f_reshape([1])?,
                None => Tensor::f_zeros([1], (Kind::Int64, dev))?,
            };
            let t = Tensor::f_cat(&[c, Tensor::from_slice(&[self.count]).f_to_device(dev)?], 0)?;
            g.sum(std::slice::from_ref(&t))?;
            self.correct = Some(t.f_get(0)?);
            self.count = t.f_get(1)?.f_int64_value(&[])?;
        }
        if ms.contains(&Metric::Predict) {
            let local = cat(&self.predict)?;
            self.predict = g
                .gather_rows(local, layout, dev, "predict")?
                .into_iter()
                .collect();
        }
        if ms.contains(&Metric::Output) {
            let local = cat(&self.output)?;
            self.output = g
                .gather_rows(local, layout, dev, "output")?
                .into_iter()
                .collect();
        }
        Ok(())
    }

    fn batches_seen(&self) -> usize {
        self.seen
    }

    /// Batches added so far.
    pub(crate) fn seen(&self) -> i64 {
        self.seen as i64
    }

    /// The batch losses kept so far (loss metrics only).
    pub(crate) fn losses(&self) -> &[Tensor] {
        &self.losses
    }

    /// Moves every tensor kept to `dev` (a stopped pass read from a file meets a
    /// module on another device); tensors there already stay as they are.
    pub(crate) fn move_to(&mut self, dev: tch::Device) -> Result<()> {
        let mv = |t: &mut Tensor| -> Result<()> {
            if t.device() != dev {
                *t = t.f_to_device(dev)?;
            }
            Ok(())
        };
        for v in [
            &mut self.losses,
            &mut self.predict,
            &mut self.output,
            &mut self.norms,
            &mut self.hidden,
            &mut self.cell,
        ] {
            v.iter_mut().try_for_each(mv)?;
        }
        if let Some(t) = &mut self.correct {
            mv(t)?;
        }
        Ok(())
    }

    /// Adds the accumulator's counts and tensors (shallow clones) to `counts` and
    /// `tensors`, named as [`Accum::from_parts`] reads them.
    pub(crate) fn to_parts(
        &self,
        counts: &mut Vec<(String, i64)>,
        tensors: &mut Vec<(String, Tensor)>,
    ) {
        counts.push(("seen".into(), self.seen as i64));
        counts.push(("count".into(), self.count));
        for (name, v) in [
            ("losses", &self.losses),
            ("predict", &self.predict),
            ("output", &self.output),
            ("norms", &self.norms),
            ("hidden", &self.hidden),
            ("cell", &self.cell),
        ] {
            for (i, t) in v.iter().enumerate() {
                tensors.push((format!("{name}.{i}"), t.shallow_clone()));
            }
        }
        if let Some(t) = &self.correct {
            tensors.push(("correct".into(), t.shallow_clone()));
        }
    }

    /// The accumulator [`Accum::to_parts`] wrote: counts `seen` and `count`, tensor
    /// `correct` and lists `losses.i`, `predict.i`, `output.i`, `norms.i`,
    /// `hidden.i`, `cell.i` (i from 0, none missing; a single `hidden` or `cell`,
    /// as earlier versions kept the last batch's state, is read as a list of one). Tensors of other names are left in
    /// `rest` for the caller; a count of another name is refused.
    pub(crate) fn from_parts(
        counts: &[(String, i64)],
        tensors: Vec<(String, Tensor)>,
        rest: &mut Vec<(String, Tensor)>,
    ) -> Result<Accum> {
        let mut a = Accum::default();
        let mut seen = None;
        for (k, v) in counts {
            match k.as_str() {
                "seen" | "count" if *v < 0 => {
                    return Err(invalid(format!(
                        "a stopped pass's count {k} is {v}: it cannot be negative"
                    )))
                }
                "seen" => seen = Some(*v),
                "count" => a.count = *v,
                // counts the stopped pass itself keeps
                "rows" => {}
                _ => {
                    return Err(invalid(format!(
                        "a stopped pass has an unknown count {k:?}"
                    )))
                }
            }
        }
        let seen =
            seen.ok_or_else(|| invalid("a stopped pass has no count of the batches seen"))?;
        a.seen = usize::try_from(seen)
            .map_err(|_| invalid(format!("a stopped pass saw {seen} batches: too many")))?;
        let mut lists: [(&str, Vec<(usize, Tensor)>); 6] = [
            ("losses", vec![]),
            ("predict", vec![]),
            ("output", vec![]),
            ("norms", vec![]),
            ("hidden", vec![]),
            ("cell", vec![]),
        ];
        for (k, t) in tensors {
            match k.as_str() {
                "correct" => a.correct = Some(t),
                "hidden" => lists[4].1.push((0, t)),
                "cell" => lists[5].1.push((0, t)),
                _ => {
                    let listed = k.split_once('.').and_then(|(name, i)| {
                        let slot = lists.iter().position(|(n, _)| *n == name)?;
                        Some((slot, i.parse::<usize>().ok()?))
                    });
                    match listed {
                        Some((slot, i)) => lists[slot].1.push((i, t)),
                        None => rest.push((k, t)),
                    }
                }
            }
        }
        let mut take = |slot: usize| -> Result<Vec<Tensor>> {
            let (name, mut v) = (lists[slot].0, std::mem::take(&mut lists[slot].1));
            v.sort_by_key(|(i, _)| *i);
            if v.iter().enumerate().any(|(j, (i, _))| *i != j) {
                return Err(invalid(format!(
                    "a stopped pass's list {name} is not numbered 0, 1, ... without gaps"
                )));
            }
            Ok(v.into_iter().map(|(_, t)| t).collect())
        };
        a.losses = take(0)?;
        a.predict = take(1)?;
        a.output = take(2)?;
        a.norms = take(3)?;
        a.hidden = take(4)?;
        a.cell = take(5)?;
        Ok(a)
    }

    /// Checks that the accumulator fits a pass with metrics `ms`: no list longer
    /// than the batches seen, one prediction or output per batch where asked for,
    /// nothing kept for metrics not asked for.
    pub(crate) fn check(&self, ms: &[Metric]) -> Result<()> {
        let seen = self.seen;
        let asked = |m: &[Metric]| m.iter().any(|x| ms.contains(x));
        let lists: [(&str, usize, bool, bool); 6] = [
            (
                "losses",
                self.losses.len(),
                asked(&[Metric::Loss, Metric::BatchLoss]),
                false,
            ),
            (
                "predict",
                self.predict.len(),
                asked(&[Metric::Predict]),
                true,
            ),
            ("output", self.output.len(), asked(&[Metric::Output]), true),
            ("norms", self.norms.len(), asked(&[Metric::GradNorm]), false),
            ("hidden", self.hidden.len(), asked(&[Metric::Hidden]), false),
            ("cell", self.cell.len(), asked(&[Metric::HiddenCell]), false),
        ];
        for (name, n, want, each) in lists {
            if (!want && n > 0) || n > seen || (want && each && n != seen) {
                return Err(invalid(format!(
                    "a stopped pass keeps {n} {name} after {seen} batches, \
                     which does not fit the metrics of the stage's options"
                )));
            }
        }
        for (name, some, want) in [(
            "correct",
            self.correct.is_some(),
            asked(&[Metric::Accuracy]),
        )] {
            if some && !want {
                return Err(invalid(format!(
                    "a stopped pass keeps {name}, which the metrics of the stage's options do not ask for"
                )));
            }
        }
        if self.count > 0 && !asked(&[Metric::Accuracy]) {
            return Err(invalid(
                "a stopped pass counts rows for accuracy, which the stage's options do not ask for",
            ));
        }
        Ok(())
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
                Metric::Hidden => cat(&self.hidden)?,
                Metric::HiddenCell => cat(&self.cell)?,
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
    match ts.first() {
        None => Ok(None),
        Some(t) if t.dim() == 0 => Ok(Some(Tensor::f_stack(ts, 0)?)),
        Some(_) => Ok(Some(Tensor::f_cat(ts, 0)?)),
    }
}

/// Keeps a batch's hidden or cell state (`state`, if the module returned one),
/// detached, to join along dim 0 with the other batches' as the original does.
/// A state whose size past dim 0 differs from the first batch's (a shorter last
/// batch: the batch is dim 1 of a recurrent module's state) cannot be joined:
/// an error saying so, at the batch.
fn keep_state(metric: &str, kept: &mut Vec<Tensor>, state: Option<&Tensor>) -> Result<()> {
    let Some(t) = state else { return Ok(()) };
    if let Some(first) = kept.first() {
        let (a, b) = (first.size(), t.size());
        if a.len() != b.len() || (a.len() > 1 && a[1..] != b[1..]) {
            return Err(err(
                metric,
                format!(
                    "batch {} has a state of size {b:?}, the first batch {a:?}: states are joined along dim 0 \
                     and must match in the other dimensions (set droplast, or a batch size that divides the rows)",
                    kept.len() + 1
                ),
            ));
        }
    }
    kept.push(t.f_detach()?);
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn state(batch: i64, v: f64) -> Tensor {
        Tensor::f_full([1, batch, 2], v, (Kind::Float, tch::Device::Cpu)).expect("full")
    }

    #[test]
    fn hidden_states_of_every_batch_are_joined() {
        let ms = [Metric::Hidden, Metric::HiddenCell];
        let mut a = Accum::default();
        for i in 0..3 {
            let outs = [state(2, 0.0), state(2, i as f64), state(2, 10.0 + i as f64)];
            a.add(&ms, None, &outs, None, None).expect("add");
        }
        // a pause keeps them as lists and reads them back
        let (mut counts, mut tensors) = (vec![], vec![]);
        a.to_parts(&mut counts, &mut tensors);
        let names: Vec<&str> = tensors.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            names,
            ["hidden.0", "hidden.1", "hidden.2", "cell.0", "cell.1", "cell.2"]
        );
        let mut rest = vec![];
        let b = Accum::from_parts(&counts, tensors, &mut rest).expect("from parts");
        b.check(&ms).expect("fits");
        let out = b.finish(&ms, None).expect("finish");
        let h = out[0].1.as_ref().expect("hidden");
        assert_eq!(h.size(), [3, 2, 2]);
        let firsts: Vec<f64> = (0..3).map(|i| h.double_value(&[i, 0, 0])).collect();
        assert_eq!(firsts, [0.0, 1.0, 2.0]);
        let c = out[1].1.as_ref().expect("cell");
        assert_eq!(c.double_value(&[2, 1, 1]), 12.0);
        // a single state, as earlier pauses kept it, reads as a list of one
        let old = vec![("hidden".to_string(), state(2, 5.0))];
        let b = Accum::from_parts(&[("seen".into(), 1)], old, &mut rest).expect("old");
        let out = b.finish(&[Metric::Hidden], None).expect("finish");
        let h = out[0].1.as_ref().expect("hidden");
        assert_eq!(h.size(), [1, 2, 2]);
    }

    #[test]
    fn a_shorter_batch_state_is_refused() {
        let mut a = Accum::default();
        let outs = |b| [state(b, 0.0), state(b, 1.0)];
        a.add(&[Metric::Hidden], None, &outs(3), None, None)
            .expect("add");
        let e = a
            .add(&[Metric::Hidden], None, &outs(1), None, None)
            .expect_err("shorter");
        assert!(
            e.to_string().starts_with(
                "hidden: batch 2 has a state of size [1, 1, 2], the first batch [1, 3, 2]"
            ),
            "{e}"
        );
    }
}
