//! Models: a module, a loss and an optimizer, with training and test data and options.

mod data;
mod metrics;
mod options;
mod pause;
mod run;
pub mod swa;

use std::sync::Mutex;

use tch::Tensor;

use crate::error::{err, invalid, Result};
use crate::loss::Loss;
use crate::nn::Module;
use crate::optim::Optimizer;

pub use data::{Position, Stage};
pub use metrics::Metric;
pub use options::{Options, Phase};
pub use pause::{Paused, PausedParts};

pub use crate::sync::{held_here, lock, shared, Guard, Share, Shared};
pub use run::{Metrics, Tick, Watch};

/// How a forward calculation runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fwd {
    /// Training mode, with gradients (`forward`).
    Grad,
    /// Training mode, no gradients (`nforward`).
    NoGrad,
    /// Evaluation mode, no gradients (`eforward`, `evaluate`).
    Eval,
}

/// Runs a module's forward calculation in the given mode; the module's
/// training flag is restored afterwards.
pub fn forward(m: &mut Module, xs: &[Tensor], mode: Fwd) -> Result<Vec<Tensor>> {
    match mode {
        Fwd::Grad => m.forward(xs),
        Fwd::NoGrad => {
            let _g = tch::no_grad_guard();
            m.forward(xs)
        }
        Fwd::Eval => {
            let was = m.is_training();
            m.set_training(false);
            let r = {
                let _g = tch::no_grad_guard();
                m.forward(xs)
            };
            m.set_training(was);
            r
        }
    }
}

/// A model: module, loss and optimizer, with training and test stages.
#[derive(Debug)]
pub struct Model {
    module: Shared<Module>,
    loss: Shared<Loss>,
    opt: Shared<Optimizer>,
    /// Training options and data.
    pub train: Stage,
    /// Test options and data.
    pub test: Stage,
    /// The gradient release of the last parameter list trained (built once, reused).
    release: Mutex<Option<crate::autograd::GradRelease>>,
    /// The loss scale of float16 training (option autocast), kept from step to step.
    scaler: Mutex<Option<crate::amp::Scaler>>,
}

impl Model {
    /// A model over shared module, loss and optimizer.
    pub fn new(module: Shared<Module>, loss: Shared<Loss>, opt: Shared<Optimizer>) -> Model {
        Model {
            module,
            loss,
            opt,
            train: Stage::new(Phase::Train),
            test: Stage::new(Phase::Test),
            release: Mutex::new(None),
            scaler: Mutex::new(None),
        }
    }

    /// The model's module.
    pub fn module(&self) -> &Shared<Module> {
        &self.module
    }

    /// The model's loss.
    pub fn loss_fn(&self) -> &Shared<Loss> {
        &self.loss
    }

    /// The model's optimizer.
    pub fn optimizer(&self) -> &Shared<Optimizer> {
        &self.opt
    }

    /// Replaces the module, loss and/or optimizer (the original's
    /// `model(m; object; ..)`), keeping options, data and where training
    /// stands. `me` is the model's own shared handle: from now on the model is
    /// locked with its new parts. Call it holding the model's lock and the new
    /// parts' domains.
    pub fn redefine(
        &mut self,
        me: &Shared<Model>,
        module: Option<Shared<Module>>,
        loss: Option<Shared<Loss>>,
        opt: Option<Shared<Optimizer>>,
    ) {
        if let Some(q) = module {
            me.set_part(0, q.as_part());
            self.module = q;
        }
        if let Some(l) = loss {
            me.set_part(1, l.as_part());
            self.loss = l;
        }
        if let Some(o) = opt {
            me.set_part(2, o.as_part());
            self.opt = o;
        }
        // the cached gradient release covered the old parameters
        if let Ok(mut g) = self.release.lock() {
            *g = None;
        }
    }

    /// The training or test stage.
    pub fn stage(&mut self, phase: Phase) -> &mut Stage {
        match phase {
            Phase::Train => &mut self.train,
            Phase::Test => &mut self.test,
        }
    }

    /// The training options, to set with typed setters:
    /// `m.train_options().batchsize(100)?.shuffle(true)?;`
    pub fn train_options(&mut self) -> &mut Options {
        &mut self.train.opts
    }

    /// The test options, to set with typed setters.
    pub fn test_options(&mut self) -> &mut Options {
        &mut self.test.opts
    }

    /// The training or test stage, to read.
    pub fn stage_ref(&self, phase: Phase) -> &Stage {
        match phase {
            Phase::Train => &self.train,
            Phase::Test => &self.test,
        }
    }

    /// Forward on the given inputs, or on the stage's data: training data for
    /// `Grad`/`NoGrad`, test data for `Eval`.
    pub fn forward(&self, x: Option<&[Tensor]>, mode: Fwd) -> Result<Vec<Tensor>> {
        let own;
        let mut missing = None;
        let xs = match x {
            Some(x) => x,
            None => {
                let (stage, which) = if mode == Fwd::Eval {
                    (&self.test, "test")
                } else {
                    (&self.train, "training")
                };
                if !stage.has_data() {
                    missing = Some(which);
                }
                own = stage.inputs().unwrap_or_default();
                &own
            }
        };
        if let Some(which) = missing {
            // the module decides whether it runs without inputs; if not, say why there were none
            let mut m = lock(&self.module)?;
            return forward(&mut m, xs, mode)
                .map_err(|e| invalid(format!("no {which} data defined; {e}")));
        }
        let mut m = lock(&self.module)?;
        let xs = m.place(
            xs.iter().map(Tensor::shallow_clone).collect(),
            "the inputs are",
        )?;
        forward(&mut m, &xs, mode)
    }

    /// Data in the module's floating dtype: see [`Module::conform`].
    pub fn conform(&self, xs: Vec<Tensor>, owned: &[bool], what: &str) -> Result<Vec<Tensor>> {
        lock(&self.module)?.conform(xs, owned, what)
    }

    /// The model's loss on outputs and targets.
    pub fn loss(&self, yhat: &[Tensor], y: &[Tensor]) -> Result<Tensor> {
        let l = lock(&self.loss)?;
        loss_of(&l, yhat, y)
    }

    fn data_or(
        &self,
        x: Option<Vec<Tensor>>,
        y: Option<Vec<Tensor>>,
    ) -> Result<(Vec<Tensor>, Vec<Tensor>)> {
        let x = match x {
            Some(x) => x,
            None => self
                .train
                .inputs()
                .ok_or_else(|| invalid("no training data defined"))?,
        };
        let y = match y {
            Some(y) => y,
            None => self.train.targets().unwrap_or_default(),
        };
        let m = lock(&self.module)?;
        Ok((
            m.place(x, "the inputs are")?,
            m.place(y, "the targets are")?,
        ))
    }

    /// Forward, loss and backward on the given data (or the training data);
    /// returns the loss.
    pub fn backward(&self, x: Option<Vec<Tensor>>, y: Option<Vec<Tensor>>) -> Result<f64> {
        let (x, y) = self.data_or(x, y)?;
        let m = lock(&self.module)?;
        let l = lock(&self.loss)?;
        let out = m.forward(&x)?;
        let loss = loss_of(&l, &out, &y)?;
        crate::autograd::backward(&[loss.shallow_clone()], None, crate::autograd::Mode::Free)?;
        Ok(loss.f_double_value(&[])?)
    }

    /// Forward, loss, backward, clipping by the training options and an
    /// optimizer step (a closure, so LBFGS can re-evaluate); returns the loss.
    pub fn backstep(&self, x: Option<Vec<Tensor>>, y: Option<Vec<Tensor>>) -> Result<f64> {
        let (x, y) = self.data_or(x, y)?;
        let loss = run::step(self, &x, &y, &self.train.opts)?;
        Ok(loss.f_double_value(&[])?)
    }

    /// A gradient release for `ps`: the cached one when it covers `ps`, else a new one.
    /// Give it back with [`Model::keep_release`].
    pub(crate) fn take_release(&self, ps: &[Tensor]) -> Result<crate::autograd::GradRelease> {
        let cached = self.release.lock().ok().and_then(|mut g| g.take());
        match cached {
            Some(r) if r.covers(ps) => Ok(r),
            _ => crate::autograd::GradRelease::new(ps),
        }
    }

    /// Caches a gradient release for the next step or run.
    pub(crate) fn keep_release(&self, r: crate::autograd::GradRelease) {
        if let Ok(mut g) = self.release.lock() {
            *g = Some(r);
        }
    }

    /// Moves or converts the module's parameters and buffers, the optimizer's
    /// parameters and state and the loss's weights together (`to(m, "cuda")`); the data stays where it
    /// is (each batch goes to the module's device in a pass). A failed call
    /// changes nothing.
    pub fn to(&self, p: &crate::device::Place) -> Result<()> {
        p.check_floating()?;
        let q = lock(&self.module)?;
        let o = lock(&self.opt)?;
        let l = lock(&self.loss)?;
        let mut ts = q.movable();
        ts.extend(o.movable());
        ts.extend(l.movable());
        crate::device::convert_in_place(&crate::clip::distinct(ts), p)
    }

    /// Where the model's module lives (None for a module without parameters or buffers).
    pub fn device(&self) -> Result<Option<tch::Device>> {
        Ok(lock(&self.module)?.device())
    }

    /// The loss scaler of float16 training, its state on `device` (a new one the first time).
    pub(crate) fn take_scaler(&self, device: tch::Device) -> Result<crate::amp::Scaler> {
        let kept = self.scaler.lock().ok().and_then(|mut g| g.take());
        match kept {
            Some(mut s) => {
                s.on(device)?;
                Ok(s)
            }
            None => crate::amp::Scaler::new(device),
        }
    }

    /// Keeps the loss scaler for the next step.
    pub(crate) fn keep_scaler(&self, s: crate::amp::Scaler) {
        if let Ok(mut g) = self.scaler.lock() {
            *g = Some(s);
        }
    }

    /// The loss scale of float16 training (option autocast `half`), None before its first step.
    pub fn loss_scale(&self) -> Result<Option<f64>> {
        let g = self
            .scaler
            .lock()
            .map_err(|_| invalid("loss scaler lock poisoned"))?;
        g.as_ref().map(crate::amp::Scaler::value).transpose()
    }

    /// Resets gradients of every parameter the model trains.
    pub fn zerograd(&self, none: bool) -> Result<()> {
        crate::autograd::reset_grads(&crate::params::Params::parameters(self)?, none)
    }

    /// An optimizer step.
    pub fn step(&self) -> Result<()> {
        lock(&self.opt)?.step()
    }
}

impl crate::sync::Share for Model {
    /// Module, loss and optimizer, in that order ([`Model::redefine`] replaces them by position).
    fn parts(&self) -> Vec<std::sync::Arc<dyn crate::sync::Part>> {
        vec![
            self.module.as_part(),
            self.loss.as_part(),
            self.opt.as_part(),
        ]
    }
}

/// Computes a loss from module outputs: the loss takes the first output.
pub(crate) fn loss_of(l: &Loss, yhat: &[Tensor], y: &[Tensor]) -> Result<Tensor> {
    let first = yhat
        .first()
        .ok_or_else(|| err(l.kind(), "no model output"))?;
    l.forward(std::slice::from_ref(first), y)
}
