//! An optimizer's state in torch.optim's `state_dict()` layout: per-parameter state
//! (step count and buffers, as torch.optim names them) keyed by parameter id, and
//! per-group settings under torch.optim's names with the ids of the group's parameters.
//! sgd, adam, adamw, adagrad and rmsprop have torch.optim counterparts; lbfgs (whose
//! history is one flat state) and lamb (not in torch.optim) have no such state here.

use tch::Tensor;

use super::ops::{copy_of, ParamState};
use super::Optimizer;
use crate::error::{invalid, Result};
use crate::value::Value;

/// One parameter's state as torch.optim keeps it.
#[derive(Debug)]
pub struct ParamEntry {
    /// The step count (torch.optim's `step`, a float32 tensor there); None for sgd,
    /// which keeps none.
    pub step: Option<f64>,
    /// The state tensors by torch.optim's names (`momentum_buffer`, `exp_avg`...).
    pub buffers: Vec<(String, Tensor)>,
}

/// One parameter group: settings by torch.optim's names and its parameters' ids.
#[derive(Debug, Clone)]
pub struct GroupEntry {
    /// Settings in torch.optim's order and names (`lr`, `betas`, `weight_decay`...),
    /// with the flags torch.optim keeps (`maximize`, `foreach`...).
    pub settings: Vec<(String, Value)>,
    /// The ids of the group's parameters: positions counted across all groups.
    pub params: Vec<i64>,
}

/// An optimizer's state in torch.optim's `state_dict()` layout: `state` (parameter id
/// to [`ParamEntry`], only parameters with state) and `param_groups`.
#[derive(Debug)]
pub struct OptimizerState {
    /// Per-parameter state, by parameter id.
    pub state: Vec<(i64, ParamEntry)>,
    /// The parameter groups.
    pub param_groups: Vec<GroupEntry>,
}

/// A key of a torch.optim parameter group.
enum Key {
    /// A setting: torch.optim's name, ktorch's name.
    Set(&'static str, &'static str),
    /// adam's beta1 and beta2, torch.optim's `betas` pair.
    Betas,
    /// A flag torch.optim keeps, false here; given as true, it is refused.
    Off(&'static str),
    /// A flag torch.optim keeps, false here; any value is taken (the numbers do not
    /// depend on it).
    Ignored(&'static str),
    /// An option torch.optim keeps as None here (`foreach`, `fused`); any value is taken.
    Null(&'static str),
    /// adam's `decoupled_weight_decay`: true for adamw.
    Decoupled,
}

/// The torch.optim counterpart of an optimizer.
struct Layout {
    class: &'static str,
    keys: &'static [Key],
    /// Whether the state holds a step count.
    step: bool,
    /// The state buffers, in torch.optim's order.
    buffers: &'static [&'static str],
}

const SGD: &[Key] = &[
    Key::Set("lr", "lr"),
    Key::Set("momentum", "momentum"),
    Key::Set("dampening", "dampening"),
    Key::Set("weight_decay", "decay"),
    Key::Set("nesterov", "nesterov"),
    Key::Off("maximize"),
    Key::Null("foreach"),
    Key::Ignored("differentiable"),
    Key::Null("fused"),
];

const ADAM: &[Key] = &[
    Key::Set("lr", "lr"),
    Key::Betas,
    Key::Set("eps", "eps"),
    Key::Set("weight_decay", "decay"),
    Key::Set("amsgrad", "amsgrad"),
    Key::Off("maximize"),
    Key::Null("foreach"),
    Key::Ignored("capturable"),
    Key::Ignored("differentiable"),
    Key::Null("fused"),
    Key::Decoupled,
];

const ADAGRAD: &[Key] = &[
    Key::Set("lr", "lr"),
    Key::Set("lr_decay", "lrdecay"),
    Key::Set("eps", "eps"),
    Key::Set("weight_decay", "decay"),
    Key::Set("initial_accumulator_value", "init"),
    Key::Null("foreach"),
    Key::Off("maximize"),
    Key::Ignored("differentiable"),
    Key::Null("fused"),
];

const RMSPROP: &[Key] = &[
    Key::Set("lr", "lr"),
    Key::Set("momentum", "momentum"),
    Key::Set("alpha", "alpha"),
    Key::Set("eps", "eps"),
    Key::Set("centered", "centered"),
    Key::Set("weight_decay", "decay"),
    Key::Ignored("capturable"),
    Key::Null("foreach"),
    Key::Off("maximize"),
    Key::Ignored("differentiable"),
];

/// The layout of optimizer `kind`; lbfgs and lamb have none.
fn layout(kind: &str) -> Result<Layout> {
    Ok(match kind {
        "sgd" => Layout {
            class: "SGD",
            keys: SGD,
            step: false,
            buffers: &["momentum_buffer"],
        },
        "adam" | "adamw" => Layout {
            class: if kind == "adam" { "Adam" } else { "AdamW" },
            keys: ADAM,
            step: true,
            buffers: &["exp_avg", "exp_avg_sq", "max_exp_avg_sq"],
        },
        "adagrad" => Layout {
            class: "Adagrad",
            keys: ADAGRAD,
            step: true,
            buffers: &["sum"],
        },
        "rmsprop" => Layout {
            class: "RMSprop",
            keys: RMSPROP,
            step: true,
            buffers: &["square_avg", "momentum_buffer", "grad_avg"],
        },
        "lbfgs" => return Err(invalid(
            "not supported for lbfgs (its history is one flat state, unlike torch.optim.LBFGS's)",
        )),
        _ => {
            return Err(invalid(format!(
                "not supported for {kind} (torch.optim has no {kind})"
            )))
        }
    })
}

/// The value of ktorch setting `name` in `values`.
fn value_of<'a>(values: &'a [(String, Value)], name: &str) -> Result<&'a Value> {
    values
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
        .ok_or_else(|| invalid(format!("setting `{name}` missing")))
}

/// A step count given as a number: a non-negative whole number.
fn step_count(id: i64, x: f64) -> Result<i64> {
    if x.is_finite() && x >= 0.0 && x.fract() == 0.0 {
        Ok(x as i64)
    } else {
        Err(invalid(format!(
            "the step of parameter {id} must be a non-negative whole number, given {x}"
        )))
    }
}

impl Optimizer {
    /// The optimizer's state in torch.optim's `state_dict()` layout ([`OptimizerState`]):
    /// settings under torch.optim's names (`decay` is `weight_decay`, adam's `beta1` and
    /// `beta2` are `betas`...) with the flags torch.optim adds (`maximize` false,
    /// `foreach` None...), and detached copies of each parameter's state tensors on its
    /// device. A parameter without state (never updated) has no entry, as in torch.optim,
    /// except for adagrad, whose state torch.optim makes for every parameter up front.
    /// An error for lbfgs and lamb.
    pub fn state_dict(&self) -> Result<OptimizerState> {
        let lay = layout(&self.kind)?;
        let _g = tch::no_grad_guard();
        let adagrad = self.kind == "adagrad";
        let (mut state, mut param_groups) = (Vec::new(), Vec::new());
        let mut id = 0i64;
        for grp in &self.groups {
            let values = grp.settings.values();
            let mut settings = Vec::with_capacity(lay.keys.len());
            for key in lay.keys {
                let (k, v) = match key {
                    Key::Set(t, k) => (*t, value_of(&values, k)?.clone()),
                    Key::Betas => (
                        "betas",
                        Value::Tuple(vec![
                            value_of(&values, "beta1")?.clone(),
                            value_of(&values, "beta2")?.clone(),
                        ]),
                    ),
                    Key::Off(t) | Key::Ignored(t) => (*t, Value::Bool(false)),
                    Key::Null(t) => (*t, Value::Null),
                    Key::Decoupled => ("decoupled_weight_decay", Value::Bool(self.kind == "adamw")),
                };
                settings.push((k.to_string(), v));
            }
            let mut ids = Vec::with_capacity(grp.params.len());
            for (p, st) in grp.params.iter().zip(&grp.state) {
                ids.push(id);
                let mut buffers = Vec::new();
                for n in lay.buffers {
                    if let Some(t) = st.get_ref(n) {
                        buffers.push((n.to_string(), copy_of(t)?));
                    }
                }
                if adagrad && buffers.is_empty() {
                    let init = value_of(&values, "init")?.as_float("init")?;
                    buffers.push(("sum".to_string(), p.f_detach()?.f_full_like(init)?));
                }
                if adagrad || st.step > 0 || !buffers.is_empty() {
                    let step = lay.step.then_some(st.step as f64);
                    state.push((id, ParamEntry { step, buffers }));
                }
                id += 1;
            }
            param_groups.push(GroupEntry {
                settings,
                params: ids,
            });
        }
        Ok(OptimizerState {
            state,
            param_groups,
        })
    }

    /// Takes the state of torch.optim's `state_dict()` for the same optimizer (the
    /// counterpart of [`Optimizer::state_dict`]): the group count and each group's
    /// parameter count must match; parameter ids map to the parameters in order across
    /// the groups, as torch.optim maps them. Each group's settings are set from torch's
    /// names (keys ktorch does not know, such as a scheduler's `initial_lr`, are passed
    /// over; `maximize` true is refused) and each parameter's state replaced by the one
    /// given (none given: a fresh state), its tensors copied to the parameter's dtype
    /// and device. Every group and tensor is checked first: a failed call changes nothing.
    pub fn load_state_dict(&mut self, sd: &OptimizerState) -> Result<()> {
        let lay = layout(&self.kind)?;
        let (n, m) = (sd.param_groups.len(), self.groups.len());
        if n != m {
            return Err(invalid(format!(
                "the state_dict has {n} parameter group(s), the optimizer {m}"
            )));
        }
        let mut ids: Vec<(i64, usize, usize)> = Vec::new();
        let mut settings = Vec::with_capacity(m);
        for (g, (ge, grp)) in sd.param_groups.iter().zip(&self.groups).enumerate() {
            if ge.params.len() != grp.params.len() {
                return Err(invalid(format!(
                    "parameter group {g} has {} parameter(s) in the state_dict, {} in the optimizer",
                    ge.params.len(),
                    grp.params.len()
                )));
            }
            for (j, &id) in ge.params.iter().enumerate() {
                if ids.iter().any(|(k, _, _)| *k == id) {
                    return Err(invalid(format!(
                        "parameter id {id} appears more than once in the parameter groups"
                    )));
                }
                ids.push((id, g, j));
            }
            let kw = self.group_settings(&lay, g, &ge.settings)?;
            let s = grp
                .settings
                .update(&self.kind, &[], &kw)
                .map_err(|e| invalid(format!("parameter group {g}: {e}")))?;
            settings.push(s);
        }
        let mut states: Vec<Vec<ParamState>> = self
            .groups
            .iter()
            .map(|grp| grp.params.iter().map(|_| ParamState::default()).collect())
            .collect();
        let _g = tch::no_grad_guard();
        for (id, e) in &sd.state {
            let Some(&(_, g, j)) = ids.iter().find(|(k, _, _)| k == id) else {
                return Err(invalid(format!(
                    "state for parameter id {id}, which no parameter group lists"
                )));
            };
            let p = &self.groups[g].params[j];
            let step = match (lay.step, e.step) {
                (true, Some(x)) => step_count(*id, x)?,
                (true, None) if !e.buffers.is_empty() => {
                    return Err(invalid(format!("the state of parameter {id} has no step")))
                }
                _ => 0,
            };
            let mut bufs: Vec<(&'static str, Tensor)> = Vec::new();
            for (name, t) in &e.buffers {
                let Some(&n) = lay.buffers.iter().find(|b| **b == name.as_str()) else {
                    return Err(invalid(format!(
                        "unknown state `{name}` of parameter {id} for torch.optim.{}, \
                         expecting {}",
                        lay.class,
                        lay.buffers.join(", ")
                    )));
                };
                crate::tensor::kinds::check(t)
                    .map_err(|err| invalid(format!("state `{name}` of parameter {id}: {err}")))?;
                if !t.defined() || t.size() != p.size() || t.is_complex() {
                    return Err(invalid(format!(
                        "state `{name}` of parameter {id} has shape {:?}{}, the parameter {:?}",
                        if t.defined() { t.size() } else { vec![] },
                        if t.is_complex() { " (complex)" } else { "" },
                        p.size()
                    )));
                }
                let c = t.f_to_device_(p.device(), p.f_kind()?, false, true)?;
                bufs.push((n, c));
            }
            states[g][j] = ParamState::restored(step, bufs);
        }
        for ((grp, s), st) in self.groups.iter_mut().zip(settings).zip(states) {
            grp.settings = s;
            grp.state = st;
        }
        Ok(())
    }

    /// The ktorch settings of torch.optim group `g`'s settings `given`.
    fn group_settings(
        &self,
        lay: &Layout,
        g: usize,
        given: &[(String, Value)],
    ) -> Result<Vec<(String, Value)>> {
        let get = |k: &str| given.iter().find(|(n, _)| n == k).map(|(_, v)| v);
        let need = |k: &str| {
            get(k).ok_or_else(|| {
                invalid(format!(
                    "parameter group {g} has no `{k}`: not a state_dict of torch.optim.{}",
                    lay.class
                ))
            })
        };
        let mut kw = Vec::new();
        for key in lay.keys {
            match key {
                Key::Set(t, k) => kw.push((k.to_string(), need(t)?.clone())),
                Key::Betas => match need("betas")? {
                    Value::Tuple(b) | Value::List(b) if b.len() == 2 => {
                        kw.push(("beta1".to_string(), b[0].clone()));
                        kw.push(("beta2".to_string(), b[1].clone()));
                    }
                    v => {
                        return Err(invalid(format!(
                            "parameter group {g}: betas expects a pair of numbers, given {}",
                            v.type_name()
                        )))
                    }
                },
                Key::Off(t) => {
                    if matches!(get(t), Some(Value::Bool(true))) {
                        return Err(invalid(format!(
                            "parameter group {g}: {t}=True is not supported"
                        )));
                    }
                }
                Key::Decoupled => {
                    let want = self.kind == "adamw";
                    if let Some(Value::Bool(b)) = get("decoupled_weight_decay") {
                        if *b != want {
                            return Err(invalid(format!(
                                "parameter group {g}: decoupled_weight_decay={} is torch.optim.{}'s, \
                                 the optimizer is {}",
                                if *b { "True" } else { "False" },
                                if *b { "AdamW" } else { "Adam" },
                                self.kind
                            )));
                        }
                    }
                }
                Key::Ignored(_) | Key::Null(_) => {}
            }
        }
        Ok(kw)
    }
}

/// The state buffers each optimizer keeps per parameter, by their torch.optim names.
fn native_buffers(kind: &str) -> &'static [&'static str] {
    match kind {
        "sgd" => &["momentum_buffer"],
        "adam" | "adamw" => &["exp_avg", "exp_avg_sq", "max_exp_avg_sq"],
        "adagrad" => &["sum"],
        "rmsprop" => &["square_avg", "momentum_buffer", "grad_avg"],
        "lamb" => &["exp_avg", "exp_avg_sq"],
        _ => &[],
    }
}

/// One parameter's state as ktorch keeps it, for every optimizer: the step count
/// and the state buffers by name (copies).
pub type ParmState = (i64, Vec<(String, Tensor)>);

impl Optimizer {
    /// Names the parameters held that appear in `named` (the same storage and
    /// shape), where not named already: how a saved state links each parameter to
    /// the module it came from.
    pub fn name_params(&mut self, named: &[(String, Tensor)]) {
        for grp in &mut self.groups {
            for (p, n) in grp.params.iter().zip(grp.names.iter_mut()) {
                if n.is_none() {
                    *n = named
                        .iter()
                        .find(|(_, t)| {
                            t.data_ptr() == p.data_ptr() && t.size() == p.size() && p.numel() > 0
                        })
                        .map(|(k, _)| k.clone());
                }
            }
        }
    }

    /// The names of group `g`'s parameters (None where unknown; empty for no such group).
    pub fn param_names(&self, g: usize) -> Vec<Option<String>> {
        self.groups
            .get(g)
            .map_or_else(Vec::new, |grp| grp.names.clone())
    }

    /// Every parameter's state as ktorch keeps it ([`ParmState`]), group by group,
    /// for every optimizer (lamb's and lbfgs's included; lbfgs keeps its history
    /// apart, see [`Optimizer::history`]). Buffers are detached copies.
    pub fn param_states(&self) -> Result<Vec<Vec<ParmState>>> {
        let _g = tch::no_grad_guard();
        self.groups
            .iter()
            .map(|grp| {
                grp.state
                    .iter()
                    .map(|st| {
                        let (step, bufs) = st.named();
                        let bufs = bufs
                            .iter()
                            .map(|(k, t)| Ok((k.to_string(), copy_of(t)?)))
                            .collect::<Result<Vec<_>>>()?;
                        Ok((step, bufs))
                    })
                    .collect()
            })
            .collect()
    }

    /// lbfgs's history (the direction, step and curvature pairs, counts) as named
    /// values, tensors copied; empty for the other optimizers.
    pub fn history(&self) -> Result<Vec<(String, Value)>> {
        if self.kind == "lbfgs" {
            self.lbfgs.parts()
        } else {
            Ok(Vec::new())
        }
    }

    /// Puts back every parameter's state ([`Optimizer::param_states`]) and lbfgs's
    /// history: one list of states per group, one state per parameter; each buffer
    /// must be one this optimizer keeps, the parameter's shape, and goes to the
    /// parameter's dtype and device. Everything is checked first: a failed call
    /// changes nothing.
    pub fn set_states(
        &mut self,
        states: &[Vec<ParmState>],
        history: &[(String, Value)],
    ) -> Result<()> {
        if states.len() != self.groups.len() {
            return Err(invalid(format!(
                "the state has {} parameter group(s), the optimizer {}",
                states.len(),
                self.groups.len()
            )));
        }
        let names = native_buffers(&self.kind);
        let _g = tch::no_grad_guard();
        let mut out: Vec<Vec<ParamState>> = Vec::with_capacity(states.len());
        for (g, (sg, grp)) in states.iter().zip(&self.groups).enumerate() {
            if sg.len() != grp.params.len() {
                return Err(invalid(format!(
                    "parameter group {g} has {} parameter state(s), the optimizer {} parameter(s)",
                    sg.len(),
                    grp.params.len()
                )));
            }
            let mut row = Vec::with_capacity(sg.len());
            for (j, ((step, bufs), p)) in sg.iter().zip(&grp.params).enumerate() {
                let what = || match &grp.names[j] {
                    Some(n) => format!("parameter {n}"),
                    None => format!("parameter {j} of group {g}"),
                };
                if *step < 0 {
                    return Err(invalid(format!("{}: step count {step}", what())));
                }
                let mut kept: Vec<(&'static str, Tensor)> = Vec::with_capacity(bufs.len());
                for (k, t) in bufs {
                    let Some(&n) = names.iter().find(|n| **n == k.as_str()) else {
                        return Err(invalid(format!(
                            "{}: {} keeps no state `{k}`{}",
                            what(),
                            self.kind,
                            if names.is_empty() {
                                String::new()
                            } else {
                                format!(", expecting {}", names.join(", "))
                            }
                        )));
                    };
                    crate::tensor::kinds::check(t)
                        .map_err(|e| invalid(format!("{}: state `{k}`: {e}", what())))?;
                    if !t.defined() || t.size() != p.size() || t.is_complex() {
                        return Err(invalid(format!(
                            "{}: state `{k}` has shape {:?}, the parameter {:?}",
                            what(),
                            if t.defined() { t.size() } else { vec![] },
                            p.size()
                        )));
                    }
                    kept.push((n, t.f_to_device_(p.device(), p.f_kind()?, false, true)?));
                }
                row.push(ParamState::restored(*step, kept));
            }
            out.push(row);
        }
        let lbfgs = if self.kind == "lbfgs" {
            let ps = self.params();
            let n: i64 = ps.iter().map(|p| p.numel() as i64).sum();
            match ps.first() {
                Some(like) => super::lbfgs::State::from_parts(history, n, like)?,
                None => super::lbfgs::State::default(),
            }
        } else {
            if let Some((k, _)) = history.first() {
                return Err(invalid(format!("{} keeps no history `{k}`", self.kind)));
            }
            super::lbfgs::State::default()
        };
        for (grp, st) in self.groups.iter_mut().zip(out) {
            grp.state = st;
        }
        self.lbfgs = lbfgs;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use tch::{Kind, Tensor};

    use super::super::testutil::{assert_close, backward, copies, params};
    use super::super::Optimizer;
    use crate::value::Value;

    fn cases() -> Vec<(&'static str, Vec<Value>)> {
        let f = |xs: &[f64]| xs.iter().map(|&x| x.into()).collect::<Vec<Value>>();
        vec![
            ("sgd", f(&[0.1, 0.9, 0.0, 0.01])),
            ("adam", f(&[0.01, 0.8, 0.95, 1e-6, 0.05])),
            ("adamw", f(&[0.01, 0.9, 0.99, 1e-8, 0.1])),
            ("adagrad", f(&[0.1, 0.05, 0.01, 0.2])),
            ("rmsprop", f(&[0.005, 0.9, 1e-7, 0.01, 0.5])),
        ]
    }

    fn over(name: &str, pos: &[Value], ps: &[Tensor]) -> Optimizer {
        Optimizer::new(
            name,
            ps.iter().map(Tensor::shallow_clone).collect(),
            pos,
            &[],
        )
        .expect("new")
    }

    #[test]
    fn state_moves_between_optimizers() {
        for (name, pos) in cases() {
            // 6 steps in one optimizer == 3 steps, a move of parameters and state, 3 steps
            let (ps, refs) = (params(), params());
            let mut o = over(name, &pos, &ps);
            let mut r = over(name, &pos, &refs);
            for _ in 0..3 {
                let _ = backward(&ps);
                o.step().expect("step");
                let _ = backward(&refs);
                r.step().expect("step");
            }
            let moved = copies(&ps);
            let mut o2 = over(name, &[], &moved);
            o2.load_state_dict(&o.state_dict().expect("state_dict"))
                .expect("load");
            assert_eq!(o2.settings(0), o.settings(0), "{name}: settings");
            for _ in 0..3 {
                let _ = backward(&moved);
                o2.step().expect("step");
                let _ = backward(&refs);
                r.step().expect("step");
            }
            assert_close(&moved, &refs, 0.0);
        }
    }

    #[test]
    fn layout_as_torch() {
        let ps = params();
        let mut o = over("adam", &[0.01.into()], &ps);
        let _ = backward(&ps);
        o.step().expect("step");
        let sd = o.state_dict().expect("state_dict");
        let keys: Vec<&str> = sd.param_groups[0]
            .settings
            .iter()
            .map(|(k, _)| k.as_str())
            .collect();
        assert_eq!(
            keys,
            [
                "lr",
                "betas",
                "eps",
                "weight_decay",
                "amsgrad",
                "maximize",
                "foreach",
                "capturable",
                "differentiable",
                "fused",
                "decoupled_weight_decay"
            ]
        );
        assert_eq!(
            sd.param_groups[0].params,
            (0..ps.len() as i64).collect::<Vec<_>>()
        );
        let (id, e) = &sd.state[0];
        assert_eq!(*id, 0);
        assert_eq!(e.step, Some(1.0));
        let names: Vec<&str> = e.buffers.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["exp_avg", "exp_avg_sq"]);
        // copies: the optimizer's own buffers do not change with them
        let _ = e.buffers[0].1.shallow_clone().fill_(5.0);
        let again = o.state_dict().expect("state_dict");
        assert!(again.state[0].1.buffers[0].1.ne(5.0).any().int64_value(&[]) == 1);
        // adagrad: state for every parameter from the start
        let a = over(
            "adagrad",
            &[0.1.into(), 0.0.into(), 0.0.into(), 0.5.into()],
            &ps,
        );
        let sd = a.state_dict().expect("state_dict");
        assert_eq!(sd.state.len(), ps.len());
        assert_eq!(sd.state[0].1.step, Some(0.0));
        assert!(sd.state[0].1.buffers[0].1.eq(0.5).all().int64_value(&[]) == 1);
    }

    #[test]
    fn refused_changes_nothing() {
        let ps = params();
        let mut o = over("sgd", &[0.1.into(), 0.9.into()], &ps);
        let _ = backward(&ps);
        o.step().expect("step");
        let before = o.state_dict().expect("state_dict");
        let check_same = |o: &Optimizer| {
            let now = o.state_dict().expect("state_dict");
            assert_eq!(
                now.param_groups[0].settings,
                before.param_groups[0].settings
            );
            assert_eq!(now.state.len(), before.state.len());
            for ((_, a), (_, b)) in now.state.iter().zip(&before.state) {
                assert!(a.buffers[0].1.equal(&b.buffers[0].1));
            }
        };
        // a bad shape after a good group: nothing taken
        let mut bad = o.state_dict().expect("state_dict");
        bad.param_groups[0].settings[0].1 = Value::Float(0.5);
        bad.state[1].1.buffers[0].1 = Tensor::zeros([7], (Kind::Float, tch::Device::Cpu));
        let e = o.load_state_dict(&bad).expect_err("shape").to_string();
        assert!(e.contains("momentum_buffer") && e.contains("[7]"), "{e}");
        check_same(&o);
        // groups, names and kinds
        let mut two = o.state_dict().expect("state_dict");
        two.param_groups.push(two.param_groups[0].clone());
        assert!(o.load_state_dict(&two).is_err());
        let mut fewer = o.state_dict().expect("state_dict");
        fewer.param_groups[0].params.pop();
        let e = o.load_state_dict(&fewer).expect_err("count").to_string();
        assert!(e.contains("parameter group 0 has"), "{e}");
        let mut adam = over("adam", &[], &ps);
        let e = adam
            .load_state_dict(&o.state_dict().expect("state_dict"))
            .expect_err("kind")
            .to_string();
        assert!(e.contains("betas"), "{e}");
        let mut maxi = o.state_dict().expect("state_dict");
        maxi.param_groups[0].settings[5].1 = Value::Bool(true);
        let e = o.load_state_dict(&maxi).expect_err("maximize").to_string();
        assert!(e.contains("maximize=True"), "{e}");
        check_same(&o);
        let l = over("lbfgs", &[], &ps);
        assert!(l
            .state_dict()
            .expect_err("lbfgs")
            .to_string()
            .contains("lbfgs"));
    }
}
