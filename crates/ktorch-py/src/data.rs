//! Model options and data: train/test, data, input, target, sizes, batching, shuffling.

use ktorch_core::model::{lock, Shared};
use ktorch_core::{Model, Value};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyInt, PyList, PyString, PyTuple};

use crate::convert::{is_data, kwargs, to_numpy, to_tch, to_value, wrap, wrap_vector};
use crate::errors::{enter, kerr, plock, terr, IntoPy};
use crate::handles::{obj, Dict, Obj, PyModel, Vector};

/// Tensors from an argument: a Tensor, Vector or Dict handle, array data, or a
/// tuple: a selection `(v, [0, 1])`, `(d, ["a", "b"])`, `(v, 0)`, or several of these.
pub fn tensors_arg(func: &str, x: &Bound<'_, PyAny>) -> PyResult<Vec<tch::Tensor>> {
    if x.is_instance_of::<Vector>() || x.is_instance_of::<Dict>() {
        let Some(Obj::Tensors(s)) = obj(func, x)? else {
            unreachable!()
        };
        return Ok(plock(func, &s)?.shallow());
    }
    if let Ok(t) = x.downcast::<PyTuple>() {
        if t.len() == 2 {
            let a = t.get_item(0)?;
            if a.is_instance_of::<Vector>() || a.is_instance_of::<Dict>() {
                let Some(Obj::Tensors(s)) = obj(func, &a)? else {
                    unreachable!()
                };
                let g = plock(func, &s)?;
                let sel = t.get_item(1)?;
                let keys: Vec<Bound<'_, PyAny>> = if let Ok(l) = sel.downcast::<PyList>() {
                    l.iter().collect()
                } else {
                    vec![sel]
                };
                let mut out = Vec::with_capacity(keys.len());
                for k in keys {
                    let i = if let Ok(s) = k.downcast::<PyString>() {
                        g.index_of(func, s.to_str()?).py()?
                    } else if k.is_instance_of::<PyInt>() {
                        g.check_index(func, k.extract()?).py()?
                    } else {
                        return Err(terr(func, "selection expects indices or names"));
                    };
                    out.push(g.items()[i].shallow_clone());
                }
                return Ok(out);
            }
        }
        let mut out = Vec::new();
        for e in t.iter() {
            out.extend(tensors_arg(func, &e)?);
        }
        return Ok(out);
    }
    if !is_data(x)? {
        return Err(terr(
            func,
            format!(
                "expecting data (array, Tensor, Vector, Dict or a selection tuple), given {}",
                x.get_type().name()?
            ),
        ));
    }
    Ok(vec![to_tch(func, x)?])
}

pub(crate) fn model_of(func: &str, m: &Bound<'_, PyAny>) -> PyResult<Shared<Model>> {
    match m.downcast::<PyModel>() {
        Ok(h) => h.get().get(func),
        Err(_) => Err(terr(
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

fn stage_fn(
    py: Python<'_>,
    train: bool,
    args: &Bound<'_, PyTuple>,
    kw: Option<&Bound<'_, PyDict>>,
) -> PyResult<PyObject> {
    let f = if train { "train" } else { "test" };
    let m = model_of(
        f,
        &args.get_item(0).map_err(|_| terr(f, "expecting a Model"))?,
    )?;
    let rest: Vec<Bound<'_, PyAny>> = args.iter().skip(1).collect();
    if let Some(kw) = kw {
        if !rest.is_empty() {
            return Err(terr(f, "options given both by position and by keyword"));
        }
        let pairs = kwargs(f, Some(kw))?;
        plock(f, &m)?.stage(train).opts.set(&pairs).py()?;
        return Ok(py.None());
    }
    let mut g = plock(f, &m)?;
    let st = g.stage(train);
    match rest.as_slice() {
        [] => value_to_py(py, &Value::Dict(st.opts.all())),
        [a] if a.is_instance_of::<PyString>() => {
            value_to_py(py, &st.opts.get(&a.to_string()).py()?)
        }
        [a] if a.is_instance_of::<PyDict>() => {
            let pairs = kwargs(f, Some(a.downcast::<PyDict>()?))?;
            st.opts.set(&pairs).py()?;
            Ok(py.None())
        }
        [a] if names_of(a).is_some() => {
            let d = PyDict::new(py);
            for n in names_of(a).unwrap_or_default() {
                d.set_item(&n, value_to_py(py, &st.opts.get(&n).py()?)?)?;
            }
            Ok(d.into_any().unbind())
        }
        [a, v] if a.is_instance_of::<PyString>() => {
            st.opts.set(&[(a.to_string(), to_value(f, v)?)]).py()?;
            Ok(py.None())
        }
        [a, v]
            if names_of(a).is_some()
                && (v.is_instance_of::<PyList>() || v.is_instance_of::<PyTuple>()) =>
        {
            let names = names_of(a).unwrap_or_default();
            let vals: Vec<Bound<'_, PyAny>> = v.try_iter()?.collect::<PyResult<_>>()?;
            if vals.len() != names.len() {
                return Err(kerr(
                    f,
                    format!("{} name(s) given with {} value(s)", names.len(), vals.len()),
                ));
            }
            let pairs = names
                .into_iter()
                .zip(vals.iter())
                .map(|(n, v)| Ok((n, to_value(f, v)?)))
                .collect::<PyResult<Vec<_>>>()?;
            st.opts.set(&pairs).py()?;
            Ok(py.None())
        }
        _ => {
            drop(g);
            set_data_pub(py, f, &m, train, &rest)
        }
    }
}

pub(crate) fn set_data_pub(
    py: Python<'_>,
    f: &str,
    m: &Shared<Model>,
    train: bool,
    rest: &[Bound<'_, PyAny>],
) -> PyResult<PyObject> {
    let (x, y) = match rest {
        [x] => (tensors_arg(f, x)?, None),
        [x, y] => (
            tensors_arg(f, x)?,
            if y.is_none() {
                None
            } else {
                Some(tensors_arg(f, y)?)
            },
        ),
        _ => {
            return Err(terr(
                f,
                format!(
                    "expecting (model, inputs[, targets]), given {} data argument(s)",
                    rest.len()
                ),
            ))
        }
    };
    let m = m.clone();
    let n = enter(py, f, move || -> ktorch_core::Result<i64> {
        lock(f, &m)?.stage(train).set_data(f, x, y)
    })
    .py()?;
    Ok(n.into_pyobject(py)?.into_any().unbind())
}

/// train(m, ...): get or set training options, or define training data (returns batches).
#[pyfunction]
#[pyo3(signature = (*args, **kw))]
pub fn train(
    py: Python<'_>,
    args: &Bound<'_, PyTuple>,
    kw: Option<&Bound<'_, PyDict>>,
) -> PyResult<PyObject> {
    stage_fn(py, true, args, kw)
}

/// test(m, ...): get or set test options, or define test data (returns batches).
#[pyfunction]
#[pyo3(signature = (*args, **kw))]
pub fn test(
    py: Python<'_>,
    args: &Bound<'_, PyTuple>,
    kw: Option<&Bound<'_, PyDict>>,
) -> PyResult<PyObject> {
    stage_fn(py, false, args, kw)
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

fn data_fn(
    py: Python<'_>,
    f: &str,
    train: bool,
    m: &Bound<'_, PyAny>,
    args: &Bound<'_, PyTuple>,
) -> PyResult<PyObject> {
    let s = model_of(f, m)?;
    if !args.is_empty() {
        let rest: Vec<_> = args.iter().collect();
        return set_data_pub(py, f, &s, train, &rest);
    }
    let mut g = plock(f, &s)?;
    let st = g.stage(train);
    Ok(
        PyList::new(py, [arrays(py, st.inputs())?, arrays(py, st.targets())?])?
            .into_any()
            .unbind(),
    )
}

/// data(m) -> [inputs, targets]; data(m, x, y) defines training data.
#[pyfunction]
#[pyo3(signature = (m, *args))]
pub fn data(py: Python<'_>, m: &Bound<'_, PyAny>, args: &Bound<'_, PyTuple>) -> PyResult<PyObject> {
    data_fn(py, "data", true, m, args)
}

/// testdata(m) -> [inputs, targets]; testdata(m, x, y) defines test data.
#[pyfunction]
#[pyo3(signature = (m, *args))]
pub fn testdata(
    py: Python<'_>,
    m: &Bound<'_, PyAny>,
    args: &Bound<'_, PyTuple>,
) -> PyResult<PyObject> {
    data_fn(py, "testdata", false, m, args)
}

fn input_fn(
    py: Python<'_>,
    f: &str,
    train: bool,
    m: &Bound<'_, PyAny>,
    args: &Bound<'_, PyTuple>,
) -> PyResult<PyObject> {
    let s = model_of(f, m)?;
    if !args.is_empty() {
        let mut x = Vec::new();
        for a in args.iter() {
            x.extend(tensors_arg(f, &a)?);
        }
        let n = plock(f, &s)?.stage(train).set_inputs(f, x).py()?;
        return Ok(n.into_pyobject(py)?.into_any().unbind());
    }
    let mut g = plock(f, &s)?;
    match g.stage(train).inputs() {
        None => Ok(py.None()),
        Some(mut v) if v.len() == 1 => Ok(wrap(py, v.remove(0))?.into_any()),
        Some(v) => Ok(wrap_vector(py, v)?.into_any()),
    }
}

fn target_fn(
    py: Python<'_>,
    f: &str,
    train: bool,
    m: &Bound<'_, PyAny>,
    args: &Bound<'_, PyTuple>,
) -> PyResult<PyObject> {
    let s = model_of(f, m)?;
    if !args.is_empty() {
        let mut y = Vec::new();
        for a in args.iter() {
            y.extend(tensors_arg(f, &a)?);
        }
        let n = plock(f, &s)?.stage(train).set_targets(f, Some(y)).py()?;
        return Ok(n.into_pyobject(py)?.into_any().unbind());
    }
    let mut g = plock(f, &s)?;
    arrays(py, g.stage(train).targets())
}

/// input(m) -> Tensor (Vector for several); input(m, x, ...) defines training inputs.
#[pyfunction]
#[pyo3(signature = (m, *args))]
pub fn input(
    py: Python<'_>,
    m: &Bound<'_, PyAny>,
    args: &Bound<'_, PyTuple>,
) -> PyResult<PyObject> {
    input_fn(py, "input", true, m, args)
}

/// testinput(m) -> Tensor (Vector for several); testinput(m, x, ...) defines test inputs.
#[pyfunction]
#[pyo3(signature = (m, *args))]
pub fn testinput(
    py: Python<'_>,
    m: &Bound<'_, PyAny>,
    args: &Bound<'_, PyTuple>,
) -> PyResult<PyObject> {
    input_fn(py, "testinput", false, m, args)
}

/// target(m) -> array(s) or None; target(m, y, ...) defines training targets.
#[pyfunction]
#[pyo3(signature = (m, *args))]
pub fn target(
    py: Python<'_>,
    m: &Bound<'_, PyAny>,
    args: &Bound<'_, PyTuple>,
) -> PyResult<PyObject> {
    target_fn(py, "target", true, m, args)
}

/// testtarget(m) -> array(s) or None; testtarget(m, y, ...) defines test targets.
#[pyfunction]
#[pyo3(signature = (m, *args))]
pub fn testtarget(
    py: Python<'_>,
    m: &Bound<'_, PyAny>,
    args: &Bound<'_, PyTuple>,
) -> PyResult<PyObject> {
    target_fn(py, "testtarget", false, m, args)
}

/// datasize(m): training rows (in the current batch when batching).
#[pyfunction]
pub fn datasize(m: &Bound<'_, PyAny>) -> PyResult<i64> {
    Ok(plock("datasize", &model_of("datasize", m)?)?.train.size())
}

/// testsize(m): test rows (in the current batch when batching).
#[pyfunction]
pub fn testsize(m: &Bound<'_, PyAny>) -> PyResult<i64> {
    Ok(plock("testsize", &model_of("testsize", m)?)?.test.size())
}

/// batch(m) -> bool; batch(x, size), batch(x, (size, dim)), batch(x, size, i) on tensors.
#[pyfunction]
#[pyo3(signature = (x, size=None, index=None))]
pub fn batch(
    x: &Bound<'_, PyAny>,
    size: Option<&Bound<'_, PyAny>>,
    index: Option<i64>,
) -> PyResult<Option<bool>> {
    let f = "batch";
    match obj(f, x)? {
        Some(Obj::Model(m)) => {
            if size.is_some() {
                return Err(terr(
                    f,
                    "batch(model) takes no size: set the batchsize option",
                ));
            }
            Ok(Some(plock(f, &m)?.train.batch(f).py()?))
        }
        Some(Obj::Tensors(s)) => {
            let size = size.ok_or_else(|| terr(f, "expecting a batch size"))?;
            let (w, dim) = match to_value(f, size)? {
                Value::Tuple(v) | Value::List(v) if v.len() == 2 => {
                    (v[0].as_int(f, "size").py()?, v[1].as_int(f, "dim").py()?)
                }
                v => (v.as_int(f, "size").py()?, 0),
            };
            let mut g = plock(f, &s)?;
            match index {
                None => Ok(Some(g.batch(f, w, dim).py()?)),
                Some(i) => {
                    g.batch_at(f, w, dim, i).py()?;
                    Ok(None)
                }
            }
        }
        _ => Err(terr(
            f,
            format!(
                "expecting a Model, Tensor, Vector or Dict, given {}",
                x.get_type().name()?
            ),
        )),
    }
}

/// testbatch(m) -> bool.
#[pyfunction]
pub fn testbatch(m: &Bound<'_, PyAny>) -> PyResult<bool> {
    plock("testbatch", &model_of("testbatch", m)?)?
        .test
        .batch("testbatch")
        .py()
}

/// restore(m or tensors) -> full size along the first (or batching) dimension.
#[pyfunction]
pub fn restore(x: &Bound<'_, PyAny>) -> PyResult<i64> {
    let f = "restore";
    match obj(f, x)? {
        Some(Obj::Model(m)) => Ok(plock(f, &m)?.train.restore()),
        Some(Obj::Tensors(s)) => Ok(plock(f, &s)?.restore()),
        _ => Err(terr(
            f,
            format!(
                "expecting a Model, Tensor, Vector or Dict, given {}",
                x.get_type().name()?
            ),
        )),
    }
}

/// testrestore(m) -> rows of test data.
#[pyfunction]
pub fn testrestore(m: &Bound<'_, PyAny>) -> PyResult<i64> {
    Ok(plock("testrestore", &model_of("testrestore", m)?)?
        .test
        .restore())
}

/// batchinit(m) -> number of training batches (-1 with no data).
#[pyfunction]
pub fn batchinit(m: &Bound<'_, PyAny>) -> PyResult<i64> {
    plock("batchinit", &model_of("batchinit", m)?)?
        .train
        .init("batchinit")
        .py()
}

/// testinit(m) -> number of test batches (-1 with no data).
#[pyfunction]
pub fn testinit(m: &Bound<'_, PyAny>) -> PyResult<i64> {
    plock("testinit", &model_of("testinit", m)?)?
        .test
        .init("testinit")
        .py()
}

/// shuffle(m) or shuffle(tensors[, dim]).
#[pyfunction]
#[pyo3(signature = (x, dim=0))]
pub fn shuffle(py: Python<'_>, x: &Bound<'_, PyAny>, dim: i64) -> PyResult<()> {
    let f = "shuffle";
    match obj(f, x)? {
        Some(Obj::Model(m)) => {
            if dim != 0 {
                return Err(kerr(f, "models shuffle along the first dimension only"));
            }
            enter(py, f, move || lock(f, &m)?.train.shuffle(f)).py()
        }
        Some(Obj::Tensors(s)) => enter(py, f, move || {
            lock(f, &s)?.shuffle(f, dim, None).map(|_| ())
        })
        .py(),
        _ => Err(terr(
            f,
            format!(
                "expecting a Model, Tensor, Vector or Dict, given {}",
                x.get_type().name()?
            ),
        )),
    }
}

/// unshuffle(m): restores the training data's original order.
#[pyfunction]
pub fn unshuffle(py: Python<'_>, m: &Bound<'_, PyAny>) -> PyResult<()> {
    let s = model_of("unshuffle", m)?;
    enter(py, "unshuffle", move || {
        lock("unshuffle", &s)?.train.unshuffle("unshuffle")
    })
    .py()
}
