//! Handle classes: each owns a shared core object until Python drops it or `free` is called.
//!
//! A handle also owns strong references to the Python callables its object
//! runs (callback modules): the core keeps only weak references to them, so
//! every Python reference a handle's object depends on is visible to Python's
//! garbage collector (`__traverse__`), and a cycle through a callback that
//! refers to its own model is collected (`__clear__` frees the handle).

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Mutex;

use ktorch_core::sync::{Domain, Shared};
use ktorch_core::{Loss, Model, Module, Optimizer, Tensors};
use pyo3::gc::PyVisit;
use pyo3::prelude::*;
use pyo3::PyTraverseError;

/// The error for a freed handle given to `func`.
fn freed(func: &str, class: &'static str) -> PyErr {
    crate::errors::to_py(ktorch_core::Error::Freed {
        func: func.to_string(),
        class,
    })
}

/// Handles holding an object right now, across every class.
static LIVE: AtomicI64 = AtomicI64::new(0);

/// The number of live handles (holding an object, not yet freed or dropped).
pub fn live() -> i64 {
    LIVE.load(Ordering::SeqCst)
}

/// Python objects a handle keeps alive for its object.
pub type Keep = Vec<Py<PyAny>>;

/// Copies of the references in `k` (for another handle on the same object).
pub fn keep_copy(py: Python<'_>, k: &Keep) -> Keep {
    k.iter().map(|o| o.clone_ref(py)).collect()
}

/// The object and the references of a live handle.
struct Slot<T> {
    obj: Shared<T>,
    keep: Keep,
}

macro_rules! handle {
    ($name:ident, $t:ty, $py:literal, $doc:literal) => {
        #[doc = $doc]
        #[pyclass(frozen, module = "ktorch._ktorch", name = $py)]
        pub struct $name {
            // locked only briefly, with the GIL held: never contended during a
            // garbage collection, so `__traverse__` sees the same state throughout
            inner: Mutex<Option<Slot<$t>>>,
        }

        impl $name {
            /// A handle to `x`.
            pub fn new(x: Shared<$t>) -> Self {
                Self::with_keep(x, Vec::new())
            }

            /// A handle to `x` keeping `keep` alive.
            pub fn with_keep(x: Shared<$t>, keep: Keep) -> Self {
                LIVE.fetch_add(1, Ordering::SeqCst);
                $name {
                    inner: Mutex::new(Some(Slot { obj: x, keep })),
                }
            }

            fn slot(&self) -> std::sync::MutexGuard<'_, Option<Slot<$t>>> {
                self.inner.lock().unwrap_or_else(|p| p.into_inner())
            }

            /// The object, or an error naming `func` if the handle was freed.
            pub fn get(&self, func: &str) -> PyResult<Shared<$t>> {
                self.slot()
                    .as_ref()
                    .map(|s| s.obj.clone())
                    .ok_or_else(|| freed(func, $py))
            }

            /// The object's domains, or an error naming `func` if the handle was freed.
            pub fn domains(&self, func: &str) -> PyResult<Vec<Domain>> {
                Ok(self.get(func)?.domains())
            }

            /// Copies of the references the handle keeps.
            pub fn keep(&self, py: Python<'_>) -> Keep {
                self.slot()
                    .as_ref()
                    .map(|s| keep_copy(py, &s.keep))
                    .unwrap_or_default()
            }

            /// Drops the handle's reference; false if it was already freed.
            pub fn free(&self) -> bool {
                let old = self.slot().take();
                let freed = old.is_some();
                if freed {
                    LIVE.fetch_sub(1, Ordering::SeqCst);
                }
                // dropped after the handle's mutex is released
                drop(old);
                freed
            }

            /// Points the handle at another object.
            pub fn replace(&self, x: Shared<$t>, keep: Keep) {
                let old = self.slot().replace(Slot { obj: x, keep });
                if old.is_none() {
                    LIVE.fetch_add(1, Ordering::SeqCst);
                }
                drop(old);
            }

            /// Takes the object out, leaving the handle freed.
            pub fn take(&self, func: &str) -> PyResult<(Shared<$t>, Keep)> {
                let s = self.slot().take().ok_or_else(|| freed(func, $py))?;
                LIVE.fetch_sub(1, Ordering::SeqCst);
                Ok((s.obj, s.keep))
            }

            /// Another handle on the same object, keeping the same references.
            pub fn another(&self, py: Python<'_>, func: &str) -> PyResult<Self> {
                let (obj, keep) = {
                    let g = self.slot();
                    let s = g.as_ref().ok_or_else(|| freed(func, $py))?;
                    (s.obj.clone(), keep_copy(py, &s.keep))
                };
                Ok(Self::with_keep(obj, keep))
            }

            /// True while the handle holds an object.
            pub fn alive(&self) -> bool {
                self.slot().is_some()
            }
        }

        impl Drop for $name {
            fn drop(&mut self) {
                if let Ok(g) = self.inner.get_mut() {
                    if g.take().is_some() {
                        LIVE.fetch_sub(1, Ordering::SeqCst);
                    }
                }
            }
        }

        #[pymethods]
        impl $name {
            fn __repr__(&self) -> String {
                if self.alive() {
                    format!("<ktorch.{}>", $py)
                } else {
                    format!("<ktorch.{} (freed)>", $py)
                }
            }

            fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
                if let Ok(g) = self.inner.try_lock() {
                    if let Some(s) = g.as_ref() {
                        for o in &s.keep {
                            visit.call(o)?;
                        }
                    }
                }
                Ok(())
            }

            fn __clear__(&self) {
                self.free();
            }

            /// `numpy.asarray(h)`: a Tensor's values (a copy); other handles raise.
            #[pyo3(signature = (dtype=None, copy=None))]
            fn __array__(
                slf: &Bound<'_, Self>,
                dtype: Option<&Bound<'_, PyAny>>,
                copy: Option<bool>,
            ) -> PyResult<PyObject> {
                crate::tensor::array_of(slf.as_any(), dtype, copy)
            }

            /// `torch.as_tensor(h)`, `numpy.from_dlpack(h)`: a copy of a Tensor's values.
            #[pyo3(signature = (**kw))]
            fn __dlpack__(
                slf: &Bound<'_, Self>,
                kw: Option<&Bound<'_, pyo3::types::PyDict>>,
            ) -> PyResult<PyObject> {
                let t = crate::tensor::torch_copy(slf.as_any(), "__dlpack__")?;
                Ok(t.call_method("__dlpack__", (), kw)?.unbind())
            }

            /// The device of a Tensor's values, for DLPack.
            fn __dlpack_device__(slf: &Bound<'_, Self>) -> PyResult<PyObject> {
                let t = crate::tensor::torch_copy(slf.as_any(), "__dlpack_device__")?;
                Ok(t.call_method0("__dlpack_device__")?.unbind())
            }
        }
    };
}

handle!(
    Tensor,
    Tensors,
    "Tensor",
    "A handle to a tensor (batching narrows it in place); `kt.tensor(t)` reads its values."
);
handle!(
    Vector,
    Tensors,
    "Vector",
    "A handle to a list of tensors; `kt.vector(v)` reads them."
);
handle!(
    Dict,
    Tensors,
    "Dict",
    "A handle to tensors by name; `kt.dict(d)` reads them."
);
handle!(
    PyModule,
    Module,
    "Module",
    "A handle to a module tree (layers, parameters, buffers), made by `kt.module`."
);
handle!(
    PyLoss,
    Loss,
    "Loss",
    "A handle to a loss function and its settings, made by `kt.loss`."
);
handle!(
    PyOptimizer,
    Optimizer,
    "Optimizer",
    "A handle to an optimizer with parameter groups, made by `kt.opt`."
);
handle!(
    PyModel,
    Model,
    "Model",
    "A handle to a model: module, loss, optimizer, train/test options and data."
);

/// Any handle, by class.
pub enum Obj {
    /// A tensor, vector or dictionary.
    Tensors(Shared<Tensors>),
    /// A module.
    Module(Shared<Module>),
    /// A loss.
    Loss(Shared<Loss>),
    /// An optimizer.
    Opt(Shared<Optimizer>),
    /// A model.
    Model(Shared<Model>),
}

impl Obj {
    /// Every domain of the object.
    pub fn domains(&self) -> Vec<Domain> {
        match self {
            Obj::Tensors(s) => s.domains(),
            Obj::Module(s) => s.domains(),
            Obj::Loss(s) => s.domains(),
            Obj::Opt(s) => s.domains(),
            Obj::Model(s) => s.domains(),
        }
    }
}

/// The object behind any handle; None if `x` is not a handle.
pub fn obj(func: &str, x: &Bound<'_, PyAny>) -> PyResult<Option<Obj>> {
    Ok(Some(if let Ok(h) = x.downcast::<Tensor>() {
        Obj::Tensors(h.get().get(func)?)
    } else if let Ok(h) = x.downcast::<Vector>() {
        Obj::Tensors(h.get().get(func)?)
    } else if let Ok(h) = x.downcast::<Dict>() {
        Obj::Tensors(h.get().get(func)?)
    } else if let Ok(h) = x.downcast::<PyModule>() {
        Obj::Module(h.get().get(func)?)
    } else if let Ok(h) = x.downcast::<PyLoss>() {
        Obj::Loss(h.get().get(func)?)
    } else if let Ok(h) = x.downcast::<PyOptimizer>() {
        Obj::Opt(h.get().get(func)?)
    } else if let Ok(h) = x.downcast::<PyModel>() {
        Obj::Model(h.get().get(func)?)
    } else {
        return Ok(None);
    }))
}

/// The references a handle keeps (empty for anything else).
pub fn keep_of(x: &Bound<'_, PyAny>) -> Keep {
    let py = x.py();
    if let Ok(h) = x.downcast::<PyModule>() {
        h.get().keep(py)
    } else if let Ok(h) = x.downcast::<PyModel>() {
        h.get().keep(py)
    } else {
        Vec::new()
    }
}

/// True if `x` is any ktorch handle.
pub fn is_handle(x: &Bound<'_, PyAny>) -> bool {
    x.is_instance_of::<Tensor>()
        || x.is_instance_of::<Vector>()
        || x.is_instance_of::<Dict>()
        || x.is_instance_of::<PyModule>()
        || x.is_instance_of::<PyLoss>()
        || x.is_instance_of::<PyOptimizer>()
        || x.is_instance_of::<PyModel>()
}
