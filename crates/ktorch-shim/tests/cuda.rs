//! CUDA registration in a pure-Rust test binary (its own process: register() runs before any
//! other libtorch call, as a program's main would call it).

mod common;

use ktorch_shim::cuda::{self, Backend};
use tch::{Device, Kind, Tensor};

/// Without registration the request never reaches CUDA: "Could not run
/// 'aten::empty.memory_format' with arguments from the 'CUDA' backend". With it, a machine
/// with a GPU makes the tensor and one without says "Found no NVIDIA driver on your system".
#[test]
fn cuda_tensor_reaches_the_cuda_backend() {
    let registered = cuda::register();
    if !common::torch_has_cuda_lib() {
        // a CPU build of libtorch: nothing to register, and no panic
        assert!(!registered);
        assert_eq!(cuda::backend(), &Backend::Absent);
        assert!(!cuda::is_available());
        return;
    }
    assert!(registered, "backend: {:?}", cuda::backend());
    assert!(matches!(cuda::backend(), Backend::Loaded(p) if p.ends_with("libtorch_cuda.so")));
    assert!(cuda::register(), "a second call gives the first answer");
    assert_eq!(cuda::backend().problem(), None);
    match Tensor::f_zeros([2], (Kind::Float, Device::Cuda(0))) {
        Ok(t) => {
            assert!(cuda::is_available());
            assert!(cuda::device_count() >= 1);
            assert_eq!(t.device(), Device::Cuda(0));
        }
        Err(e) => {
            let e = e.to_string();
            assert!(
                !e.contains("Could not run") && !e.contains("'CUDA' backend"),
                "{e}"
            );
            if !std::path::Path::new("/proc/driver/nvidia").exists() {
                assert!(e.contains("NVIDIA driver"), "{e}");
                assert!(!cuda::is_available());
                assert_eq!(cuda::device_count(), 0);
            }
        }
    }
}
