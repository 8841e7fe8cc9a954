//! The CUDA backend for pure-Rust programs: `libtorch_cuda.so` loaded at run time.
//!
//! torch-sys asks to link `libtorch_cuda` when the libtorch build has one, but rustc links
//! with `--as-needed`, so a Rust binary or test that names no CUDA symbol drops it: libtorch
//! then has no CUDA kernels, and creating a CUDA tensor fails with "Could not run
//! 'aten::empty.memory_format' with arguments from the 'CUDA' backend", even on a GPU
//! machine. [`register`] loads the library beside the libtorch already in the process
//! (`dlopen` with `RTLD_NOW | RTLD_GLOBAL`): its static initializers register the CUDA
//! kernels, device guard and hooks, and a CUDA request then reaches the CUDA runtime (on a
//! machine without a GPU: "Found no NVIDIA driver on your system").
//!
//! Call it first, before any other libtorch call, in a program that may use CUDA:
//! libtorch fixes its CUDA hooks the first time anything asks about CUDA (a device
//! count, `manual_seed`, ...), and the autograd engine counts devices at its first
//! backward pass; whatever was decided before the library was loaded stays so for the
//! process. [`register`] checks the hooks after loading and answers [`Backend::TooLate`]
//! when they were fixed already. In the Python module torch is imported first and has
//! loaded the library already: registering is then a no-op.
//!
//! Loading costs about 0.2 s and maps a few hundred MB of CUDA libraries, which is why it is
//! done on demand (ktorch-core registers when a device name is `cuda...`) rather than at
//! every program's start.

// dl_iterate_phdr and dlopen are this module's purpose; each unsafe block says why it is sound.
#![allow(unsafe_code)]

use std::ffi::{c_int, c_void, CStr, CString, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::OnceLock;

/// The outcome of loading libtorch's CUDA backend, decided once per process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// `libtorch_cuda.so` was loaded by [`register`] (its path).
    Loaded(PathBuf),
    /// It was in the process already (torch imported by Python, or linked).
    AlreadyLoaded(PathBuf),
    /// This libtorch build has none (a CPU build), or no libtorch is loaded.
    Absent,
    /// It exists but `dlopen` failed: the loader's message.
    Failed(String),
    /// It was loaded, but libtorch had fixed its CUDA hooks before (something asked about
    /// CUDA earlier): CUDA stays unavailable in this process.
    TooLate(PathBuf),
}

impl Backend {
    /// True when libtorch's CUDA kernels and hooks are registered.
    pub fn registered(&self) -> bool {
        matches!(self, Backend::Loaded(_) | Backend::AlreadyLoaded(_))
    }

    /// Why CUDA is not registered (`None` when it is).
    pub fn problem(&self) -> Option<String> {
        match self {
            Backend::Loaded(_) | Backend::AlreadyLoaded(_) => None,
            Backend::Absent => {
                Some("this libtorch build has no CUDA backend (libtorch_cuda.so)".into())
            }
            Backend::Failed(e) => Some(format!("could not load libtorch_cuda.so: {e}")),
            Backend::TooLate(p) => Some(format!(
                "{} was loaded after libtorch had been asked about CUDA; \
                 call ktorch_shim::cuda::register() before any other libtorch call",
                p.display()
            )),
        }
    }
}

extern "C" {
    fn ktorch_cuda_hooks_built() -> bool;
}

static BACKEND: OnceLock<Backend> = OnceLock::new();

/// Loads `libtorch_cuda.so` when the libtorch build has one (once per process; later calls
/// return the first answer). True when the CUDA backend is registered; never panics. A
/// `dlopen` error is printed once to stderr and kept in [`backend`].
pub fn register() -> bool {
    backend().registered()
}

/// The outcome of [`register`] (loading on the first call).
pub fn backend() -> &'static Backend {
    BACKEND.get_or_init(|| {
        let b = load();
        if let Backend::Failed(_) | Backend::TooLate(_) = &b {
            if let Some(p) = b.problem() {
                eprintln!("ktorch: CUDA backend not registered: {p}");
            }
        }
        b
    })
}

/// True when libtorch can use a CUDA device: the backend registered and a device found.
pub fn is_available() -> bool {
    register() && tch::Cuda::is_available()
}

/// The number of CUDA devices libtorch sees (0 without a registered backend).
pub fn device_count() -> i64 {
    if register() {
        tch::Cuda::device_count()
    } else {
        0
    }
}

fn load() -> Backend {
    let libs = loaded_libraries();
    let named = |n: &str| libs.iter().find(|p| p.file_name() == Some(OsStr::new(n)));
    if let Some(p) = named("libtorch_cuda.so") {
        return Backend::AlreadyLoaded(p.clone());
    }
    // the directory of the libtorch in the process: libtorch_cuda.so sits beside it
    let Some(dir) = ["libtorch_cpu.so", "libtorch.so", "libc10.so"]
        .into_iter()
        .find_map(named)
        .and_then(|p| p.parent())
    else {
        return Backend::Absent;
    };
    let path = dir.join("libtorch_cuda.so");
    if !path.exists() {
        return Backend::Absent;
    }
    let Ok(c) = CString::new(path.as_os_str().as_bytes()) else {
        return Backend::Failed(format!("path {} holds a NUL byte", path.display()));
    };
    // SAFETY: c is a valid NUL-terminated path; the handle is never closed, so the
    // library (and the kernels it registers) stays for the life of the process.
    let h = unsafe { libc::dlopen(c.as_ptr(), libc::RTLD_NOW | libc::RTLD_GLOBAL) };
    if h.is_null() {
        // SAFETY: dlerror returns the thread's last loader message (or null), valid until
        // the next loader call on this thread; it is copied at once.
        let e = unsafe { libc::dlerror() };
        let msg = if e.is_null() {
            "dlopen failed".to_string()
        } else {
            // SAFETY: non-null dlerror output is a NUL-terminated string (see above).
            unsafe { CStr::from_ptr(e) }.to_string_lossy().into_owned()
        };
        return Backend::Failed(msg);
    }
    // SAFETY: a C function of shim.cpp taking nothing; it catches every C++ exception.
    if unsafe { ktorch_cuda_hooks_built() } {
        Backend::Loaded(path)
    } else {
        Backend::TooLate(path)
    }
}

/// The paths of the shared libraries loaded in the process.
fn loaded_libraries() -> Vec<PathBuf> {
    unsafe extern "C" fn each(
        info: *mut libc::dl_phdr_info,
        _size: usize,
        data: *mut c_void,
    ) -> c_int {
        // SAFETY: dl_iterate_phdr passes a valid info for the call and our `data`, a
        // &mut Vec<PathBuf> that outlives the iteration; dlpi_name is null or a
        // NUL-terminated string valid during the callback, copied here.
        unsafe {
            let out = &mut *data.cast::<Vec<PathBuf>>();
            let name = (*info).dlpi_name;
            if !name.is_null() {
                let s = CStr::from_ptr(name).to_bytes();
                if !s.is_empty() {
                    out.push(PathBuf::from(OsStr::from_bytes(s)));
                }
            }
        }
        0
    }
    let mut out: Vec<PathBuf> = Vec::new();
    // SAFETY: the callback only reads the info it is given and pushes into `out`,
    // which lives across the call.
    unsafe { libc::dl_iterate_phdr(Some(each), (&raw mut out).cast()) };
    out
}
