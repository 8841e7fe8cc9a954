//! Registering after libtorch was asked about CUDA: libtorch has fixed its CUDA hooks for the
//! process, and register() says so instead of pretending (its own test binary, so that the
//! early question comes first).

mod common;

use ktorch_shim::cuda::{self, Backend};
use tch::{Device, Kind, Tensor};

#[test]
fn late_registration_is_reported() {
    // tch::manual_seed asks libtorch for the CUDA device count, which fixes the hooks
    tch::manual_seed(1);
    assert!(!cuda::register());
    if !common::torch_has_cuda_lib() {
        assert_eq!(cuda::backend(), &Backend::Absent);
        return;
    }
    assert!(
        matches!(cuda::backend(), Backend::TooLate(_)),
        "{:?}",
        cuda::backend()
    );
    let p = cuda::backend().problem().expect("a problem");
    assert!(
        p.contains("call ktorch_shim::cuda::register() before"),
        "{p}"
    );
    assert!(!cuda::is_available());
    assert_eq!(cuda::device_count(), 0);
    let e = Tensor::f_zeros([2], (Kind::Float, Device::Cuda(0))).expect_err("no CUDA");
    eprintln!("late: {}", e.to_string().lines().next().unwrap_or(""));
}
