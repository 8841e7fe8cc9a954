//! Modules: module(spec), parmnames, parm.

use ktorch_core::model::shared;
use ktorch_core::Module;
use pyo3::prelude::*;
use pyo3::types::PyString;

use crate::convert::{to_tch, to_value, wrap};
use crate::errors::{enter, plock, terr, IntoPy};
use crate::handles::{obj, Obj, PyModule};

/// module(spec) -> Module; module(model) -> the model's Module.
#[pyfunction]
pub fn module(py: Python<'_>, spec: &Bound<'_, PyAny>) -> PyResult<Py<PyModule>> {
    let f = "module";
    if let Some(o) = obj(f, spec)? {
        return match o {
            Obj::Model(m) => Py::new(py, PyModule::new(plock(f, &m)?.module().clone())),
            Obj::Module(m) => Py::new(py, PyModule::new(m)),
            _ => Err(terr(f, "expecting a module spec or a Model")),
        };
    }
    let v = to_value(f, spec)?;
    let m = enter(py, f, move || Module::from_value(&v)).py()?;
    Py::new(py, PyModule::new(shared(m)))
}

fn module_of(func: &str, x: &Bound<'_, PyAny>) -> PyResult<ktorch_core::Shared<Module>> {
    match obj(func, x)? {
        Some(Obj::Module(m)) => Ok(m),
        Some(Obj::Model(m)) => Ok(plock(func, &m)?.module().clone()),
        _ => Err(terr(
            func,
            format!(
                "expecting a Module or Model, given {}",
                x.get_type().name()?
            ),
        )),
    }
}

/// parmnames(m): parameter names of a module or model.
#[pyfunction]
pub fn parmnames(m: &Bound<'_, PyAny>) -> PyResult<Vec<String>> {
    let f = "parmnames";
    let s = module_of(f, m)?;
    let g = plock(f, &s)?;
    Ok(g.parmnames())
}

/// parm(m, name) -> Tensor sharing the parameter; parm(m, name, value) copies value in.
#[pyfunction]
#[pyo3(signature = (m, name, value=None))]
pub fn parm(
    py: Python<'_>,
    m: &Bound<'_, PyAny>,
    name: &Bound<'_, PyAny>,
    value: Option<&Bound<'_, PyAny>>,
) -> PyResult<PyObject> {
    let f = "parm";
    let s = module_of(f, m)?;
    let name = name
        .downcast::<PyString>()
        .map_err(|_| terr(f, "expecting a parameter name"))?
        .to_str()?
        .to_string();
    match value {
        None => {
            let t = plock(f, &s)?.param(f, &name).py()?;
            Ok(wrap(py, t)?.into_any())
        }
        Some(v) => {
            let t = to_tch(f, v)?;
            let g = plock(f, &s)?;
            g.set_param(f, &name, &t).py()?;
            Ok(py.None())
        }
    }
}
