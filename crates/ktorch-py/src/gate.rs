//! The one way into the core. [`call`] releases the GIL, takes the domains of
//! every object the call touches (in one global order, waiting as long as
//! needed while Python's signal handlers still run every 20 ms), then runs the
//! work with panics caught. Objects are reached only through [`Gate::lock`],
//! and a [`Gate`] exists only inside [`call`]: no tensor another object owns
//! is touched without its owner's lock, and no thread waits for a lock while
//! holding the GIL.

use std::cell::Cell;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, Ordering};

use ktorch_core::sync::{hold, with_wait_hook, Domain, Guard, Shared};
use ktorch_core::Error;
use pyo3::prelude::*;

use crate::errors::{clear_pending, set_pending, Fail, Res};

/// Proof that the current code runs inside [`call`]: GIL released, domains held.
pub struct Gate {
    // not Send: a gate stays on the thread that holds the domains
    _here: PhantomData<*const ()>,
}

impl Gate {
    /// Locks an object (its domains are held already when the call named them).
    #[allow(clippy::disallowed_methods)]
    pub fn lock<'a, T: Send + 'static>(&self, s: &'a Shared<T>) -> Res<Guard<'a, T>> {
        Ok(ktorch_core::sync::lock(s)?)
    }
}

thread_local! {
    static DEPTH: Cell<usize> = const { Cell::new(0) };
}

/// Set at interpreter exit (atexit), before daemon threads are stopped.
static FINALIZING: AtomicBool = AtomicBool::new(false);

/// Called by `atexit`: from now on a thread without the GIL never takes it again.
#[pyfunction]
pub fn _finalizing() {
    FINALIZING.store(true, Ordering::SeqCst);
}

/// A daemon thread still inside a call when the interpreter exits would be
/// stopped with `pthread_exit` when it takes the GIL again, unwinding through
/// Rust frames (an abort). It waits here instead, until the process ends.
pub fn park_if_finalizing() {
    while FINALIZING.load(Ordering::SeqCst) {
        std::thread::park();
    }
}

/// Runs Python's signal handlers; an exception they raise ends the wait or
/// the run it interrupts, and is raised by the call.
pub fn check_signals() -> ktorch_core::Result<()> {
    park_if_finalizing();
    Python::with_gil(|py| py.check_signals()).map_err(|e| {
        set_pending(e);
        Error::Interrupted
    })
}

#[allow(clippy::disallowed_methods)] // the one place that holds domains
/// Runs `f` with the GIL released and the domains `ds` held (plus any that
/// `f` locks), catching panics; errors become Python exceptions.
pub fn call<R: Send>(
    py: Python<'_>,
    func: &str,
    ds: Vec<Domain>,
    f: impl FnOnce(&Gate) -> Res<R> + Send,
) -> PyResult<R> {
    let depth = DEPTH.with(|d| {
        let n = d.get();
        d.set(n + 1);
        n
    });
    if depth == 0 {
        clear_pending();
    }
    struct Leave;
    impl Drop for Leave {
        fn drop(&mut self) {
            DEPTH.with(|d| d.set(d.get().saturating_sub(1)));
        }
    }
    let _leave = Leave;
    let r = py.allow_threads(move || {
        with_wait_hook(check_signals, move || {
            let gate = Gate { _here: PhantomData };
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let _held = hold(&ds)?;
                f(&gate)
            }));
            park_if_finalizing();
            match r {
                Ok(r) => r,
                Err(p) => Err(Fail::Core(ktorch_core::error::from_panic(&*p))),
            }
        })
    });
    r.map_err(|e| named(func, e).into())
}

/// A libtorch error, and a core error that does not know the function (a
/// busy or forked object), names the function the user called.
fn named(func: &str, e: Fail) -> Fail {
    match e {
        Fail::Core(e @ (Error::Invalid(_) | Error::InUse | Error::Forked)) => {
            Fail::Core(e.named(func))
        }
        Fail::Core(Error::Torch(m)) if !m.starts_with(&format!("{func}: ")) => {
            Fail::Core(Error::Torch(format!("{func}: {m}")))
        }
        e => e,
    }
}

/// The union of several objects' domains.
pub fn domains(lists: impl IntoIterator<Item = Vec<Domain>>) -> Vec<Domain> {
    let mut out: Vec<Domain> = Vec::new();
    for l in lists {
        for d in l {
            if !out.contains(&d) {
                out.push(d);
            }
        }
    }
    out
}
