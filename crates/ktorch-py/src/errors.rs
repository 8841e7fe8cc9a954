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

/// Runs libtorch work with the GIL released; a panic that escapes the core
/// becomes an error naming the function rather than crossing into Python.
pub fn enter<T: Send>(
    py: pyo3::Python<'_>,
    func: &str,
    f: impl FnOnce() -> ktorch_core::Result<T> + Send,
) -> ktorch_core::Result<T> {
    py.allow_threads(
        || match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
            Ok(r) => r,
            Err(p) => {
                let msg = p
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| p.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".into());
                Err(Error::Torch(format!("{func}: {}", panic_message(&msg))))
            }
        },
    )
}

/// The readable part of a panic: libtorch's own message where a tch call
/// unwrapped a libtorch error, without the C++ backtrace.
fn panic_message(msg: &str) -> String {
    match msg.find("Torch(\"") {
        Some(i) => {
            let m = &msg[i + 7..];
            let end = m
                .find("\\nException raised")
                .or_else(|| m.find("\\n"))
                .or_else(|| m.rfind('"'))
                .unwrap_or(m.len());
            m[..end].replace("\\\"", "\"").replace("\\'", "'")
        }
        None => format!("internal error: {msg}"),
    }
}

/// Keeps panics that are converted into exceptions off stderr (libtorch errors
/// surfacing through tch's unwrapping paths); any other panic is reported as usual.
pub fn quiet_converted_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let s = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if !s.contains("Torch(\"") {
            default(info);
        }
    }));
}

/// Locks a shared object while holding the GIL: waits with the GIL released,
/// so a thread inside the object that needs the GIL (a callback, an interrupt
/// check) can finish.
pub fn plock<'a, T>(
    func: &str,
    s: &'a ktorch_core::Shared<T>,
) -> pyo3::PyResult<ktorch_core::model::Guard<'a, T>> {
    loop {
        if let Some(g) = ktorch_core::model::try_lock(func, s).py()? {
            return Ok(g);
        }
        pyo3::Python::with_gil(|py| {
            py.allow_threads(|| std::thread::sleep(std::time::Duration::from_micros(50)))
        });
    }
}
