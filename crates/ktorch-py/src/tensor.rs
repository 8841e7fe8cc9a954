//! Tensors, vectors and dictionaries: creation, values, gradients, tensor functions.

use ktorch_core::sync::Shared;
use ktorch_core::tensor::{create, Class, TensorOptions, Tensors};
use ktorch_core::Value;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString, PyTuple};
use tch::Kind;

use crate::convert::{
    is_data, owned_tensor, src, tensors_to_py, to_numpy, to_torch, to_value, wrap, wrap_shared,
    Src, Srcs,
};
use crate::errors::{type_error, IntoPy};
use crate::gate::{call, domains};
use crate::handles::{obj, Dict, Obj, Tensor, Vector};

fn strings(func: &str, xs: &[Bound<'_, PyAny>]) -> PyResult<Vec<String>> {
    xs.iter()
        .map(|x| {
            x.downcast::<PyString>()
                .map(|s| s.to_string())
                .map_err(|_| {
                    type_error(
                        func,
                        format!(
                            "expecting option names as strings, given {}",
                            x.get_type()
                                .name()
                                .map(|n| n.to_string())
                                .unwrap_or_default()
                        ),
                    )
                })
        })
        .collect()
}

/// tensor(data, *options) -> Tensor
/// tensor(mode, *args, *options) -> Tensor
/// tensor(t) -> numpy array
/// tensor(v) -> list of arrays
/// tensor(d) -> dict of arrays
/// tensor(h, "torch") -> torch.Tensor (a list or dict of them for a Vector or Dict)
///
/// Makes a tensor from data, or by a creation mode, or reads a handle's values.
///
/// - data: a numpy array, a nested list, a scalar or a `torch.Tensor` (shared, not
///   copied; arrays and lists are copied once). Python floats make double tensors.
/// - options (strings, any order): `"grad"` (requires gradient), a dtype (`"float"`,
///   `"double"`, `"half"`, `"bfloat"`, `"long"`, `"int"`, `"short"`, `"byte"`, `"char"`,
///   `"bool"`), a device (`"cpu"`, `"cuda"`, `"cuda:1"`).
/// - modes: `randn`, `rand`, `zeros`, `ones`, `empty` (size), `full` (size, value),
///   `randint` (high, size or low, high, size; gives long), `eye`, `arange`, `linspace`,
///   `logspace`, `randperm`; e.g. `tensor("randn", [3, 64])`, `tensor("randint", 10, 60000)`.
/// - With a Tensor, Vector or Dict handle: a copy of its values as numpy array(s), or
///   as torch.Tensor(s) with `"torch"`.
///
/// Raises TypeError for data of a kind libtorch cannot hold, KtorchError for a bad
/// mode, option or size.
#[pyfunction]
#[pyo3(signature = (*args))]
pub fn tensor(py: Python<'_>, args: &Bound<'_, PyTuple>) -> PyResult<PyObject> {
    let f = "tensor";
    if args.is_empty() {
        return Ok(wrap(
            py,
            tch::Tensor::f_zeros([0], (Kind::Float, tch::Device::Cpu)).py()?,
        )?
        .into_any());
    }
    let first = args.get_item(0)?;
    if first.is_instance_of::<Tensor>()
        || first.is_instance_of::<Vector>()
        || first.is_instance_of::<Dict>()
    {
        let torch = match args.len() {
            1 => false,
            2 if args.get_item(1)?.eq("torch")? => true,
            _ => {
                return Err(type_error(
                    f,
                    "expecting a Tensor, Vector or Dict to return values, then \"torch\" \
                     for torch.Tensor values",
                ))
            }
        };
        let Some(Obj::Tensors(s)) = obj(f, &first)? else {
            unreachable!()
        };
        return values(py, f, &s, torch);
    }
    let rest: Vec<Bound<'_, PyAny>> = args.iter().skip(1).collect();
    if let Ok(mode) = first.downcast::<PyString>() {
        let mode = mode.to_str()?;
        let split = rest
            .iter()
            .position(|x| x.is_instance_of::<PyString>())
            .unwrap_or(rest.len());
        let vals: Vec<Value> = rest[..split]
            .iter()
            .map(|x| to_value(f, x))
            .collect::<PyResult<_>>()?;
        let o = TensorOptions::parse(&strings(f, &rest[split..])?).py_for(f)?;
        let t = call(py, f, vec![], move |_| Ok(create(mode, &vals, &o)?))?;
        return Ok(wrap(py, t)?.into_any());
    }
    if !is_data(&first)? {
        return Err(type_error(
            f,
            format!(
                "expecting array data, a creation mode or a handle, given {}",
                first.get_type().name()?
            ),
        ));
    }
    let o = TensorOptions::parse(&strings(f, &rest)?).py_for(f)?;
    // a torch.Tensor is shared, as everywhere: the handle has its own view of
    // the same memory (own sizes and autograd state); numpy and lists are copied
    let t = owned_tensor(f, &first)?.f_detach().py()?;
    let t = o.apply(t).py_for(f)?;
    Ok(wrap(py, t)?.into_any())
}

/// The values of a tensor, vector or dictionary handle: copies taken under
/// its lock, handed to Python as arrays (or torch.Tensor, `torch`).
pub(crate) fn values(
    py: Python<'_>,
    f: &str,
    s: &Shared<Tensors>,
    torch: bool,
) -> PyResult<PyObject> {
    let s = s.clone();
    let ds = s.domains();
    let copy = call(py, f, ds, move |g| {
        let t = g.lock(&s)?;
        let items = t
            .items()
            .iter()
            // detach_copy keeps requires_grad (with a grad_fn that cannot run): detach it
            .map(|t| t.f_detach_copy().and_then(|c| c.f_detach()))
            .collect::<Result<Vec<_>, _>>()?;
        let names = t.names().to_vec();
        Ok(match t.class() {
            Class::Tensor => Tensors::tensor(items.into_iter().next().unwrap_or_default()),
            Class::Vector => Tensors::vector(items),
            Class::Dict => Tensors::dict(names.into_iter().zip(items).collect())?,
        })
    })?;
    if torch {
        return torch_values(py, &copy);
    }
    tensors_to_py(py, &copy)
}

/// Copies already taken, as torch.Tensor (sharing the copies' memory): a
/// tensor, a list or a dict of them.
fn torch_values(py: Python<'_>, t: &Tensors) -> PyResult<PyObject> {
    let one = |x: &tch::Tensor| to_torch(py, x).map(Bound::unbind);
    Ok(match t.class() {
        Class::Tensor => one(t.get())?,
        Class::Vector => PyList::new(py, t.items().iter().map(one).collect::<PyResult<Vec<_>>>()?)?
            .into_any()
            .unbind(),
        Class::Dict => {
            let d = PyDict::new(py);
            for (k, x) in t.names().iter().zip(t.items()) {
                d.set_item(k, one(x)?)?;
            }
            d.into_any().unbind()
        }
    })
}

/// `numpy.asarray(h)` for a Tensor handle: a copy of its values (numpy's
/// `copy=False`, which asks for no copy, is refused); other handles raise.
pub(crate) fn array_of(
    x: &Bound<'_, PyAny>,
    dtype: Option<&Bound<'_, PyAny>>,
    copy: Option<bool>,
) -> PyResult<PyObject> {
    let f = "__array__";
    let py = x.py();
    if !x.is_instance_of::<Tensor>() {
        return Err(type_error(
            f,
            format!(
                "a {} has no array form: use a Tensor, or kt.tensor(h) for values",
                x.get_type().name()?
            ),
        ));
    }
    if copy == Some(false) {
        return Err(pyo3::exceptions::PyValueError::new_err(
            "__array__: a Tensor's values are always copied (taken under its lock)",
        ));
    }
    let Some(Obj::Tensors(s)) = obj(f, x)? else {
        unreachable!()
    };
    let a = values(py, f, &s, false)?;
    Ok(py
        .import("numpy")?
        .call_method1("asarray", (a, dtype))?
        .unbind())
}

/// A torch.Tensor copy of a Tensor handle's values, for `__dlpack__`.
pub(crate) fn torch_copy<'py>(x: &Bound<'py, PyAny>, f: &str) -> PyResult<Bound<'py, PyAny>> {
    if !x.is_instance_of::<Tensor>() {
        return Err(type_error(
            f,
            format!(
                "a {} has no tensor form: use a Tensor",
                x.get_type().name()?
            ),
        ));
    }
    let Some(Obj::Tensors(s)) = obj(f, x)? else {
        unreachable!()
    };
    Ok(values(x.py(), f, &s, true)?.into_bound(x.py()))
}

/// vector(x, y, ...) -> Vector
/// vector(v) -> list of arrays
///
/// Makes a Vector (a list of tensors) from arrays, lists or Tensor handles (a Tensor
/// handle is shared, not copied); given a Vector, returns its members as numpy arrays.
#[pyfunction]
#[pyo3(signature = (*args))]
pub fn vector(py: Python<'_>, args: &Bound<'_, PyTuple>) -> PyResult<PyObject> {
    let f = "vector";
    if args.len() == 1 {
        let a = args.get_item(0)?;
        if a.is_instance_of::<Vector>() {
            let Some(Obj::Tensors(s)) = obj(f, &a)? else {
                unreachable!()
            };
            return values(py, f, &s, false);
        }
        if let Ok(l) = a.downcast::<PyList>() {
            if l.iter().all(|x| x.is_instance_of::<Tensor>()) && !l.is_empty() {
                let srcs = l.iter().map(|x| src(f, &x)).collect::<PyResult<Vec<_>>>()?;
                return Ok(Py::new(
                    py,
                    Vector::new(gather(py, f, srcs, |ts| Ok(Tensors::vector(ts)))?),
                )?
                .into_any());
            }
        }
    }
    let srcs = args
        .iter()
        .map(|x| src(f, &x))
        .collect::<PyResult<Vec<_>>>()?;
    Ok(Py::new(
        py,
        Vector::new(gather(py, f, srcs, |ts| Ok(Tensors::vector(ts)))?),
    )?
    .into_any())
}

/// A new vector or dictionary of the tensors of `srcs`: handles' tensors are
/// shared (read under their locks), and the new object is locked with them.
fn gather(
    py: Python<'_>,
    f: &str,
    srcs: Vec<Src>,
    make: impl FnOnce(Vec<tch::Tensor>) -> ktorch_core::Result<Tensors> + Send,
) -> PyResult<Shared<Tensors>> {
    let srcs = Srcs(srcs);
    let ds = srcs.domains();
    let own = ds.clone();
    let t = call(py, f, ds, move |g| Ok(make(srcs.tensors(g)?)?))?;
    Ok(Shared::with_domains(t, domains([own])))
}

/// dict({"a": x, "b": y, ...}) -> Dict
/// dict(d) -> dict of arrays
///
/// Makes a Dict (tensors by name) from a Python dict of arrays or Tensor handles; given
/// a Dict, returns its members as a Python dict of numpy arrays.
#[pyfunction]
#[pyo3(signature = (*args))]
pub fn dict(py: Python<'_>, args: &Bound<'_, PyTuple>) -> PyResult<PyObject> {
    let f = "dict";
    if args.len() != 1 {
        return Err(type_error(
            f,
            format!(
                "expecting one argument, a dict or a Dict, given {}",
                args.len()
            ),
        ));
    }
    let a = args.get_item(0)?;
    if a.is_instance_of::<Dict>() {
        let Some(Obj::Tensors(s)) = obj(f, &a)? else {
            unreachable!()
        };
        return values(py, f, &s, false);
    }
    let d = a.downcast::<PyDict>().map_err(|_| {
        type_error(
            f,
            format!(
                "expecting a dict of names to data, given {}",
                a.get_type()
                    .name()
                    .map(|n| n.to_string())
                    .unwrap_or_default()
            ),
        )
    })?;
    let mut keys = Vec::with_capacity(d.len());
    let mut srcs = Vec::with_capacity(d.len());
    for (k, v) in d.iter() {
        let k: String = k
            .extract()
            .map_err(|_| type_error(f, "dictionary keys must be strings"))?;
        keys.push(k);
        srcs.push(src(f, &v)?);
    }
    let t = gather(py, f, srcs, move |ts| {
        Tensors::dict(keys.into_iter().zip(ts).collect())
    })?;
    Ok(Py::new(py, Dict::new(t))?.into_any())
}

/// grad(t) -> numpy array or None
/// grad(v) -> list of arrays
/// grad(d) -> dict of arrays
///
/// The gradient of a tensor (of each member of a Vector or Dict), None where it is
/// undefined (no backward pass yet, or after `nograd`).
#[pyfunction]
pub fn grad(py: Python<'_>, x: &Bound<'_, PyAny>) -> PyResult<PyObject> {
    let f = "grad";
    let Some(Obj::Tensors(s)) = obj(f, x)? else {
        return Err(type_error(
            f,
            format!(
                "expecting a Tensor, Vector or Dict, given {}",
                x.get_type().name()?
            ),
        ));
    };
    let ds = s.domains();
    // the gradients are copied under the owner's lock: a run in another thread
    // frees and recreates them every batch
    let (class, names, grads) = call(py, f, ds, move |g| {
        let t = g.lock(&s)?;
        let grads = t
            .full()
            .iter()
            .map(|x| {
                let gr = x.f_grad()?;
                Ok(if gr.defined() {
                    Some(gr.f_detach_copy()?)
                } else {
                    None
                })
            })
            .collect::<Result<Vec<_>, tch::TchError>>()?;
        Ok((t.class(), t.names().to_vec(), grads))
    })?;
    let one = |gr: &Option<tch::Tensor>| -> PyResult<PyObject> {
        match gr {
            Some(t) => to_numpy(py, t),
            None => Ok(py.None()),
        }
    };
    match class {
        Class::Tensor => one(&grads[0]),
        Class::Vector => Ok(
            PyList::new(py, grads.iter().map(one).collect::<PyResult<Vec<_>>>()?)?
                .into_any()
                .unbind(),
        ),
        Class::Dict => {
            let d = PyDict::new(py);
            for (k, t) in names.iter().zip(&grads) {
                d.set_item(k, one(t)?)?;
            }
            Ok(d.into_any().unbind())
        }
    }
}

fn binary(
    py: Python<'_>,
    func: &str,
    a: &Bound<'_, PyAny>,
    b: &Bound<'_, PyAny>,
    op: fn(&tch::Tensor, &tch::Tensor) -> Result<tch::Tensor, tch::TchError>,
) -> PyResult<Py<Tensor>> {
    let x = src(func, a)?;
    let y = src(func, b)?;
    let ds = domains([x.domains(), y.domains()]);
    let held = ds.clone();
    let r = call(py, func, ds, move |g| Ok(op(&x.tensor(g)?, &y.tensor(g)?)?))?;
    // the result's graph reaches its inputs' leaves: it is locked with them
    wrap_shared(py, r, held)
}

/// mul(x, y) -> Tensor
///
/// Elementwise product of two tensors, arrays or scalars (broadcasting), with gradient.
#[pyfunction]
pub fn mul(py: Python<'_>, x: &Bound<'_, PyAny>, y: &Bound<'_, PyAny>) -> PyResult<Py<Tensor>> {
    binary(py, "mul", x, y, tch::Tensor::f_mul)
}

/// add(x, y) -> Tensor
///
/// Elementwise sum of two tensors, arrays or scalars (broadcasting), with gradient.
#[pyfunction]
pub fn add(py: Python<'_>, x: &Bound<'_, PyAny>, y: &Bound<'_, PyAny>) -> PyResult<Py<Tensor>> {
    binary(py, "add", x, y, tch::Tensor::f_add)
}

fn reduce(
    py: Python<'_>,
    func: &str,
    x: &Bound<'_, PyAny>,
    op: impl FnOnce(&tch::Tensor) -> ktorch_core::Result<tch::Tensor> + Send,
) -> PyResult<Py<Tensor>> {
    let x = src(func, x)?;
    let ds = x.domains();
    let held = ds.clone();
    let r = call(py, func, ds, move |g| Ok(op(&x.tensor(g)?)?))?;
    wrap_shared(py, r, held)
}

/// mean(x) -> Tensor
/// mean(x, dim) -> Tensor
///
/// Mean of all elements, or along dimension `dim`.
#[pyfunction]
#[pyo3(signature = (x, dim=None))]
pub fn mean(py: Python<'_>, x: &Bound<'_, PyAny>, dim: Option<i64>) -> PyResult<Py<Tensor>> {
    reduce(py, "mean", x, move |t| ktorch_core::tensor::mean(t, dim))
}

/// std(x) -> Tensor
/// std(x, dim) -> Tensor
///
/// Unbiased standard deviation of all elements, or along dimension `dim`.
#[pyfunction]
#[pyo3(signature = (x, dim=None))]
pub fn std(py: Python<'_>, x: &Bound<'_, PyAny>, dim: Option<i64>) -> PyResult<Py<Tensor>> {
    reduce(py, "std", x, move |t| ktorch_core::tensor::std(t, dim))
}
