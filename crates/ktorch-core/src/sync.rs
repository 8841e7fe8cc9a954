//! Shared objects and the one way to reach their contents.
//!
//! Objects that share tensors (a module, the optimizer over its parameters, a
//! tensor handle on one parameter, the model holding all three) share a
//! [`Domain`]: a lock token. Reaching the contents of a [`Shared`] object means
//! holding every domain the object belongs to, then its own mutex; [`lock`] does
//! both and its [`Guard`] releases both. So whoever touches a parameter, its
//! gradient or an optimizer's state holds the lock of every object that can
//! touch the same tensors, for the whole access.
//!
//! - Domains are taken in one global order (by address), all of a call's at
//!   once with [`hold`], so two calls never wait for each other in a circle.
//! - A thread that holds a domain may take it again (a model's call reaching
//!   its module); an object's own mutex is not re-entrant: a thread that holds
//!   it gets an error instead of a deadlock (a callback calling back in).
//! - While waiting, the thread's wait hook (see [`with_wait_hook`]) runs every
//!   20 ms; an error from it ends the wait (Ctrl-C from Python).
//! - A domain held by a thread of the parent process when the process forked
//!   is reported as an error in the child instead of waiting for ever.

use std::cell::RefCell;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// How often a waiting thread runs its wait hook.
const HOOK_EVERY: Duration = Duration::from_millis(20);
/// The longest sleep between looks at a busy domain.
const NAP: Duration = Duration::from_millis(5);

struct DomainLock {
    /// 0 when free, else the holder: process id in the high half, thread token in the low.
    owner: AtomicU64,
    nap: Mutex<()>,
    wake: Condvar,
}

/// A lock token shared by the objects that share tensors.
#[derive(Clone)]
pub struct Domain(Arc<DomainLock>);

impl Domain {
    /// A new, free domain.
    pub fn new() -> Domain {
        Domain(Arc::new(DomainLock {
            owner: AtomicU64::new(0),
            nap: Mutex::new(()),
            wake: Condvar::new(),
        }))
    }

    fn key(&self) -> usize {
        Arc::as_ptr(&self.0) as usize
    }
}

impl Default for Domain {
    fn default() -> Self {
        Domain::new()
    }
}

impl PartialEq for Domain {
    fn eq(&self, o: &Domain) -> bool {
        Arc::ptr_eq(&self.0, &o.0)
    }
}

impl Eq for Domain {}

impl std::fmt::Debug for Domain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Domain({:#x})", self.key())
    }
}

/// A thread's wait hook.
type Hook = Box<dyn FnMut() -> Result<()>>;

static NEXT_THREAD: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// This thread's token (low half of a domain's owner word).
    static TOKEN: u64 = NEXT_THREAD.fetch_add(1, Ordering::Relaxed) & 0xffff_ffff;
    /// Domains this thread holds, each once.
    static DOMAINS: RefCell<Vec<Domain>> = const { RefCell::new(Vec::new()) };
    /// Objects whose own mutex this thread holds.
    static VALUES: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
    /// Run while waiting for a busy domain.
    static HOOK: RefCell<Option<Hook>> = const { RefCell::new(None) };
}

fn me() -> u64 {
    (u64::from(std::process::id()) << 32) | TOKEN.with(|t| *t)
}

fn held(d: &Domain) -> bool {
    DOMAINS.with(|h| h.borrow().iter().any(|x| x == d))
}

/// The domains this thread holds now.
pub fn held_domains() -> Vec<Domain> {
    DOMAINS.with(|h| h.borrow().clone())
}

/// Runs `f` with `hook` called every 20 ms while this thread waits for a busy
/// object; an error from the hook ends the wait with that error. The previous
/// hook is restored afterwards.
pub fn with_wait_hook<R>(hook: impl FnMut() -> Result<()> + 'static, f: impl FnOnce() -> R) -> R {
    let old = HOOK.with(|h| h.borrow_mut().replace(Box::new(hook)));
    struct Restore(Option<Hook>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let old = self.0.take();
            HOOK.with(|h| *h.borrow_mut() = old);
        }
    }
    let _r = Restore(old);
    f()
}

fn run_hook() -> Result<()> {
    // the hook is taken out while it runs, so a hook that itself waits cannot recurse
    let hook = HOOK.with(|h| h.borrow_mut().take());
    match hook {
        None => Ok(()),
        Some(mut f) => {
            let r = f();
            HOOK.with(|h| {
                let mut h = h.borrow_mut();
                if h.is_none() {
                    *h = Some(f);
                }
            });
            r
        }
    }
}

fn acquire(d: &Domain) -> Result<()> {
    let me = me();
    let mut last = Instant::now();
    loop {
        match d
            .0
            .owner
            .compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed)
        {
            Ok(_) => {
                DOMAINS.with(|h| h.borrow_mut().push(d.clone()));
                return Ok(());
            }
            Err(owner) => {
                if owner >> 32 != me >> 32 {
                    // held by a thread of the process this one was forked from
                    return Err(Error::Forked);
                }
                if owner == me {
                    // held here but not recorded: cannot happen, never wait for ourselves
                    return Err(Error::Arg("internal lock state inconsistent".into()));
                }
            }
        }
        if last.elapsed() >= HOOK_EVERY {
            run_hook()?;
            last = Instant::now();
        }
        let g = d.0.nap.lock().unwrap_or_else(|p| p.into_inner());
        if d.0.owner.load(Ordering::Acquire) != 0 {
            let _ = d.0.wake.wait_timeout(g, NAP);
        }
    }
}

fn release(d: &Domain) {
    DOMAINS.with(|h| {
        let mut h = h.borrow_mut();
        if let Some(i) = h.iter().rposition(|x| x == d) {
            h.remove(i);
        }
    });
    d.0.owner.store(0, Ordering::Release);
    d.0.wake.notify_all();
}

/// Domains held for one call; released on drop (only those this value took).
#[must_use = "the domains are released when this is dropped"]
pub struct Held {
    taken: Vec<Domain>,
}

impl Drop for Held {
    fn drop(&mut self) {
        for d in self.taken.drain(..).rev() {
            release(&d);
        }
    }
}

/// Takes every domain in `ds` that this thread does not hold yet, in the
/// global order, waiting as needed (the wait hook runs while waiting).
pub fn hold(ds: &[Domain]) -> Result<Held> {
    let mut ds: Vec<Domain> = ds.to_vec();
    ds.sort_by_key(Domain::key);
    ds.dedup();
    let mut h = Held { taken: Vec::new() };
    for d in ds {
        if held(&d) {
            continue;
        }
        acquire(&d)?;
        h.taken.push(d);
    }
    Ok(h)
}

/// Something whose domains a [`Shared`] object includes (a model's parts).
pub trait Part: Send + Sync {
    /// Adds the part's domains to `out`.
    fn domains_into(&self, out: &mut Vec<Domain>);
}

struct Inner<T> {
    value: Mutex<T>,
    own: Mutex<Vec<Domain>>,
    parts: Mutex<Vec<Arc<dyn Part>>>,
}

impl<T: Send> Part for Inner<T> {
    fn domains_into(&self, out: &mut Vec<Domain>) {
        out.extend(
            self.own
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .cloned(),
        );
        // a part never holds the object it is part of: its lock is another one
        for p in self.parts.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            p.domains_into(out);
        }
    }
}

/// An object shared between holders (a module held by a model and a handle).
/// Its contents are reached only through [`lock`].
pub struct Shared<T> {
    inner: Arc<Inner<T>>,
}

impl<T> Clone for Shared<T> {
    fn clone(&self) -> Self {
        Shared {
            inner: self.inner.clone(),
        }
    }
}

impl<T> std::fmt::Debug for Shared<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Shared({:#x})", self.key())
    }
}

impl<T: Send + 'static> Shared<T> {
    /// `x` in the given domains (those of the objects whose tensors it shares);
    /// a new domain of its own when `ds` is empty.
    pub fn with_domains(x: T, ds: Vec<Domain>) -> Shared<T> {
        Shared::build(x, ds, vec![])
    }

    fn build(x: T, mut ds: Vec<Domain>, parts: Vec<Arc<dyn Part>>) -> Shared<T> {
        if ds.is_empty() {
            ds.push(Domain::new());
        }
        Shared {
            inner: Arc::new(Inner {
                value: Mutex::new(x),
                own: Mutex::new(ds),
                parts: Mutex::new(parts),
            }),
        }
    }

    /// This object as a part of another (a model's module, loss, optimizer).
    pub fn as_part(&self) -> Arc<dyn Part> {
        self.inner.clone()
    }

    /// Every domain the object belongs to, in the global order.
    pub fn domains(&self) -> Vec<Domain> {
        let mut out = Vec::new();
        self.inner.domains_into(&mut out);
        out.sort_by_key(Domain::key);
        out.dedup();
        out
    }

    /// Adds domains (an optimizer given parameters of another module). Call
    /// it holding the object's lock and the new domains.
    pub fn add_domains(&self, ds: &[Domain]) {
        let mut own = self.inner.own.lock().unwrap_or_else(|p| p.into_inner());
        for d in ds {
            if !own.contains(d) {
                own.push(d.clone());
            }
        }
    }

    /// Replaces part `i` (a model given a new module, loss or optimizer; a part
    /// past the last is added): from now on the object is locked with the new
    /// part's domains instead. Call it holding the object's lock and the new
    /// part's domains.
    pub fn set_part(&self, i: usize, p: Arc<dyn Part>) {
        let mut parts = self.inner.parts.lock().unwrap_or_else(|p| p.into_inner());
        match parts.get_mut(i) {
            Some(slot) => *slot = p,
            None => parts.push(p),
        }
    }
}

impl<T> Shared<T> {
    fn key(&self) -> usize {
        Arc::as_ptr(&self.inner) as *const () as usize
    }

    /// True if `a` and `b` are the same object.
    pub fn same(a: &Shared<T>, b: &Shared<T>) -> bool {
        Arc::ptr_eq(&a.inner, &b.inner)
    }

    /// Holders of the object right now (handles, models, running calls).
    pub fn holders(&self) -> usize {
        Arc::strong_count(&self.inner)
    }
}

/// A type that can be shared: by default in a domain of its own; a type
/// holding other shared objects names them as parts.
pub trait Share: Send + Sized + 'static {
    /// The shared objects this value holds (their domains are the value's too).
    fn parts(&self) -> Vec<Arc<dyn Part>> {
        Vec::new()
    }
}

/// Wraps a value for sharing, in a new domain (and its parts' domains).
pub fn shared<T: Share>(x: T) -> Shared<T> {
    let parts = x.parts();
    Shared::build(x, vec![], parts)
}

/// A lock on a shared object: its domains and its own mutex, released on drop.
pub struct Guard<'a, T> {
    g: MutexGuard<'a, T>,
    key: usize,
    _held: Held,
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
        VALUES.with(|h| {
            let mut h = h.borrow_mut();
            if let Some(i) = h.iter().rposition(|k| *k == self.key) {
                h.remove(i);
            }
        });
    }
}

/// True if this thread holds the object's own lock.
pub fn held_here<T>(s: &Shared<T>) -> bool {
    let k = s.key();
    VALUES.with(|h| h.borrow().contains(&k))
}

/// Locks a shared object: takes its domains (waiting for other threads), then
/// its own mutex.
pub fn lock<T: Send + 'static>(s: &Shared<T>) -> Result<Guard<'_, T>> {
    if held_here(s) {
        return Err(Error::InUse);
    }
    let held = loop {
        let ds = s.domains();
        let h = hold(&ds)?;
        // nothing taken: this thread held every domain already, so none can
        // have changed (the common case inside a call, once per batch)
        if h.taken.is_empty() {
            break h;
        }
        // an optimizer may have gained a domain while this thread waited
        if s.domains() == ds {
            break h;
        }
    };
    // every holder of the mutex holds the domains first, so this does not wait;
    // a panic while the object was held is caught at the api boundary and the
    // object's own state is kept consistent by the calls that fail, so the
    // poison flag is cleared rather than making the object unusable forever
    let g = s.inner.value.lock().unwrap_or_else(|p| {
        s.inner.value.clear_poison();
        p.into_inner()
    });
    let key = s.key();
    VALUES.with(|h| h.borrow_mut().push(key));
    Ok(Guard {
        g,
        key,
        _held: held,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;

    impl Share for i64 {}
    impl Share for u8 {}

    struct Holder(Vec<Arc<dyn Part>>);
    impl Share for Holder {
        fn parts(&self) -> Vec<Arc<dyn Part>> {
            self.0.clone()
        }
    }

    #[test]
    fn shared_domains_serialize_and_reenter() {
        let a = shared(1i64);
        let b = Shared::with_domains(2i64, a.domains());
        assert_eq!(a.domains(), b.domains());
        let ga = lock(&a).expect("a");
        // the same thread reaches another object of the held domain
        let gb = lock(&b).expect("b");
        assert_eq!(*ga + *gb, 3);
        // but not the same object twice
        let e = lock(&a).err().expect("re-entry");
        assert!(e.to_string().contains("in use by this thread"));
        drop(gb);
        // another thread waits for the domain until both guards are gone
        let b2 = b.clone();
        let done = Arc::new(AtomicBool::new(false));
        let d2 = done.clone();
        let t = std::thread::spawn(move || {
            let g = lock(&b2).expect("b2");
            d2.store(true, Ordering::SeqCst);
            *g
        });
        std::thread::sleep(Duration::from_millis(50));
        assert!(!done.load(Ordering::SeqCst));
        drop(ga);
        assert_eq!(t.join().expect("join"), 2);
        assert!(held_domains().is_empty());
    }

    #[test]
    fn parts_add_their_domains() {
        let q = shared(0u8);
        let o = shared(0u8);
        let m = shared(Holder(vec![q.as_part(), o.as_part()]));
        assert_eq!(m.domains().len(), 3);
        let extra = shared(0u8);
        o.add_domains(&extra.domains());
        assert_eq!(m.domains().len(), 4);
        let g = lock(&m).expect("m");
        assert_eq!(held_domains().len(), 4);
        drop(g);
        assert!(held_domains().is_empty());
    }

    #[test]
    fn a_replaced_part_brings_its_domains() {
        let q = shared(0u8);
        let o = shared(0u8);
        let m = shared(Holder(vec![q.as_part(), o.as_part()]));
        let q2 = shared(0u8);
        m.set_part(0, q2.as_part());
        let ds = m.domains();
        assert!(q2.domains().iter().all(|d| ds.contains(d)));
        assert!(q.domains().iter().all(|d| !ds.contains(d)));
        assert_eq!(ds.len(), 3);
        // later domains of the new part are the holder's too
        q2.add_domains(&shared(0u8).domains());
        assert_eq!(m.domains().len(), 4);
    }

    #[test]
    fn wait_hook_ends_a_wait() {
        let a = shared(0u8);
        let a2 = a.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        let (tx2, rx2) = std::sync::mpsc::channel::<()>();
        let t = std::thread::spawn(move || {
            let _g = lock(&a2).expect("held");
            tx.send(()).expect("send");
            let _ = rx2.recv_timeout(Duration::from_secs(10));
        });
        rx.recv().expect("started");
        let mut n = 0;
        let start = Instant::now();
        let r = with_wait_hook(
            move || {
                n += 1;
                if n >= 3 {
                    Err(Error::Interrupted)
                } else {
                    Ok(())
                }
            },
            || lock(&a).map(|_| ()),
        );
        assert!(matches!(r, Err(Error::Interrupted)));
        assert!(start.elapsed() < Duration::from_secs(2));
        tx2.send(()).expect("send");
        t.join().expect("join");
    }

    #[test]
    fn a_domain_held_by_another_process_is_an_error() {
        let a = shared(0u8);
        // what a child sees after a fork: the owner word names the parent's pid
        let d = a.domains().remove(0);
        let parent = u64::from(std::process::id().wrapping_add(1)) << 32 | 7;
        d.0.owner.store(parent, Ordering::SeqCst);
        let e = lock(&a).err().expect("stale");
        assert!(matches!(e, Error::Forked));
        d.0.owner.store(0, Ordering::SeqCst);
        assert!(lock(&a).is_ok());
    }
}
