//! The training steps and loops: zerograd, nograd, forward..., backward, clip, step, backstep, run, testrun.

use ktorch_core::autograd::{backward as core_backward, reset_grads, Mode};
use ktorch_core::clip::{clip_norm, clip_value};
use ktorch_core::model::{forward as module_forward, Fwd, Metric, Phase, Tick};
use ktorch_core::sync::{shared, Domain, Shared};
use ktorch_core::Model;
use ktorch_core::Params;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyList, PyString, PyTuple};

use crate::convert::{dataset_tensors, to_numpy, to_torch, wrap_shared, wrap_vector_shared, Srcs};
use crate::data::{model_of, set_data, tensors_arg};
use crate::errors::{ktorch_error, type_error, IntoPy};
use crate::gate::{call, check_signals, domains};
use crate::handles::{keep_of, obj, Obj, PyLoss, PyModel, PyModule, PyOptimizer};
use crate::PhaseCall;

/// model(q, l, o) -> Model
/// model(state) -> Model
/// model(m, part, ...) -> None
///
/// A model of a module, a loss and an optimizer, with training and test options
/// (`train`, `test`) and data. The module and optimizer are shared, not copied.
/// `model(state)` builds the model a `state(m)` describes: module, loss, optimizer
/// with its state, options, where training stands, and data where the state has it.
/// `model(m, part, ...)` replaces a model's module, loss and/or optimizer with the
/// Module, Loss and Optimizer handles given (one of each at most, in any order),
/// keeping its options and data: `model(m, kt.loss("mse"))`. `module(m)`, `loss(m)`
/// and `opt(m)` give a model's parts.
#[pyfunction]
#[pyo3(signature = (q, l=None, o=None, *rest))]
pub fn model(
    py: Python<'_>,
    q: &Bound<'_, PyAny>,
    l: Option<&Bound<'_, PyAny>>,
    o: Option<&Bound<'_, PyAny>>,
    rest: &Bound<'_, PyTuple>,
) -> PyResult<PyObject> {
    let f = "model";
    let name = |x: &Bound<'_, PyAny>| {
        x.get_type()
            .name()
            .map(|n| n.to_string())
            .unwrap_or_default()
    };
    if let Ok(mh) = q.downcast::<PyModel>() {
        let given: Vec<Bound<'_, PyAny>> =
            l.into_iter().chain(o).cloned().chain(rest.iter()).collect();
        return redefine(py, mh, &given).map(|()| py.None());
    }
    if !rest.is_empty() {
        return Err(type_error(
            f,
            "expecting (module, loss, optimizer), or a Model with the parts to replace",
        ));
    }
    if l.is_none() && o.is_none() && crate::objstate::is_model_state(q) {
        let m = crate::objstate::model_from(py, f, q)?;
        return Ok(Py::new(py, PyModel::new(shared(m)))?.into_any());
    }
    if q.is_instance_of::<pyo3::types::PyDict>() {
        return Err(type_error(
            f,
            "expecting (module, loss, optimizer) or a model's state (a dict with module, loss, optimizer)",
        ));
    }
    let q = q
        .downcast::<PyModule>()
        .map_err(|_| type_error(f, format!("module expects a Module, given {}", name(q))))?;
    let (Some(l), Some(o)) = (l, o) else {
        return Err(type_error(
            f,
            "expecting (module, loss, optimizer) or a model's state",
        ));
    };
    let l = l
        .downcast::<PyLoss>()
        .map_err(|_| type_error(f, format!("loss expects a Loss, given {}", name(l))))?;
    let o = o.downcast::<PyOptimizer>().map_err(|_| {
        type_error(
            f,
            format!("optimizer expects an Optimizer, given {}", name(o)),
        )
    })?;
    let m = Model::new(q.get().get(f)?, l.get().get(f)?, o.get().get(f)?);
    // the model runs the module's callbacks: its handle keeps them alive too
    Ok(Py::new(py, PyModel::with_keep(shared(m), keep_of(q.as_any())))?.into_any())
}

/// `model(m, part, ...)`: replaces the model's module, loss and/or optimizer.
fn redefine(py: Python<'_>, mh: &Bound<'_, PyModel>, given: &[Bound<'_, PyAny>]) -> PyResult<()> {
    let f = "model";
    if given.is_empty() {
        return Err(type_error(
            f,
            "expecting a Module, Loss and/or Optimizer to replace the model's (state(m) describes a model)",
        ));
    }
    let (mut q, mut l, mut o) = (None, None, None);
    let mut keep = Vec::new();
    for x in given {
        let twice = |what: &str| type_error(f, format!("given more than one {what}"));
        match obj(f, x)? {
            Some(Obj::Module(s)) if q.is_none() => {
                keep = keep_of(x);
                q = Some(s);
            }
            Some(Obj::Module(_)) => return Err(twice("Module")),
            Some(Obj::Loss(s)) if l.is_none() => l = Some(s),
            Some(Obj::Loss(_)) => return Err(twice("Loss")),
            Some(Obj::Opt(s)) if o.is_none() => o = Some(s),
            Some(Obj::Opt(_)) => return Err(twice("Optimizer")),
            _ => {
                return Err(type_error(
                    f,
                    format!(
                        "a model's parts are a Module, a Loss and an Optimizer, given {}",
                        x.get_type().name()?
                    ),
                ))
            }
        }
    }
    let m = mh.get().get(f)?;
    let ds = domains([
        m.domains(),
        q.as_ref().map(Shared::domains).unwrap_or_default(),
        l.as_ref().map(Shared::domains).unwrap_or_default(),
        o.as_ref().map(Shared::domains).unwrap_or_default(),
    ]);
    let me = m.clone();
    let new_module = q.is_some();
    call(py, f, ds, move |g| {
        g.lock(&me)?.redefine(&me, q, l, o);
        Ok(())
    })?;
    if new_module {
        // the model runs the new module's callbacks: its handle keeps them alive too
        let mut all = mh.get().keep(py);
        all.extend(keep);
        mh.get().replace(m, all);
    }
    Ok(())
}

/// What a parameter operation works on.
#[derive(Clone, Copy)]
enum Gather {
    /// Every parameter once.
    All,
    /// By optimizer group (clipping per group).
    Groups,
}

/// Runs `op` on the parameters of a Tensor, Vector, Dict, Module, Optimizer
/// or Model, inside one call that holds the object's lock throughout.
fn on_params<R: Send>(
    py: Python<'_>,
    func: &str,
    x: &Bound<'_, PyAny>,
    which: Gather,
    op: impl FnOnce(Vec<Vec<tch::Tensor>>) -> ktorch_core::Result<R> + Send,
) -> PyResult<R> {
    let o = match obj(func, x)? {
        Some(Obj::Loss(_)) => return Err(type_error(func, "a Loss has no parameters")),
        Some(o) => o,
        None => {
            return Err(type_error(
                func,
                format!(
                    "expecting a Tensor, Vector, Dict, Module, Optimizer or Model, given {}",
                    x.get_type().name()?
                ),
            ))
        }
    };
    let ds = o.domains();
    call(py, func, ds, move |g| {
        fn of<P: Params>(p: &P, which: Gather) -> ktorch_core::Result<Vec<Vec<tch::Tensor>>> {
            match which {
                Gather::All => Ok(vec![p.parameters()?]),
                Gather::Groups => p.param_groups(),
            }
        }
        let groups = match &o {
            Obj::Tensors(s) => of(&*g.lock(s)?, which)?,
            Obj::Module(m) => of(&*g.lock(m)?, which)?,
            Obj::Opt(o) => of(&*g.lock(o)?, which)?,
            Obj::Model(m) => of(&*g.lock(m)?, which)?,
            Obj::Loss(_) => unreachable!(),
        };
        Ok(op(groups)?)
    })
}

fn all_of(mut gs: Vec<Vec<tch::Tensor>>) -> Vec<tch::Tensor> {
    gs.pop().unwrap_or_default()
}

/// zerograd(x) -> None
///
/// Sets the gradients of a tensor, vector, dict, module, optimizer or model to zero.
#[pyfunction]
pub fn zerograd(py: Python<'_>, x: &Bound<'_, PyAny>) -> PyResult<()> {
    on_params(py, "zerograd", x, Gather::All, |gs| {
        reset_grads(&all_of(gs), false)
    })
}

/// nograd(x) -> None
///
/// Sets the gradients of a tensor, vector, dict, module, optimizer or model to undefined
/// (`grad` gives None), as `run` does before each batch.
#[pyfunction]
pub fn nograd(py: Python<'_>, x: &Bound<'_, PyAny>) -> PyResult<()> {
    on_params(py, "nograd", x, Gather::All, |gs| {
        reset_grads(&all_of(gs), true)
    })
}

/// Outputs as arrays, or as a Tensor (Vector for several) locked with the
/// objects in `ds` (their graph reaches those objects' parameters).
fn outputs(
    py: Python<'_>,
    mut out: Vec<tch::Tensor>,
    arrays: bool,
    torch: bool,
    ds: Vec<Domain>,
) -> PyResult<PyObject> {
    if arrays {
        // new tensors nothing else holds: torch.Tensor results share their memory
        let value = |t: &tch::Tensor| -> PyResult<PyObject> {
            if torch {
                Ok(to_torch(py, &t.f_detach().py()?)?.unbind())
            } else {
                to_numpy(py, t)
            }
        };
        if out.len() == 1 {
            return value(&out[0]);
        }
        return Ok(
            PyList::new(py, out.iter().map(value).collect::<PyResult<Vec<_>>>()?)?
                .into_any()
                .unbind(),
        );
    }
    if out.len() == 1 {
        return Ok(wrap_shared(py, out.remove(0), ds)?.into_any());
    }
    Ok(wrap_vector_shared(py, out, ds)?.into_any())
}

fn forward_fn(
    py: Python<'_>,
    f: &str,
    mode: Fwd,
    arrays: bool,
    args: &Bound<'_, PyTuple>,
) -> PyResult<PyObject> {
    let first = args
        .get_item(0)
        .map_err(|_| type_error(f, "expecting a Module or Model"))?;
    let mut xs = Srcs::default();
    for a in args.iter().skip(1) {
        xs.0.extend(tensors_arg(f, &a)?.0);
    }
    let given = args.len() > 1;
    let o = match obj(f, &first)? {
        Some(o @ (Obj::Module(_) | Obj::Model(_))) => o,
        _ => {
            return Err(type_error(
                f,
                format!(
                    "expecting a Module or Model, given {}",
                    first.get_type().name()?
                ),
            ))
        }
    };
    let ds = domains([o.domains(), xs.domains()]);
    let held = ds.clone();
    let torch_given = xs.torch();
    let (out, torch) = call(py, f, ds, move |g| {
        let (x, owned) = xs.owned_tensors(g)?;
        Ok(match &o {
            Obj::Module(m) => {
                let mut q = g.lock(m)?;
                let x = q.conform(x, &owned, "inputs")?;
                let x = q.place(x, "the inputs are")?;
                (module_forward(&mut q, &x, mode)?, torch_given)
            }
            Obj::Model(m) => {
                let mut m = g.lock(m)?;
                let torch = if given {
                    torch_given
                } else {
                    let phase = if mode == Fwd::Eval {
                        Phase::Test
                    } else {
                        Phase::Train
                    };
                    m.stage(phase).shared()
                };
                let x = m.conform(x, &owned, "inputs")?;
                (m.forward(if given { Some(&x) } else { None }, mode)?, torch)
            }
            _ => unreachable!(),
        })
    })?;
    outputs(py, out, arrays, torch, held)
}

/// forward(q, x, ...) -> Tensor or Vector
/// forward(m) -> Tensor or Vector
/// forward(m, x, ...) -> Tensor or Vector
///
/// Runs the module (or the model's module, on its training inputs when no input is
/// given) with gradients, in the module's own mode (see `training`). Host data meets a
/// module on a GPU there. Several outputs come back as a Vector.
#[pyfunction]
#[pyo3(signature = (*args))]
pub fn forward(py: Python<'_>, args: &Bound<'_, PyTuple>) -> PyResult<PyObject> {
    forward_fn(py, "forward", Fwd::Grad, false, args)
}

/// nforward(q, x, ...) -> Tensor or Vector
/// nforward(m[, x, ...]) -> Tensor or Vector
///
/// As `forward`, without gradients (in the module's own mode).
#[pyfunction]
#[pyo3(signature = (*args))]
pub fn nforward(py: Python<'_>, args: &Bound<'_, PyTuple>) -> PyResult<PyObject> {
    forward_fn(py, "nforward", Fwd::NoGrad, false, args)
}

/// eforward(q, x, ...) -> Tensor or Vector
/// eforward(m[, x, ...]) -> Tensor or Vector
///
/// Evaluation mode (dropout off, batchnorm running statistics), no gradients; a model
/// without inputs given uses its test inputs.
#[pyfunction]
#[pyo3(signature = (*args))]
pub fn eforward(py: Python<'_>, args: &Bound<'_, PyTuple>) -> PyResult<PyObject> {
    forward_fn(py, "eforward", Fwd::Eval, false, args)
}

/// evaluate(q, x, ...) -> numpy array(s)
/// evaluate(m[, x, ...]) -> numpy array(s)
///
/// As `eforward`, returning numpy arrays (torch.Tensors when the inputs came as
/// torch.Tensor).
#[pyfunction]
#[pyo3(signature = (*args))]
pub fn evaluate(py: Python<'_>, args: &Bound<'_, PyTuple>) -> PyResult<PyObject> {
    forward_fn(py, "evaluate", Fwd::Eval, true, args)
}

/// backward(t) -> None
/// backward(t, gradient) -> None
/// backward(t, mode) -> None
/// backward(t, gradient, mode) -> None
/// backward(m) -> float
/// backward(m, x, y) -> float
///
/// On a tensor: backpropagates, accumulating gradients into the leaves. `gradient` is
/// needed for a tensor of more than one element; mode is `"free"` (the default: free
/// the graph), `"retain"`, `"create"` (higher order derivatives) or `"createfree"`
/// (`help("backward")` gives the table).
///
/// On a model: forward on its training data (or on `x`, `y`), loss, backward; returns
/// the loss. Gradients accumulate: call `zerograd` or `nograd` before.
#[pyfunction]
#[pyo3(signature = (*args))]
pub fn backward(py: Python<'_>, args: &Bound<'_, PyTuple>) -> PyResult<Option<f64>> {
    let f = "backward";
    let first = args
        .get_item(0)
        .map_err(|_| type_error(f, "expecting a Tensor, Vector, Dict or Model"))?;
    match obj(f, &first)? {
        Some(Obj::Model(m)) => {
            let (x, y) = match args.len() {
                1 => (None, None),
                3 => (
                    Some(tensors_arg(f, &args.get_item(1)?)?),
                    Some(tensors_arg(f, &args.get_item(2)?)?),
                ),
                n => {
                    return Err(type_error(
                        f,
                        format!(
                            "expecting (model) or (model, inputs, targets), given {n} argument(s)"
                        ),
                    ))
                }
            };
            let r = model_step(py, f, &m, x, y, |m, x, y| m.backward(x, y))?;
            Ok(Some(r))
        }
        Some(Obj::Tensors(s)) => {
            let mut mode = Mode::Free;
            let mut grads: Option<Srcs> = None;
            let rest: Vec<_> = args.iter().skip(1).collect();
            if rest.len() > 2 {
                return Err(type_error(f, "expecting (tensors[, gradient][, mode])"));
            }
            for (i, a) in rest.iter().enumerate() {
                if let Ok(s) = a.downcast::<PyString>() {
                    if i + 1 != rest.len() {
                        return Err(type_error(f, "mode must be the last argument"));
                    }
                    mode = Mode::from_name(s.to_str()?).map_err(|e| e.named(f)).py()?;
                } else if i == 0 {
                    grads = Some(tensors_arg(f, a)?);
                } else {
                    return Err(type_error(f, "expecting (tensors[, gradient][, mode])"));
                }
            }
            let ds = domains([
                s.domains(),
                grads.as_ref().map(Srcs::domains).unwrap_or_default(),
            ]);
            call(py, f, ds, move |g| {
                let grads = match &grads {
                    Some(gr) => Some(gr.tensors(g)?),
                    None => None,
                };
                let ys = g.lock(&s)?;
                Ok(core_backward(&ys.shallow(), grads.as_deref(), mode)?)
            })?;
            Ok(None)
        }
        _ => Err(type_error(
            f,
            format!(
                "expecting a Tensor, Vector, Dict or Model, given {}",
                first.get_type().name()?
            ),
        )),
    }
}

/// Runs a model step on optional inputs and targets, inside one call.
fn model_step(
    py: Python<'_>,
    f: &str,
    m: &Shared<Model>,
    x: Option<Srcs>,
    y: Option<Srcs>,
    op: impl FnOnce(
            &Model,
            Option<Vec<tch::Tensor>>,
            Option<Vec<tch::Tensor>>,
        ) -> ktorch_core::Result<f64>
        + Send,
) -> PyResult<f64> {
    let ds = domains([
        m.domains(),
        x.as_ref().map(Srcs::domains).unwrap_or_default(),
        y.as_ref().map(Srcs::domains).unwrap_or_default(),
    ]);
    let m = m.clone();
    call(py, f, ds, move |g| {
        let m = g.lock(&m)?;
        // data copied from numpy or lists takes the module's dtype, as in forward and run
        let x = match &x {
            Some(x) => {
                let (x, owned) = x.owned_tensors(g)?;
                Some(m.conform(x, &owned, "inputs")?)
            }
            None => None,
        };
        let y = match &y {
            Some(y) => {
                let (y, owned) = y.owned_tensors(g)?;
                Some(m.conform(y, &owned, "targets")?)
            }
            None => None,
        };
        Ok(op(&m, x, y)?)
    })
}

/// clipv(x, value) -> float
///
/// Clamps the gradients of a tensor, vector, dict, module, optimizer or model to
/// [-value, value]; returns nan (as the original).
#[pyfunction]
pub fn clipv(py: Python<'_>, x: &Bound<'_, PyAny>, value: f64) -> PyResult<f64> {
    on_params(py, "clipv", x, Gather::All, move |gs| {
        clip_value(&all_of(gs), value)
    })?;
    Ok(f64::NAN)
}

/// clip(x, maxnorm) -> float
/// clip(x, maxnorm, normtype) -> float
/// clip(x, maxnorm, normtype, group) -> list of float
///
/// Scales the gradients of a tensor, vector, dict, module, optimizer or model so that
/// their total norm (`normtype`, default 2; `float("inf")` for the largest absolute
/// value) is at most `maxnorm`; returns the norm before clipping. With `group` true
/// (an optimizer or model), clips each parameter group apart and returns one norm a
/// group.
#[pyfunction]
#[pyo3(signature = (x, maxnorm, *args))]
pub fn clip(
    py: Python<'_>,
    x: &Bound<'_, PyAny>,
    maxnorm: f64,
    args: &Bound<'_, PyTuple>,
) -> PyResult<PyObject> {
    let f = "clip";
    let mut p = 2.0;
    let mut group = false;
    for (i, a) in args.iter().enumerate() {
        if a.is_instance_of::<PyBool>() {
            group = a.extract()?;
        } else if i == 0 {
            p = a
                .extract()
                .map_err(|_| type_error(f, "norm type expects a number"))?;
        } else {
            return Err(type_error(
                f,
                "expecting (tensors, maxnorm[, normtype][, groupflag])",
            ));
        }
    }
    ktorch_core::clip::check_norm(maxnorm, p)
        .map_err(|e| e.named(f))
        .py()?;
    let which = if group { Gather::Groups } else { Gather::All };
    let norms = on_params(py, f, x, which, move |gs| {
        gs.iter()
            .map(|g| clip_norm(g, maxnorm, p).and_then(|t| Ok(t.f_double_value(&[])?)))
            .collect::<ktorch_core::Result<Vec<f64>>>()
    })?;
    if group {
        return Ok(norms.into_pyobject(py)?.into_any().unbind());
    }
    Ok(norms[0].into_pyobject(py)?.into_any().unbind())
}

/// step(o) -> None
/// step(m) -> None
///
/// One optimizer update from the current gradients. LBFGS re-evaluates the loss and
/// needs `backstep` instead.
#[pyfunction]
pub fn step(py: Python<'_>, x: &Bound<'_, PyAny>) -> PyResult<()> {
    let f = "step";
    match obj(f, x)? {
        Some(Obj::Opt(o)) => {
            let ds = o.domains();
            call(py, f, ds, move |g| Ok(g.lock(&o)?.step()?))
        }
        Some(Obj::Model(m)) => {
            let ds = m.domains();
            call(py, f, ds, move |g| Ok(g.lock(&m)?.step()?))
        }
        _ => Err(type_error(
            f,
            format!(
                "expecting an Optimizer or Model, given {}",
                x.get_type().name()?
            ),
        )),
    }
}

/// backstep(m) -> float
/// backstep(m, x, y) -> float
///
/// One training step on the model's training data (or on `x`, `y`): gradients set to
/// none, forward, loss, backward, clipping as the training options say, optimizer step.
/// Returns the loss.
#[pyfunction]
#[pyo3(signature = (m, x=None, y=None))]
pub fn backstep(
    py: Python<'_>,
    m: &Bound<'_, PyAny>,
    x: Option<&Bound<'_, PyAny>>,
    y: Option<&Bound<'_, PyAny>>,
) -> PyResult<f64> {
    let f = "backstep";
    let s = model_of(f, m)?;
    let (x, y) = match (x, y) {
        (None, None) => (None, None),
        (Some(x), Some(y)) => (Some(tensors_arg(f, x)?), Some(tensors_arg(f, y)?)),
        _ => {
            return Err(type_error(
                f,
                "expecting (model) or (model, inputs, targets)",
            ))
        }
    };
    model_step(py, f, &s, x, y, |m, x, y| m.backstep(x, y))
}

/// Metrics as arrays, or as Tensors locked with the model (`ds`).
fn metrics_to_py(
    py: Python<'_>,
    ms: Vec<(Metric, Option<tch::Tensor>)>,
    tensor: bool,
    torch: bool,
    dictionary: bool,
    ds: Vec<Domain>,
) -> PyResult<PyObject> {
    let conv = |t: Option<tch::Tensor>| -> PyResult<PyObject> {
        match t {
            None => Ok(py.None()),
            Some(t) if tensor => Ok(wrap_shared(py, t, ds.clone())?.into_any()),
            // new tensors nothing else holds: shared with the torch.Tensor returned
            Some(t) if torch => Ok(to_torch(py, &t.f_detach().py()?)?.unbind()),
            Some(t) => to_numpy(py, &t),
        }
    };
    if dictionary {
        let d = PyDict::new(py);
        for (m, t) in ms {
            d.set_item(m.name(), conv(t)?)?;
        }
        return Ok(d.into_any().unbind());
    }
    let mut vals = ms
        .into_iter()
        .map(|(_, t)| conv(t))
        .collect::<PyResult<Vec<_>>>()?;
    if vals.len() == 1 {
        return Ok(vals.remove(0));
    }
    Ok(PyList::new(py, vals)?.into_any().unbind())
}

fn run_fn(
    PhaseCall(py, f, phase, m, args): PhaseCall,
    callback: Option<&Bound<'_, PyAny>>,
    every: i64,
) -> PyResult<PyObject> {
    let s = model_of(f, m)?;
    let callback = match callback {
        Some(c) if !c.is_none() => {
            if !c.is_callable() {
                return Err(type_error(
                    f,
                    format!(
                        "callback expects a callable, given {}",
                        c.get_type().name()?
                    ),
                ));
            }
            Some(c.clone().unbind())
        }
        _ => None,
    };
    if every < 1 {
        return Err(ktorch_error(
            f,
            format!("every must be at least 1, given {every}"),
        ));
    }
    if !args.is_empty() {
        let rest: Vec<_> = args.iter().collect();
        let dataset = rest.len() == 1 && dataset_tensors(&rest[0])?.is_some();
        if rest.len() != 2 && !dataset {
            return Err(type_error(
                f,
                "expecting (model), (model, inputs, targets) or (model, TensorDataset)",
            ));
        }
        set_data(py, f, &s, phase, &rest)?;
    }
    let ds = s.domains();
    let held = ds.clone();
    let (r, tensor, torch, dictionary) = call(py, f, ds, move |g| {
        let mut stop = interrupt_check();
        let mut m = g.lock(&s)?;
        let o = m.stage(phase).opts.clone();
        let r = match &callback {
            None => m.pass_with(phase, &mut stop)?,
            Some(c) => {
                let mut watch = |t: &Tick| -> ktorch_core::Result<()> {
                    if t.batch % every == 0 || t.batch == t.batches {
                        tick_to_py(c, t)?;
                    }
                    Ok(())
                };
                m.pass_watched(phase, &mut stop, Some(&mut watch))?
            }
        };
        Ok((r, o.tensor, m.stage(phase).shared(), o.dictionary))
    })?;
    metrics_to_py(py, r, tensor, torch, dictionary, held)
}

/// Calls a batch callback with a dict: phase, batch, batches, elapsed
/// seconds, the running mean loss (None when no loss is computed).
fn tick_to_py(c: &Py<PyAny>, t: &Tick) -> ktorch_core::Result<()> {
    crate::gate::park_if_finalizing();
    Python::with_gil(|py| {
        let r = (|| -> PyResult<()> {
            let d = PyDict::new(py);
            d.set_item("phase", if t.phase.is_train() { "train" } else { "test" })?;
            d.set_item("batch", t.batch)?;
            d.set_item("batches", t.batches)?;
            d.set_item("elapsed", t.elapsed.as_secs_f64())?;
            d.set_item("loss", t.loss())?;
            c.call1(py, (d,))?;
            Ok(())
        })();
        r.map_err(|e| {
            // Ctrl-C while the callback ran: the run stops between batches as for any
            // Ctrl-C, and the next run finishes the epoch
            if e.is_instance_of::<pyo3::exceptions::PyKeyboardInterrupt>(py) {
                crate::errors::set_pending(e);
                ktorch_core::Error::Interrupted
            } else {
                crate::errors::callback_error(py, e)
            }
        })
    })
}

/// A check run between batches, at most every 20 ms: it runs Python's signal
/// handlers (on the main thread); an exception from one (KeyboardInterrupt on
/// Ctrl-C, SystemExit from `sys.exit` in a handler) stops the loop and is
/// raised by the call.
fn interrupt_check() -> impl FnMut() -> bool {
    let mut last = std::time::Instant::now();
    move || {
        if last.elapsed() < std::time::Duration::from_millis(20) {
            return false;
        }
        last = std::time::Instant::now();
        check_signals().is_err()
    }
}

phase_pair!(
    watched run_fn,
    /// run(m) -> metrics
    /// run(m, x, y) -> metrics
    /// run(m, TensorDataset) -> metrics
    /// run(m, callback=f, every=n) -> metrics
    ///
    /// One training pass (epoch) over the model's training data (`run(m, x, y)` defines
    /// it first), with the loop in Rust. The module is in training mode for the pass;
    /// each batch: gradients set to none, forward, loss, backward, clipping (options
    /// clipnorm, clipvalue), optimizer step. Shuffles first when option shuffle is true.
    ///
    /// Returns the metrics of option `metrics` (default `["loss"]`): the value alone for
    /// one metric, a list for several, a dict with option `dictionary`; numpy values
    /// (torch.Tensors when the data came as torch.Tensor), or ktorch Tensors with option
    /// `tensor`. When the data was shuffled, `predict` and `output` come back in the
    /// original sample order. Raises KtorchError with no training data.
    ///
    /// Ctrl-C stops between batches with KeyboardInterrupt (the data back at full size),
    /// and the next `run` finishes that epoch: the batches not done, in the same order (no
    /// new shuffle), returning the metrics of the whole epoch, bitwise as a run that was
    /// never stopped. Defining the data again, changing the training options, or
    /// `batch`, `batchinit`, `shuffle`, `unshuffle`, `restore` in between make the next
    /// run start a new epoch instead.
    ///
    /// Progress: option `progress` draws a bar on stderr (a terminal only). `callback(info)`
    /// is called every `every` batches and after the last, with a dict: phase, batch,
    /// batches, elapsed (seconds), loss (running mean of the batch losses, None without).
    run,
    /// testrun(m) -> metrics
    /// testrun(m, x, y) -> metrics
    /// testrun(m, callback=f, every=n) -> metrics
    ///
    /// One evaluation pass over the model's test data (`testrun(m, x, y)` defines it
    /// first): evaluation mode, no gradients; the loss is computed only when a loss metric
    /// is asked for. Returns the metrics of the test option `metrics`, as `run` does;
    /// `progress`, `callback` and `every` as for `run`; Ctrl-C stops between batches and
    /// the next `testrun` finishes the pass, as for `run`. Raises KtorchError with no test
    /// data.
    testrun
);
