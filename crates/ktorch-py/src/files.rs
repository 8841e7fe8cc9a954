//! Checkpoint files: save, load.

use std::path::PathBuf;

use ktorch_core::checkpoint;
use ktorch_core::sync::{shared, Shared};
use pyo3::prelude::*;

use crate::errors::{ktorch_error, type_error};
use crate::gate::call;
use crate::handles::{obj, Obj, PyLoss, PyModel, PyModule, PyOptimizer};

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
/// save(m, path, data=True) -> None
///
/// Saves a module, loss, optimizer or model to a checkpoint file: one safetensors file
/// with every tensor (a module's parameters and buffers as `parm/name`, `buffer/name`),
/// and the rest (`state(h)`) as JSON metadata. A module: its parameters and buffers,
/// options, training flags and frozen parameters. A loss: its settings. An optimizer:
/// settings, groups and each parameter's state (momenta, moments, step counts, lbfgs's
/// history), not the parameters (`load(path, q)` takes them from a module). A model: its
/// module, loss and optimizer so, its training and test options, and where training
/// stands: passes completed, the seeded shuffle generator, the row order in force, a run
/// stopped by Ctrl-C between batches, and libtorch's CPU generator (load puts it back),
/// so the same data given again to the loaded model trains on exactly as the saved one
/// would; its data too with `data=True`. The write is atomic: a temporary file beside
/// `path`, synced, then renamed over it, so an interrupted save leaves any old file
/// whole. Callback modules cannot be saved (their forward is a Python function).
#[pyfunction]
#[pyo3(signature = (h, path, data=false))]
pub fn save(
    py: Python<'_>,
    h: &Bound<'_, PyAny>,
    path: &Bound<'_, PyAny>,
    data: bool,
) -> PyResult<()> {
    let f = "save";
    let p = path_of(f, path)?;
    let o = obj(f, h)?.ok_or_else(|| {
        type_error(
            f,
            format!(
                "expecting a Module, Loss, Optimizer or Model, given {}",
                h.get_type()
                    .name()
                    .map_or_else(|_| "?".into(), |n| n.to_string())
            ),
        )
    })?;
    if matches!(o, Obj::Tensors(_)) {
        return Err(type_error(
            f,
            "expecting a Module, Loss, Optimizer or Model, given a Tensor, Vector or Dict",
        ));
    }
    if data && !matches!(o, Obj::Model(_)) {
        return Err(ktorch_error(f, "data: only a model holds data"));
    }
    let ds = o.domains();
    call(py, f, ds, move |g| {
        match &o {
            Obj::Module(q) => checkpoint::save_module(&*g.lock(q)?, &p)?,
            Obj::Loss(l) => checkpoint::save_loss(&*g.lock(l)?, &p)?,
            Obj::Opt(s) => checkpoint::save_optimizer(&*g.lock(s)?, &[], &p)?,
            Obj::Model(m) => checkpoint::save_model(&*g.lock(m)?, &p, data)?,
            Obj::Tensors(_) => {} // refused above
        }
        Ok(())
    })
}

/// load(path) -> Module, Loss or Model
/// load(path, parameters) -> Optimizer
///
/// Loads what `save` wrote: built again from its recorded types and settings (nothing in
/// the file is run), then every tensor copied in after checking that the file has each
/// one with the same shape. An optimizer's file is loaded over `parameters` (a Module or
/// Model: by parameter name where the file names them, else in order). A truncated,
/// damaged, foreign, newer or mismatched file raises KtorchError naming the problem (the
/// first mismatched parameter with both shapes).
#[pyfunction]
#[pyo3(signature = (path, parameters=None))]
pub fn load(
    py: Python<'_>,
    path: &Bound<'_, PyAny>,
    parameters: Option<&Bound<'_, PyAny>>,
) -> PyResult<PyObject> {
    let f = "load";
    let p = path_of(f, path)?;
    let src = match parameters {
        None => None,
        Some(x) => match obj(f, x)? {
            Some(Obj::Loss(_)) | None => {
                return Err(type_error(
                    f,
                    "parameters expects a Module, Model, Optimizer, Tensor, Vector or Dict",
                ))
            }
            o => o,
        },
    };
    let q = p.clone();
    let class = call(py, f, Vec::new(), move |_| Ok(checkpoint::class(&q)?))?;
    if src.is_some() && class != "optimizer" {
        return Err(ktorch_error(
            f,
            format!("parameters: the file holds a {class}, which takes none"),
        ));
    }
    match class.as_str() {
        "model" => {
            let m = call(py, f, Vec::new(), move |_| Ok(checkpoint::load_model(&p)?))?;
            Ok(Py::new(py, PyModel::new(shared(m)))?.into_any())
        }
        "loss" => {
            let l = call(py, f, Vec::new(), move |_| Ok(checkpoint::load_loss(&p)?))?;
            Ok(Py::new(py, PyLoss::new(shared(l)))?.into_any())
        }
        "optimizer" => {
            let src = src.ok_or_else(|| {
                type_error(
                    f,
                    "the file holds an optimizer: load(path, parameters) with its module",
                )
            })?;
            let ds = src.domains();
            let own = ds.clone();
            let o = call(py, f, ds, move |g| {
                let named = crate::objstate::named_params(g, &src)?;
                Ok(checkpoint::load_optimizer(&p, &named)?)
            })?;
            Ok(Py::new(py, PyOptimizer::new(Shared::with_domains(o, own)))?.into_any())
        }
        _ => {
            let m = call(py, f, Vec::new(), move |_| Ok(checkpoint::load_module(&p)?))?;
            Ok(Py::new(py, PyModule::new(shared(m)))?.into_any())
        }
    }
}
