//! The training step and the run / testrun loops over a stage's batches.

use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tch::Tensor;

use crate::amp::Cast;
use crate::autograd::{backward, GradRelease, Mode};
use crate::clip::{clip_norm, clip_value, grad_norm};
use crate::device::place;
use crate::dist::{dist_error, GradReducer, Group};
use crate::error::{invalid, Error, Result};
use crate::loss::{Loss, Reduce};
use crate::model::data::Shard;
use crate::model::metrics::{Accum, Metric};
use crate::model::options::{NonFinite, Options, Phase};
use crate::model::pause::Paused;
use crate::model::{lock, loss_of, Model};
use crate::params::Params;
use tch::Device;

/// Results of a run: each metric asked for, None where there is no value.
pub type Metrics = Vec<(Metric, Option<Tensor>)>;

/// One training step on `x`, `y`: gradients to none, forward, loss, backward,
/// clipping as `opts` say, optimizer step (re-evaluating for LBFGS).
/// Returns the loss of the first evaluation.
pub(crate) fn step(model: &Model, x: &[Tensor], y: &[Tensor], opts: &Options) -> Result<Tensor> {
    model.train.check_if_own(x)?;
    let ps = Trained::of(model)?;
    let mut rel = model.take_release(&ps.all)?;
    let r = step_full(model, x, y, opts, &ps, &mut rel, &mut Targets::Each, None);
    model.keep_release(rel);
    Ok(r?.loss)
}

/// The parameters a step trains, gathered once per run rather than per batch.
pub(crate) struct Trained {
    /// Every parameter, once each: the module's and the optimizer's.
    all: Vec<Tensor>,
    /// The optimizer's groups (clipping by group).
    groups: Vec<Vec<Tensor>>,
    /// The parameters that require gradients (whose gradients a process group sums).
    learn: Vec<Tensor>,
    /// In a training pass split over a process group: what sums the gradients of `learn`
    /// over the ranks, bucket by bucket as backward produces them.
    reducer: Option<GradReducer>,
}

impl Trained {
    fn of(model: &Model) -> Result<Trained> {
        let all = Params::parameters(model)?;
        let learn = all
            .iter()
            .filter(|t| t.requires_grad())
            .map(Tensor::shallow_clone)
            .collect();
        Ok(Trained {
            all,
            groups: Params::param_groups(model)?,
            learn,
            reducer: None,
        })
    }

    /// The reducer of a training pass split over `d`'s group: DDP's bucket sizes, the loss
    /// and flags on the pass's device.
    fn reduce_over(&mut self, d: &DistPass) -> Result<()> {
        let place = Tensor::f_zeros([1], (tch::Kind::Double, d.dev))?;
        let r = d
            .group
            .process_group()
            .grad_reducer(&self.learn, &place, FIRST_BUCKET, BUCKET)
            .map_err(|e| invalid(format!("dist: {}", e.0)))?;
        self.reducer = Some(r);
        Ok(())
    }
}

/// The first gradient bucket's size in bytes (DistributedDataParallel's: small, so that
/// communication starts early in backward).
const FIRST_BUCKET: i64 = 1 << 20;
/// The other gradient buckets' size in bytes (DistributedDataParallel's `bucket_cap_mb`).
const BUCKET: i64 = 25 << 20;

/// A pass split over a process group (option `dist`; see [`crate::dist`]).
pub(crate) struct DistPass {
    group: Group,
    /// Where the collectives of losses, counts and metrics go: the module's device.
    dev: Device,
    /// The loss reduced by sum (not mean): the losses every rank adds up.
    sum: bool,
    /// For `ce`/`nll` reduced by mean: the loss reduced by sum, each rank's sum then divided
    /// by the class weights of the global batch's targets.
    summed: Option<Loss>,
}

/// A batch of a pass split over a process group.
struct DistBatch<'a> {
    pass: &'a DistPass,
    /// Rows of the global batch.
    rows: i64,
    /// Rows of this rank's share.
    mine: i64,
    /// The global batch's first target, where the loss's mean divides by class weights.
    y: Option<Tensor>,
}

impl DistBatch<'_> {
    /// This rank's loss weighted by its share of the global batch: the global batch's loss
    /// is the sum of the ranks' weighted losses.
    fn weighted(
        &self,
        l: &Loss,
        targets: &mut Targets,
        out: &[Tensor],
        y: &[Tensor],
    ) -> Result<Tensor> {
        if let (Some(summed), Some(all), Some(x), Some(y0)) =
            (&self.pass.summed, &self.y, out.first(), y.first())
        {
            if l.class_mean(x, y0) {
                let s = targets.loss(summed, out, y)?;
                let total = l
                    .class_total(all)?
                    .f_to_device(s.device())?
                    .f_to_kind(s.kind())?;
                return Ok(s.f_div(&total)?);
            }
        }
        let loss = targets.loss(l, out, y)?;
        if self.pass.sum {
            Ok(loss)
        } else {
            Ok(loss.f_mul_scalar(self.mine as f64 / self.rows as f64)?)
        }
    }

    /// The global batch's loss: the sum of the ranks' weighted losses (`part`, None for a
    /// rank without rows), as a float64 scalar on the pass's device.
    fn sum_loss(&self, part: Option<&Tensor>) -> Result<Tensor> {
        let t = self.loss_buffer(part)?;
        self.pass.group.sum(std::slice::from_ref(&t))?;
        Ok(t.f_reshape([])?)
    }

    fn loss_buffer(&self, part: Option<&Tensor>) -> Result<Tensor> {
        let dev = self.pass.dev;
        Ok(match part {
            Some(p) => p
                .f_detach()?
                .f_to_dtype(tch::Kind::Double, false, true)?
                .f_to_device(dev)?
                .f_reshape([1])?,
            None => Tensor::f_zeros([1], (tch::Kind::Double, dev))?,
        })
    }
}

/// What a training pass keeps from batch to batch.
struct Trainer {
    ps: Trained,
    rel: GradRelease,
}

/// How a loss treats its targets' range checks (each check reads the device).
pub(crate) enum Targets<'a> {
    /// Checks each call's targets (explicit steps).
    Each,
    /// Checks these, a whole pass's targets, against the first output, then trusts.
    All(&'a [Tensor]),
    /// Checked already in this pass.
    Checked,
}

impl Targets<'_> {
    /// The loss of the first output against `y`, checking the targets as `self` says.
    fn loss(&mut self, l: &Loss, out: &[Tensor], y: &[Tensor]) -> Result<Tensor> {
        let Some(first) = out.first() else {
            return loss_of(l, out, y);
        };
        let x = std::slice::from_ref(first);
        match self {
            Targets::Each => l.forward(x, y),
            Targets::All(full) => {
                l.check_targets(x, full)?;
                *self = Targets::Checked;
                l.forward_checked(x, y)
            }
            Targets::Checked => l.forward_checked(x, y),
        }
    }
}

/// What one training step produced: loss, outputs, gradient norm before clipping.
struct Stepped {
    loss: Tensor,
    out: Vec<Tensor>,
    norm: Option<Tensor>,
}

#[allow(clippy::too_many_arguments)]
fn step_full(
    model: &Model,
    x: &[Tensor],
    y: &[Tensor],
    opts: &Options,
    ps: &Trained,
    rel: &mut GradRelease,
    targets: &mut Targets,
    dist: Option<&DistBatch>,
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
    // mixed precision: forward and loss under autocast; float16 scales the loss
    let cast = opts.autocast.and_then(|k| Cast::of(Some(k), m.device()));
    let mut scaler = match cast {
        Some(c) if c.scales() => Some(model.take_scaler(m.device().unwrap_or(Device::Cpu))?),
        _ => None,
    };
    let mut found: Option<Tensor> = None;
    let mut closure = || -> Result<Tensor> {
        rel.release()?;
        let (out, loss) = match dist {
            None => {
                let (out, loss) = {
                    let _cast = crate::amp::enter(cast.as_ref())?;
                    let out = m.forward(x)?;
                    let loss = targets.loss(&l, &out, y)?;
                    (out, loss)
                };
                match &scaler {
                    Some(s) => backward(&[s.scale(&loss)?], None, Mode::Free)?,
                    None => backward(&[loss.shallow_clone()], None, Mode::Free)?,
                }
                (out, loss)
            }
            Some(d) => {
                // a rank without rows in this batch adds zero gradients and loss
                let (out, part) = if d.mine > 0 {
                    let _cast = crate::amp::enter(cast.as_ref())?;
                    let out = m.forward(x)?;
                    let part = d.weighted(&l, targets, &out, y)?;
                    (out, Some(part))
                } else {
                    (vec![], None)
                };
                // the gradients are summed over the ranks as backward produces them, then
                // with this rank's weighted loss (a parameter no rank had a gradient for is
                // left without one, as one process leaves it)
                let r = ps.reducer.as_ref().ok_or_else(|| {
                    invalid("dist: a training step split over a process group needs a reducer")
                })?;
                r.begin().map_err(dist_error)?;
                if let Some(p) = &part {
                    let b = match &scaler {
                        Some(s) => backward(&[s.scale(p)?], None, Mode::Free),
                        None => backward(&[p.shallow_clone()], None, Mode::Free),
                    };
                    if let Err(e) = b {
                        // the other ranks' collectives of this step still complete
                        let _ = r.finish(None);
                        return Err(e);
                    }
                }
                let part = part.map(|p| p.f_detach()).transpose()?;
                let loss = r.finish(part.as_ref()).map_err(dist_error)?;
                (out, loss.f_to_device(d.pass.dev)?)
            }
        };
        if let Some(s) = &scaler {
            let (inf, f) = s.unscale(params)?;
            found = Some(f);
            if inf {
                // GradScaler skips the step: no gradients, no update
                rel.release()?;
                if first.is_none() {
                    first = Some(out);
                }
                return Ok(loss.f_detach()?);
            }
        }
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
    if let Some(mut sc) = scaler.take() {
        let u = match (&r, &found) {
            (Ok(_), Some(f)) => sc.update(f),
            _ => Ok(()),
        };
        model.keep_scaler(sc);
        u?;
    }
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
    /// A pass stopped between batches is finished instead ([`Model::pass_with`]).
    pub fn run(&mut self) -> Result<Metrics> {
        self.pass_with(Phase::Train, &mut || false)
    }

    /// An evaluation pass over every batch of the test data, without gradients.
    /// A pass stopped between batches is finished instead ([`Model::pass_with`]).
    pub fn testrun(&mut self) -> Result<Metrics> {
        self.pass_with(Phase::Test, &mut || false)
    }

    /// A pass over the stage's batches (training in training mode, testing in
    /// evaluation mode without gradients; the module's mode is restored after),
    /// calling `stop` before each batch: when it returns true the pass ends with
    /// [`Error::Interrupted`], data restored to full size, and the stage keeps the
    /// stopped pass ([`crate::model::Paused`]).
    ///
    /// A stage that keeps a stopped pass resumes it: no new shuffle, the first
    /// batch not done next, the metrics and hidden state of the stopped pass
    /// carried on; the metrics returned are the whole epoch's, as if the pass had
    /// not stopped. The stage drops a stopped pass (and the pass starts afresh)
    /// when its options changed since, when data was defined again, and on an
    /// explicit `batch`, `init`, `shuffle`, `unshuffle` or `restore`. A pass
    /// ended by any other error keeps nothing. A pass that completes counts one
    /// epoch ([`crate::model::Stage::epochs`]). A pass split over a process group
    /// (option `dist`, [`crate::dist`]) neither keeps nor resumes a stopped pass: the
    /// other ranks fail in their next collective.
    pub fn pass_with(&mut self, phase: Phase, stop: &mut dyn FnMut() -> bool) -> Result<Metrics> {
        self.pass_watched(phase, stop, None)
    }

    /// [`Model::pass_with`], calling `watch` after each batch with where the
    /// pass stands ([`Tick`]); an error from `watch` ends the pass with that
    /// error, data restored to full size.
    pub fn pass_watched(
        &mut self,
        phase: Phase,
        stop: &mut dyn FnMut() -> bool,
        watch: Option<&mut Watch>,
    ) -> Result<Metrics> {
        if !self.stage_ref(phase).has_data() {
            return Err(invalid(format!("no {} data defined", phase.data_name())));
        }
        // the test stage without a process group of its own uses the training stage's
        let group = match (&self.stage_ref(phase).opts.dist, phase) {
            (Some(g), _) => Some(g.clone()),
            (None, Phase::Test) => self.train.opts.dist.clone(),
            (None, Phase::Train) => None,
        };
        let Some(group) = group else {
            return self.pass_in(phase, stop, watch, None);
        };
        let dist = self.dist_start(phase, group)?;
        self.stage(phase).set_shard(Some(Shard {
            group: dist.group.clone(),
            dev: dist.dev,
        }));
        let r = self.pass_in(phase, stop, watch, Some(&dist));
        self.stage(phase).set_shard(None);
        r
    }

    /// The start of a pass split over process group `g`: checks the group and the loss,
    /// then gives every rank rank 0's parameters and buffers.
    fn dist_start(&mut self, phase: Phase, group: Group) -> Result<DistPass> {
        group.check()?;
        let (dev, named) = {
            let q = lock(&self.module)?;
            let mut ts = q.named_parameters();
            ts.extend(q.named_buffers());
            (q.device().unwrap_or(Device::Cpu), ts)
        };
        // the module's tensors, then the optimizer's own, each once
        let mut named: Vec<(String, Tensor)> =
            named.into_iter().filter(|(_, t)| t.defined()).collect();
        let opt = lock(&self.opt)?.params();
        for (i, t) in opt.into_iter().enumerate() {
            if t.defined() {
                named.push((format!("optimizer parameter {i}"), t));
            }
        }
        let (names, ts): (Vec<String>, Vec<Tensor>) = crate::clip::distinct_by(named, |(_, t)| t)
            .into_iter()
            .unzip();
        let (sum, summed) = {
            let l = lock(&self.loss)?;
            let wanted = phase.is_train() || Accum::wants_loss(&self.stage_ref(phase).opts.metrics);
            match l.reduce() {
                Some(Reduce::Sum) => (true, None),
                Some(Reduce::Mean) if matches!(l.kind(), "ce" | "nll") => (false, Some(l.summed())),
                Some(Reduce::Mean | Reduce::BatchMean) => (false, None),
                _ if !wanted => (false, None),
                r => {
                    return Err(invalid(format!(
                        "dist: the loss {} reduces by {}: a process group needs one value per \
                         batch (reduction mean, sum or batchmean)",
                        l.kind(),
                        r.map_or("nothing", Reduce::name)
                    )))
                }
            }
        };
        if self.stage_ref(phase).opts.distcheck {
            group.agree(&names, &ts)?;
        } else {
            group.broadcast(&ts, 0)?;
        }
        Ok(DistPass {
            group,
            dev,
            sum,
            summed,
        })
    }

    fn pass_in(
        &mut self,
        phase: Phase,
        stop: &mut dyn FnMut() -> bool,
        watch: Option<&mut Watch>,
        dist: Option<&DistPass>,
    ) -> Result<Metrics> {
        let opts = self.stage_ref(phase).opts.clone();
        // a stopped pass with the options of this one resumes; any other is dropped (a pass
        // split over a process group neither keeps nor resumes one)
        let paused = self
            .stage(phase)
            .take_paused()
            .filter(|p| p.opts == opts && !p.waiting && dist.is_none());
        let mut carry = Carry::default();
        let begun = match paused {
            Some(mut p) => {
                let b = self.resume(phase, &mut p);
                carry.acc = std::mem::take(&mut p.acc);
                carry.hidden = std::mem::take(&mut p.hidden);
                b
            }
            None => self.stage(phase).begin(),
        };
        let batches = match begun {
            Ok(b) if b >= 0 => b,
            Ok(_) => return Err(invalid(format!("no {} data defined", phase.data_name()))),
            Err(e) => {
                self.stage(phase).end();
                return Err(e);
            }
        };
        let mut w = Watcher::new(phase, batches, opts.progress, watch);
        let train = phase.is_train();
        let was = match w
            .resumed(carry.acc.seen(), carry.acc.losses())
            .and_then(|()| self.set_training(train))
        {
            Ok(was) => was,
            Err(e) => {
                w.finish(false);
                self.stage(phase).end();
                return Err(e);
            }
        };
        let r = if train {
            self.pass(phase, &opts, stop, &mut w, &mut carry, dist)
        } else {
            let _g = tch::no_grad_guard();
            self.pass(phase, &opts, stop, &mut w, &mut carry, dist)
        };
        let r = r.and_then(|()| {
            if let Some(d) = dist {
                self.dist_end(phase, d, &mut carry.acc, &opts)?;
            }
            let acc = std::mem::take(&mut carry.acc);
            acc.finish(&opts.metrics, self.stage_ref(phase).order())
        });
        let back = self.set_training(was);
        w.finish(r.is_ok());
        let st = self.stage(phase);
        match (&r, carry.stopped) {
            (Ok(_), _) => st.count_epoch(),
            (Err(Error::Interrupted), Some(next)) if dist.is_none() => {
                let rows = st.rows();
                st.keep_paused(Paused {
                    next,
                    rows,
                    opts,
                    acc: carry.acc,
                    hidden: carry.hidden,
                    waiting: false,
                });
            }
            _ => {}
        }
        if r.is_err() {
            st.end();
        }
        back?;
        r
    }

    /// The end of a pass split over a process group: rank 0's buffers to every rank after
    /// training, the metrics made those of the whole data.
    fn dist_end(&self, phase: Phase, d: &DistPass, acc: &mut Accum, opts: &Options) -> Result<()> {
        if phase.is_train() {
            let bs: Vec<Tensor> = lock(&self.module)?
                .named_buffers()
                .into_iter()
                .map(|(_, t)| t)
                .filter(Tensor::defined)
                .collect();
            d.group.broadcast(&crate::clip::distinct(bs), 0)?;
        }
        let layout = self.stage_ref(phase).layout();
        acc.gather(&d.group, d.dev, &layout, &opts.metrics)
    }

    /// Makes the stage ready to finish stopped pass `p`, its tensors on the module's device.
    fn resume(&mut self, phase: Phase, p: &mut Paused) -> Result<i64> {
        let b = self.stage(phase).resume(p)?;
        if let Some(dev) = lock(&self.module)?.device() {
            p.move_to(dev)?;
        }
        Ok(b)
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
        w: &mut Watcher<'_, '_>,
        carry: &mut Carry,
        dist: Option<&DistPass>,
    ) -> Result<()> {
        let mut tr = if phase.is_train() {
            let mut ps = Trained::of(self)?;
            if let Some(d) = dist {
                ps.reduce_over(d)?;
            }
            let rel = self.take_release(&ps.all)?;
            Some(Trainer { ps, rel })
        } else {
            None
        };
        let r = self.batches(phase, opts, carry, tr.as_mut(), stop, w, dist);
        if let Some(t) = tr {
            self.keep_release(t.rel);
        }
        r
    }

    #[allow(clippy::too_many_arguments)]
    fn batches(
        &mut self,
        phase: Phase,
        opts: &Options,
        carry: &mut Carry,
        mut tr: Option<&mut Trainer>,
        stop: &mut dyn FnMut() -> bool,
        w: &mut Watcher<'_, '_>,
        dist: Option<&DistPass>,
    ) -> Result<()> {
        let Carry {
            acc,
            hidden,
            stopped,
        } = carry;
        let want_loss = Accum::wants_loss(&opts.metrics);
        // the pass's targets are checked once, against the first batch's output, and
        // on the CPU once per definition (a torch.Tensor shared with the caller may be
        // written later: on the CPU libtorch raises for a bad class index itself, on a
        // GPU it would assert, so GPU targets are checked every run)
        let all_targets = self.stage_ref(phase).targets_full().unwrap_or_default();
        let on_cpu = all_targets.iter().all(|t| t.device() == tch::Device::Cpu);
        let mut targets = if on_cpu && self.stage_ref(phase).targets_checked() {
            Targets::Checked
        } else {
            Targets::All(&all_targets)
        };
        // host data meets a GPU module batch by batch (pinned, copied without blocking)
        let (module, float) = {
            let q = lock(&self.module)?;
            (q.device(), q.float_kind())
        };
        let cast = Cast::of(opts.autocast, module);
        let dev = self.stage(phase).placement(
            module,
            float,
            &format!("the {} data is", phase.data_name()),
        )?;
        while self.stage(phase).next_batch()? {
            if stop() {
                // the stage keeps the pass from here: this batch is the next to run
                *stopped = self.stage_ref(phase).batch_index();
                return Err(Error::Interrupted);
            }
            let stage = self.stage_ref(phase);
            let mut x = place(stage.inputs().unwrap_or_default(), dev)?;
            let y = place(stage.targets().unwrap_or_default(), dev)?;
            x.append(hidden);
            let db = match (dist, stage.span()) {
                (Some(pass), Some(span)) => {
                    // the global batch's targets where the module is (as this rank's), so
                    // that the class weights' total needs no copy back to the host
                    let all = match (&pass.summed, stage.targets_full()) {
                        (Some(_), Some(ts)) => match ts.first() {
                            Some(t) => {
                                place(vec![t.f_narrow(0, span.start, span.rows)?], dev)?.pop()
                            }
                            None => None,
                        },
                        _ => None,
                    };
                    Some(DistBatch {
                        pass,
                        rows: span.rows,
                        mine: span.mine.1,
                        y: all,
                    })
                }
                _ => None,
            };
            let mut norm = None;
            let (loss, out) = if let Some(t) = tr.as_deref_mut() {
                let st = step_full(
                    self,
                    &x,
                    &y,
                    opts,
                    &t.ps,
                    &mut t.rel,
                    &mut targets,
                    db.as_ref(),
                )?;
                norm = st.norm;
                (Some(st.loss), st.out)
            } else {
                let _cast = crate::amp::enter(cast.as_ref())?;
                match &db {
                    None => {
                        let out = lock(&self.module)?.forward(&x)?;
                        let l = if want_loss && !y.is_empty() {
                            let l = lock(&self.loss)?;
                            Some(targets.loss(&l, &out, &y)?)
                        } else {
                            None
                        };
                        (l, out)
                    }
                    Some(d) => {
                        // a rank without rows in this batch computes nothing, adds zero
                        let out = if d.mine > 0 {
                            lock(&self.module)?.forward(&x)?
                        } else {
                            vec![]
                        };
                        let l = if want_loss && !y.is_empty() {
                            let part = if d.mine > 0 {
                                let l = lock(&self.loss)?;
                                Some(d.weighted(&l, &mut targets, &out, &y)?)
                            } else {
                                None
                            };
                            Some(d.sum_loss(part.as_ref())?)
                        } else {
                            None
                        };
                        (l, out)
                    }
                }
            };
            if opts.hidden {
                *hidden = out
                    .iter()
                    .skip(1)
                    .map(Tensor::f_detach)
                    .collect::<std::result::Result<Vec<_>, _>>()?;
            }
            match &db {
                Some(d) if d.mine == 0 => {
                    acc.add_empty(&opts.metrics, loss.as_ref(), norm.as_ref())?
                }
                _ => acc.add(&opts.metrics, loss.as_ref(), &out, y.first(), norm.as_ref())?,
            }
            if let Err(e) = w.batch(loss.as_ref()) {
                if matches!(e, Error::Interrupted) {
                    // stopped by the watcher (Ctrl-C during a callback): this batch is
                    // done, the following one runs next (none after the last batch)
                    *stopped = self.stage_ref(phase).following_index();
                }
                return Err(e);
            }
            if matches!(targets, Targets::Checked) && !self.stage_ref(phase).targets_checked() {
                self.stage(phase).set_targets_checked();
            }
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

/// What a pass carries from batch to batch, and keeps when it stops.
#[derive(Default)]
struct Carry {
    /// The metrics accumulated.
    acc: Accum,
    /// The recurrent state the next batch takes (option hidden).
    hidden: Vec<Tensor>,
    /// The batch the pass stopped before (set only by a stop between batches).
    stopped: Option<i64>,
}

/// A watcher of [`Model::pass_watched`]: called after each batch.
pub type Watch<'a> = dyn FnMut(&Tick) -> Result<()> + 'a;

/// Where a pass stands after a batch, for the watcher of [`Model::pass_watched`].
pub struct Tick<'a> {
    /// Training or testing.
    pub phase: Phase,
    /// Batches done in this pass (in a resumed pass, those done before it
    /// stopped included).
    pub batch: i64,
    /// Batches in the pass.
    pub batches: i64,
    /// Time since the pass began.
    pub elapsed: Duration,
    loss: &'a RunningLoss,
}

impl Tick<'_> {
    /// The mean loss of the batches done so far (None when no loss was
    /// computed). It reads the device: ask at most every so often. A resumed pass
    /// counts the batches done before it stopped where it kept their losses (a
    /// loss metric asked for), else it starts again from its first batch.
    pub fn loss(&self) -> Option<f64> {
        self.loss.mean()
    }
}

/// The sum of the batch losses, kept on the device.
#[derive(Default)]
struct RunningLoss {
    sum: Option<Tensor>,
    n: i64,
}

impl RunningLoss {
    fn add(&mut self, l: &Tensor) -> Result<()> {
        let _g = tch::no_grad_guard();
        match self.sum.as_mut() {
            // a copy: the sum is added to in place, the loss is the caller's
            None => self.sum = Some(l.f_to_dtype(tch::Kind::Double, false, true)?),
            Some(s) => {
                let _ = s.f_add_(l)?;
            }
        }
        self.n += 1;
        Ok(())
    }

    fn mean(&self) -> Option<f64> {
        let s = self.sum.as_ref()?.f_double_value(&[]).ok()?;
        Some(s / self.n as f64)
    }
}

/// A pass's progress bar and watcher.
struct Watcher<'w, 'f> {
    phase: Phase,
    batch: i64,
    batches: i64,
    start: Instant,
    loss: RunningLoss,
    bar: Option<ProgressBar>,
    shown: Instant,
    watch: Option<&'w mut Watch<'f>>,
}

/// How often the bar's running loss is read from the device.
const REFRESH: Duration = Duration::from_millis(100);

impl<'w, 'f> Watcher<'w, 'f> {
    fn new(
        phase: Phase,
        batches: i64,
        progress: bool,
        watch: Option<&'w mut Watch<'f>>,
    ) -> Watcher<'w, 'f> {
        let target = ProgressDrawTarget::stderr_with_hz(10);
        let bar = (progress && !target.is_hidden()).then(|| {
            let b = ProgressBar::with_draw_target(Some(batches.max(0) as u64), target);
            if let Ok(style) = ProgressStyle::with_template(
                "{prefix} {bar:30} {pos}/{len} [{elapsed_precise}<{eta_precise}, {per_sec}] {msg}",
            ) {
                b.set_style(style);
            }
            b.set_prefix(if phase.is_train() { "train" } else { "test" });
            b
        });
        let now = Instant::now();
        Watcher {
            phase,
            batch: 0,
            batches,
            start: now,
            loss: RunningLoss::default(),
            bar,
            shown: now,
            watch,
        }
    }

    /// A resumed pass: `done` batches done before it stopped, `losses` their losses
    /// where kept.
    fn resumed(&mut self, done: i64, losses: &[Tensor]) -> Result<()> {
        if done == 0 || (self.bar.is_none() && self.watch.is_none()) {
            return Ok(());
        }
        self.batch = done;
        if losses.len() as i64 == done {
            for l in losses {
                self.loss.add(l)?;
            }
        }
        if let Some(b) = &self.bar {
            b.set_position(done as u64);
        }
        Ok(())
    }

    fn batch(&mut self, loss: Option<&Tensor>) -> Result<()> {
        if self.bar.is_none() && self.watch.is_none() {
            return Ok(());
        }
        self.batch += 1;
        if let Some(l) = loss {
            self.loss.add(l)?;
        }
        if let Some(b) = &self.bar {
            b.set_position(self.batch as u64);
            if self.shown.elapsed() >= REFRESH || self.batch == self.batches {
                self.shown = Instant::now();
                if let Some(l) = self.loss.mean() {
                    b.set_message(format!("loss {l:.4}"));
                }
            }
        }
        if let Some(w) = self.watch.as_mut() {
            let t = Tick {
                phase: self.phase,
                batch: self.batch,
                batches: self.batches,
                elapsed: self.start.elapsed(),
                loss: &self.loss,
            };
            w(&t)?;
        }
        Ok(())
    }

    fn finish(&mut self, ok: bool) {
        if let Some(b) = self.bar.take() {
            if ok {
                b.finish();
            } else {
                b.abandon();
            }
        }
    }
}
