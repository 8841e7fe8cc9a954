//! The training steps and loops: zerograd, nograd, forward..., backward, clip, step, backstep, run, testrun.

use ktorch_core::autograd::{backward as core_backward, reset_grads, Mode};
use ktorch_core::clip::{clip_norm, clip_value, distinct};
use ktorch_core::model::{forward as module_forward, lock, shared, Fwd, Metric};
use ktorch_core::Model;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyList, PyString, PyTuple};

use crate::convert::{to_numpy, wrap, wrap_vector};
use crate::data::{model_of, set_data_pub, tensors_arg};
use crate::errors::{enter, plock, terr, IntoPy};
use crate::handles::{obj, Obj, PyLoss, PyModel, PyModule, PyOptimizer};

/// model(module, loss, optimizer) -> Model.
#[pyfunction]
pub fn model(
    py: Python<'_>,
    q: &Bound<'_, PyAny>,
    l: &Bound<'_, PyAny>,
    o: &Bound<'_, PyAny>,
) -> PyResult<Py<PyModel>> {
    let f = "model";
    let name = |x: &Bound<'_, PyAny>| {
        x.get_type()
            .name()
            .map(|n| n.to_string())
            .unwrap_or_default()
    };
    let q = q
        .downcast::<PyModule>()
        .map_err(|_| terr(f, format!("module expects a Module, given {}", name(q))))?;
    let l = l
        .downcast::<PyLoss>()
        .map_err(|_| terr(f, format!("loss expects a Loss, given {}", name(l))))?;
    let o = o.downcast::<PyOptimizer>().map_err(|_| {
        terr(
            f,
            format!("optimizer expects an Optimizer, given {}", name(o)),
        )
    })?;
    let m = Model::new(q.get().get(f)?, l.get().get(f)?, o.get().get(f)?);
    Py::new(py, PyModel::new(shared(m)))
}

/// Parameter tensors of any object, grouped by optimizer group where it has groups.
fn groups_of(func: &str, x: &Bound<'_, PyAny>) -> PyResult<Vec<Vec<tch::Tensor>>> {
    Ok(match obj(func, x)? {
        Some(Obj::Tensors(s)) => vec![plock(func, &s)?
            .full()
            .iter()
            .map(tch::Tensor::shallow_clone)
            .collect()],
        Some(Obj::Module(m)) => vec![plock(func, &m)?.parameters()],
        Some(Obj::Opt(o)) => plock(func, &o)?.param_groups(),
        // the model locks its module and optimizer: wait for them without the GIL
        Some(Obj::Model(m)) => {
            let f = func.to_string();
            enter(x.py(), func, move || lock(&f, &m)?.param_groups(&f)).py()?
        }
        Some(Obj::Loss(_)) => return Err(terr(func, "a Loss has no parameters")),
        None => {
            return Err(terr(
                func,
                format!(
                    "expecting a Tensor, Vector, Dict, Module, Optimizer or Model, given {}",
                    x.get_type().name()?
                ),
            ))
        }
    })
}

fn all_params(func: &str, x: &Bound<'_, PyAny>) -> PyResult<Vec<tch::Tensor>> {
    if let Some(Obj::Model(m)) = obj(func, x)? {
        let f = func.to_string();
        return enter(x.py(), func, move || lock(&f, &m)?.parameters(&f)).py();
    }
    Ok(distinct(
        groups_of(func, x)?.into_iter().flatten().collect(),
    ))
}

/// zerograd(x): sets gradients to zero.
#[pyfunction]
pub fn zerograd(py: Python<'_>, x: &Bound<'_, PyAny>) -> PyResult<()> {
    let ps = all_params("zerograd", x)?;
    enter(py, "zerograd", move || reset_grads(&ps, false)).py()
}

/// nograd(x): sets gradients to undefined (None).
#[pyfunction]
pub fn nograd(py: Python<'_>, x: &Bound<'_, PyAny>) -> PyResult<()> {
    let ps = all_params("nograd", x)?;
    enter(py, "nograd", move || reset_grads(&ps, true)).py()
}

fn outputs(py: Python<'_>, mut out: Vec<tch::Tensor>, arrays: bool) -> PyResult<PyObject> {
    if arrays {
        if out.len() == 1 {
            return to_numpy(py, &out[0]);
        }
        return Ok(PyList::new(
            py,
            out.iter()
                .map(|t| to_numpy(py, t))
                .collect::<PyResult<Vec<_>>>()?,
        )?
        .into_any()
        .unbind());
    }
    if out.len() == 1 {
        return Ok(wrap(py, out.remove(0))?.into_any());
    }
    Ok(wrap_vector(py, out)?.into_any())
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
        .map_err(|_| terr(f, "expecting a Module or Model"))?;
    let mut xs = Vec::new();
    for a in args.iter().skip(1) {
        xs.extend(tensors_arg(f, &a)?);
    }
    let given = args.len() > 1;
    let out = match obj(f, &first)? {
        Some(Obj::Module(m)) => enter(py, f, move || -> ktorch_core::Result<_> {
            let mut m = lock(f, &m)?;
            module_forward(&mut m, &xs, mode)
        }),
        Some(Obj::Model(m)) => enter(py, f, move || -> ktorch_core::Result<_> {
            let m = lock(f, &m)?;
            m.forward(f, if given { Some(&xs) } else { None }, mode)
        }),
        _ => {
            return Err(terr(
                f,
                format!(
                    "expecting a Module or Model, given {}",
                    first.get_type().name()?
                ),
            ))
        }
    }
    .py()?;
    outputs(py, out, arrays)
}

/// forward(q, x...) or forward(m[, x...]): training mode, with gradients.
#[pyfunction]
#[pyo3(signature = (*args))]
pub fn forward(py: Python<'_>, args: &Bound<'_, PyTuple>) -> PyResult<PyObject> {
    forward_fn(py, "forward", Fwd::Grad, false, args)
}

/// nforward: training mode, no gradients.
#[pyfunction]
#[pyo3(signature = (*args))]
pub fn nforward(py: Python<'_>, args: &Bound<'_, PyTuple>) -> PyResult<PyObject> {
    forward_fn(py, "nforward", Fwd::NoGrad, false, args)
}

/// eforward: evaluation mode, no gradients, returns Tensor(s).
#[pyfunction]
#[pyo3(signature = (*args))]
pub fn eforward(py: Python<'_>, args: &Bound<'_, PyTuple>) -> PyResult<PyObject> {
    forward_fn(py, "eforward", Fwd::Eval, false, args)
}

/// evaluate: evaluation mode, no gradients, returns array(s).
#[pyfunction]
#[pyo3(signature = (*args))]
pub fn evaluate(py: Python<'_>, args: &Bound<'_, PyTuple>) -> PyResult<PyObject> {
    forward_fn(py, "evaluate", Fwd::Eval, true, args)
}

/// backward(t[, grad][, mode]) on tensors; backward(m[, x, y]) on a model returns the loss.
#[pyfunction]
#[pyo3(signature = (*args))]
pub fn backward(py: Python<'_>, args: &Bound<'_, PyTuple>) -> PyResult<Option<f64>> {
    let f = "backward";
    let first = args
        .get_item(0)
        .map_err(|_| terr(f, "expecting a Tensor, Vector, Dict or Model"))?;
    match obj(f, &first)? {
        Some(Obj::Model(m)) => {
            let (x, y) = match args.len() {
                1 => (None, None),
                3 => (
                    Some(tensors_arg(f, &args.get_item(1)?)?),
                    Some(tensors_arg(f, &args.get_item(2)?)?),
                ),
                n => {
                    return Err(terr(
                        f,
                        format!(
                            "expecting (model) or (model, inputs, targets), given {n} argument(s)"
                        ),
                    ))
                }
            };
            let r = enter(py, f, move || lock(f, &m)?.backward(f, x, y)).py()?;
            Ok(Some(r))
        }
        Some(Obj::Tensors(s)) => {
            let mut mode = Mode::Free;
            let mut grads: Option<Vec<tch::Tensor>> = None;
            let rest: Vec<_> = args.iter().skip(1).collect();
            if rest.len() > 2 {
                return Err(terr(f, "expecting (tensors[, gradient][, mode])"));
            }
            for (i, a) in rest.iter().enumerate() {
                if let Ok(s) = a.downcast::<PyString>() {
                    if i + 1 != rest.len() {
                        return Err(terr(f, "mode must be the last argument"));
                    }
                    mode = Mode::from_name(f, s.to_str()?).py()?;
                } else if i == 0 {
                    grads = Some(tensors_arg(f, a)?);
                } else {
                    return Err(terr(f, "expecting (tensors[, gradient][, mode])"));
                }
            }
            let ys = plock(f, &s)?.shallow();
            enter(py, f, move || core_backward(f, &ys, grads.as_deref(), mode)).py()?;
            Ok(None)
        }
        _ => Err(terr(
            f,
            format!(
                "expecting a Tensor, Vector, Dict or Model, given {}",
                first.get_type().name()?
            ),
        )),
    }
}

/// clipv(x, value): clamps gradients to [-value, value]; returns nan.
#[pyfunction]
pub fn clipv(py: Python<'_>, x: &Bound<'_, PyAny>, value: f64) -> PyResult<f64> {
    let ps = all_params("clipv", x)?;
    enter(py, "clipv", move || clip_value("clipv", &ps, value)).py()?;
    Ok(f64::NAN)
}

/// clip(x, maxnorm[, normtype][, group]) -> previous norm (a list with the group flag).
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
                .map_err(|_| terr(f, "norm type expects a number"))?;
        } else {
            return Err(terr(
                f,
                "expecting (tensors, maxnorm[, normtype][, groupflag])",
            ));
        }
    }
    ktorch_core::clip::check_norm(f, maxnorm, p).py()?;
    if group {
        let gs = groups_of(f, x)?;
        let norms = enter(py, f, move || -> ktorch_core::Result<Vec<f64>> {
            gs.iter()
                .map(|g| clip_norm(f, g, maxnorm, p).and_then(|t| Ok(t.f_double_value(&[])?)))
                .collect()
        })
        .py()?;
        return Ok(norms.into_pyobject(py)?.into_any().unbind());
    }
    let ps = all_params(f, x)?;
    let n = enter(py, f, move || -> ktorch_core::Result<f64> {
        Ok(clip_norm(f, &ps, maxnorm, p)?.f_double_value(&[])?)
    })
    .py()?;
    Ok(n.into_pyobject(py)?.into_any().unbind())
}

/// step(optimizer or model): one optimizer update.
#[pyfunction]
pub fn step(py: Python<'_>, x: &Bound<'_, PyAny>) -> PyResult<()> {
    let f = "step";
    match obj(f, x)? {
        Some(Obj::Opt(o)) => enter(py, f, move || lock(f, &o)?.step()).py(),
        Some(Obj::Model(m)) => enter(py, f, move || lock(f, &m)?.step(f)).py(),
        _ => Err(terr(
            f,
            format!(
                "expecting an Optimizer or Model, given {}",
                x.get_type().name()?
            ),
        )),
    }
}

/// backstep(m[, x, y]): forward, loss, backward, clip, step; returns the loss.
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
        _ => return Err(terr(f, "expecting (model) or (model, inputs, targets)")),
    };
    enter(py, f, move || lock(f, &s)?.backstep(f, x, y)).py()
}

fn metrics_to_py(
    py: Python<'_>,
    ms: Vec<(Metric, Option<tch::Tensor>)>,
    tensor: bool,
    dictionary: bool,
) -> PyResult<PyObject> {
    let conv = |t: Option<tch::Tensor>| -> PyResult<PyObject> {
        match t {
            None => Ok(py.None()),
            Some(t) if tensor => Ok(wrap(py, t)?.into_any()),
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
    py: Python<'_>,
    f: &str,
    train: bool,
    m: &Bound<'_, PyAny>,
    args: &Bound<'_, PyTuple>,
) -> PyResult<PyObject> {
    let s = model_of(f, m)?;
    if !args.is_empty() {
        let rest: Vec<_> = args.iter().collect();
        if rest.len() != 2 {
            return Err(terr(f, "expecting (model) or (model, inputs, targets)"));
        }
        set_data_pub(py, f, &s, train, &rest)?;
    }
    let main = is_main_thread(py)?;
    let (r, tensor, dictionary) = enter(py, f, move || -> ktorch_core::Result<_> {
        let mut stop = interrupt_check(main);
        let mut g = lock(f, &s)?;
        let o = if train {
            g.train.opts.clone()
        } else {
            g.test.opts.clone()
        };
        let r = if train {
            g.run_with(f, &mut stop)?
        } else {
            g.testrun_with(f, &mut stop)?
        };
        Ok((r, o.tensor, o.dictionary))
    })
    .py()?;
    metrics_to_py(py, r, tensor, dictionary)
}

fn is_main_thread(py: Python<'_>) -> PyResult<bool> {
    let threading = py.import("threading")?;
    let main = threading.call_method0("main_thread")?.getattr("ident")?;
    let me = threading.call_method0("get_ident")?;
    main.eq(me)
}

/// A check run between batches: on the main thread, at most every 20 ms, it
/// runs Python's signal handlers; Ctrl-C then stops the loop (KeyboardInterrupt).
fn interrupt_check(main: bool) -> impl FnMut() -> bool {
    let mut last = std::time::Instant::now();
    move || {
        if !main || last.elapsed() < std::time::Duration::from_millis(20) {
            return false;
        }
        last = std::time::Instant::now();
        Python::with_gil(|py| py.check_signals().is_err())
    }
}

/// run(m[, x, y]): one training pass over the data; returns the metrics.
#[pyfunction]
#[pyo3(signature = (m, *args))]
pub fn run(py: Python<'_>, m: &Bound<'_, PyAny>, args: &Bound<'_, PyTuple>) -> PyResult<PyObject> {
    run_fn(py, "run", true, m, args)
}

/// testrun(m[, x, y]): one evaluation pass over the test data; returns the metrics.
#[pyfunction]
#[pyo3(signature = (m, *args))]
pub fn testrun(
    py: Python<'_>,
    m: &Bound<'_, PyAny>,
    args: &Bound<'_, PyTuple>,
) -> PyResult<PyObject> {
    run_fn(py, "testrun", false, m, args)
}
