//! Compiles src/shim.cpp and src/dist.cpp against the libtorch that torch-sys found, the way
//! torch-sys compiles its own C++ wrapper (same include dirs, C++17, ABI and glog flags, pic).
//! dist.cpp also needs src/gloo_decl/, which stands in for gloo's headers (the torch wheel
//! ships c10d's headers but not gloo's); everything it calls is exported by libtorch_cpu,
//! which torch-sys links already.

use std::env;
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=src/shim.cpp");
    println!("cargo:rerun-if-changed=src/dist.cpp");
    println!("cargo:rerun-if-changed=src/gloo_decl");
    println!("cargo:rerun-if-env-changed=LIBTORCH_CXX11_ABI");
    // torch-sys (links = "tch") prints cargo:libtorch_lib=<torch>/lib on Linux and macOS
    let lib = env::var("DEP_TCH_LIBTORCH_LIB")
        .expect("DEP_TCH_LIBTORCH_LIB not set: torch-sys did not report its libtorch lib dir");
    let lib = PathBuf::from(lib);
    let include = lib
        .parent()
        .expect("libtorch lib dir has a parent")
        .join("include");
    // libtorch 2.x wheels are built with the cxx11 ABI; torch-sys reads the same variable
    let abi = env::var("LIBTORCH_CXX11_ABI").unwrap_or_else(|_| "1".to_string());
    cc::Build::new()
        .cpp(true)
        .pic(true)
        .warnings(false)
        .include(&include)
        .include(include.join("torch/csrc/api/include"))
        .include(
            PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"))
                .join("src/gloo_decl"),
        )
        .flag("-std=c++17")
        .flag(format!("-D_GLIBCXX_USE_CXX11_ABI={abi}"))
        .flag("-DGLOG_USE_GLOG_EXPORT")
        .file("src/shim.cpp")
        .file("src/dist.cpp")
        .compile("ktorch_shim");
}
