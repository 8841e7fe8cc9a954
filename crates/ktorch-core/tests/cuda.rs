//! A CUDA device named through the core: the name registers libtorch's CUDA backend, so the
//! request reaches CUDA (a tensor on a GPU machine, "Found no NVIDIA driver" without one)
//! instead of "Could not run 'aten::empty.memory_format' with arguments from the 'CUDA'
//! backend". Its own process, so that nothing asks libtorch about CUDA first.

mod cuda {
    use ktorch_core::tensor::{create, cuda_available, device_from_name, TensorOptions};
    use ktorch_core::Value;
    use tch::{Device, Kind, Tensor};

    fn torch_has_cuda_lib() -> bool {
        std::env::var_os("LD_LIBRARY_PATH")
            .iter()
            .flat_map(std::env::split_paths)
            .any(|d| d.join("libtorch_cuda.so").exists())
    }

    #[test]
    fn cuda_by_name_reaches_the_cuda_backend() {
        let d = device_from_name("cuda").expect("parse").expect("a device");
        assert_eq!(d, Device::Cuda(0));
        assert_eq!(
            ktorch_shim::cuda::register(),
            torch_has_cuda_lib(),
            "{:?}",
            ktorch_shim::cuda::backend()
        );
        let o = TensorOptions {
            device: Some(d),
            ..TensorOptions::default()
        };
        let cpu = Tensor::zeros([2, 3], (Kind::Float, Device::Cpu));
        let parsed = TensorOptions::parse(&["cuda".to_string()]);
        let made = create("zeros", &[Value::Int(2)], &o);
        match o.apply(cpu) {
            Ok(t) => {
                assert!(cuda_available());
                assert_eq!(t.device(), Device::Cuda(0));
                assert_eq!(parsed.expect("options").device, Some(Device::Cuda(0)));
                assert_eq!(made.expect("zeros on cuda").device(), Device::Cuda(0));
            }
            Err(e) => {
                assert!(!cuda_available());
                let e = e.to_string();
                for e in [&e, &made.expect_err("no device").to_string()] {
                    assert!(
                        !e.contains("Could not run") && !e.contains("'CUDA' backend"),
                        "{e}"
                    );
                    if torch_has_cuda_lib() && !std::path::Path::new("/proc/driver/nvidia").exists()
                    {
                        assert!(e.contains("NVIDIA driver"), "{e}");
                    }
                }
                let p = parsed.expect_err("no CUDA device").to_string();
                assert!(p.contains("not available (0 CUDA device(s))"), "{p}");
            }
        }
    }
}
