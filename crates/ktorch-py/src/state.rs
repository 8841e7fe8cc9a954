//! PyTorch interop: state_dict, load_state_dict.

use ktorch_core::optim::{GroupEntry, OptimizerState, ParamEntry};
use ktorch_core::sync::Shared;
use ktorch_core::{Model, Module, Optimizer, Value};
use pyo3::prelude::*;
use pyo3::sync::GILOnceCell;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use tch::Tensor as TchTensor;

use crate::convert::{is_torch, to_tch, to_torch, to_value};
use crate::errors::{ktorch_error, type_error, Res};
use crate::gate::{call, Gate};
use crate::handles::{obj, Obj};

static INCOMPATIBLE: GILOnceCell<Py<PyAny>> = GILOnceCell::new();

/// The named tuple `load_state_dict` returns for a module, like torch's `_IncompatibleKeys`.
fn incompatible(py: Python<'_>) -> PyResult<&Bound<'_, PyAny>> {
    INCOMPATIBLE
        .get_or_try_init(py, || {
            let nt = py
                .import("collections")?
                .getattr("namedtuple")?
                .call1(("IncompatibleKeys", ("missing_keys", "unexpected_keys")))?;
            nt.setattr("__module__", "ktorch")?;
            Ok::<_, PyErr>(nt.unbind())
        })
        .map(|o| o.bind(py))
}

/// The module of a model, read inside a call.
fn module_in(g: &Gate, m: &Shared<Model>) -> Res<Shared<Module>> {
    Ok(g.lock(m)?.module().clone())
}

/// The optimizer of a model, read inside a call.
fn optimizer_in(g: &Gate, m: &Shared<Model>) -> Res<Shared<Optimizer>> {
    Ok(g.lock(m)?.optimizer().clone())
}

/// What a state_dict call works on.
enum Target {
    Module(Shared<Module>),
    Opt(Shared<Optimizer>),
    ModelModule(Shared<Model>),
    ModelOpt(Shared<Model>),
}

impl Target {
    fn domains(&self) -> Vec<ktorch_core::sync::Domain> {
        match self {
            Target::Module(s) => s.domains(),
            Target::Opt(s) => s.domains(),
            Target::ModelModule(s) | Target::ModelOpt(s) => s.domains(),
        }
    }
}

/// An option value for Python, tuples as tuples (torch.optim's `betas`).
pub(crate) fn value_py(py: Python<'_>, v: &Value) -> PyResult<PyObject> {
    Ok(match v {
        Value::Tuple(l) => PyTuple::new(
            py,
            l.iter()
                .map(|x| value_py(py, x))
                .collect::<PyResult<Vec<_>>>()?,
        )?
        .into_any()
        .unbind(),
        v => crate::data::value_to_py(py, v)?,
    })
}

/// torch.optim's `state_dict()` layout as Python objects.
fn opt_py(py: Python<'_>, s: OptimizerState) -> PyResult<PyObject> {
    let state = PyDict::new(py);
    for (id, e) in s.state {
        let d = PyDict::new(py);
        if let Some(step) = e.step {
            // torch.optim keeps the step as a 0-dim float32 tensor on the CPU
            d.set_item("step", to_torch(py, &TchTensor::from(step as f32))?)?;
        }
        for (k, t) in &e.buffers {
            d.set_item(k, to_torch(py, t)?)?;
        }
        state.set_item(id, d)?;
    }
    let groups = PyList::empty(py);
    for g in s.param_groups {
        let d = PyDict::new(py);
        for (k, v) in &g.settings {
            d.set_item(k, value_py(py, v)?)?;
        }
        d.set_item("params", PyList::new(py, &g.params)?)?;
        groups.append(d)?;
    }
    let out = PyDict::new(py);
    out.set_item("state", state)?;
    out.set_item("param_groups", groups)?;
    Ok(out.into_any().unbind())
}

/// state_dict(x) -> OrderedDict or dict
/// state_dict(m, "opt") -> dict
///
/// The state of a module (or a model's module) or optimizer as PyTorch's `state_dict()`
/// gives it, to load into the equivalent torch.nn module or torch.optim optimizer.
///
/// - Module, Model: an OrderedDict of torch.Tensors under torch.nn's names, in its order
///   (a module's parameters, then its buffers such as batchnorm's `running_mean`,
///   `running_var`, `num_batches_tracked`, then its children's); detached copies on the
///   module's device.
/// - Optimizer, or a Model with `"opt"`: torch.optim's layout, `{"state": {id: {"step":
///   tensor, "exp_avg": tensor, ...}}, "param_groups": [{"lr": ..., "betas": ..., ...,
///   "params": [0, 1, ...]}]}`, with torch.optim's setting names (`decay` is
///   `weight_decay`, adagrad's `lrdecay` and `init` are `lr_decay` and
///   `initial_accumulator_value`) and flags (`maximize`, `foreach`...). sgd, adam, adamw,
///   adagrad and rmsprop; KtorchError for lbfgs and lamb.
#[pyfunction]
#[pyo3(signature = (x, part=None))]
pub fn state_dict(
    py: Python<'_>,
    x: &Bound<'_, PyAny>,
    part: Option<&Bound<'_, PyAny>>,
) -> PyResult<PyObject> {
    let f = "state_dict";
    let part = match part {
        None => None,
        Some(p) => Some(
            p.downcast::<PyString>()
                .map_err(|_| type_error(f, "part expects \"module\" or \"opt\""))?
                .to_str()?
                .to_string(),
        ),
    };
    let t = target(f, x, part.as_deref())?;
    match t {
        Target::Module(_) | Target::ModelModule(_) => {
            let ds = t.domains();
            let sd = call(py, f, ds, move |g| {
                let q = match &t {
                    Target::Module(q) => q.clone(),
                    Target::ModelModule(m) => module_in(g, m)?,
                    _ => unreachable!(),
                };
                let sd = g.lock(&q)?.state_dict()?;
                Ok(sd)
            })?;
            let od = py.import("collections")?.getattr("OrderedDict")?.call0()?;
            for (k, v) in &sd {
                od.set_item(k, to_torch(py, v)?)?;
            }
            Ok(od.unbind())
        }
        Target::Opt(_) | Target::ModelOpt(_) => {
            let ds = t.domains();
            let s = call(py, f, ds, move |g| {
                let o = match &t {
                    Target::Opt(o) => o.clone(),
                    Target::ModelOpt(m) => optimizer_in(g, m)?,
                    _ => unreachable!(),
                };
                let s = g.lock(&o)?.state_dict()?;
                Ok(s)
            })?;
            opt_py(py, s)
        }
    }
}

/// The object a call works on: a module, an optimizer, or a model's module or optimizer.
fn target(f: &str, x: &Bound<'_, PyAny>, part: Option<&str>) -> PyResult<Target> {
    let t = match obj(f, x)? {
        Some(Obj::Module(m)) => Target::Module(m),
        Some(Obj::Opt(o)) => Target::Opt(o),
        Some(Obj::Model(m)) => match part {
            None | Some("module") => Target::ModelModule(m),
            Some("opt") => Target::ModelOpt(m),
            Some(p) => {
                return Err(ktorch_error(
                    f,
                    format!("part expects \"module\" or \"opt\", given \"{p}\""),
                ))
            }
        },
        _ => {
            return Err(type_error(
                f,
                format!(
                    "expecting a Module, Optimizer or Model, given {}",
                    x.get_type().name()?
                ),
            ))
        }
    };
    if part.is_some() && !matches!(t, Target::ModelModule(_) | Target::ModelOpt(_)) {
        return Err(type_error(f, "part is only for a Model"));
    }
    Ok(t)
}

/// True for torch.optim's layout: a dict with keys `state` and `param_groups`.
fn is_opt_layout(d: &Bound<'_, PyDict>) -> PyResult<bool> {
    Ok(d.len() == 2 && d.contains("state")? && d.contains("param_groups")?)
}

/// A module state_dict from Python: string keys to torch.Tensors or arrays.
fn module_sd(f: &str, d: &Bound<'_, PyDict>) -> PyResult<Vec<(String, TchTensor)>> {
    let mut out = Vec::with_capacity(d.len());
    for (k, v) in d.iter() {
        let k: String = k
            .downcast::<PyString>()
            .map_err(|_| {
                type_error(
                    f,
                    format!(
                        "state_dict keys must be strings, given {}",
                        k.get_type()
                            .name()
                            .map(|n| n.to_string())
                            .unwrap_or_default()
                    ),
                )
            })?
            .to_str()?
            .to_string();
        let t =
            to_tch(f, &v).map_err(|e| type_error(f, format!("`{k}`: {}", strip(f, &e, v.py()))))?;
        out.push((k, t));
    }
    Ok(out)
}

/// An error's message without the function name in front.
fn strip(f: &str, e: &PyErr, py: Python<'_>) -> String {
    let m = e.value(py).to_string();
    m.strip_prefix(&format!("{f}: ")).unwrap_or(&m).to_string()
}

/// A number: an int, float or bool, or a torch.Tensor / array of one element.
fn number(x: &Bound<'_, PyAny>) -> PyResult<Option<f64>> {
    if x.is_instance_of::<PyBool>() || x.is_instance_of::<PyInt>() || x.is_instance_of::<PyFloat>()
    {
        return Ok(Some(x.extract()?));
    }
    let n: i64 = if is_torch(x)? {
        x.call_method0("numel")?.extract()?
    } else if crate::convert::is_numpy(x)? {
        x.getattr("size")?.extract()?
    } else {
        0
    };
    if n == 1 {
        return Ok(Some(x.call_method0("item")?.extract()?));
    }
    Ok(None)
}

/// torch.optim's `state_dict()` layout from Python.
fn opt_sd(f: &str, d: &Bound<'_, PyDict>) -> PyResult<OptimizerState> {
    let state = d
        .get_item("state")?
        .ok_or_else(|| type_error(f, "an optimizer state_dict needs `state`"))?;
    let state = state
        .downcast::<PyDict>()
        .map_err(|_| type_error(f, "`state` expects a dict of parameter id to state"))?;
    let groups = d
        .get_item("param_groups")?
        .ok_or_else(|| type_error(f, "an optimizer state_dict needs `param_groups`"))?;
    let groups = groups
        .downcast::<PyList>()
        .map_err(|_| type_error(f, "`param_groups` expects a list of dicts"))?;
    let mut param_groups = Vec::with_capacity(groups.len());
    for (i, g) in groups.iter().enumerate() {
        let g = g
            .downcast::<PyDict>()
            .map_err(|_| type_error(f, format!("parameter group {i} must be a dict")))?;
        let mut settings = Vec::new();
        let mut params = None;
        for (k, v) in g.iter() {
            let k: String = k
                .extract()
                .map_err(|_| type_error(f, format!("parameter group {i}: keys must be strings")))?;
            if k == "params" {
                params = Some(v.extract::<Vec<i64>>().map_err(|_| {
                    type_error(
                        f,
                        format!("parameter group {i}: params expects a list of parameter ids"),
                    )
                })?);
            } else {
                // values ktorch never reads may be of any type
                settings.push((k, to_value(f, &v).unwrap_or(Value::Null)));
            }
        }
        let params =
            params.ok_or_else(|| type_error(f, format!("parameter group {i} has no `params`")))?;
        param_groups.push(GroupEntry { settings, params });
    }
    let mut entries = Vec::with_capacity(state.len());
    for (id, st) in state.iter() {
        let id: i64 = id
            .extract()
            .map_err(|_| type_error(f, "`state` keys must be parameter ids (integers)"))?;
        let st = st
            .downcast::<PyDict>()
            .map_err(|_| type_error(f, format!("the state of parameter {id} must be a dict")))?;
        let mut e = ParamEntry {
            step: None,
            buffers: Vec::new(),
        };
        for (k, v) in st.iter() {
            let k: String = k.extract().map_err(|_| {
                type_error(
                    f,
                    format!("the state of parameter {id}: keys must be strings"),
                )
            })?;
            if v.is_none() {
                continue;
            }
            if k == "step" {
                e.step = Some(number(&v)?.ok_or_else(|| {
                    type_error(f, format!("the step of parameter {id} expects a number"))
                })?);
            } else {
                let t = to_tch(f, &v).map_err(|err| {
                    type_error(
                        f,
                        format!("state `{k}` of parameter {id}: {}", strip(f, &err, v.py())),
                    )
                })?;
                e.buffers.push((k, t));
            }
        }
        entries.push((id, e));
    }
    Ok(OptimizerState {
        state: entries,
        param_groups,
    })
}

/// load_state_dict(x, sd, strict=True) -> (missing_keys, unexpected_keys) or None
///
/// Loads PyTorch's `state_dict()` (a dict or OrderedDict of torch.Tensors or numpy
/// arrays) into a module or optimizer; the counterpart of `state_dict`.
///
/// - Module, Model: copies each value into the parameter or buffer of that name,
///   converted to its dtype and device. With `strict`, keys missing from `sd` or unknown
///   to the module are a KtorchError listing them; a shape that differs is one naming
///   the key and both shapes, strict or not. Returns the named tuple
///   `(missing_keys, unexpected_keys)`.
/// - Optimizer (or a Model given torch.optim's layout, keys `state` and `param_groups`):
///   torch.optim's `state_dict()` for the same optimizer (`strict` is not used); the
///   group count and each group's parameter count must match. Sets each group's
///   settings from torch.optim's names (`maximize=True` is refused) and each
///   parameter's state (tensors copied to the parameter's dtype and device). Returns None.
///
/// Everything is checked before anything changes: a call that fails changes nothing.
#[pyfunction]
#[pyo3(signature = (x, sd, strict=true))]
pub fn load_state_dict(
    py: Python<'_>,
    x: &Bound<'_, PyAny>,
    sd: &Bound<'_, PyAny>,
    strict: bool,
) -> PyResult<PyObject> {
    let f = "load_state_dict";
    let d = sd.downcast::<PyDict>().map_err(|_| {
        type_error(
            f,
            format!(
                "expecting a state_dict (a dict), given {}",
                sd.get_type()
                    .name()
                    .map(|n| n.to_string())
                    .unwrap_or_default()
            ),
        )
    })?;
    let part = match obj(f, x)? {
        Some(Obj::Model(_)) if is_opt_layout(d)? => Some("opt"),
        _ => None,
    };
    let t = target(f, x, part)?;
    let ds = t.domains();
    match t {
        Target::Module(_) | Target::ModelModule(_) => {
            let sd = module_sd(f, d)?;
            let (miss, unexp) = call(py, f, ds, move |g| {
                let q = match &t {
                    Target::Module(q) => q.clone(),
                    Target::ModelModule(m) => module_in(g, m)?,
                    _ => unreachable!(),
                };
                let r = g.lock(&q)?.load_state_dict(&sd, strict)?;
                Ok(r)
            })?;
            Ok(incompatible(py)?.call1((miss, unexp))?.unbind())
        }
        Target::Opt(_) | Target::ModelOpt(_) => {
            if !is_opt_layout(d)? {
                return Err(type_error(
                    f,
                    "expecting torch.optim's state_dict for an Optimizer: a dict of `state` and `param_groups`",
                ));
            }
            let s = opt_sd(f, d)?;
            call(py, f, ds, move |g| {
                let o = match &t {
                    Target::Opt(o) => o.clone(),
                    Target::ModelOpt(m) => optimizer_in(g, m)?,
                    _ => unreachable!(),
                };
                g.lock(&o)?.load_state_dict(&s)?;
                Ok(())
            })?;
            Ok(py.None())
        }
    }
}
