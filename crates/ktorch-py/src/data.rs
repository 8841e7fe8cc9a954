//! Model options and data: train/test, data, input, target, sizes, batching, shuffling.

use ktorch_core::model::{Phase, Stage};
use ktorch_core::sync::Shared;
use ktorch_core::tensor::Key;
use ktorch_core::{Model, Value};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyInt, PyList, PyString, PyTuple};

use crate::convert::{
    dataset_tensors, is_data, src, to_numpy, to_value, wrap_shared, wrap_vector_shared, Src, Srcs,
};
use crate::errors::{ktorch_error, type_error, IntoPy};
use crate::gate::{call, domains};
use crate::handles::{obj, Dict, Obj, PyModel, Vector};
use crate::PhaseCall;

/// Tensors from an argument: a Tensor, Vector or Dict handle, array data, or a
/// tuple: a selection `(v, [0, 1])`, `(d, ["a", "b"])`, `(v, 0)`, or several of these.
/// Handles are read inside the call that uses them.
pub fn tensors_arg(func: &str, x: &Bound<'_, PyAny>) -> PyResult<Srcs> {
    if x.is_instance_of::<Vector>() || x.is_instance_of::<Dict>() {
        let Some(Obj::Tensors(s)) = obj(func, x)? else {
            unreachable!()
        };
        return Ok(Srcs(vec![Src::Handle(s, None)]));
    }
    if let Ok(t) = x.downcast::<PyTuple>() {
        if t.len() == 2 {
            let a = t.get_item(0)?;
            if a.is_instance_of::<Vector>() || a.is_instance_of::<Dict>() {
                let Some(Obj::Tensors(s)) = obj(func, &a)? else {
                    unreachable!()
                };
                let sel = t.get_item(1)?;
                let keys: Vec<Bound<'_, PyAny>> = if let Ok(l) = sel.downcast::<PyList>() {
                    l.iter().collect()
                } else {
                    vec![sel]
                };
                let mut out = Vec::with_capacity(keys.len());
                for k in keys {
                    if let Ok(s) = k.downcast::<PyString>() {
                        out.push(Key::Name(s.to_str()?.to_string()));
                    } else if k.is_instance_of::<PyInt>() {
                        out.push(Key::Index(k.extract().map_err(|_| {
                            ktorch_error(func, "selection index out of range for a 64-bit integer")
                        })?));
                    } else {
                        return Err(type_error(func, "selection expects indices or names"));
                    }
                }
                return Ok(Srcs(vec![Src::Handle(s, Some(out))]));
            }
        }
        let mut out = Vec::new();
        for e in t.iter() {
            out.extend(tensors_arg(func, &e)?.0);
        }
        return Ok(Srcs(out));
    }
    if let Some(ts) = dataset_tensors(x)? {
        let mut out = Vec::new();
        for t in ts {
            out.extend(tensors_arg(func, &t)?.0);
        }
        return Ok(Srcs(out));
    }
    if !is_data(x)? {
        return Err(type_error(
            func,
            format!(
                "expecting data (array, Tensor, Vector, Dict or a selection tuple), given {}",
                x.get_type().name()?
            ),
        ));
    }
    Ok(Srcs(vec![src(func, x)?]))
}

pub(crate) fn model_of(func: &str, m: &Bound<'_, PyAny>) -> PyResult<Shared<Model>> {
    match m.downcast::<PyModel>() {
        Ok(h) => h.get().get(func),
        Err(_) => Err(type_error(
            func,
            format!("expecting a Model, given {}", m.get_type().name()?),
        )),
    }
}

/// An option value for Python.
pub fn value_to_py(py: Python<'_>, v: &Value) -> PyResult<PyObject> {
    Ok(match v {
        Value::Null => py.None(),
        Value::Bool(b) => b.into_pyobject(py)?.to_owned().into_any().unbind(),
        Value::Int(i) => i.into_pyobject(py)?.into_any().unbind(),
        Value::Float(f) => f.into_pyobject(py)?.into_any().unbind(),
        Value::Str(s) => s.into_pyobject(py)?.into_any().unbind(),
        Value::List(l) | Value::Tuple(l) => PyList::new(
            py,
            l.iter()
                .map(|x| value_to_py(py, x))
                .collect::<PyResult<Vec<_>>>()?,
        )?
        .into_any()
        .unbind(),
        Value::Dict(d) => {
            let o = PyDict::new(py);
            for (k, x) in d {
                o.set_item(k, value_to_py(py, x)?)?;
            }
            o.into_any().unbind()
        }
        Value::Tensor(t) => to_numpy(py, t)?,
        Value::Callable(_) => py.None(),
    })
}

/// An option's value from Python: `to_value`, but for option `dist`, which takes a
/// `torch.distributed` process group (as its `group_name`), True (the default group), a
/// group's name, or None / False (none).
fn opt_value(f: &str, name: &str, v: &Bound<'_, PyAny>) -> PyResult<Value> {
    if name != "dist" {
        return to_value(f, v);
    }
    if v.is_none() || v.is_instance_of::<pyo3::types::PyBool>() && !v.extract::<bool>()? {
        return Ok(Value::Null);
    }
    if let Ok(s) = v.downcast::<PyString>() {
        return Ok(Value::Str(s.to_str()?.to_string()));
    }
    let py = v.py();
    let td = py.import("torch.distributed")?;
    if v.is_instance_of::<pyo3::types::PyBool>() {
        if !td.call_method0("is_available")?.extract::<bool>()?
            || !td.call_method0("is_initialized")?.extract::<bool>()?
        {
            return Err(ktorch_error(
                f,
                "dist: True names the default process group, and torch.distributed has none: \
                 call torch.distributed.init_process_group first",
            ));
        }
        let world = td.getattr("group")?.getattr("WORLD")?;
        return Ok(Value::Str(world.getattr("group_name")?.extract()?));
    }
    let pg = td.getattr("ProcessGroup").ok();
    if let Some(pg) = pg {
        if v.is_instance(&pg)? {
            return Ok(Value::Str(v.getattr("group_name")?.extract()?));
        }
    }
    Err(type_error(
        f,
        format!(
            "dist: expecting a torch.distributed ProcessGroup, True (the default group), a \
             group's name or None, given {}",
            v.get_type().name()?
        ),
    ))
}

/// Options given as a dictionary or keywords, `dist` converted as [`opt_value`] says.
fn opt_pairs(f: &str, d: &Bound<'_, PyDict>) -> PyResult<Vec<(String, Value)>> {
    let mut out = Vec::with_capacity(d.len());
    for (k, v) in d.iter() {
        let k: String = k.extract()?;
        let v = opt_value(f, &k, &v)?;
        out.push((k, v));
    }
    Ok(out)
}

fn names_of(x: &Bound<'_, PyAny>) -> Option<Vec<String>> {
    if let Ok(s) = x.downcast::<PyString>() {
        return Some(vec![s.to_string()]);
    }
    let l = x.downcast::<PyList>().ok()?;
    if l.is_empty() {
        return None;
    }
    l.iter()
        .map(|e| e.downcast::<PyString>().ok().map(|s| s.to_string()))
        .collect()
}

/// What a train/test call does with the stage's options.
enum OptCall {
    All,
    One(String),
    Some(Vec<String>),
    Set(Vec<(String, Value)>),
}

fn stage_fn(
    py: Python<'_>,
    phase: Phase,
    args: &Bound<'_, PyTuple>,
    kw: Option<&Bound<'_, PyDict>>,
) -> PyResult<PyObject> {
    let f = phase.name();
    let m = model_of(
        f,
        &args
            .get_item(0)
            .map_err(|_| type_error(f, "expecting a Model"))?,
    )?;
    let rest: Vec<Bound<'_, PyAny>> = args.iter().skip(1).collect();
    let op = if let Some(kw) = kw {
        if !rest.is_empty() {
            return Err(type_error(
                f,
                "options given both by position and by keyword",
            ));
        }
        OptCall::Set(opt_pairs(f, kw)?)
    } else {
        match rest.as_slice() {
            [] => OptCall::All,
            [a] if a.is_instance_of::<PyString>() => OptCall::One(a.to_string()),
            [a] if a.is_instance_of::<PyDict>() => {
                OptCall::Set(opt_pairs(f, a.downcast::<PyDict>()?)?)
            }
            [a] if names_of(a).is_some() => OptCall::Some(names_of(a).unwrap_or_default()),
            [a, v] if a.is_instance_of::<PyString>() => {
                let name = a.to_string();
                let v = opt_value(f, &name, v)?;
                OptCall::Set(vec![(name, v)])
            }
            [a, v]
                if names_of(a).is_some()
                    && (v.is_instance_of::<PyList>() || v.is_instance_of::<PyTuple>()) =>
            {
                let names = names_of(a).unwrap_or_default();
                let vals: Vec<Bound<'_, PyAny>> = v.try_iter()?.collect::<PyResult<_>>()?;
                if vals.len() != names.len() {
                    return Err(ktorch_error(
                        f,
                        format!("{} name(s) given with {} value(s)", names.len(), vals.len()),
                    ));
                }
                OptCall::Set(
                    names
                        .into_iter()
                        .zip(vals.iter())
                        .map(|(n, v)| {
                            let v = opt_value(f, &n, v)?;
                            Ok((n, v))
                        })
                        .collect::<PyResult<Vec<_>>>()?,
                )
            }
            _ => return set_data(py, f, &m, phase, &rest),
        }
    };
    let ds = m.domains();
    let out = call(py, f, ds, move |g| {
        let mut m = g.lock(&m)?;
        let opts = &mut m.stage(phase).opts;
        Ok(match op {
            OptCall::All => Some(Value::Dict(opts.all())),
            OptCall::One(n) => Some(opts.get(&n)?),
            OptCall::Some(ns) => Some(Value::Dict(
                ns.into_iter()
                    .map(|n| Ok((n.clone(), opts.get(&n)?)))
                    .collect::<ktorch_core::Result<Vec<_>>>()?,
            )),
            OptCall::Set(pairs) => {
                opts.set(&pairs)?;
                None
            }
        })
    })?;
    match out {
        Some(v) => value_to_py(py, &v),
        None => Ok(py.None()),
    }
}

/// Defines a stage's data: `rest` is (inputs) or (inputs, targets).
pub(crate) fn set_data(
    py: Python<'_>,
    f: &str,
    m: &Shared<Model>,
    phase: Phase,
    rest: &[Bound<'_, PyAny>],
) -> PyResult<PyObject> {
    // a TensorDataset of two or more tensors: the last is the target, the others the inputs
    let dataset = match rest {
        [d] => dataset_tensors(d)?.filter(|ts| ts.len() > 1),
        _ => None,
    };
    let (x, y) = match (rest, dataset.as_deref()) {
        (_, Some([xs @ .., last])) => {
            let mut x = Srcs::default();
            for t in xs {
                x.0.extend(tensors_arg(f, t)?.0);
            }
            (x, Some(tensors_arg(f, last)?))
        }
        ([x], _) => (tensors_arg(f, x)?, None),
        ([x, y], _) => (
            tensors_arg(f, x)?,
            if y.is_none() {
                None
            } else {
                Some(tensors_arg(f, y)?)
            },
        ),
        _ => {
            return Err(type_error(
                f,
                format!(
                    "expecting (model, inputs[, targets]), given {} data argument(s)",
                    rest.len()
                ),
            ))
        }
    };
    let ds = domains([
        m.domains(),
        x.domains(),
        y.as_ref().map(Srcs::domains).unwrap_or_default(),
    ]);
    let m = m.clone();
    let torch = x.torch();
    let n = call(py, f, ds, move |g| {
        let mut m = g.lock(&m)?;
        let (x, xo) = x.owned_tensors(g)?;
        let x = m.conform(x, &xo, "inputs")?;
        let y = match &y {
            Some(y) => {
                let (y, yo) = y.owned_tensors(g)?;
                Some(m.conform(y, &yo, "targets")?)
            }
            None => None,
        };
        let st = m.stage(phase);
        let n = st.set_data(x, y)?;
        st.set_shared(torch);
        Ok(n)
    })?;
    Ok(n.into_pyobject(py)?.into_any().unbind())
}

/// train(m) -> dict
/// train(m, name) -> value
/// train(m, [name, ...]) -> dict
/// train(m, {name: value, ...}) -> None
/// train(m, name, value) -> None
/// train(m, [name, ...], [value, ...]) -> None
/// train(m, **options) -> None
/// train(m, inputs) -> int
/// train(m, inputs, targets) -> int
///
/// Reads or sets the model's training options, or defines its training data.
///
/// A string or list of strings as second argument names options; anything else
/// (array, Tensor, Vector, Dict, tuple selecting members `(v, [0, 1])`,
/// `(d, ["a", "b"])`) is data, and the number of batches is returned.
///
/// Options (defaults): batchsize 32, droplast False, hidden False, tensor False,
/// dictionary False, metrics ["loss"], clipgroup False, clipnorm None, clipvalue None,
/// shuffle False, sync False, task 0, tasks 1, shufflecuda False, shuffleseed None,
/// nonfinite "proceed", progress False, autocast None, dist None, distcheck False. An unknown
/// name, a wrong type or an out-of-range value raises KtorchError and leaves every option as
/// it was.
///
/// `dist` trains over the processes of a `torch.distributed` process group as one process
/// would on the same global batches: `train(m, dist=pg)` for a group, `dist=True` for the
/// default group (after `torch.distributed.init_process_group`), `dist=None` for one process;
/// it reads back as the group's name (`pg.group_name`), which it also accepts. Each `run`
/// starts from rank 0's parameters and buffers (with `distcheck=True`: checks that every
/// rank's equal rank 0's, raising on every rank otherwise), shuffles with rank 0's
/// permutation, gives each
/// rank its share of every global batch of `batchsize` rows (`task`/`tasks` are ignored),
/// sums the gradients weighted by the shares before each step, and returns the metrics of
/// the whole data on every rank; batch normalization keeps rank 0's running statistics. The
/// test stage uses the same group unless `test(m, dist=...)` sets its own. A pass over a
/// group is not resumed after Ctrl-C; the group is not saved with the model. Every rank must
/// use the same options and data: a rank that fails makes the others raise within the
/// group's timeout.
#[pyfunction]
#[pyo3(signature = (*args, **kw))]
pub fn train(
    py: Python<'_>,
    args: &Bound<'_, PyTuple>,
    kw: Option<&Bound<'_, PyDict>>,
) -> PyResult<PyObject> {
    stage_fn(py, Phase::Train, args, kw)
}

/// test(m) -> dict
/// test(m, name) -> value
/// test(m, [name, ...]) -> dict
/// test(m, {name: value, ...}) -> None
/// test(m, name, value) -> None
/// test(m, [name, ...], [value, ...]) -> None
/// test(m, **options) -> None
/// test(m, inputs) -> int
/// test(m, inputs, targets) -> int
///
/// As `train`, for the test options and data. Test options (defaults): batchsize 100,
/// droplast False, hidden False, tensor False, dictionary False, metrics ["loss"],
/// progress False, autocast None, task 0, tasks 1, dist None (None: the training options'
/// group), distcheck False; training-only options (clipnorm, shuffle, ...) are an error here. With a group,
/// `testrun` splits every batch over its processes and returns exact metrics of the whole
/// test data on every rank.
#[pyfunction]
#[pyo3(signature = (*args, **kw))]
pub fn test(
    py: Python<'_>,
    args: &Bound<'_, PyTuple>,
    kw: Option<&Bound<'_, PyDict>>,
) -> PyResult<PyObject> {
    stage_fn(py, Phase::Test, args, kw)
}

/// Copies of tensors another object holds, for values handed to Python.
fn copies(ts: Option<Vec<tch::Tensor>>) -> ktorch_core::Result<Option<Vec<tch::Tensor>>> {
    ts.map(|v| {
        v.iter()
            .map(|t| t.f_detach_copy().map_err(ktorch_core::Error::from))
            .collect()
    })
    .transpose()
}

fn arrays(py: Python<'_>, ts: Option<Vec<tch::Tensor>>) -> PyResult<PyObject> {
    match ts {
        None => Ok(py.None()),
        Some(v) if v.len() == 1 => to_numpy(py, &v[0]),
        Some(v) => Ok(PyList::new(
            py,
            v.iter()
                .map(|t| to_numpy(py, t))
                .collect::<PyResult<Vec<_>>>()?,
        )?
        .into_any()
        .unbind()),
    }
}

fn data_fn(PhaseCall(py, f, phase, m, args): PhaseCall) -> PyResult<PyObject> {
    let s = model_of(f, m)?;
    if !args.is_empty() {
        let rest: Vec<_> = args.iter().collect();
        return set_data(py, f, &s, phase, &rest);
    }
    let ds = s.domains();
    let (x, y) = call(py, f, ds, move |g| {
        let mut m = g.lock(&s)?;
        let st = m.stage(phase);
        Ok((copies(st.inputs())?, copies(st.targets())?))
    })?;
    Ok(PyList::new(py, [arrays(py, x)?, arrays(py, y)?])?
        .into_any()
        .unbind())
}

phase_pair!(
    data_fn,
    /// data(m) -> [inputs, targets]
    /// data(m, x) -> int
    /// data(m, x, y) -> int
    ///
    /// The training data as numpy arrays (a list of arrays for several tensors, None where
    /// undefined), or defines it (as `train(m, x, y)`; returns the number of batches).
    data,
    /// testdata(m) -> [inputs, targets]
    /// testdata(m, x) -> int
    /// testdata(m, x, y) -> int
    ///
    /// As `data`, for the test data.
    testdata
);

/// Sources from several positional arguments.
fn srcs_of(f: &str, args: &Bound<'_, PyTuple>) -> PyResult<Srcs> {
    let mut out = Vec::new();
    for a in args.iter() {
        out.extend(tensors_arg(f, &a)?.0);
    }
    Ok(Srcs(out))
}

/// Replaces a stage's inputs or targets (`set`) with the tensors of `args`;
/// returns the number of batches.
fn set_part(
    py: Python<'_>,
    f: &str,
    s: Shared<Model>,
    phase: Phase,
    args: &Bound<'_, PyTuple>,
    what: &'static str,
    set: fn(&mut Stage, Vec<tch::Tensor>) -> ktorch_core::Result<i64>,
) -> PyResult<PyObject> {
    let x = srcs_of(f, args)?;
    let ds = domains([s.domains(), x.domains()]);
    let n = call(py, f, ds, move |g| {
        let mut m = g.lock(&s)?;
        let (t, owned) = x.owned_tensors(g)?;
        let t = m.conform(t, &owned, what)?;
        let st = m.stage(phase);
        let n = set(st, t)?;
        // new inputs decide the results' kind; new targets keep it (Stage::set_targets)
        if what == "inputs" {
            st.set_shared(x.torch());
        }
        Ok(n)
    })?;
    Ok(n.into_pyobject(py)?.into_any().unbind())
}

fn input_fn(PhaseCall(py, f, phase, m, args): PhaseCall) -> PyResult<PyObject> {
    let s = model_of(f, m)?;
    if !args.is_empty() {
        return set_part(py, f, s, phase, args, "inputs", |st, x| st.set_inputs(x));
    }
    let ds = s.domains();
    let held = ds.clone();
    let x = call(py, f, ds, move |g| Ok(g.lock(&s)?.stage(phase).inputs()))?;
    // the handles share the model's data: using them takes the model's lock
    match x {
        None => Ok(py.None()),
        Some(mut v) if v.len() == 1 => Ok(wrap_shared(py, v.remove(0), held)?.into_any()),
        Some(v) => Ok(wrap_vector_shared(py, v, held)?.into_any()),
    }
}

fn target_fn(PhaseCall(py, f, phase, m, args): PhaseCall) -> PyResult<PyObject> {
    let s = model_of(f, m)?;
    if !args.is_empty() {
        return set_part(py, f, s, phase, args, "targets", |st, y| {
            st.set_targets(Some(y))
        });
    }
    let ds = s.domains();
    let y = call(py, f, ds, move |g| {
        Ok(copies(g.lock(&s)?.stage(phase).targets())?)
    })?;
    arrays(py, y)
}

phase_pair!(
    input_fn,
    /// input(m) -> Tensor or Vector
    /// input(m, x, ...) -> int
    ///
    /// The training inputs as a Tensor handle (a Vector for several), or defines them.
    input,
    /// testinput(m) -> Tensor or Vector
    /// testinput(m, x, ...) -> int
    ///
    /// As `input`, for the test inputs.
    testinput
);

phase_pair!(
    target_fn,
    /// target(m) -> numpy array(s) or None
    /// target(m, y, ...) -> int
    ///
    /// The training targets as numpy array(s), None where undefined; or defines them.
    target,
    /// testtarget(m) -> numpy array(s) or None
    /// testtarget(m, y, ...) -> int
    ///
    /// As `target`, for the test targets.
    testtarget
);

/// Runs `f` on a model's stage, inside a call.
fn on_stage<R: Send>(
    py: Python<'_>,
    func: &str,
    m: &Bound<'_, PyAny>,
    phase: Phase,
    f: impl FnOnce(&mut ktorch_core::model::Stage) -> ktorch_core::Result<R> + Send,
) -> PyResult<R> {
    let s = model_of(func, m)?;
    let ds = s.domains();
    call(py, func, ds, move |g| Ok(f(g.lock(&s)?.stage(phase))?))
}

/// datasize(m) -> int
///
/// The number of training rows, of the current batch while batching.
#[pyfunction]
pub fn datasize(py: Python<'_>, m: &Bound<'_, PyAny>) -> PyResult<i64> {
    on_stage(py, "datasize", m, Phase::Train, |st| Ok(st.size()))
}

/// testsize(m) -> int
///
/// The number of test rows, of the current batch while batching.
#[pyfunction]
pub fn testsize(py: Python<'_>, m: &Bound<'_, PyAny>) -> PyResult<i64> {
    on_stage(py, "testsize", m, Phase::Test, |st| Ok(st.size()))
}

/// batch(m) -> bool
/// batch(x, size) -> bool
/// batch(x, (size, dim)) -> bool
/// batch(x, size, i) -> None
///
/// On a model: moves its training data to the next batch (option batchsize); True while
/// a batch remains, then restores full size and returns False (start with `batchinit`).
/// On a Tensor, Vector or Dict: narrows it in place to the next batch of `size` rows
/// (along `dim`), True while batches remain, then restores and returns False; with `i`,
/// selects batch `i` alone. `size` must be in 1 to n-1.
#[pyfunction]
#[pyo3(signature = (x, size=None, index=None))]
pub fn batch(
    py: Python<'_>,
    x: &Bound<'_, PyAny>,
    size: Option<&Bound<'_, PyAny>>,
    index: Option<i64>,
) -> PyResult<Option<bool>> {
    let f = "batch";
    match obj(f, x)? {
        Some(Obj::Model(_)) => {
            if size.is_some() {
                return Err(type_error(
                    f,
                    "batch(model) takes no size: set the batchsize option",
                ));
            }
            Ok(Some(on_stage(py, f, x, Phase::Train, |st| st.batch())?))
        }
        Some(Obj::Tensors(s)) => {
            let size = size.ok_or_else(|| type_error(f, "expecting a batch size"))?;
            let (w, dim) = match to_value(f, size)? {
                Value::Tuple(v) | Value::List(v) if v.len() == 2 => (
                    v[0].as_int("size").py_for(f)?,
                    v[1].as_int("dim").py_for(f)?,
                ),
                v => (v.as_int("size").py_for(f)?, 0),
            };
            let ds = s.domains();
            call(py, f, ds, move |g| {
                let mut t = g.lock(&s)?;
                Ok(match index {
                    None => Some(t.batch(w, dim)?),
                    Some(i) => {
                        t.batch_at(w, dim, i)?;
                        None
                    }
                })
            })
        }
        _ => Err(type_error(
            f,
            format!(
                "expecting a Model, Tensor, Vector or Dict, given {}",
                x.get_type().name()?
            ),
        )),
    }
}

/// testbatch(m) -> bool
///
/// As `batch(m)`, for the test data (start with `testinit`).
#[pyfunction]
pub fn testbatch(py: Python<'_>, m: &Bound<'_, PyAny>) -> PyResult<bool> {
    on_stage(py, "testbatch", m, Phase::Test, |st| st.batch())
}

/// restore(m) -> int
/// restore(x) -> int
/// restore(x, dim) -> int
///
/// Restores a model's training data (or a Tensor, Vector or Dict) to full size after
/// batching; returns the number of rows (for a Tensor, Vector or Dict the size along
/// the batching dimension). With `dim`, the size along `dim` is returned and `dim` must
/// be the batching dimension (0 for a model): another raises KtorchError and leaves the
/// batch in place.
#[pyfunction]
#[pyo3(signature = (x, dim=None))]
pub fn restore(py: Python<'_>, x: &Bound<'_, PyAny>, dim: Option<i64>) -> PyResult<i64> {
    let f = "restore";
    match obj(f, x)? {
        Some(Obj::Model(_)) => on_stage(py, f, x, Phase::Train, |st| match dim {
            None => Ok(st.restore()),
            Some(d) => st.restore_dim(d),
        }),
        Some(Obj::Tensors(s)) => {
            let ds = s.domains();
            call(py, f, ds, move |g| {
                let mut t = g.lock(&s)?;
                Ok(match dim {
                    None => t.restore(),
                    Some(d) => t.restore_dim(d)?,
                })
            })
        }
        _ => Err(type_error(
            f,
            format!(
                "expecting a Model, Tensor, Vector or Dict, given {}",
                x.get_type().name()?
            ),
        )),
    }
}

/// testrestore(m) -> int
///
/// As `restore(m)`, for the test data.
#[pyfunction]
pub fn testrestore(py: Python<'_>, m: &Bound<'_, PyAny>) -> PyResult<i64> {
    on_stage(py, "testrestore", m, Phase::Test, |st| Ok(st.restore()))
}

/// batchinit(m) -> int
///
/// Starts a pass over the training data: restores full size, shuffles if option
/// shuffle is true, resets the metrics; returns the number of batches (-1 with no
/// data).
#[pyfunction]
pub fn batchinit(py: Python<'_>, m: &Bound<'_, PyAny>) -> PyResult<i64> {
    on_stage(py, "batchinit", m, Phase::Train, |st| st.init())
}

/// testinit(m) -> int
///
/// As `batchinit`, for the test data (no shuffling).
#[pyfunction]
pub fn testinit(py: Python<'_>, m: &Bound<'_, PyAny>) -> PyResult<i64> {
    on_stage(py, "testinit", m, Phase::Test, |st| st.init())
}

/// shuffle(m) -> None
/// shuffle(x) -> None
/// shuffle(x, dim) -> None
///
/// Shuffles a model's training data (inputs and targets alike), or a Tensor, or the
/// members of a Vector or Dict by one permutation (along `dim`, default 0).
#[pyfunction]
#[pyo3(signature = (x, dim=0))]
pub fn shuffle(py: Python<'_>, x: &Bound<'_, PyAny>, dim: i64) -> PyResult<()> {
    let f = "shuffle";
    match obj(f, x)? {
        Some(Obj::Model(_)) => {
            if dim != 0 {
                return Err(ktorch_error(
                    f,
                    "models shuffle along the first dimension only",
                ));
            }
            on_stage(py, f, x, Phase::Train, |st| st.shuffle())
        }
        Some(Obj::Tensors(s)) => {
            let ds = s.domains();
            call(py, f, ds, move |g| {
                let _perm = g.lock(&s)?.shuffle(dim, None)?;
                Ok(())
            })
        }
        _ => Err(type_error(
            f,
            format!(
                "expecting a Model, Tensor, Vector or Dict, given {}",
                x.get_type().name()?
            ),
        )),
    }
}

/// unshuffle(m) -> None
///
/// Puts the model's training data back in its original order.
#[pyfunction]
pub fn unshuffle(py: Python<'_>, m: &Bound<'_, PyAny>) -> PyResult<()> {
    on_stage(py, "unshuffle", m, Phase::Train, |st| st.unshuffle())
}
