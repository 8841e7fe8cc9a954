//! Backward calculation with the graph modes free / retain / create / createfree, and gradient resets.
#![allow(unsafe_code)]

use tch::Tensor;

use crate::error::{invalid, Error, Result};

/// How the backward call treats the graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Free the graph, no higher order derivatives.
    #[default]
    Free,
    /// Retain the graph, no higher order derivatives.
    Retain,
    /// Retain the graph and create a graph for higher order derivatives.
    Create,
    /// Free the graph and create a graph for higher order derivatives.
    CreateFree,
}

/// The mode table shown by `help("backward")`: mode, retain, create, description.
pub const MODES: &[(&str, bool, bool, &str)] = &[
    (
        "free",
        false,
        false,
        "free graph, no higher order derivatives",
    ),
    (
        "retain",
        true,
        false,
        "retain graph, no higher order derivatives",
    ),
    (
        "create",
        true,
        true,
        "retain graph, create graph for higher order derivatives",
    ),
    (
        "createfree",
        false,
        true,
        "free graph & create graph for higher order derivatives",
    ),
];

impl Mode {
    /// The mode called `name`.
    pub fn from_name(name: &str) -> Result<Mode> {
        Ok(match name {
            "free" => Mode::Free,
            "retain" => Mode::Retain,
            "create" => Mode::Create,
            "createfree" => Mode::CreateFree,
            s => {
                return Err(invalid(format!(
                    "unrecognized mode: {s}, expecting one of free, retain, create, createfree"
                )))
            }
        })
    }

    fn flags(self) -> (bool, bool) {
        match self {
            Mode::Free => (false, false),
            Mode::Retain => (true, false),
            Mode::Create => (true, true),
            Mode::CreateFree => (false, true),
        }
    }
}

/// Runs backward from `ys`, with one gradient per tensor (needed for non-scalars).
pub fn backward(ys: &[Tensor], grads: Option<&[Tensor]>, mode: Mode) -> Result<()> {
    if ys.is_empty() {
        return Err(invalid("no tensors given"));
    }
    if let Some(g) = grads {
        if g.len() != ys.len() {
            return Err(invalid(format!(
                "{} tensor(s) given with {} gradient(s)",
                ys.len(),
                g.len()
            )));
        }
    }
    // One root: the sum of each output weighted by its gradient gives the
    // same gradients as autograd.backward(ys, grads).
    let mut root: Option<Tensor> = None;
    for (i, y) in ys.iter().enumerate() {
        if !y.requires_grad() {
            return Err(invalid(
                "element 0 of tensors does not require grad and does not have a grad_fn",
            ));
        }
        let term = match grads {
            Some(g) => {
                let gi = &g[i];
                if gi.size() != y.size() && gi.numel() != 1 {
                    return Err(invalid(format!(
                        "gradient size {:?} does not match tensor size {:?}",
                        gi.size(),
                        y.size()
                    )));
                }
                let gi = gi
                    .f_to_kind(y.kind())?
                    .f_to_device(y.device())?
                    .f_detach()?;
                y.f_mul(&gi)?.f_sum(y.kind())?
            }
            None => {
                if y.numel() != 1 {
                    return Err(invalid(format!(
                        "gradient needed for non-scalar tensor of size {:?}",
                        y.size()
                    )));
                }
                if ys.len() == 1 {
                    // one output of one element: its own backward, with no extra sum op
                    y.shallow_clone()
                } else {
                    y.f_sum(y.kind())?
                }
            }
        };
        root = Some(match root {
            None => term,
            Some(r) => r.f_add(&term)?,
        });
    }
    let root = root.ok_or_else(|| invalid("no tensors given"))?;
    let (keep, create) = mode.flags();
    run_backward(&root, keep, create)
}

fn run_backward(t: &Tensor, keep: bool, create: bool) -> Result<()> {
    // SAFETY: `t` is a valid tensor for the duration of the call; the C
    // wrapper catches C++ exceptions and stores the message, read back below.
    unsafe {
        torch_sys::at_backward(
            t.as_ptr() as *mut torch_sys::C_tensor,
            i32::from(keep),
            i32::from(create),
        );
        let e = torch_sys::get_and_reset_last_err();
        if !e.is_null() {
            let msg = std::ffi::CStr::from_ptr(e).to_string_lossy().into_owned();
            libc::free(e as *mut libc::c_void);
            return Err(Error::from(tch::TchError::Torch(msg)));
        }
    }
    Ok(())
}

/// Sets gradients to zero (`none == false`) or to undefined (`none == true`).
pub fn reset_grads(ts: &[Tensor], none: bool) -> Result<()> {
    if none {
        return Ok(ktorch_shim::release_grads(ts)?);
    }
    let _ng = tch::no_grad_guard();
    for t in ts {
        let mut g = t.f_grad()?;
        if g.defined() {
            let _ = g.f_detach_()?;
            let _ = g.f_zero_()?;
        }
    }
    Ok(())
}

/// Releases the gradients (sets them to None) of a fixed list of parameters:
/// kept by a model from batch to batch, with the keys that tell whether it still
/// covers the parameters of a step.
pub struct GradRelease {
    keys: Vec<(usize, Vec<i64>)>,
    params: Vec<Tensor>,
}

impl std::fmt::Debug for GradRelease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GradRelease({} parameters)", self.keys.len())
    }
}

fn key(t: &Tensor) -> (usize, Vec<i64>) {
    (t.data_ptr() as usize, t.size())
}

impl GradRelease {
    /// A release for `ts`.
    pub fn new(ts: &[Tensor]) -> Result<GradRelease> {
        Ok(GradRelease {
            keys: ts.iter().map(key).collect(),
            params: ts.iter().map(Tensor::shallow_clone).collect(),
        })
    }

    /// True if this release covers exactly `ts`, in order. It holds its
    /// parameters, so their storage cannot be reused by other tensors.
    pub fn covers(&self, ts: &[Tensor]) -> bool {
        self.keys.len() == ts.len() && self.keys.iter().zip(ts).all(|(k, t)| *k == key(t))
    }

    /// Sets every gradient to None, running no libtorch op.
    pub fn release(&mut self) -> Result<()> {
        Ok(ktorch_shim::release_grads(&self.params)?)
    }
}
