//! A module's parameters, buffers and children as objects, copies and averages:
//! parms, buffers, buffernames, childnames, children, child, clone, copyparms, avgparms.

use ktorch_core::sync::{shared, Shared};
use ktorch_core::tensor::{Class, Tensors};
use ktorch_core::Module;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyInt, PyString};

use crate::errors::{type_error, IntoPy};
use crate::gate::{call, domains};
use crate::handles::{keep_copy, keep_of, obj, Dict, Obj, PyLoss, PyModule};
use crate::module::module_of;

/// A child's path: a name (`"encoder.layers.0"`) or a position among the direct children.
pub(crate) fn child_path(f: &str, c: Option<&Bound<'_, PyAny>>) -> PyResult<Option<String>> {
    match c {
        None => Ok(None),
        Some(c) if c.is_instance_of::<PyString>() => Ok(Some(c.extract()?)),
        Some(c) if c.is_instance_of::<PyInt>() && !c.is_instance_of::<PyBool>() => {
            let i: i64 = c.extract()?;
            if i < 0 {
                return Err(crate::errors::ktorch_error(
                    f,
                    format!("child index {i} invalid, must be non-negative"),
                ));
            }
            Ok(Some(i.to_string()))
        }
        Some(c) => Err(type_error(
            f,
            format!(
                "expecting a child name or index, given {}",
                c.get_type().name()?
            ),
        )),
    }
}

/// Runs `op` on the module of `m` (or its child at `child`), under the module's lock.
pub(crate) fn on_module<R: Send>(
    py: Python<'_>,
    f: &str,
    m: &Bound<'_, PyAny>,
    child: Option<&Bound<'_, PyAny>>,
    op: impl FnOnce(&Module) -> ktorch_core::Result<R> + Send,
) -> PyResult<(R, Shared<Module>)> {
    let s = module_of(py, f, m)?;
    let path = child_path(f, child)?;
    let ds = s.domains();
    let held = s.clone();
    let r = call(py, f, ds, move |g| {
        let q = g.lock(&s)?;
        let q = match &path {
            Some(p) => q.child(p)?,
            None => &q,
        };
        Ok(op(q)?)
    })?;
    Ok((r, held))
}

/// A Dict handle on tensors the module holds: using it takes the module's lock.
fn shared_dict(
    py: Python<'_>,
    f: &str,
    pairs: Vec<(String, tch::Tensor)>,
    owner: &Shared<Module>,
) -> PyResult<PyObject> {
    let d = Tensors::dict(pairs).py_for(f)?;
    Ok(Py::new(py, Dict::new(Shared::with_domains(d, owner.domains())))?.into_any())
}

/// parms(m) -> Dict
/// parms(m, child) -> Dict
///
/// The parameters of a module (or model's module), or of its child named `child` (a
/// dotted path, or a position among the direct children), as a Dict sharing them:
/// writing to a member changes the module, `freeze` shows in `gradflag`.
#[pyfunction]
#[pyo3(signature = (m, child=None))]
pub fn parms(
    py: Python<'_>,
    m: &Bound<'_, PyAny>,
    child: Option<&Bound<'_, PyAny>>,
) -> PyResult<PyObject> {
    let f = "parms";
    let (ps, owner) = on_module(py, f, m, child, |q| Ok(q.named_parameters()))?;
    shared_dict(py, f, ps, &owner)
}

/// buffers(m) -> Dict
/// buffers(m, child) -> Dict
///
/// The buffers of a module (batchnorm's running_mean, running_var, num_batches_tracked),
/// or of its child, as a Dict sharing them.
#[pyfunction]
#[pyo3(signature = (m, child=None))]
pub fn buffers(
    py: Python<'_>,
    m: &Bound<'_, PyAny>,
    child: Option<&Bound<'_, PyAny>>,
) -> PyResult<PyObject> {
    let f = "buffers";
    let (bs, owner) = on_module(py, f, m, child, |q| Ok(q.named_buffers()))?;
    shared_dict(py, f, bs, &owner)
}

/// buffernames(m) -> list of str
/// buffernames(m, child) -> list of str
///
/// The buffer names of a module, or of its child and below.
#[pyfunction]
#[pyo3(signature = (m, child=None))]
pub fn buffernames(
    py: Python<'_>,
    m: &Bound<'_, PyAny>,
    child: Option<&Bound<'_, PyAny>>,
) -> PyResult<Vec<String>> {
    let f = "buffernames";
    let (names, _) = on_module(py, f, m, child, |q| {
        Ok(q.named_buffers().into_iter().map(|(k, _)| k).collect())
    })?;
    Ok(names)
}

/// childnames(m) -> list of str
/// childnames(m, child) -> list of str
///
/// The names of a module's direct children, or of its child's direct children.
#[pyfunction]
#[pyo3(signature = (m, child=None))]
pub fn childnames(
    py: Python<'_>,
    m: &Bound<'_, PyAny>,
    child: Option<&Bound<'_, PyAny>>,
) -> PyResult<Vec<String>> {
    let f = "childnames";
    let (names, _) = on_module(py, f, m, child, |q| {
        Ok(q.children().iter().map(|(k, _)| k.clone()).collect())
    })?;
    Ok(names)
}

/// children(m) -> dict of str to Module
/// children(m, child) -> dict of str to Module
///
/// The direct children of a module (or of its child) by name, each a Module sharing
/// the parent's parameters and buffers (and its lock).
#[pyfunction]
#[pyo3(signature = (m, child=None))]
pub fn children(
    py: Python<'_>,
    m: &Bound<'_, PyAny>,
    child: Option<&Bound<'_, PyAny>>,
) -> PyResult<PyObject> {
    let f = "children";
    let (kids, owner) = on_module(py, f, m, child, |q| Ok(q.children().to_vec()))?;
    let keep = keep_of(m);
    let d = PyDict::new(py);
    for (k, c) in kids {
        let h = PyModule::with_keep(
            Shared::with_domains(c, owner.domains()),
            keep_copy(py, &keep),
        );
        d.set_item(k, Py::new(py, h)?)?;
    }
    Ok(d.into_any().unbind())
}

/// child(m, child) -> Module
///
/// One child of a module by dotted path (`"encoder.layers.0"`) or position, as a Module
/// sharing the parent's parameters and buffers (and its lock).
#[pyfunction]
pub fn child(
    py: Python<'_>,
    m: &Bound<'_, PyAny>,
    child: &Bound<'_, PyAny>,
) -> PyResult<Py<PyModule>> {
    let f = "child";
    let (c, owner) = on_module(py, f, m, Some(child), |q| Ok(q.clone()))?;
    let keep = keep_of(m);
    Py::new(
        py,
        PyModule::with_keep(
            Shared::with_domains(c, owner.domains()),
            keep_copy(py, &keep),
        ),
    )
}

/// clone(h) -> handle
///
/// A deep copy: a Module with its settings, training flag and every parameter and
/// buffer copied to new memory; a Loss with its weights copied; a Tensor, Vector or
/// Dict with each member copied (gradient flags kept). Nothing is shared with `h`.
#[pyfunction]
pub fn clone(py: Python<'_>, h: &Bound<'_, PyAny>) -> PyResult<PyObject> {
    let f = "clone";
    let Some(o) = obj(f, h)? else {
        return Err(type_error(
            f,
            format!(
                "expecting a Tensor, Vector, Dict, Module or Loss, given {}",
                h.get_type().name()?
            ),
        ));
    };
    let ds = o.domains();
    match o {
        Obj::Module(s) => {
            let keep = keep_of(h);
            let m = call(py, f, ds, move |g| Ok(g.lock(&s)?.deep_clone()?))?;
            Ok(Py::new(py, PyModule::with_keep(shared(m), keep_copy(py, &keep)))?.into_any())
        }
        Obj::Loss(s) => {
            let l = call(py, f, ds, move |g| Ok(g.lock(&s)?.deep_clone()?))?;
            Ok(Py::new(py, PyLoss::new(shared(l)))?.into_any())
        }
        Obj::Tensors(s) => {
            let made = call(py, f, ds, move |g| Ok(g.lock(&s)?.deep_clone()?))?;
            crate::convert::wrap_tensors(py, made)
        }
        Obj::Opt(_) | Obj::Model(_) => Err(crate::errors::ktorch_error(
            f,
            "optimizers and models are not cloned: clone the module, then build a new optimizer and model on the copy",
        )),
    }
}

/// copyparms(m) -> Dict
/// copyparms(m, d) -> dict of str to bool
///
/// With a module (or model): a Dict of copies of its parameters (new memory, no
/// gradients), to average into or to restore later. With a Dict (or a dict of arrays)
/// as well: copies its members into the parameters of the same names, each of the
/// parameter's size or one that broadcasts to it (a scalar resets a whole array), and
/// returns each parameter's name and whether it was copied; other names are ignored.
/// Sizes are checked before any parameter changes.
#[pyfunction]
#[pyo3(signature = (m, d=None))]
pub fn copyparms(
    py: Python<'_>,
    m: &Bound<'_, PyAny>,
    d: Option<&Bound<'_, PyAny>>,
) -> PyResult<PyObject> {
    let f = "copyparms";
    let s = module_of(py, f, m)?;
    let Some(d) = d else {
        let ds = s.domains();
        let ps = call(py, f, ds, move |g| Ok(g.lock(&s)?.copy_of_params()?))?;
        let t = Tensors::dict(ps).py_for(f)?;
        return Ok(Py::new(py, Dict::new(shared(t)))?.into_any());
    };
    let (names, srcs, dds) = if let Some(Obj::Tensors(t)) = obj(f, d)? {
        let ds = t.domains();
        let tt = t.clone();
        let (class, names) = call(py, f, ds.clone(), move |g| {
            let x = g.lock(&tt)?;
            Ok((x.class(), x.names().to_vec()))
        })?;
        if class != Class::Dict {
            return Err(type_error(f, "expecting a Dict of parameter values"));
        }
        (names, Err(t), ds)
    } else if let Ok(pd) = d.downcast::<PyDict>() {
        let (names, vs) = crate::convert::named_srcs(f, pd)?;
        let ds: Vec<_> = vs.iter().flat_map(|v| v.domains()).collect();
        (names, Ok(vs), ds)
    } else {
        return Err(type_error(
            f,
            format!(
                "expecting a Dict or a dict of parameter values, given {}",
                d.get_type().name()?
            ),
        ));
    };
    let ds = domains([s.domains(), dds]);
    let flags = call(py, f, ds, move |g| {
        let values: Vec<tch::Tensor> = match &srcs {
            Err(t) => g
                .lock(t)?
                .full()
                .iter()
                .map(tch::Tensor::shallow_clone)
                .collect(),
            Ok(vs) => vs.iter().map(|v| v.tensor(g)).collect::<Result<_, _>>()?,
        };
        let pairs: Vec<(String, tch::Tensor)> = names.into_iter().zip(values).collect();
        Ok(g.lock(&s)?.copy_params(&pairs)?)
    })?;
    let out = PyDict::new(py);
    for (k, b) in flags {
        out.set_item(k, b)?;
    }
    Ok(out.into_any().unbind())
}

/// avgparms(m, d) -> int
///
/// Weight averaging: adds the module's (or model's) current parameters to the running
/// average kept in Dict `d` (made by `copyparms(m)`), in place, and counts them in its
/// member `.n` (added on the first call; the copy counts as the first value). Returns
/// the count.
#[pyfunction]
pub fn avgparms(py: Python<'_>, m: &Bound<'_, PyAny>, d: &Bound<'_, PyAny>) -> PyResult<i64> {
    let f = "avgparms";
    let s = module_of(py, f, m)?;
    let Some(Obj::Tensors(t)) = obj(f, d)? else {
        return Err(type_error(
            f,
            format!(
                "expecting a Dict of averages, given {}",
                d.get_type().name()?
            ),
        ));
    };
    let ds = domains([s.domains(), t.domains()]);
    call(py, f, ds, move |g| {
        let q = g.lock(&s)?;
        let mut avg = g.lock(&t)?;
        Ok(q.average_params(&mut avg)?)
    })
}
