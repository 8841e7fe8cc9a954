//! Handle classes: each owns a shared core object until Python drops it or `free` is called.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Mutex;

use ktorch_core::model::Shared;
use ktorch_core::{Loss, Model, Module, Optimizer, Tensors};
use pyo3::prelude::*;

use crate::errors::kerr;

/// Handles holding an object right now, across every class.
static LIVE: AtomicI64 = AtomicI64::new(0);

/// The number of live handles (holding an object, not yet freed or dropped).
pub fn live() -> i64 {
    LIVE.load(Ordering::SeqCst)
}

macro_rules! handle {
    ($name:ident, $t:ty, $py:literal) => {
        #[doc = concat!("A ", $py, " handle.")]
        #[pyclass(frozen, module = "ktorch._ktorch", name = $py)]
        pub struct $name {
            inner: Mutex<Option<Shared<$t>>>,
        }

        impl $name {
            /// A handle to `x`.
            pub fn new(x: Shared<$t>) -> Self {
                LIVE.fetch_add(1, Ordering::SeqCst);
                $name {
                    inner: Mutex::new(Some(x)),
                }
            }

            /// The object, or an error naming `func` if the handle was freed.
            pub fn get(&self, func: &str) -> PyResult<Shared<$t>> {
                let g = self
                    .inner
                    .lock()
                    .map_err(|_| kerr(func, "handle lock poisoned"))?;
                g.clone()
                    .ok_or_else(|| kerr(func, concat!($py, " has been freed")))
            }

            /// Drops the handle's reference; false if it was already freed.
            pub fn free(&self) -> bool {
                let freed = match self.inner.lock() {
                    Ok(mut g) => g.take().is_some(),
                    Err(_) => false,
                };
                if freed {
                    LIVE.fetch_sub(1, Ordering::SeqCst);
                }
                freed
            }

            /// Points the handle at another object.
            pub fn replace(&self, x: Shared<$t>) {
                if let Ok(mut g) = self.inner.lock() {
                    if g.replace(x).is_none() {
                        LIVE.fetch_add(1, Ordering::SeqCst);
                    }
                }
            }

            /// Takes the object out, leaving the handle freed.
            pub fn take(&self, func: &str) -> PyResult<Shared<$t>> {
                let mut g = self
                    .inner
                    .lock()
                    .map_err(|_| kerr(func, "handle lock poisoned"))?;
                let x = g
                    .take()
                    .ok_or_else(|| kerr(func, concat!($py, " has been freed")))?;
                LIVE.fetch_sub(1, Ordering::SeqCst);
                Ok(x)
            }

            /// A new handle to the same object.
            pub fn clone_handle(&self, x: Shared<$t>) -> Self {
                Self::new(x)
            }

            /// True while the handle holds an object.
            pub fn alive(&self) -> bool {
                self.inner.lock().map(|g| g.is_some()).unwrap_or(false)
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
        }
    };
}

handle!(Tensor, Tensors, "Tensor");
handle!(Vector, Tensors, "Vector");
handle!(Dict, Tensors, "Dict");
handle!(PyModule, Module, "Module");
handle!(PyLoss, Loss, "Loss");
handle!(PyOptimizer, Optimizer, "Optimizer");
handle!(PyModel, Model, "Model");

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
