//! Checkpoint files: save, load.

use std::path::PathBuf;

use ktorch_core::checkpoint;
use ktorch_core::sync::shared;
use pyo3::prelude::*;

use crate::errors::type_error;
use crate::gate::call;
use crate::handles::{obj, Obj, PyModel, PyModule};

fn path_of(f: &str, p: &Bound<'_, PyAny>) -> PyResult<PathBuf> {
    let os = p.py().import("os")?;
    let s = os.call_method1("fspath", (p,)).map_err(|_| {
        type_error(
            f,
            format!(
                "expecting a file path (str or os.PathLike), given {}",
                p.get_type()
                    .name()
                    .map_or_else(|_| "?".into(), |n| n.to_string())
            ),
        )
    })?;
    let s: String = s
        .extract()
        .map_err(|_| type_error(f, "expecting a text file path"))?;
    Ok(PathBuf::from(s))
}

/// save(h, path) -> None
///
/// Saves a module or a model to a checkpoint file: one safetensors file with every
/// tensor, and the rest as JSON metadata. A module: its parameters and buffers, spec,
/// training flags and frozen parameters. A model: its module so, its loss and
/// settings, its optimizer's settings and state (momenta, moments, step counts; not
/// for lbfgs and lamb), its training and test options, and where training stands: the
/// seeded shuffle generator, the row order in force and libtorch's CPU generator (load
/// puts that generator back), so the same data given again to the loaded model trains
/// on exactly as the saved one would. Not its data. The write is atomic: a temporary
/// file beside `path`, synced, then renamed over it, so an interrupted save leaves any
/// old file whole. Callback modules cannot be saved (their forward is a Python function).
#[pyfunction]
pub fn save(py: Python<'_>, h: &Bound<'_, PyAny>, path: &Bound<'_, PyAny>) -> PyResult<()> {
    let f = "save";
    let p = path_of(f, path)?;
    let q = match obj(f, h)? {
        Some(Obj::Module(m)) => m,
        Some(Obj::Model(m)) => {
            let ds = m.domains();
            return call(py, f, ds, move |g| {
                let m = g.lock(&m)?;
                Ok(checkpoint::save_model(&m, &p)?)
            });
        }
        _ => {
            return Err(type_error(
                f,
                format!(
                    "expecting a Module or Model, given {}",
                    h.get_type().name()?
                ),
            ))
        }
    };
    let ds = q.domains();
    call(py, f, ds, move |g| {
        let m = g.lock(&q)?;
        Ok(checkpoint::save_module(&m, &p)?)
    })
}

/// load(path) -> Module or Model
///
/// Loads what `save` wrote (a module, or a model without data): built again from its recorded spec (nothing in the
/// file is run), then every parameter and buffer copied in after checking that the
/// file has each one with the same shape. A truncated, damaged, foreign or newer file
/// raises KtorchError naming the problem.
#[pyfunction]
pub fn load(py: Python<'_>, path: &Bound<'_, PyAny>) -> PyResult<PyObject> {
    let f = "load";
    let p = path_of(f, path)?;
    let q = p.clone();
    let class = call(py, f, Vec::new(), move |_| Ok(checkpoint::class(&q)?))?;
    if class == "model" {
        let m = call(py, f, Vec::new(), move |_| Ok(checkpoint::load_model(&p)?))?;
        return Ok(Py::new(py, PyModel::new(shared(m)))?.into_any());
    }
    let m = call(py, f, Vec::new(), move |_| Ok(checkpoint::load_module(&p)?))?;
    Ok(Py::new(py, PyModule::new(shared(m)))?.into_any())
}
