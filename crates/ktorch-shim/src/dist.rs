//! c10d process groups (the C++ core of `torch.distributed`) for data-parallel training,
//! through `src/dist.cpp`.
//!
//! A [`ProcessGroup`] is either made from Rust alone ([`ProcessGroup::gloo`]: a TCPStore
//! rendezvous and a gloo backend, as `torch.distributed.init_process_group("gloo")` makes
//! them) or found by name among the groups that `torch.distributed` made in this process
//! ([`ProcessGroup::resolve`]; the Python module and our Rust code share one libtorch, hence
//! one registry of groups). Python's default group is registered under the name `"0"`
//! (`torch.distributed.group.WORLD.group_name` after `init_process_group`, torch 2.11); each
//! group made afterwards by `new_group` gets the next number (`"1"`, `"2"`, ...) in order of
//! creation, the same on every rank. Any group's `pg.group_name` gives its name.
//!
//! Collectives go through libtorch's dispatcher ops (`c10d::allreduce_`, ...), which pick the
//! group's backend for the tensors' device: gloo for CPU tensors (gloo groups made here also
//! take CUDA tensors, as torch's do), NCCL for CUDA tensors in a group that has it. Every rank
//! must call the same collectives in the same order with tensors of the same shapes and
//! dtypes; each call blocks the calling thread until the collective is done (with NCCL: until
//! it is queued on the current CUDA stream, as `work.wait()` in Python) and returns an error,
//! never a hang or an abort, when it fails: a peer that died (its connections closed) or did
//! not take part within the group's timeout. Tensors must be defined, dense and contiguous
//! (checked before anything is sent). Called from Python, release the GIL around these calls:
//! a collective waits for the other ranks.

// The FFI calls below are this module's purpose; each unsafe block says why it is sound.
#![allow(unsafe_code)]

use std::borrow::Borrow;
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::fmt;
use std::ptr::NonNull;
use std::time::Duration;

use tch::Tensor;
use torch_sys::C_tensor;

use crate::{check, ptrs, Error, Msg, Ptrs, Result};

extern "C" {
    fn ktorch_pg_resolve(name: *const c_char, out: *mut *mut c_void) -> Msg;
    fn ktorch_pg_gloo(
        host: *const c_char,
        port: u16,
        rank: i64,
        size: i64,
        timeout_ms: i64,
        out: *mut *mut c_void,
    ) -> Msg;
    fn ktorch_pg_free(pg: *mut c_void);
    fn ktorch_pg_same(a: *const c_void, b: *const c_void, same: *mut bool) -> Msg;
    fn ktorch_pg_info(
        pg: *const c_void,
        rank: *mut i64,
        size: *mut i64,
        backend: *mut *mut c_char,
    ) -> Msg;
    fn ktorch_pg_allreduce_(pg: *const c_void, tensors: Ptrs, n: usize, op: c_int) -> Msg;
    fn ktorch_pg_broadcast_(pg: *const c_void, tensors: Ptrs, n: usize, root: i64) -> Msg;
    fn ktorch_pg_allgather(
        pg: *const c_void,
        tensor: *const C_tensor,
        out: *mut *mut C_tensor,
        n: usize,
    ) -> Msg;
    fn ktorch_pg_barrier(pg: *const c_void) -> Msg;
}

#[cfg(test)]
extern "C" {
    fn ktorch_pg_register(pg: *const c_void, name: *const c_char) -> Msg;
    fn ktorch_pg_unregister(name: *const c_char) -> Msg;
}

/// The reduction of [`ProcessGroup::allreduce_`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReduceOp {
    Sum,
    Max,
    Min,
}

/// A c10d process group (gloo, NCCL...), held by an owned reference (a
/// `c10::intrusive_ptr<c10d::ProcessGroup>`): the group lives while a handle (or
/// `torch.distributed`, for a resolved group) holds it, and dropping the handle gives its
/// reference back. Dropping the last reference to a gloo group made by [`ProcessGroup::gloo`]
/// closes its connections (and, on rank 0, its TCPStore server).
pub struct ProcessGroup {
    /// A heap-allocated `c10::intrusive_ptr<c10d::ProcessGroup>`, never empty, owned.
    ptr: NonNull<c_void>,
    rank: i64,
    size: i64,
    backend: String,
}

// SAFETY: the handle is an owned, atomically reference-counted pointer to a c10d
// ProcessGroup, which is not tied to the thread that made it. c10d's process groups are
// thread-safe: their backends (ProcessGroupGloo, ProcessGroupNCCL) guard their work queues
// and state with mutexes and run the collectives on their own threads or streams, and
// torch.distributed calls one group from many threads (DDP's reducer, async collectives).
// What stays the caller's duty on every thread is the order: all ranks must issue the same
// collectives in the same order, so calls from several threads must be ordered the same way
// on every rank.
unsafe impl Send for ProcessGroup {}
// SAFETY: see Send; every method takes &self and the C++ side keeps no unsynchronised state.
unsafe impl Sync for ProcessGroup {}

impl fmt::Debug for ProcessGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProcessGroup")
            .field("backend", &self.backend)
            .field("rank", &self.rank)
            .field("size", &self.size)
            .finish()
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        // SAFETY: ptr is the handle from dist.cpp, owned by this value alone and freed once
        // here; ktorch_pg_free catches every C++ exception.
        unsafe { ktorch_pg_free(self.ptr.as_ptr()) }
    }
}

fn cstring(what: &str, s: &str) -> Result<CString> {
    CString::new(s).map_err(|_| Error(format!("{what}: {s:?} holds a NUL byte")))
}

impl ProcessGroup {
    /// Takes over a handle from dist.cpp and reads its rank, size and backend once.
    fn from_handle(out: *mut c_void) -> Result<ProcessGroup> {
        let Some(ptr) = NonNull::new(out) else {
            return Err(Error("process group: no handle returned".into()));
        };
        let mut pg = ProcessGroup {
            ptr,
            rank: 0,
            size: 0,
            backend: String::new(),
        };
        let mut name: *mut c_char = std::ptr::null_mut();
        // SAFETY: pg.ptr is a live handle; the out pointers are to live locals and fields.
        // On success `name` is a malloc'ed NUL-terminated string that we own (read once,
        // then freed); on error it is left null. On error `pg` is dropped, freeing the handle.
        check(unsafe { ktorch_pg_info(pg.ptr.as_ptr(), &mut pg.rank, &mut pg.size, &mut name) })?;
        if !name.is_null() {
            // SAFETY: see above.
            pg.backend = unsafe { CStr::from_ptr(name) }
                .to_string_lossy()
                .into_owned();
            // SAFETY: see above; name is not used after this.
            unsafe { libc::free(name.cast()) };
        }
        Ok(pg)
    }

    fn raw(&self) -> *const c_void {
        self.ptr.as_ptr()
    }

    /// The group registered under `name` by `torch.distributed` in this process, through
    /// `c10d::resolve_process_group`: Python's `pg.group_name`, `"0"` for the default group
    /// (see the module's documentation). An error when no group has that name.
    pub fn resolve(name: &str) -> Result<ProcessGroup> {
        let c = cstring("process group name", name)?;
        let mut out: *mut c_void = std::ptr::null_mut();
        // SAFETY: c is a NUL-terminated string living across the call; `out` is a live local
        // the shim sets to a new handle that we own (left null on error).
        check(unsafe { ktorch_pg_resolve(c.as_ptr(), &mut out) })?;
        ProcessGroup::from_handle(out)
    }

    /// A new gloo group from Rust alone, made as `torch.distributed.init_process_group("gloo",
    /// init_method="tcp://host:port", rank, world_size)` makes it: a TCPStore at `host:port`,
    /// served by rank 0 (which waits for the other ranks to connect), then a gloo backend that
    /// connects every pair of ranks. Every rank calls it with the same host, port, size and
    /// timeout. The rendezvous and every later collective fail with an error after `timeout`
    /// (a rank that never comes, a peer that stops taking part), never hang.
    ///
    /// Gloo's own connections use the loopback interface when `host` is a loopback address
    /// (`127.x.y.z`, `localhost`, `::1`: every rank on this machine); otherwise, as torch,
    /// the interfaces named in `GLOO_SOCKET_IFNAME` (comma-separated) when set, else the
    /// address this machine's hostname resolves to.
    pub fn gloo(
        host: &str,
        port: u16,
        rank: i64,
        size: i64,
        timeout: Duration,
    ) -> Result<ProcessGroup> {
        let h = cstring("host", host)?;
        // whole milliseconds, at least one for a positive timeout
        let ms = i64::try_from(timeout.as_millis()).unwrap_or(i64::MAX);
        let ms = if ms == 0 && !timeout.is_zero() { 1 } else { ms };
        let mut out: *mut c_void = std::ptr::null_mut();
        // SAFETY: h is a NUL-terminated string living across the call; `out` is a live local
        // the shim sets to a new handle that we own (left null on error). The shim checks
        // rank, size and timeout and catches every C++ exception.
        check(unsafe { ktorch_pg_gloo(h.as_ptr(), port, rank, size, ms, &mut out) })?;
        ProcessGroup::from_handle(out)
    }

    /// Whether `other` holds the same group as this handle (one c10d process group object:
    /// two handles resolved from one name are the same group until it is destroyed).
    pub fn same(&self, other: &ProcessGroup) -> bool {
        let mut same = false;
        // SAFETY: both handles are live; `same` is a live local the shim writes.
        check(unsafe { ktorch_pg_same(self.raw(), other.raw(), &mut same) }).is_ok() && same
    }

    /// This process's rank in the group, from 0.
    pub fn rank(&self) -> i64 {
        self.rank
    }

    /// The number of ranks in the group.
    pub fn size(&self) -> i64 {
        self.size
    }

    /// The name of the group's default backend: `"gloo"`, `"nccl"`, ...
    pub fn backend(&self) -> String {
        self.backend.clone()
    }

    /// In-place allreduce of each tensor: afterwards every rank holds, in each tensor, the
    /// `op` of that tensor over all ranks. All ranks call it with tensors of the same shapes
    /// and dtypes in the same order. Waits for completion.
    ///
    /// Many tensors cost few collectives: the shim groups them by dtype and device, in the
    /// order given, into buckets of at most 32 MiB (a larger tensor makes a bucket of its
    /// own), copies the tensors of each bucket into one flat buffer (`torch`'s
    /// `_flatten_dense_tensors`), launches one allreduce per bucket (all before waiting for
    /// the first) and copies the results back (a tensor alone in its bucket is reduced in
    /// place, without copies). The writes bypass autograd (as torch.distributed's), so the
    /// tensors may be parameters that require grad.
    pub fn allreduce_(&self, ts: &[impl Borrow<Tensor>], op: ReduceOp) -> Result<()> {
        let t = ptrs(ts);
        let op = match op {
            ReduceOp::Sum => 0,
            ReduceOp::Max => 1,
            ReduceOp::Min => 2,
        };
        // SAFETY: the handle is live; t holds t.len() pointers to live at::Tensor objects
        // borrowed from `ts` for the whole call (the shim waits for every collective before
        // it returns, even after a failure, so none writes into them later); the shim
        // catches every C++ exception.
        check(unsafe { ktorch_pg_allreduce_(self.raw(), t.as_ptr(), t.len(), op) })
    }

    /// In-place broadcast of each tensor from rank `root`: afterwards every rank holds root's
    /// values. Bucketed as [`ProcessGroup::allreduce_`]; waits for completion.
    pub fn broadcast_(&self, ts: &[impl Borrow<Tensor>], root: i64) -> Result<()> {
        let t = ptrs(ts);
        // SAFETY: as in allreduce_.
        check(unsafe { ktorch_pg_broadcast_(self.raw(), t.as_ptr(), t.len(), root) })
    }

    /// Every rank's `t` (of the same shape and dtype on every rank), in rank order, as new
    /// tensors on `t`'s device.
    pub fn allgather(&self, t: &Tensor) -> Result<Vec<Tensor>> {
        let n = usize::try_from(self.size)
            .map_err(|_| Error(format!("allgather: invalid group size {}", self.size)))?;
        let mut out: Vec<*mut C_tensor> = vec![std::ptr::null_mut(); n];
        // SAFETY: the handle is live; `t` is a live tensor borrowed for the call; `out` has
        // room for n pointers, which the shim fills with new at::Tensor handles that we own
        // (none are left allocated on error).
        check(unsafe { ktorch_pg_allgather(self.raw(), t.as_ptr(), out.as_mut_ptr(), n) })?;
        if out.iter().any(|p| p.is_null()) {
            // cannot happen after a success; free what came back rather than leak it
            for p in out.into_iter().filter(|p| !p.is_null()) {
                // SAFETY: a non-null pointer is a new handle we own (see above).
                drop(unsafe { Tensor::from_ptr(p) });
            }
            return Err(Error("allgather: a tensor is missing".into()));
        }
        Ok(out
            .into_iter()
            // SAFETY: each is a non-null at::Tensor* from `new`, owned by us alone; the Tensor
            // takes it over and deletes it once.
            .map(|p| unsafe { Tensor::from_ptr(p) })
            .collect())
    }

    /// Waits until every rank has called it.
    pub fn barrier(&self) -> Result<()> {
        // SAFETY: the handle is live; the shim catches every C++ exception.
        check(unsafe { ktorch_pg_barrier(self.raw()) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    fn free_port() -> u16 {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    }

    fn solo() -> ProcessGroup {
        ProcessGroup::gloo("127.0.0.1", free_port(), 0, 1, Duration::from_secs(20)).expect("gloo")
    }

    fn register(pg: &ProcessGroup, name: &str) -> Result<()> {
        let c = cstring("name", name)?;
        // SAFETY: a live handle and a NUL-terminated name living across the call.
        check(unsafe { ktorch_pg_register(pg.raw(), c.as_ptr()) })
    }

    fn unregister(name: &str) -> Result<()> {
        let c = cstring("name", name)?;
        // SAFETY: a NUL-terminated name living across the call.
        check(unsafe { ktorch_pg_unregister(c.as_ptr()) })
    }

    #[test]
    fn resolving_an_unknown_name_is_an_error() {
        let e = ProcessGroup::resolve("no-such-group").expect_err("no group");
        assert!(e.0.contains("no-such-group"), "{e}");
        let e = ProcessGroup::resolve("a\0b").expect_err("NUL");
        assert!(e.0.contains("NUL"), "{e}");
    }

    #[test]
    fn a_registered_group_resolves_to_the_same_group() {
        let pg = solo();
        let name = format!("ktorch-test-{}", std::process::id());
        register(&pg, &name).expect("register");
        let r = ProcessGroup::resolve(&name).expect("resolve");
        assert_eq!(
            (r.rank(), r.size(), r.backend()),
            (0, 1, "gloo".to_string())
        );
        assert!(r.same(&pg) && pg.same(&r) && !r.same(&solo()));
        drop(pg); // the registry and `r` still hold the group
        let t = Tensor::from_slice(&[1.0f32, 2.0]);
        r.allreduce_(&[&t], ReduceOp::Sum).expect("allreduce");
        assert_eq!(Vec::<f32>::try_from(&t).expect("vec"), [1.0, 2.0]);
        unregister(&name).expect("unregister");
        assert!(ProcessGroup::resolve(&name).is_err());
    }

    #[test]
    fn bad_arguments_are_errors_before_any_connection() {
        let d = Duration::from_secs(1);
        for (rank, size) in [(0, 0), (1, 1), (-1, 2), (2, 2)] {
            let e = ProcessGroup::gloo("127.0.0.1", 1, rank, size, d).expect_err("range");
            assert!(e.0.contains("rank") || e.0.contains("size"), "{e}");
        }
        let e = ProcessGroup::gloo("127.0.0.1", 1, 0, 1, Duration::ZERO).expect_err("timeout");
        assert!(e.0.contains("timeout"), "{e}");
        assert!(ProcessGroup::gloo("a\0b", 1, 0, 1, d).is_err());
    }

    #[test]
    fn one_rank_collectives_and_input_checks() {
        let pg = solo();
        assert_eq!(
            format!("{pg:?}"),
            r#"ProcessGroup { backend: "gloo", rank: 0, size: 1 }"#
        );
        let a = Tensor::from_slice(&[1i64, -2, 3]);
        let b = Tensor::from_slice(&[0.5f64]).reshape([1, 1]);
        pg.allreduce_(&[&a, &b], ReduceOp::Max).expect("allreduce");
        pg.broadcast_(&[&a, &b], 0).expect("broadcast");
        assert_eq!(Vec::<i64>::try_from(&a).expect("vec"), [1, -2, 3]);
        let g = pg.allgather(&b).expect("allgather");
        assert_eq!(g.len(), 1);
        assert!(g[0].equal(&b));
        pg.barrier().expect("barrier");
        pg.allreduce_(&[] as &[Tensor], ReduceOp::Sum)
            .expect("no tensors");
        // what the shim refuses before sending anything
        let undefined = Tensor::new();
        let e = pg
            .allreduce_(&[&a, &undefined], ReduceOp::Sum)
            .expect_err("undefined");
        assert!(e.0.contains("tensors[1]: undefined"), "{e}");
        let strided = Tensor::zeros([2, 3], (Kind::Float, Device::Cpu)).tr();
        let e = pg.broadcast_(&[&strided], 0).expect_err("non-contiguous");
        assert!(e.0.contains("not a contiguous"), "{e}");
        let e = pg.allgather(&strided).expect_err("non-contiguous");
        assert!(e.0.contains("not a contiguous"), "{e}");
        let e = pg.allgather(&undefined).expect_err("undefined");
        assert!(e.0.contains("undefined"), "{e}");
        let e = pg.broadcast_(&[&a], 1).expect_err("root");
        assert!(e.0.contains("root 1 out of range"), "{e}");
        // the group still works after refused calls
        pg.allreduce_(&[&a], ReduceOp::Sum).expect("allreduce");
    }
}
