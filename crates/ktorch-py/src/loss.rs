//! Losses: loss(name, *settings) and loss(l or model, yhat, y).

use ktorch_core::model::{lock, shared};
use ktorch_core::Loss;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString, PyTuple};

use crate::convert::{settings, wrap};
use crate::data::tensors_arg;
use crate::errors::{enter, terr, IntoPy};
use crate::handles::{obj, Obj, PyLoss};

/// loss(name, *settings, **options) -> Loss; loss(l, yhat, y) / loss(model, yhat, y) -> Tensor.
#[pyfunction]
#[pyo3(signature = (*args, **kw))]
pub fn loss(
    py: Python<'_>,
    args: &Bound<'_, PyTuple>,
    kw: Option<&Bound<'_, PyDict>>,
) -> PyResult<PyObject> {
    let f = "loss";
    let first = args.get_item(0).map_err(|_| {
        terr(
            f,
            "expecting a loss name, or a Loss or Model with output and target",
        )
    })?;
    if let Ok(name) = first.downcast::<PyString>() {
        let rest: Vec<_> = args.iter().skip(1).collect();
        let (pos, opts) = settings(f, &rest, kw)?;
        let l = Loss::new(name.to_str()?, &pos, &opts).py()?;
        return Ok(Py::new(py, PyLoss::new(shared(l)))?.into_any());
    }
    if args.len() != 3 {
        return Err(terr(
            f,
            format!(
                "expecting (loss or model, output, target), given {} argument(s)",
                args.len()
            ),
        ));
    }
    let x = tensors_arg(f, &args.get_item(1)?)?;
    let y = tensors_arg(f, &args.get_item(2)?)?;
    let r = match obj(f, &first)? {
        Some(Obj::Loss(l)) => enter(py, f, move || -> ktorch_core::Result<_> {
            let l = lock(f, &l)?;
            l.forward(&x, &y)
        }),
        Some(Obj::Model(m)) => enter(py, f, move || -> ktorch_core::Result<_> {
            let m = lock(f, &m)?;
            m.loss(f, &x, &y)
        }),
        _ => {
            return Err(terr(
                f,
                format!(
                    "expecting a loss name, Loss or Model, given {}",
                    first.get_type().name()?
                ),
            ))
        }
    }
    .py()?;
    Ok(wrap(py, r)?.into_any())
}

/// The functional form of a loss: `_lossfn(name, x, y, *settings)` -> Tensor.
#[pyfunction]
#[pyo3(signature = (name, x, y, *args, **kw))]
pub fn _lossfn(
    py: Python<'_>,
    name: &str,
    x: &Bound<'_, PyAny>,
    y: &Bound<'_, PyAny>,
    args: &Bound<'_, PyTuple>,
    kw: Option<&Bound<'_, PyDict>>,
) -> PyResult<Py<crate::handles::Tensor>> {
    let rest: Vec<_> = args.iter().collect();
    let (pos, opts) = settings(name, &rest, kw)?;
    let l = Loss::new(name, &pos, &opts).py()?;
    let x = tensors_arg(name, x)?;
    let y = tensors_arg(name, y)?;
    let r = enter(py, name, move || l.forward(&x, &y)).py()?;
    wrap(py, r)
}

/// The names of every loss.
#[pyfunction]
pub fn _loss_types() -> Vec<&'static str> {
    ktorch_core::loss::LOSS_TYPES.to_vec()
}
