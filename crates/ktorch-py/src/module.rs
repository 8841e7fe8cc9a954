//! Modules: module(spec), parmnames, parm.

use ktorch_core::sync::{shared, Shared};
use ktorch_core::Module;
use pyo3::prelude::*;
use pyo3::types::PyString;

use crate::convert::{callables, src, to_value, wrap_shared};
use crate::errors::{type_error, IntoPy};
use crate::gate::{call, domains};
use crate::handles::{obj, Keep, Obj, PyModel, PyModule};

/// module(spec) -> Module
/// module(model) -> Module
/// module(state) -> Module
///
/// Builds a module from a spec, or returns the module of a model, or builds the module
/// a `state(q)` describes (a dict, or a list of row dicts for a container) with its
/// parameter and buffer values, training flags and frozen parameters.
///
/// - `"relu"`: a type name alone (`help("module")` lists them).
/// - `("linear", 784, 10)`: a type, then its options by position.
/// - `("linear", "a", 64, 20)`: a name after the type; its parameters become
///   `a.weight`, `a.bias` (unnamed children are named by index: `0.weight`).
/// - `("linear", 2, 100, {"bias": False})`: options by name in a dict, last.
/// - `seq("sequential", child, ...)`: a container and its children (nested freely).
/// - `("callback", "cb", fn, {"parms": {...}})`: a module whose forward is the Python
///   callable `fn(module, *inputs)`.
///
/// Raises KtorchError naming the type and option at fault; an unknown type names the
/// closest valid ones.
#[pyfunction]
pub fn module(py: Python<'_>, spec: &Bound<'_, PyAny>) -> PyResult<Py<PyModule>> {
    let f = "module";
    if let Some(o) = obj(f, spec)? {
        return match o {
            Obj::Model(m) => {
                let keep = spec.downcast::<PyModel>()?.get().keep(py);
                let ds = m.domains();
                let q = call(py, f, ds, move |g| Ok(g.lock(&m)?.module().clone()))?;
                Py::new(py, PyModule::with_keep(q, keep))
            }
            Obj::Module(m) => {
                let keep = spec.downcast::<PyModule>()?.get().keep(py);
                Py::new(py, PyModule::with_keep(m, keep))
            }
            _ => Err(type_error(f, "expecting a module spec or a Model")),
        };
    }
    if crate::objstate::is_module_state(spec) {
        let m = crate::objstate::module_from(py, f, spec)?;
        return Py::new(py, PyModule::new(shared(m)));
    }
    let v = to_value(f, spec)?;
    let mut keep: Keep = Vec::new();
    callables(py, &v, &mut keep);
    let m = py.allow_threads(move || Module::from_value(&v)).py()?;
    Py::new(py, PyModule::with_keep(shared(m), keep))
}

/// The module of a Module or Model handle.
pub(crate) fn module_of(
    py: Python<'_>,
    func: &str,
    x: &Bound<'_, PyAny>,
) -> PyResult<Shared<Module>> {
    match obj(func, x)? {
        Some(Obj::Module(m)) => Ok(m),
        Some(Obj::Model(m)) => {
            let ds = m.domains();
            call(py, func, ds, move |g| Ok(g.lock(&m)?.module().clone()))
        }
        _ => Err(type_error(
            func,
            format!(
                "expecting a Module or Model, given {}",
                x.get_type().name()?
            ),
        )),
    }
}

/// parmnames(m) -> list of str
///
/// Parameter names of a module, optimizer's module or model, as PyTorch names them
/// (`0.weight`, `0.bias`, `a.weight`, ...).
#[pyfunction]
pub fn parmnames(py: Python<'_>, m: &Bound<'_, PyAny>) -> PyResult<Vec<String>> {
    let f = "parmnames";
    let s = module_of(py, f, m)?;
    let ds = s.domains();
    call(py, f, ds, move |g| Ok(g.lock(&s)?.parmnames()))
}

/// parm(m, name) -> Tensor
/// parm(m, name, value) -> None
///
/// The named parameter as a Tensor sharing its storage (writing to it changes the
/// module); with `value` (array, list or Tensor of the same shape), copies it in.
#[pyfunction]
#[pyo3(signature = (m, name, value=None))]
pub fn parm(
    py: Python<'_>,
    m: &Bound<'_, PyAny>,
    name: &Bound<'_, PyAny>,
    value: Option<&Bound<'_, PyAny>>,
) -> PyResult<PyObject> {
    let f = "parm";
    let s = module_of(py, f, m)?;
    let name = name
        .downcast::<PyString>()
        .map_err(|_| type_error(f, "expecting a parameter name"))?
        .to_str()?
        .to_string();
    match value {
        None => {
            let ds = s.domains();
            let held = ds.clone();
            let t = call(py, f, ds, move |g| Ok(g.lock(&s)?.param(&name)?))?;
            // the handle shares the parameter: using it takes the module's lock
            Ok(wrap_shared(py, t, held)?.into_any())
        }
        Some(v) => {
            let v = src(f, v)?;
            let ds = domains([s.domains(), v.domains()]);
            call(py, f, ds, move |g| {
                let t = v.tensor(g)?;
                Ok(g.lock(&s)?.set_param(&name, &t)?)
            })?;
            Ok(py.None())
        }
    }
}
