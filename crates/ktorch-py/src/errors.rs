//! The Python exception raised for every ktorch error, and the mapping from core errors.

use ktorch_core::Error;
use pyo3::create_exception;
use pyo3::exceptions::{PyKeyboardInterrupt, PyRuntimeError, PyTypeError};
use pyo3::PyErr;

create_exception!(
    ktorch,
    KtorchError,
    PyRuntimeError,
    "An error raised by ktorch or libtorch."
);

/// Converts a core error into the Python exception users see.
pub fn to_py(e: Error) -> PyErr {
    match e {
        Error::Interrupted(_) => PyKeyboardInterrupt::new_err(e.to_string()),
        e => KtorchError::new_err(e.to_string()),
    }
}

/// A `KtorchError` naming the function.
pub fn kerr(func: &str, msg: impl std::fmt::Display) -> PyErr {
    KtorchError::new_err(format!("{func}: {msg}"))
}

/// A `TypeError` naming the function.
pub fn terr(func: &str, msg: impl std::fmt::Display) -> PyErr {
    PyTypeError::new_err(format!("{func}: {msg}"))
}

/// `Result` conversion for core results.
pub trait IntoPy<T> {
    /// Maps the core error to a Python exception.
    fn py(self) -> pyo3::PyResult<T>;
}

impl<T> IntoPy<T> for ktorch_core::Result<T> {
    fn py(self) -> pyo3::PyResult<T> {
        self.map_err(to_py)
    }
}

impl<T> IntoPy<T> for Result<T, tch::TchError> {
    fn py(self) -> pyo3::PyResult<T> {
        self.map_err(|e| to_py(Error::from(e)))
    }
}
