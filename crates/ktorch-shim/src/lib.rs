//! libtorch calls that tch does not bind, through a small C++ shim (`src/shim.cpp`).
//!
//! Every libtorch operation that ktorch needs and tch lacks goes here: a C++ function in
//! `shim.cpp` (process groups: `dist.cpp`, module [`dist`]) that takes tensors as arrays of
//! `const at::Tensor*` (a tch [`Tensor`]'s `as_ptr()`), catches every C++ exception and
//! returns its message, and a safe wrapper below that turns the message into an [`Error`].
//!
//! The fused optimizer kernels update every tensor of their lists in one call. As in
//! torch.optim, `grad_scale` and `found_inf` are not given. libtorch's CPU kernels read
//! `numel()` elements from each tensor's data without checking, so the shim checks first
//! and returns an error unless every list has one tensor per parameter (optional lists: or
//! none) and every tensor is defined, dense, contiguous and of its parameter's sizes, dtype
//! and device (step tensors: one element each). Empty lists do nothing.

// The FFI calls below are this crate's purpose; each unsafe block says why it is sound.
#![allow(unsafe_code)]

use std::borrow::Borrow;
use std::ffi::{c_char, CStr};
use std::fmt;

use tch::Tensor;
use torch_sys::C_tensor;

pub mod cuda;
pub mod dist;

/// An error raised by libtorch inside a shim call: its message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(pub String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

/// The result of a shim call.
pub type Result<T> = std::result::Result<T, Error>;

type Msg = *mut c_char;
type Ptrs = *const *const C_tensor;

extern "C" {
    fn ktorch_autocast(
        cuda: bool,
        on: bool,
        dtype: i32,
        was_on: *mut bool,
        was_dtype: *mut i32,
    ) -> Msg;
    fn ktorch_foreach_add_scalar_(tensors: Ptrs, n: usize, scalar: f64) -> Msg;
    fn ktorch_cpu_rng_state(input: *const C_tensor, out: *mut *mut C_tensor) -> Msg;
    fn ktorch_fused_plan(
        params: Ptrs,
        n: usize,
        cpu_only: bool,
        grads: *mut *mut C_tensor,
        place: *mut i64,
    ) -> Msg;
    fn ktorch_fused_sgd_(
        params: Ptrs,
        nparams: usize,
        grads: Ptrs,
        ngrads: usize,
        bufs: Ptrs,
        nbufs: usize,
        weight_decay: f64,
        momentum: f64,
        lr: f64,
        dampening: f64,
        nesterov: bool,
        maximize: bool,
        is_first_step: bool,
    ) -> Msg;
    fn ktorch_fused_adam_(
        params: Ptrs,
        nparams: usize,
        grads: Ptrs,
        ngrads: usize,
        exp_avgs: Ptrs,
        navgs: usize,
        exp_avg_sqs: Ptrs,
        nsqs: usize,
        max_exp_avg_sqs: Ptrs,
        nmax: usize,
        steps: Ptrs,
        nsteps: usize,
        lr: f64,
        beta1: f64,
        beta2: f64,
        weight_decay: f64,
        eps: f64,
        amsgrad: bool,
        maximize: bool,
        decoupled: bool,
    ) -> Msg;
    fn ktorch_fused_adagrad_(
        params: Ptrs,
        nparams: usize,
        grads: Ptrs,
        ngrads: usize,
        sums: Ptrs,
        nsums: usize,
        steps: Ptrs,
        nsteps: usize,
        lr: f64,
        lr_decay: f64,
        weight_decay: f64,
        eps: f64,
        maximize: bool,
    ) -> Msg;
    fn ktorch_release_grads(tensors: Ptrs, n: usize) -> Msg;
    fn ktorch_foreach_rmsprop_(
        params: Ptrs,
        nparams: usize,
        grads: Ptrs,
        ngrads: usize,
        square_avgs: Ptrs,
        nsq: usize,
        grad_avgs: Ptrs,
        ngavg: usize,
        bufs: Ptrs,
        nbufs: usize,
        lr: f64,
        alpha: f64,
        eps: f64,
        weight_decay: f64,
        momentum: f64,
        centered: bool,
    ) -> Msg;
    fn ktorch_foreach_norm_total(tensors: Ptrs, n: usize, out: *mut *mut C_tensor) -> Msg;
    fn ktorch_foreach_lamb_(
        params: Ptrs,
        nparams: usize,
        grads: Ptrs,
        ngrads: usize,
        exp_avgs: Ptrs,
        navgs: usize,
        exp_avg_sqs: Ptrs,
        nsqs: usize,
        bias_correction1: *const f64,
        nbc1: usize,
        bias_correction2_sqrt: *const f64,
        nbc2: usize,
        clip: *const C_tensor,
        lr: f64,
        beta1: f64,
        beta2: f64,
        eps: f64,
        weight_decay: f64,
        trustclip: bool,
        trustmin: f64,
        trustmax: f64,
    ) -> Msg;
}

/// The `at::Tensor*` of each tensor, to pass as an array with its length.
fn ptrs<T: Borrow<Tensor>>(ts: &[T]) -> Vec<*const C_tensor> {
    ts.iter().map(|t| t.borrow().as_ptr()).collect()
}

/// `Ok` for a null message, else the message as an error (and the message freed).
fn check(msg: Msg) -> Result<()> {
    if msg.is_null() {
        return Ok(());
    }
    // SAFETY: a non-null message comes from strdup in shim.cpp: a valid NUL-terminated
    // string allocated by malloc, owned by us, read once here and then freed once.
    let s = unsafe { CStr::from_ptr(msg) }
        .to_string_lossy()
        .into_owned();
    // SAFETY: see above; msg is not used after this.
    unsafe { libc::free(msg.cast()) };
    Err(Error(s))
}

/// Mixed precision for one region, as `torch.autocast(device_type, dtype)`: while the
/// guard lives, eligible ops on the CPU (or on CUDA, `cuda`) run in the guard's dtype;
/// dropping it puts back the autocast state it found. Autocast state is per thread.
#[derive(Debug)]
pub struct Autocast {
    cuda: bool,
    was_on: bool,
    was_dtype: i32,
}

impl Autocast {
    /// Turns autocast on for the CPU (or CUDA) in `kind` (`Kind::BFloat16`, `Kind::Half`).
    pub fn enter(cuda: bool, kind: tch::Kind) -> Result<Autocast> {
        let mut a = Autocast {
            cuda,
            was_on: false,
            was_dtype: 0,
        };
        // SAFETY: the two out pointers are to live locals of this frame; the shim writes
        // them before it changes any state and catches every C++ exception.
        check(unsafe {
            ktorch_autocast(
                cuda,
                true,
                scalar_type(kind),
                &mut a.was_on,
                &mut a.was_dtype,
            )
        })?;
        Ok(a)
    }
}

impl Drop for Autocast {
    fn drop(&mut self) {
        let (mut on, mut dtype) = (self.was_on, self.was_dtype);
        // SAFETY: as in enter; leaving reads the flag and dtype given and writes nothing.
        // Restoring state that entering read cannot fail, so the message is dropped.
        let _ = check(unsafe {
            ktorch_autocast(self.cuda, false, self.was_dtype, &mut on, &mut dtype)
        });
    }
}

/// c10's ScalarType code of a tch kind (the order of c10's ScalarType enum).
fn scalar_type(kind: tch::Kind) -> i32 {
    use tch::Kind::*;
    match kind {
        Uint8 => 0,
        Int8 => 1,
        Int16 => 2,
        Int => 3,
        Int64 => 4,
        Half => 5,
        Float => 6,
        Double => 7,
        ComplexHalf => 8,
        ComplexFloat => 9,
        ComplexDouble => 10,
        Bool => 11,
        QInt8 => 12,
        QUInt8 => 13,
        QInt32 => 14,
        BFloat16 => 15,
        _ => -1,
    }
}

/// The state of libtorch's default CPU generator (what `randn`, `randperm` and dropout
/// draw from on the CPU), as a byte tensor to give back to [`set_cpu_rng_state`].
pub fn cpu_rng_state() -> Result<Tensor> {
    let mut out: *mut C_tensor = std::ptr::null_mut();
    // SAFETY: `out` is a live local the shim fills with a new at::Tensor handle that we
    // own (tch's Tensor frees it once); the shim catches every C++ exception.
    check(unsafe { ktorch_cpu_rng_state(std::ptr::null(), &mut out) })?;
    if out.is_null() {
        return Err(Error("generator state: none returned".into()));
    }
    // SAFETY: a non-null pointer is the new handle described above.
    Ok(unsafe { Tensor::from_ptr(out) })
}

/// Sets libtorch's default CPU generator to a state from [`cpu_rng_state`]; a tensor
/// that is not such a state is an error and changes nothing.
pub fn set_cpu_rng_state(state: &Tensor) -> Result<()> {
    let mut out: *mut C_tensor = std::ptr::null_mut();
    // SAFETY: `state` is a live tensor borrowed for the call; libtorch checks its size and
    // contents before it sets anything, and the shim catches every C++ exception.
    check(unsafe { ktorch_cpu_rng_state(state.as_ptr(), &mut out) })
}

/// Where a parameter goes in a fused optimizer step ([`fused_plan`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// No gradient: the step skips it.
    NoGrad,
    /// The per-parameter update: the fused kernels cannot take it.
    Single,
    /// The fused call of the n-th (device, dtype) met, in order.
    Fused(usize),
}

/// For each parameter, its gradient (None without one) and its [`Slot`], in one call
/// rather than a dozen reads per parameter. `cpu_only`: the kernels exist on the CPU
/// alone (adagrad). The fused kernels take float32, float64, float16 and bfloat16
/// parameters on the CPU or CUDA with dense, contiguous gradients of the same dtype,
/// device and size.
pub fn fused_plan(params: &[Tensor], cpu_only: bool) -> Result<(Vec<Option<Tensor>>, Vec<Slot>)> {
    let p = ptrs(params);
    let n = p.len();
    let mut grads: Vec<*mut C_tensor> = vec![std::ptr::null_mut(); n];
    let mut place = vec![0i64; n];
    // SAFETY: p holds n pointers to live at::Tensor objects borrowed from `params`; grads
    // and place have room for n entries each, which the shim fills (grads with new
    // at::Tensor handles that we own, or NULL; none are left allocated on error).
    check(unsafe {
        ktorch_fused_plan(
            p.as_ptr(),
            n,
            cpu_only,
            grads.as_mut_ptr(),
            place.as_mut_ptr(),
        )
    })?;
    let grads = grads
        .into_iter()
        // SAFETY: a non-null pointer is a new at::Tensor handle the shim gave us to own,
        // which tch's Tensor frees once on drop.
        .map(|g| (!g.is_null()).then(|| unsafe { Tensor::from_ptr(g) }))
        .collect();
    let slots = place
        .into_iter()
        .map(|k| match k {
            -1 => Slot::NoGrad,
            k if k >= 0 => Slot::Fused(k as usize),
            _ => Slot::Single,
        })
        .collect();
    Ok((grads, slots))
}

/// Sets every tensor's gradient to None (`p.grad = None`), running no op.
pub fn release_grads(tensors: &[impl Borrow<Tensor>]) -> Result<()> {
    let t = ptrs(tensors);
    // SAFETY: t holds t.len() pointers to live at::Tensor objects (borrowed from `tensors`
    // for the whole call); the shim resets each one's gradient slot, which the tensor's
    // autograd metadata owns, and catches every C++ exception.
    check(unsafe { ktorch_release_grads(t.as_ptr(), t.len()) })
}

/// `torch._foreach_add_(tensors, scalar)`: adds `scalar` to every tensor in place.
pub fn foreach_add_scalar_(tensors: &[impl Borrow<Tensor>], scalar: f64) -> Result<()> {
    let t = ptrs(tensors);
    // SAFETY: t holds t.len() pointers to live at::Tensor objects (borrowed from `tensors`
    // for the whole call); the shim only reads them and catches every C++ exception.
    check(unsafe { ktorch_foreach_add_scalar_(t.as_ptr(), t.len(), scalar) })
}

/// Settings of [`fused_sgd_`], named as in `torch._fused_sgd_`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SgdSettings {
    pub weight_decay: f64,
    pub momentum: f64,
    pub lr: f64,
    pub dampening: f64,
    pub nesterov: bool,
    pub maximize: bool,
}

/// `torch._fused_sgd_(params, grads, bufs, ...)`: one SGD step for every parameter.
/// `bufs` are the momentum buffers (empty when `momentum` is 0); with `is_first_step`
/// the kernel fills them with the (decayed) gradients, as torch.optim's first step does.
pub fn fused_sgd_(
    params: &[impl Borrow<Tensor>],
    grads: &[impl Borrow<Tensor>],
    bufs: &[impl Borrow<Tensor>],
    s: &SgdSettings,
    is_first_step: bool,
) -> Result<()> {
    let (p, g, b) = (ptrs(params), ptrs(grads), ptrs(bufs));
    // SAFETY: each array holds as many pointers as its length says, to live at::Tensor
    // objects borrowed for the whole call; length mismatches are libtorch errors, caught
    // and returned by the shim.
    check(unsafe {
        ktorch_fused_sgd_(
            p.as_ptr(),
            p.len(),
            g.as_ptr(),
            g.len(),
            b.as_ptr(),
            b.len(),
            s.weight_decay,
            s.momentum,
            s.lr,
            s.dampening,
            s.nesterov,
            s.maximize,
            is_first_step,
        )
    })
}

/// Settings of [`fused_adam_`], named as in `torch._fused_adam_`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamSettings {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub weight_decay: f64,
    pub eps: f64,
    pub amsgrad: bool,
    pub maximize: bool,
    /// AdamW's decoupled weight decay (`torch._fused_adamw_`).
    pub decoupled: bool,
}

/// The state lists of [`fused_adam_`]: `max_exp_avg_sqs` is empty without amsgrad;
/// `steps` are 0-dim float32 tensors on the parameters' device, already incremented
/// for this step (as torch.optim does with `_foreach_add_` before the fused call).
#[derive(Debug, Clone, Copy)]
pub struct AdamState<'a> {
    pub exp_avgs: &'a [Tensor],
    pub exp_avg_sqs: &'a [Tensor],
    pub max_exp_avg_sqs: &'a [Tensor],
    pub steps: &'a [Tensor],
}

/// `torch._fused_adam_` (or `_fused_adamw_`): one Adam step for every parameter.
pub fn fused_adam_(
    params: &[impl Borrow<Tensor>],
    grads: &[impl Borrow<Tensor>],
    st: AdamState<'_>,
    s: &AdamSettings,
) -> Result<()> {
    let (p, g) = (ptrs(params), ptrs(grads));
    let (m, v, vmax, k) = (
        ptrs(st.exp_avgs),
        ptrs(st.exp_avg_sqs),
        ptrs(st.max_exp_avg_sqs),
        ptrs(st.steps),
    );
    // SAFETY: as in fused_sgd_: arrays of live at::Tensor pointers with their lengths,
    // borrowed for the call; libtorch errors come back as messages.
    check(unsafe {
        ktorch_fused_adam_(
            p.as_ptr(),
            p.len(),
            g.as_ptr(),
            g.len(),
            m.as_ptr(),
            m.len(),
            v.as_ptr(),
            v.len(),
            vmax.as_ptr(),
            vmax.len(),
            k.as_ptr(),
            k.len(),
            s.lr,
            s.beta1,
            s.beta2,
            s.weight_decay,
            s.eps,
            s.amsgrad,
            s.maximize,
            s.decoupled,
        )
    })
}

/// Settings of [`fused_adagrad_`], named as in `torch._fused_adagrad_`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdagradSettings {
    pub lr: f64,
    pub lr_decay: f64,
    pub weight_decay: f64,
    pub eps: f64,
    pub maximize: bool,
}

/// `torch._fused_adagrad_`: one Adagrad step for every parameter (libtorch has a CPU
/// kernel only). `steps` as for [`fused_adam_`].
pub fn fused_adagrad_(
    params: &[impl Borrow<Tensor>],
    grads: &[impl Borrow<Tensor>],
    sums: &[impl Borrow<Tensor>],
    steps: &[impl Borrow<Tensor>],
    s: &AdagradSettings,
) -> Result<()> {
    let (p, g, sm, k) = (ptrs(params), ptrs(grads), ptrs(sums), ptrs(steps));
    // SAFETY: as in fused_sgd_.
    check(unsafe {
        ktorch_fused_adagrad_(
            p.as_ptr(),
            p.len(),
            g.as_ptr(),
            g.len(),
            sm.as_ptr(),
            sm.len(),
            k.as_ptr(),
            k.len(),
            s.lr,
            s.lr_decay,
            s.weight_decay,
            s.eps,
            s.maximize,
        )
    })
}

/// Settings of [`foreach_rmsprop_`], named as in torch.optim.RMSprop.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RmspropSettings {
    pub lr: f64,
    pub alpha: f64,
    pub eps: f64,
    pub weight_decay: f64,
    pub momentum: f64,
    pub centered: bool,
}

/// torch.optim.rmsprop `_multi_tensor_rmsprop` (not maximize, not capturable) in one call:
/// the update written with `_foreach_*` ops for every parameter. `grad_avgs` are given when
/// `centered` (else empty), `bufs` (momentum buffers, zero at first) when `momentum > 0`
/// (else empty). Step counts are the caller's.
pub fn foreach_rmsprop_(
    params: &[impl Borrow<Tensor>],
    grads: &[impl Borrow<Tensor>],
    square_avgs: &[impl Borrow<Tensor>],
    grad_avgs: &[impl Borrow<Tensor>],
    bufs: &[impl Borrow<Tensor>],
    s: &RmspropSettings,
) -> Result<()> {
    let (p, g, sq, ga, b) = (
        ptrs(params),
        ptrs(grads),
        ptrs(square_avgs),
        ptrs(grad_avgs),
        ptrs(bufs),
    );
    // SAFETY: as in fused_sgd_.
    check(unsafe {
        ktorch_foreach_rmsprop_(
            p.as_ptr(),
            p.len(),
            g.as_ptr(),
            g.len(),
            sq.as_ptr(),
            sq.len(),
            ga.as_ptr(),
            ga.len(),
            b.as_ptr(),
            b.len(),
            s.lr,
            s.alpha,
            s.eps,
            s.weight_decay,
            s.momentum,
            s.centered,
        )
    })
}

/// `torch.norm(torch.stack(torch._foreach_norm(tensors)))`: the 2-norm of the tensors'
/// 2-norms (the norm of all their elements together), as a new tensor. An error for no
/// tensors, or tensors whose norms cannot be stacked (different devices).
pub fn foreach_norm_total(tensors: &[Tensor]) -> Result<Tensor> {
    let t = ptrs(tensors);
    let mut out: *mut C_tensor = std::ptr::null_mut();
    // SAFETY: t holds t.len() pointers to live at::Tensor objects (borrowed from `tensors`
    // for the whole call); on success the shim stores in `out` a tensor made with `new`,
    // which nothing else owns, and on error leaves it null.
    check(unsafe { ktorch_foreach_norm_total(t.as_ptr(), t.len(), &mut out) })?;
    if out.is_null() {
        return Err(Error("foreach_norm_total: no tensor returned".to_string()));
    }
    // SAFETY: `out` is a non-null at::Tensor* from `new` (see above), owned by us alone;
    // the Tensor takes it over and deletes it when dropped.
    Ok(unsafe { Tensor::from_ptr(out) })
}

/// Settings of [`foreach_lamb_`], named as in ktorch-core's lamb (rules 2-6 of
/// `optim/lamb.rs`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LambSettings {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
    pub trustclip: bool,
    pub trustmin: f64,
    pub trustmax: f64,
}

/// The state lists of [`foreach_lamb_`]: per parameter its buffers and, when bias
/// corrected (else both empty), `1 - beta1^t` and `sqrt(1 - beta2^t)` for its step `t`.
#[derive(Debug, Clone, Copy)]
pub struct LambState<'a> {
    pub exp_avgs: &'a [Tensor],
    pub exp_avg_sqs: &'a [Tensor],
    pub bias_correction1: &'a [f64],
    pub bias_correction2_sqrt: &'a [f64],
}

/// One LAMB step (ktorch-core's `optim/lamb.rs`, rules 2-6) for every parameter, written
/// with `_foreach_*` ops: gradients divided by `clip` (rule 1's `max(n, 1)`) when given,
/// the trust ratios computed for all parameters at once. Step counts are the caller's.
pub fn foreach_lamb_(
    params: &[impl Borrow<Tensor>],
    grads: &[impl Borrow<Tensor>],
    st: LambState<'_>,
    clip: Option<&Tensor>,
    s: &LambSettings,
) -> Result<()> {
    let (p, g, m, v) = (
        ptrs(params),
        ptrs(grads),
        ptrs(st.exp_avgs),
        ptrs(st.exp_avg_sqs),
    );
    let (bc1, bc2) = (st.bias_correction1, st.bias_correction2_sqrt);
    let c = clip.map_or(std::ptr::null(), Tensor::as_ptr);
    // SAFETY: as in fused_sgd_; the bias corrections are slices read for their lengths, and
    // `c` is null or points to a live at::Tensor borrowed for the call.
    check(unsafe {
        ktorch_foreach_lamb_(
            p.as_ptr(),
            p.len(),
            g.as_ptr(),
            g.len(),
            m.as_ptr(),
            m.len(),
            v.as_ptr(),
            v.len(),
            bc1.as_ptr(),
            bc1.len(),
            bc2.as_ptr(),
            bc2.len(),
            c,
            s.lr,
            s.beta1,
            s.beta2,
            s.eps,
            s.weight_decay,
            s.trustclip,
            s.trustmin,
            s.trustmax,
        )
    })
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod rng_tests {
    use super::*;

    #[test]
    fn the_cpu_generator_state_comes_back() {
        let s = cpu_rng_state().expect("state");
        let a = Tensor::randn([5], (tch::Kind::Float, tch::Device::Cpu));
        set_cpu_rng_state(&s).expect("set");
        let b = Tensor::randn([5], (tch::Kind::Float, tch::Device::Cpu));
        assert!(a.equal(&b));
        let e = set_cpu_rng_state(&Tensor::from_slice(&[1.0f32])).expect_err("not a state");
        assert!(!e.0.is_empty());
    }
}
