//! Shared objects: one mutex per object serializes threads; a thread that
//! already holds an object (a callback calling back into the api) gets an
//! error instead of a deadlock.

use std::cell::RefCell;
use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};

use crate::error::{err, Result};

/// An object shared between holders (a module held by a model and a handle).
pub type Shared<T> = Arc<Mutex<T>>;

/// Wraps a value for sharing.
pub fn shared<T>(x: T) -> Shared<T> {
    Arc::new(Mutex::new(x))
}

thread_local! {
    static HELD: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
}

/// A lock on a shared object, released on drop.
pub struct Guard<'a, T> {
    g: MutexGuard<'a, T>,
    key: usize,
}

impl<T> Deref for Guard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.g
    }
}

impl<T> DerefMut for Guard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.g
    }
}

impl<T> Drop for Guard<'_, T> {
    fn drop(&mut self) {
        HELD.with(|h| {
            let mut h = h.borrow_mut();
            if let Some(i) = h.iter().rposition(|k| *k == self.key) {
                h.remove(i);
            }
        });
    }
}

fn key<T>(s: &Shared<T>) -> usize {
    Arc::as_ptr(s) as *const () as usize
}

/// True if this thread holds the object's lock.
pub fn held_here<T>(s: &Shared<T>) -> bool {
    let k = key(s);
    HELD.with(|h| h.borrow().contains(&k))
}

fn guard<'a, T>(
    func: &str,
    s: &'a Shared<T>,
    r: std::result::Result<MutexGuard<'a, T>, std::sync::PoisonError<MutexGuard<'a, T>>>,
) -> Result<Guard<'a, T>> {
    // a panic while the object was held is caught at the api boundary; the
    // object's own state is kept consistent by the calls that fail, so the
    // poison flag is cleared rather than making the object unusable forever
    let g = r.unwrap_or_else(|p| {
        s.clear_poison();
        p.into_inner()
    });
    let _ = func;
    let k = key(s);
    HELD.with(|h| h.borrow_mut().push(k));
    Ok(Guard { g, key: k })
}

/// Locks a shared object, waiting for other threads.
pub fn lock<'a, T>(func: &str, s: &'a Shared<T>) -> Result<Guard<'a, T>> {
    if held_here(s) {
        return Err(err(func, "object is in use by this thread (a call back into ktorch from a callback on the same object?)"));
    }
    guard(func, s, s.lock())
}

/// Tries to lock without waiting: Ok(None) if another thread holds it.
pub fn try_lock<'a, T>(func: &str, s: &'a Shared<T>) -> Result<Option<Guard<'a, T>>> {
    if held_here(s) {
        return Err(err(func, "object is in use by this thread (a call back into ktorch from a callback on the same object?)"));
    }
    match s.try_lock() {
        Ok(g) => guard(func, s, Ok(g)).map(Some),
        Err(TryLockError::Poisoned(p)) => guard(func, s, Err(p)).map(Some),
        Err(TryLockError::WouldBlock) => Ok(None),
    }
}
