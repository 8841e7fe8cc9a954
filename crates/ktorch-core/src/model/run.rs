//! The training step and the run / testrun loops over a stage's batches.

use tch::Tensor;

use crate::autograd::{backward, GradRelease, Mode};
use crate::clip::{clip_norm, clip_value, grad_norm};
use crate::error::{invalid, Error, Result};
use crate::model::metrics::{Accum, Metric};
use crate::model::options::{NonFinite, Options, Phase};
use crate::model::{lock, loss_of, Model};
use crate::params::Params;

/// Results of a run: each metric asked for, None where there is no value.
pub type Metrics = Vec<(Metric, Option<Tensor>)>;

/// One training step on `x`, `y`: gradients to none, forward, loss, backward,
/// clipping as `opts` say, optimizer step (re-evaluating for LBFGS).
/// Returns the loss of the first evaluation.
pub(crate) fn step(model: &Model, x: &[Tensor], y: &[Tensor], opts: &Options) -> Result<Tensor> {
    model.train.check_if_own(x)?;
    let ps = Trained::of(model)?;
    let mut rel = model.take_release(&ps.all)?;
    let r = step_full(model, x, y, opts, &ps, &mut rel);
    model.keep_release(rel);
    Ok(r?.loss)
}

/// The parameters a step trains, gathered once per run rather than per batch.
pub(crate) struct Trained {
    /// Every parameter, once each: the module's and the optimizer's.
    all: Vec<Tensor>,
    /// The optimizer's groups (clipping by group).
    groups: Vec<Vec<Tensor>>,
}

impl Trained {
    fn of(model: &Model) -> Result<Trained> {
        Ok(Trained {
            all: Params::parameters(model)?,
            groups: Params::param_groups(model)?,
        })
    }
}

/// What a training pass keeps from batch to batch.
struct Trainer {
    ps: Trained,
    rel: GradRelease,
}

/// What one training step produced: loss, outputs, gradient norm before clipping.
struct Stepped {
    loss: Tensor,
    out: Vec<Tensor>,
    norm: Option<Tensor>,
}

fn step_full(
    model: &Model,
    x: &[Tensor],
    y: &[Tensor],
    opts: &Options,
    ps: &Trained,
    rel: &mut GradRelease,
) -> Result<Stepped> {
    let m = lock(&model.module)?;
    let l = lock(&model.loss)?;
    let mut o = lock(&model.opt)?;
    let (params, groups) = (&ps.all, &ps.groups);
    let mut first: Option<Vec<Tensor>> = None;
    let mut first_norm: Option<Tensor> = None;
    let want_norm =
        opts.nonfinite != NonFinite::Proceed || opts.metrics.contains(&Metric::GradNorm);
    let norm_type = opts.clipnorm.map_or(2.0, |(_, p)| p);
    // lbfgs evaluates at points it has already moved to: under skip/raise a step with
    // any non-finite evaluation (gradient norm or loss) is undone, state included
    let saved = match opts.nonfinite {
        NonFinite::Proceed => None,
        NonFinite::Skip | NonFinite::Raise => o.save_lbfgs()?,
    };
    let check_loss = saved.is_some();
    let mut nonfinite = false;
    let mut closure = || -> Result<Tensor> {
        rel.release()?;
        let out = m.forward(x)?;
        let loss = loss_of(&l, &out, y)?;
        backward(&[loss.shallow_clone()], None, Mode::Free)?;
        let norm = if want_norm {
            grad_norm(params, norm_type)?
        } else {
            None
        };
        let mut why = None;
        if let (Some(n), NonFinite::Raise | NonFinite::Skip) = (&norm, opts.nonfinite) {
            let v = n.f_double_value(&[])?;
            if !v.is_finite() {
                why = Some(format!("non-finite gradient norm: {v}"));
            }
        }
        if why.is_none() && check_loss {
            let v = loss.f_double_value(&[])?;
            if !v.is_finite() {
                why = Some(format!("non-finite loss: {v}"));
            }
        }
        if let Some(why) = why {
            nonfinite = true;
            if opts.nonfinite == NonFinite::Raise {
                return Err(invalid(why));
            }
            // no gradients: the optimizer leaves every parameter as it is
            rel.release()?;
            if first.is_none() {
                first = Some(out);
                first_norm = norm;
            }
            return Ok(loss.f_detach()?);
        }
        if first_norm.is_none() {
            first_norm = norm;
        }
        if let Some(v) = opts.clipvalue {
            clip_value(params, v)?;
        }
        if let Some((maxnorm, p)) = opts.clipnorm {
            if opts.clipgroup && !groups.is_empty() {
                for g in groups {
                    let _ = clip_norm(g, maxnorm, p)?;
                }
            } else {
                let _ = clip_norm(params, maxnorm, p)?;
            }
        }
        if first.is_none() {
            first = Some(out);
        }
        Ok(loss.f_detach()?)
    };
    let r = o.step_with(&mut closure);
    if let Some(s) = saved {
        if nonfinite || r.is_err() {
            o.restore_lbfgs(s)?;
        }
    }
    let loss = r?;
    Ok(Stepped {
        loss,
        out: first.unwrap_or_default(),
        norm: first_norm,
    })
}

impl Model {
    /// A training pass over every batch of the training data; returns the metrics.
    pub fn run(&mut self) -> Result<Metrics> {
        self.pass_with(Phase::Train, &mut || false)
    }

    /// An evaluation pass over every batch of the test data, without gradients.
    pub fn testrun(&mut self) -> Result<Metrics> {
        self.pass_with(Phase::Test, &mut || false)
    }

    /// A pass over the stage's batches (training in training mode, testing in
    /// evaluation mode without gradients; the module's mode is restored after),
    /// calling `stop` before each batch: when it returns true the pass ends with
    /// [`Error::Interrupted`], data restored to full size.
    pub fn pass_with(&mut self, phase: Phase, stop: &mut dyn FnMut() -> bool) -> Result<Metrics> {
        let opts = self.stage_ref(phase).opts.clone();
        if self.stage(phase).init()? < 0 {
            return Err(invalid(format!("no {} data defined", phase.data_name())));
        }
        let train = phase.is_train();
        let was = self.set_training(train)?;
        let r = if train {
            self.pass(phase, &opts, stop)
        } else {
            let _g = tch::no_grad_guard();
            self.pass(phase, &opts, stop)
        };
        self.set_training(was)?;
        if r.is_err() {
            self.stage(phase).restore();
        }
        r
    }

    fn set_training(&self, on: bool) -> Result<bool> {
        let mut m = lock(&self.module)?;
        let was = m.is_training();
        m.set_training(on);
        Ok(was)
    }

    fn pass(
        &mut self,
        phase: Phase,
        opts: &Options,
        stop: &mut dyn FnMut() -> bool,
    ) -> Result<Metrics> {
        let mut acc = Accum::default();
        let mut tr = if phase.is_train() {
            let ps = Trained::of(self)?;
            let rel = self.take_release(&ps.all)?;
            Some(Trainer { ps, rel })
        } else {
            None
        };
        let r = self.batches(phase, opts, &mut acc, tr.as_mut(), stop);
        if let Some(t) = tr {
            self.keep_release(t.rel);
        }
        r?;
        acc.finish(&opts.metrics, self.stage_ref(phase).order())
    }

    fn batches(
        &mut self,
        phase: Phase,
        opts: &Options,
        acc: &mut Accum,
        mut tr: Option<&mut Trainer>,
        stop: &mut dyn FnMut() -> bool,
    ) -> Result<()> {
        let mut hidden: Vec<Tensor> = Vec::new();
        let want_loss = Accum::wants_loss(&opts.metrics);
        while self.stage(phase).batch()? {
            if stop() {
                return Err(Error::Interrupted);
            }
            let stage = self.stage_ref(phase);
            let mut x = stage.inputs().unwrap_or_default();
            let y = stage.targets().unwrap_or_default();
            x.append(&mut hidden);
            let mut norm = None;
            let (loss, out) = if let Some(t) = tr.as_deref_mut() {
                let st = step_full(self, &x, &y, opts, &t.ps, &mut t.rel)?;
                norm = st.norm;
                (Some(st.loss), st.out)
            } else {
                let out = lock(&self.module)?.forward(&x)?;
                let l = if want_loss && !y.is_empty() {
                    Some(self.loss(&out, &y)?)
                } else {
                    None
                };
                (l, out)
            };
            if opts.hidden {
                hidden = out
                    .iter()
                    .skip(1)
                    .map(Tensor::f_detach)
                    .collect::<std::result::Result<Vec<_>, _>>()?;
            }
            acc.add(&opts.metrics, loss.as_ref(), &out, y.first(), norm.as_ref())?;
            if opts.sync {
                if let Some(t) = out.first() {
                    if let tch::Device::Cuda(i) = t.device() {
                        tch::Cuda::synchronize(i as i64);
                    }
                }
            }
        }
        Ok(())
    }
}
