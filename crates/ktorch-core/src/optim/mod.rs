//! Optimizers with parameter groups: sgd, adam, adamw, adagrad, rmsprop, lbfgs, lamb.
//!
//! Each optimizer file holds its settings (parsed by position or name with
//! [`Args`]) and its update, written as torch.optim's single-tensor code
//! (`foreach=False`) writes it, operation by operation, so that the numbers agree
//! with PyTorch. sgd, adam, adamw and adagrad update the parameters libtorch's fused
//! kernels take with one call per device and dtype instead (fused.rs), which is
//! torch.optim's `fused=True` update bit for bit and the single-tensor one to rounding;
//! rmsprop likewise runs torch.optim's `foreach=True` update in one call.
//! This file holds the groups, the per-parameter state and dispatch.

mod adagrad;
mod adam;
mod fused;
mod lamb;
mod lbfgs;
mod linesearch;
mod ops;
mod rmsprop;
mod sgd;
mod state;
#[cfg(test)]
mod testutil;

use tch::Tensor;

use crate::args::Args;
use crate::error::{err, Named, Result};
use crate::value::Value;
use ops::ParamState;
pub use state::{GroupEntry, OptimizerState, ParamEntry, ParmState};

/// The names of every optimizer.
pub const OPTIMIZER_TYPES: &[&str] = &[
    "sgd", "adam", "adamw", "adagrad", "rmsprop", "lbfgs", "lamb",
];

/// The settings of one group (or an optimizer's defaults for new groups).
#[derive(Debug, Clone, PartialEq)]
enum Settings {
    Sgd(sgd::Sgd),
    Adam(adam::Adam),
    AdamW(adam::Adam),
    Adagrad(adagrad::Adagrad),
    Rmsprop(rmsprop::Rmsprop),
    Lbfgs(lbfgs::Lbfgs),
    Lamb(lamb::Lamb),
}

impl Settings {
    /// The default settings of optimizer `name`.
    fn defaults(name: &str) -> Result<Settings> {
        Ok(match name {
            "sgd" => Settings::Sgd(sgd::Sgd::default()),
            "adam" => Settings::Adam(adam::Adam::default()),
            "adamw" => Settings::AdamW(adam::Adam::adamw()),
            "adagrad" => Settings::Adagrad(adagrad::Adagrad::default()),
            "rmsprop" => Settings::Rmsprop(rmsprop::Rmsprop::default()),
            "lbfgs" => Settings::Lbfgs(lbfgs::Lbfgs::default()),
            "lamb" => Settings::Lamb(lamb::Lamb::default()),
            _ => {
                return Err(err(
                    "opt",
                    crate::error::unrecognized("optimizer", "optimizer", name, OPTIMIZER_TYPES),
                ))
            }
        })
    }

    /// `self` overridden by the settings given by position or name.
    fn update(&self, name: &str, pos: &[Value], kw: &[(String, Value)]) -> Result<Settings> {
        self.update_unnamed(name, pos, kw).named(name)
    }

    fn update_unnamed(
        &self,
        name: &str,
        pos: &[Value],
        kw: &[(String, Value)],
    ) -> Result<Settings> {
        Ok(match self {
            Settings::Sgd(s) => Settings::Sgd(s.parse(&Args::parse(name, sgd::NAMES, pos, kw)?)?),
            Settings::Adam(s) => {
                Settings::Adam(s.parse(&Args::parse(name, adam::NAMES, pos, kw)?)?)
            }
            Settings::AdamW(s) => {
                Settings::AdamW(s.parse(&Args::parse(name, adam::NAMES, pos, kw)?)?)
            }
            Settings::Adagrad(s) => {
                Settings::Adagrad(s.parse(&Args::parse(name, adagrad::NAMES, pos, kw)?)?)
            }
            Settings::Rmsprop(s) => {
                Settings::Rmsprop(s.parse(&Args::parse(name, rmsprop::NAMES, pos, kw)?)?)
            }
            Settings::Lbfgs(s) => {
                Settings::Lbfgs(s.parse(&Args::parse(name, lbfgs::NAMES, pos, kw)?)?)
            }
            Settings::Lamb(s) => {
                Settings::Lamb(s.parse(&Args::parse(name, lamb::NAMES, pos, kw)?)?)
            }
        })
    }

    fn lr(&self) -> f64 {
        match self {
            Settings::Sgd(s) => s.lr,
            Settings::Adam(s) | Settings::AdamW(s) => s.lr,
            Settings::Adagrad(s) => s.lr,
            Settings::Rmsprop(s) => s.lr,
            Settings::Lbfgs(s) => s.lr,
            Settings::Lamb(s) => s.lr,
        }
    }

    fn set_lr(&mut self, lr: f64) {
        match self {
            Settings::Sgd(s) => s.lr = lr,
            Settings::Adam(s) | Settings::AdamW(s) => s.lr = lr,
            Settings::Adagrad(s) => s.lr = lr,
            Settings::Rmsprop(s) => s.lr = lr,
            Settings::Lbfgs(s) => s.lr = lr,
            Settings::Lamb(s) => s.lr = lr,
        }
    }

    fn values(&self) -> Vec<(String, Value)> {
        let v: Vec<(&str, Value)> = match self {
            Settings::Sgd(s) => s.values(),
            Settings::Adam(s) | Settings::AdamW(s) => s.values(),
            Settings::Adagrad(s) => s.values(),
            Settings::Rmsprop(s) => s.values(),
            Settings::Lbfgs(s) => s.values(),
            Settings::Lamb(s) => s.values(),
        };
        v.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
    }
}

/// One parameter group: parameters, their settings and their state.
#[derive(Debug)]
struct Group {
    params: Vec<Tensor>,
    /// Each parameter's name in the module it came from, where known.
    names: Vec<Option<String>>,
    settings: Settings,
    state: Vec<ParamState>,
}

/// An lbfgs optimizer's parameter values and state saved before a step, to go back to.
#[derive(Debug)]
pub(crate) struct Saved {
    params: Vec<(Tensor, Tensor)>,
    lbfgs: lbfgs::State,
}

/// An optimizer: a kind, default settings and parameter groups with per-parameter state.
#[derive(Debug)]
pub struct Optimizer {
    kind: String,
    defaults: Settings,
    groups: Vec<Group>,
    lbfgs: lbfgs::State,
}

impl Optimizer {
    /// A new optimizer; `params` empty gives an optimizer with no groups, and
    /// the settings become the defaults of groups added later.
    pub fn new(
        name: &str,
        params: Vec<Tensor>,
        pos: &[Value],
        kw: &[(String, Value)],
    ) -> Result<Optimizer> {
        let defaults = Settings::defaults(name)?.update(name, pos, kw)?;
        let mut o = Optimizer {
            kind: name.to_string(),
            defaults,
            groups: Vec::new(),
            lbfgs: lbfgs::State::default(),
        };
        if !params.is_empty() {
            o.check_params(&params)?;
            o.push_group(params, o.defaults.clone());
        }
        Ok(o)
    }

    fn push_group(&mut self, params: Vec<Tensor>, settings: Settings) {
        let state = params.iter().map(|_| ParamState::default()).collect();
        self.groups.push(Group {
            names: vec![None; params.len()],
            params,
            settings,
            state,
        });
    }

    /// Parameters must be defined and appear once across all groups, as PyTorch requires.
    fn check_params(&self, params: &[Tensor]) -> Result<()> {
        let key = |t: &Tensor| (t.data_ptr() as usize, t.size());
        let mut seen: Vec<(usize, Vec<i64>)> = self
            .params()
            .iter()
            .filter(|t| t.numel() > 0)
            .map(key)
            .collect();
        for (i, p) in params.iter().enumerate() {
            if !p.defined() {
                return Err(err("opt", format!("parameter {i} is not a defined tensor")));
            }
            if p.numel() > 0 {
                let k = key(p);
                if seen.contains(&k) {
                    return Err(err(
                        "opt",
                        "some parameters appear more than once in the optimizer's groups",
                    ));
                }
                seen.push(k);
            }
        }
        Ok(())
    }

    /// The optimizer name.
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// Number of parameter groups.
    pub fn groups(&self) -> usize {
        self.groups.len()
    }

    /// Adds a group (g == groups), starting from the optimizer defaults, or edits
    /// group g (g < groups): its settings are overridden by `pos`/`kw` and `params`
    /// are appended. A failed call changes nothing.
    pub fn add(
        &mut self,
        g: i64,
        params: Vec<Tensor>,
        pos: &[Value],
        kw: &[(String, Value)],
    ) -> Result<()> {
        let n = self.groups.len();
        if g < 0 {
            return Err(err(
                "opt",
                format!("group {g} invalid, must be non-negative"),
            ));
        }
        let gi = g as usize;
        if gi > n {
            return Err(err(
                "opt",
                format!("group {g} invalid, cannot be greater than number of groups({n})"),
            ));
        }
        if gi == n && n > 0 && self.kind == "lbfgs" {
            return Err(err(
                "lbfgs",
                "only one parameter group allowed, as in PyTorch",
            ));
        }
        let base = if gi == n {
            &self.defaults
        } else {
            &self.groups[gi].settings
        };
        let settings = base.update(&self.kind, pos, kw)?;
        self.check_params(&params)?;
        if gi == n {
            self.push_group(params, settings);
        } else {
            let grp = &mut self.groups[gi];
            grp.settings = settings;
            grp.state
                .extend(params.iter().map(|_| ParamState::default()));
            grp.names.extend(params.iter().map(|_| None));
            grp.params.extend(params);
        }
        // the flat lbfgs history no longer fits the parameters
        self.lbfgs = lbfgs::State::default();
        Ok(())
    }

    /// The parameters of group `g` (empty if there is no such group).
    pub fn group_params(&self, g: usize) -> Vec<Tensor> {
        self.groups.get(g).map_or_else(Vec::new, |grp| {
            grp.params.iter().map(Tensor::shallow_clone).collect()
        })
    }

    /// The parameters of every group, one list per group.
    pub fn param_groups(&self) -> Vec<Vec<Tensor>> {
        (0..self.groups.len())
            .map(|g| self.group_params(g))
            .collect()
    }

    /// Every parameter, group by group.
    pub fn params(&self) -> Vec<Tensor> {
        self.groups
            .iter()
            .flat_map(|grp| grp.params.iter().map(Tensor::shallow_clone))
            .collect()
    }

    /// One update from the current gradients (errors for lbfgs, which needs a closure).
    pub fn step(&mut self) -> Result<()> {
        let _guard = tch::no_grad_guard();
        let clip = match self.defaults {
            Settings::Lbfgs(_) => {
                return Err(err(
                    "lbfgs",
                    "step needs a closure that re-evaluates the loss (use backstep)",
                ))
            }
            Settings::Lamb(_) => lamb::global_clip(&self.groups)?,
            _ => None,
        };
        for grp in &mut self.groups {
            let (p, st) = (&grp.params, &mut grp.state);
            match &grp.settings {
                Settings::Sgd(s) => s.step(p, st)?,
                Settings::Adam(s) => s.step(p, st, false)?,
                Settings::AdamW(s) => s.step(p, st, true)?,
                Settings::Adagrad(s) => s.step(p, st)?,
                Settings::Rmsprop(s) => s.step(p, st)?,
                Settings::Lamb(s) => s.step(p, st, clip.as_ref())?,
                Settings::Lbfgs(_) => {}
            }
        }
        Ok(())
    }

    /// One update that may re-evaluate the loss: `closure` sets gradients and returns the loss.
    /// Returns the loss of the first evaluation. lbfgs calls the closure as often as its
    /// iterations and line search need; the others call it once, then [`Optimizer::step`].
    pub fn step_with(&mut self, closure: &mut dyn FnMut() -> Result<Tensor>) -> Result<Tensor> {
        if let Settings::Lbfgs(_) = self.defaults {
            let (s, params) = match self.groups.as_slice() {
                [grp] => match &grp.settings {
                    Settings::Lbfgs(s) => (
                        s.clone(),
                        grp.params
                            .iter()
                            .map(Tensor::shallow_clone)
                            .collect::<Vec<_>>(),
                    ),
                    _ => return Err(err("lbfgs", "group settings do not match the optimizer")),
                },
                [] => return Err(err("lbfgs", "no parameters defined")),
                _ => return Err(err("lbfgs", "only one parameter group allowed")),
            };
            let _guard = tch::no_grad_guard();
            return lbfgs::step(&s, &params, &mut self.lbfgs, closure);
        }
        let loss = tch::with_grad(&mut *closure)?;
        self.step()?;
        Ok(loss)
    }

    /// For lbfgs, whose step evaluates the loss at several points and moves the
    /// parameters in between: the parameter values and the optimizer state now, to go
    /// back to with [`Optimizer::restore_lbfgs`]. None for the other optimizers, whose
    /// step evaluates once before it moves anything.
    pub(crate) fn save_lbfgs(&self) -> Result<Option<Saved>> {
        if !matches!(self.defaults, Settings::Lbfgs(_)) {
            return Ok(None);
        }
        let _guard = tch::no_grad_guard();
        let mut params = Vec::new();
        for p in self.params() {
            let v = ops::copy_of(&p)?;
            params.push((p, v));
        }
        Ok(Some(Saved {
            params,
            lbfgs: self.lbfgs.snapshot()?,
        }))
    }

    /// Puts back the parameter values and lbfgs state of [`Optimizer::save_lbfgs`].
    pub(crate) fn restore_lbfgs(&mut self, s: Saved) -> Result<()> {
        let _guard = tch::no_grad_guard();
        for (p, v) in &s.params {
            p.shallow_clone().f_copy_(v)?;
        }
        self.lbfgs = s.lbfgs;
        Ok(())
    }

    /// Learning rate of each group (with no groups, the default learning rate).
    pub fn lr(&self) -> Vec<f64> {
        if self.groups.is_empty() {
            vec![self.defaults.lr()]
        } else {
            self.groups.iter().map(|g| g.settings.lr()).collect()
        }
    }

    /// Sets the learning rate: one value for all groups (and the defaults for new
    /// groups) or one per group.
    pub fn set_lr(&mut self, lr: &[f64]) -> Result<()> {
        let n = self.groups.len();
        if lr.len() != 1 && lr.len() != n {
            return Err(err(
                "lr",
                if n == 1 {
                    format!("expecting 1 learning rate, given {}", lr.len())
                } else {
                    format!("expecting 1 or {n} learning rates, given {}", lr.len())
                },
            ));
        }
        if let Some(x) = lr.iter().find(|x| x.is_nan() || **x < 0.0) {
            return Err(err(
                "lr",
                format!("learning rate must be non-negative, given {x}"),
            ));
        }
        if lr.len() == 1 {
            self.defaults.set_lr(lr[0]);
        }
        for (i, grp) in self.groups.iter_mut().enumerate() {
            grp.settings.set_lr(lr[if lr.len() == 1 { 0 } else { i }]);
        }
        Ok(())
    }

    /// The settings of group `g` by name; for `g` past the last group, the
    /// defaults that a new group starts from.
    pub fn settings(&self, g: usize) -> Vec<(String, Value)> {
        self.groups
            .get(g)
            .map_or(&self.defaults, |grp| &grp.settings)
            .values()
    }
}

impl Optimizer {
    /// The parameters (with their gradients) and the state to move or convert:
    /// momenta, moments, the lbfgs history. Step counts and cached settings
    /// tensors follow the parameters by themselves.
    pub(crate) fn movable(&self) -> Vec<Tensor> {
        let mut ts = crate::clip::distinct(self.params());
        for grp in &self.groups {
            for st in &grp.state {
                ts.extend(st.tensors().map(Tensor::shallow_clone));
            }
        }
        ts.extend(self.lbfgs.tensors().into_iter().map(Tensor::shallow_clone));
        ts
    }

    /// Moves or converts the parameters and every state tensor as `p` says
    /// (`to(o, "cuda")`); a failed call changes nothing.
    pub fn to(&mut self, p: &crate::device::Place) -> Result<()> {
        p.check_floating()?;
        crate::device::convert_in_place(&self.movable(), p)
    }

    /// Where the optimizer's parameters live (None without parameters).
    pub fn device(&self) -> Option<tch::Device> {
        crate::device::first_device(&self.params())
    }
}

impl crate::sync::Share for Optimizer {}

#[cfg(test)]
mod tests;
