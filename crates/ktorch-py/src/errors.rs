//! The exceptions users see: `KtorchError`, and the mapping from core errors,
//! including Python exceptions that stopped a core call on their way out.

use std::cell::RefCell;

use ktorch_core::Error;
use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyKeyboardInterrupt, PyRuntimeError, PyTypeError};
use pyo3::prelude::*;

create_exception!(
    ktorch,
    KtorchError,
    PyRuntimeError,
    "Raised for a bad argument or a call that does not fit the object's state (the message\n\
     names the function and the argument), and for libtorch's errors (libtorch's message).\n\
     A subclass of RuntimeError; an argument of the wrong type raises TypeError instead."
);

thread_local! {
    /// A Python exception that stopped a core call from inside (a signal
    /// handler's exception, a callback's), waiting to be raised by the call.
    static PENDING: RefCell<Option<PyErr>> = const { RefCell::new(None) };
}

/// Keeps `e` to be raised (or chained) when the core call it stopped returns.
pub fn set_pending(e: PyErr) {
    PENDING.with(|p| *p.borrow_mut() = Some(e));
}

/// Drops a kept exception (at the start of an outermost call).
pub fn clear_pending() {
    PENDING.with(|p| p.borrow_mut().take());
}

fn take_pending() -> Option<PyErr> {
    PENDING.with(|p| p.borrow_mut().take())
}

/// Converts a core error into the Python exception users see:
/// - an interrupt raises what the signal handler raised (KeyboardInterrupt
///   for Ctrl-C, SystemExit for `sys.exit` in a handler...);
/// - a callback's BaseException that is not an Exception (KeyboardInterrupt,
///   SystemExit) is raised unchanged; any other exception of the callback
///   becomes the cause of the `KtorchError`;
/// - everything else is a `KtorchError` with the core's message.
pub fn to_py(e: Error) -> PyErr {
    let pending = take_pending();
    Python::with_gil(|py| match e {
        Error::Interrupted => {
            pending.unwrap_or_else(|| PyKeyboardInterrupt::new_err(e.to_string()))
        }
        Error::Callback(_) => match pending {
            Some(p) if !p.is_instance_of::<PyException>(py) => p,
            Some(p) => {
                let k = KtorchError::new_err(e.to_string());
                k.set_cause(py, Some(p));
                k
            }
            None => KtorchError::new_err(e.to_string()),
        },
        e => KtorchError::new_err(e.to_string()),
    })
}

/// The core error for a Python exception raised by a callback (a callback
/// module, a batch callback): the exception is kept to be re-raised, or chained,
/// when the call returns ([`to_py`]).
pub fn callback_error(py: Python<'_>, e: PyErr) -> Error {
    let msg = format!(
        "callback: {}: {}",
        e.get_type(py)
            .name()
            .map(|n| n.to_string())
            .unwrap_or_default(),
        e.value(py)
    );
    set_pending(e);
    Error::Callback(msg)
}

/// A failure inside a call: a core error or a Python exception.
pub enum Fail {
    /// An error from the core.
    Core(Error),
    /// A Python exception (argument conversion inside a call).
    Py(PyErr),
}

impl From<Error> for Fail {
    fn from(e: Error) -> Fail {
        Fail::Core(e)
    }
}

impl From<PyErr> for Fail {
    fn from(e: PyErr) -> Fail {
        Fail::Py(e)
    }
}

impl From<tch::TchError> for Fail {
    fn from(e: tch::TchError) -> Fail {
        Fail::Core(Error::from(e))
    }
}

impl From<Fail> for PyErr {
    fn from(f: Fail) -> PyErr {
        match f {
            Fail::Core(e) => to_py(e),
            Fail::Py(e) => e,
        }
    }
}

/// A call's result.
pub type Res<T> = Result<T, Fail>;

/// A `KtorchError` naming the function.
pub fn ktorch_error(func: &str, msg: impl std::fmt::Display) -> PyErr {
    KtorchError::new_err(format!("{func}: {msg}"))
}

/// A `TypeError` naming the function.
pub fn type_error(func: &str, msg: impl std::fmt::Display) -> PyErr {
    PyTypeError::new_err(format!("{func}: {msg}"))
}

/// `Result` conversion for core results.
pub trait IntoPy<T> {
    /// Maps the core error to a Python exception.
    fn py(self) -> PyResult<T>;
    /// The same, outside a [`crate::gate::call`]: an error that names no
    /// function names `func`, as the gate would.
    fn py_for(self, func: &str) -> PyResult<T>;
}

impl<T> IntoPy<T> for ktorch_core::Result<T> {
    fn py(self) -> PyResult<T> {
        self.map_err(to_py)
    }
    fn py_for(self, func: &str) -> PyResult<T> {
        self.map_err(|e| to_py(e.named(func)))
    }
}

impl<T> IntoPy<T> for Result<T, tch::TchError> {
    fn py(self) -> PyResult<T> {
        self.map_err(|e| to_py(Error::from(e)))
    }
    fn py_for(self, func: &str) -> PyResult<T> {
        self.map_err(Error::from).py_for(func)
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
        if !ktorch_core::error::is_torch_panic(s) {
            default(info);
        }
    }));
}
