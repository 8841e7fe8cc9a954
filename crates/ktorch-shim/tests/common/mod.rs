//! Shared by the CUDA registration tests.

/// True when the libtorch on LD_LIBRARY_PATH (where the tests find it) has a CUDA backend,
/// checked apart from the code under test.
pub fn torch_has_cuda_lib() -> bool {
    std::env::var_os("LD_LIBRARY_PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .any(|d| d.join("libtorch_cuda.so").exists())
}
