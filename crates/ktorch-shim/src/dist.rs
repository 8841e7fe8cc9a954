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
        agent_store: bool,
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
    fn ktorch_gr_new(
        pg: *const c_void,
        params: Ptrs,
        n: usize,
        place: *const C_tensor,
        first_cap: i64,
        cap: i64,
        out: *mut *mut c_void,
    ) -> Msg;
    fn ktorch_gr_free(r: *mut c_void);
    fn ktorch_gr_info(r: *mut c_void, buckets: *mut i64, early: *mut i64) -> Msg;
    fn ktorch_gr_begin(r: *mut c_void) -> Msg;
    fn ktorch_gr_finish(r: *mut c_void, loss: *const C_tensor, out: *mut *mut C_tensor) -> Msg;
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
        Self::gloo_at(host, port, rank, size, timeout, false)
    }

    /// A new gloo group for a process started by `torchrun` (or any launcher that sets
    /// torch's environment variables), as `torch.distributed.init_process_group("gloo")`
    /// makes it from them: rank `RANK` of `WORLD_SIZE`, the store at `MASTER_ADDR:MASTER_PORT`
    /// (torchrun's agent serves it when `TORCHELASTIC_USE_AGENT_STORE` is `True`, else rank 0
    /// does, as in [`ProcessGroup::gloo`]). An error naming the variable when one is missing
    /// or not a number.
    pub fn gloo_from_env(timeout: Duration) -> Result<ProcessGroup> {
        let var = |k: &str| {
            std::env::var(k).map_err(|_| {
                Error(format!(
                    "gloo from the environment: {k} is not set (start the process with torchrun)"
                ))
            })
        };
        let num = |k: &str| -> Result<i64> {
            let v = var(k)?;
            v.trim().parse().map_err(|_| {
                Error(format!(
                    "gloo from the environment: {k}={v:?} is not an integer"
                ))
            })
        };
        let (rank, size) = (num("RANK")?, num("WORLD_SIZE")?);
        let host = var("MASTER_ADDR")?;
        let port = u16::try_from(num("MASTER_PORT")?).map_err(|_| {
            Error("gloo from the environment: MASTER_PORT is not a port (0 to 65535)".into())
        })?;
        let agent = std::env::var("TORCHELASTIC_USE_AGENT_STORE").is_ok_and(|v| v == "True");
        Self::gloo_at(&host, port, rank, size, timeout, agent)
    }

    fn gloo_at(
        host: &str,
        port: u16,
        rank: i64,
        size: i64,
        timeout: Duration,
        agent_store: bool,
    ) -> Result<ProcessGroup> {
        let h = cstring("host", host)?;
        // whole milliseconds, at least one for a positive timeout
        let ms = i64::try_from(timeout.as_millis()).unwrap_or(i64::MAX);
        let ms = if ms == 0 && !timeout.is_zero() { 1 } else { ms };
        let mut out: *mut c_void = std::ptr::null_mut();
        // SAFETY: h is a NUL-terminated string living across the call; `out` is a live local
        // the shim sets to a new handle that we own (left null on error). The shim checks
        // rank, size and timeout and catches every C++ exception.
        check(unsafe { ktorch_pg_gloo(h.as_ptr(), port, rank, size, ms, agent_store, &mut out) })?;
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

/// Sums the gradients of a set of parameters over a group's ranks while backward runs, as
/// PyTorch's DistributedDataParallel does (its reducer's buckets and autograd hooks), for
/// ranks that each train the same parameters on their own rows:
///
/// - the gradients are grouped into buckets per dtype and device, in reverse order of the
///   parameters (the order backward produces them): the first bucket of at most `first_cap`
///   bytes, so that communication starts early, the others of at most `cap`;
/// - between [`begin`](GradReducer::begin) and [`finish`](GradReducer::finish), a hook on each
///   parameter's gradient accumulator marks its gradient ready, and a bucket whose gradients
///   are all ready is copied into one flat buffer and its allreduce (a sum) launched while
///   backward goes on. Buckets are launched strictly in order, so every rank issues the same
///   collectives in the same order whatever the order its gradients come in;
/// - [`finish`](GradReducer::finish) launches the buckets left (a parameter without a
///   gradient adds zeros) with this rank's loss and, per parameter, whether this rank had a
///   gradient appended to the last one (one collective for a small model), waits for them,
///   copies the sums back into the gradients, leaves without a gradient a parameter no rank
///   had one for, and returns the sum of the ranks' losses.
///
/// Unlike c10d's Reducer it sums rather than averages (the caller weights each rank's loss),
/// and a rank need not run backward at all: a rank without rows calls `begin`, then `finish`.
/// A sparse gradient is made dense. Dropping the reducer removes its hooks.
pub struct GradReducer {
    ptr: NonNull<c_void>,
}

// SAFETY: the C++ reducer guards its state with a mutex (its hooks may run on autograd's
// device threads); the handle is owned by this value alone.
unsafe impl Send for GradReducer {}
// SAFETY: see Send.
unsafe impl Sync for GradReducer {}

impl Drop for GradReducer {
    fn drop(&mut self) {
        // SAFETY: ptr is the handle from dist.cpp, owned by this value alone and freed once
        // here; ktorch_gr_free catches every C++ exception.
        unsafe { ktorch_gr_free(self.ptr.as_ptr()) }
    }
}

impl fmt::Debug for GradReducer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (buckets, early) = self.info().unwrap_or((-1, -1));
        f.debug_struct("GradReducer")
            .field("buckets", &buckets)
            .field("early", &early)
            .finish()
    }
}

impl GradReducer {
    /// The number of buckets, and how many of them the last backward launched before
    /// [`finish`](GradReducer::finish).
    pub fn info(&self) -> Result<(i64, i64)> {
        let (mut b, mut e) = (0i64, 0i64);
        // SAFETY: the handle is live; the out pointers are to live locals.
        check(unsafe { ktorch_gr_info(self.ptr.as_ptr(), &mut b, &mut e) })?;
        Ok((b, e))
    }

    /// Before a backward whose gradients are to be summed (the gradients should be none).
    pub fn begin(&self) -> Result<()> {
        // SAFETY: the handle is live; the shim catches every C++ exception.
        check(unsafe { ktorch_gr_begin(self.ptr.as_ptr()) })
    }

    /// After the backward begun with [`begin`](GradReducer::begin) (or in its place): every
    /// gradient summed over the ranks; `loss` is this rank's one-element loss (None: zero).
    /// Returns the sum of the ranks' losses, a float64 scalar. Every rank calls it once per
    /// `begin`; an error when a collective fails.
    pub fn finish(&self, loss: Option<&Tensor>) -> Result<Tensor> {
        let mut out: *mut C_tensor = std::ptr::null_mut();
        let l = loss.map_or(std::ptr::null(), |t| t.as_ptr());
        // SAFETY: the handle is live; `l` is null or a live tensor borrowed for the call; on
        // success `out` is a new at::Tensor handle that we own (null on error). The shim
        // waits for every collective it launched before it returns.
        check(unsafe { ktorch_gr_finish(self.ptr.as_ptr(), l, &mut out) })?;
        if out.is_null() {
            return Err(Error("gradient reducer: no loss returned".into()));
        }
        // SAFETY: a non-null at::Tensor* from `new`, owned by us alone.
        Ok(unsafe { Tensor::from_ptr(out) })
    }
}

impl ProcessGroup {
    /// A [`GradReducer`] over `params` (leaves that require grad, each once, with the same
    /// shapes and dtypes in the same order on every rank). `place` is a tensor on the device
    /// where the loss and flags go when no bucket holds them. `first_cap` and `cap` are the
    /// bucket sizes in bytes (DDP's are 1 MiB and 25 MiB).
    pub fn grad_reducer(
        &self,
        params: &[impl Borrow<Tensor>],
        place: &Tensor,
        first_cap: i64,
        cap: i64,
    ) -> Result<GradReducer> {
        let t = ptrs(params);
        let mut out: *mut c_void = std::ptr::null_mut();
        // SAFETY: the handle is live; t holds t.len() pointers to live tensors borrowed for
        // the call (the shim keeps its own references); `place` is live; on success `out` is
        // a new handle owned by the GradReducer.
        check(unsafe {
            ktorch_gr_new(
                self.raw(),
                t.as_ptr(),
                t.len(),
                place.as_ptr(),
                first_cap,
                cap,
                &mut out,
            )
        })?;
        let ptr = NonNull::new(out)
            .ok_or_else(|| Error("gradient reducer: no handle returned".into()))?;
        Ok(GradReducer { ptr })
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
    fn a_group_from_the_environment_needs_torchruns_variables() {
        if std::env::var_os("RANK").is_some() {
            return; // started by a launcher: the variables are there
        }
        let e = ProcessGroup::gloo_from_env(Duration::from_secs(1)).expect_err("no RANK");
        assert_eq!(
            e.0,
            "gloo from the environment: RANK is not set (start the process with torchrun)"
        );
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

    /// Rank `rank` of a 2-rank gloo group in this process: rank 0 runs backward on
    /// `x @ w1 @ w2` (w3 unused), rank 1 has no rows. Returns the gradients after `finish`,
    /// the summed loss and the reducer's (buckets, early launches).
    fn reduce_on(rank: i64, port: u16) -> (Vec<Option<Tensor>>, f64, (i64, i64)) {
        let pg =
            ProcessGroup::gloo("127.0.0.1", port, rank, 2, Duration::from_secs(30)).expect("gloo");
        let opts = (Kind::Double, Device::Cpu);
        let w3 = Tensor::ones([2], opts).set_requires_grad(true);
        let w1 = (Tensor::arange(12, opts).reshape([3, 4]) / 10.0).set_requires_grad(true);
        let w2 = (Tensor::arange(8, opts).reshape([4, 2]) / 7.0).set_requires_grad(true);
        let params = [w3.shallow_clone(), w1.shallow_clone(), w2.shallow_clone()];
        let place = Tensor::zeros([1], opts);
        // reversed: [w2] (over the first cap), [w1] (over the cap), [w3]
        let r = pg.grad_reducer(&params, &place, 8, 64).expect("reducer");
        let mut total = 0.0;
        for _ in 0..2 {
            crate::release_grads(&params).expect("release");
            r.begin().expect("begin");
            let loss = if rank == 0 {
                let x = Tensor::arange(3, opts).reshape([1, 3]) + 1.0;
                let l = x.matmul(&w1).matmul(&w2).sum(Kind::Double);
                l.backward();
                Some(l)
            } else {
                None
            };
            total = r.finish(loss.as_ref()).expect("finish").double_value(&[]);
        }
        let grads = params
            .iter()
            .map(|p| {
                let g = p.grad();
                g.defined().then_some(g)
            })
            .collect();
        (grads, total, r.info().expect("info"))
    }

    #[test]
    fn a_reducer_sums_gradients_while_backward_runs() {
        let port = free_port();
        let other = std::thread::spawn(move || reduce_on(1, port));
        let (g0, l0, i0) = reduce_on(0, port);
        let (g1, l1, i1) = other.join().expect("rank 1");
        // what one process gets from the same backward
        let opts = (Kind::Double, Device::Cpu);
        let w1 = (Tensor::arange(12, opts).reshape([3, 4]) / 10.0).set_requires_grad(true);
        let w2 = (Tensor::arange(8, opts).reshape([4, 2]) / 7.0).set_requires_grad(true);
        let x = Tensor::arange(3, opts).reshape([1, 3]) + 1.0;
        let l = x.matmul(&w1).matmul(&w2).sum(Kind::Double);
        l.backward();
        for g in [&g0, &g1] {
            assert!(
                g[0].is_none(),
                "a parameter no rank had a gradient for keeps none"
            );
            assert!(g[1].as_ref().expect("w1").equal(&w1.grad()));
            assert!(g[2].as_ref().expect("w2").equal(&w2.grad()));
        }
        assert_eq!(l0, l.double_value(&[]));
        assert_eq!(l1, l0);
        // three buckets; rank 0 launched two during backward, rank 1 (no backward) none
        assert_eq!(i0, (3, 2));
        assert_eq!(i1, (3, 0));
    }

    #[test]
    fn a_reducer_refuses_bad_arguments_and_calls_out_of_order() {
        let pg = solo();
        let place = Tensor::zeros([1], (Kind::Float, Device::Cpu));
        let p = Tensor::ones([2], (Kind::Float, Device::Cpu)).set_requires_grad(true);
        let e = pg.grad_reducer(&[&p], &place, 0, 1).expect_err("cap");
        assert!(e.0.contains("bucket caps must be positive"), "{e}");
        let e = pg
            .grad_reducer(&[&p], &Tensor::new(), 1, 1)
            .expect_err("place");
        assert!(e.0.contains("null argument"), "{e}");
        let e = pg
            .grad_reducer(&[&Tensor::new()], &place, 1, 1)
            .expect_err("undefined");
        assert!(e.0.contains("parameter 0 undefined"), "{e}");
        let r = pg
            .grad_reducer(&[&p], &place, 1 << 20, 1 << 20)
            .expect("reducer");
        let e = r.finish(None).expect_err("order");
        assert!(e.0.contains("finish without begin"), "{e}");
        // one rank: the gradient and loss as they are; float32 loss and flags ride along
        r.begin().expect("begin");
        let l = (&p * 3.0).sum(Kind::Float);
        l.backward();
        let s = r.finish(Some(&l)).expect("finish");
        assert_eq!(s.kind(), Kind::Double);
        assert_eq!(s.double_value(&[]), 6.0);
        assert_eq!(Vec::<f32>::try_from(&p.grad()).expect("vec"), [3.0, 3.0]);
        assert_eq!(r.info().expect("info"), (1, 0));
        assert!(format!("{r:?}").starts_with("GradReducer { buckets: 1"));
        // a sparse gradient (an embedding's) is made dense
        let w = Tensor::ones([4, 2], (Kind::Float, Device::Cpu)).set_requires_grad(true);
        let s = pg.grad_reducer(&[&w], &place, 1, 1).expect("reducer");
        s.begin().expect("begin");
        let i = Tensor::from_slice(&[1i64, 1, 3]);
        Tensor::embedding(&w, &i, -1, false, true)
            .sum(Kind::Float)
            .backward();
        assert!(w.grad().is_sparse());
        let z = s.finish(None).expect("finish");
        assert_eq!(z.double_value(&[]), 0.0);
        assert!(!w.grad().is_sparse());
        assert_eq!(
            Vec::<f32>::try_from(&w.grad().view([-1])).expect("vec"),
            [0.0, 0.0, 2.0, 2.0, 0.0, 0.0, 1.0, 1.0]
        );
        // dropped: its hooks go, backward goes on as usual
        drop(r);
        crate::release_grads(&[&p]).expect("release");
        (&p * 2.0).sum(Kind::Float).backward();
        assert_eq!(Vec::<f32>::try_from(&p.grad()).expect("vec"), [2.0, 2.0]);
    }
}
