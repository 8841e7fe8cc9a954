//! Which tensors ktorch computes with: dtypes, layouts, and the lossless widening of
//! unsigned integers that tch's [`Kind`] cannot name.
//!
//! tch 0.24 knows 20 of libtorch's scalar types; for the others (uint16/32/64, the
//! sub-byte and bit types, float8_e8m0fnu, float4, quint4x2 ...) `Tensor::kind()`
//! panics. Every tensor that enters ktorch from outside passes [`admit`] (the Python
//! binding) or [`check`] (the core's own entry points), so no tensor of such a kind,
//! nor a sparse, mkldnn or nested one, is ever held by a ktorch object.
#![allow(unsafe_code)]

use tch::{Kind, TchError, Tensor};

use crate::error::{invalid, Result};

/// The dtypes ktorch computes with.
pub const SUPPORTED: &[Kind] = &[
    Kind::Bool,
    Kind::Uint8,
    Kind::Int8,
    Kind::Int16,
    Kind::Int,
    Kind::Int64,
    Kind::Half,
    Kind::BFloat16,
    Kind::Float,
    Kind::Double,
    Kind::ComplexFloat,
    Kind::ComplexDouble,
];

/// libtorch's scalar types (c10::ScalarType) by number, with torch's names.
const SCALAR_TYPES: &[&str] = &[
    "uint8",            // 0
    "int8",             // 1
    "int16",            // 2
    "int32",            // 3
    "int64",            // 4
    "float16",          // 5
    "float32",          // 6
    "float64",          // 7
    "complex32",        // 8
    "complex64",        // 9
    "complex128",       // 10
    "bool",             // 11
    "qint8",            // 12
    "quint8",           // 13
    "qint32",           // 14
    "bfloat16",         // 15
    "quint4x2",         // 16
    "quint2x4",         // 17
    "bits1x8",          // 18
    "bits2x4",          // 19
    "bits4x2",          // 20
    "bits8",            // 21
    "bits16",           // 22
    "float8_e5m2",      // 23
    "float8_e4m3fn",    // 24
    "float8_e5m2fnuz",  // 25
    "float8_e4m3fnuz",  // 26
    "uint16",           // 27
    "uint32",           // 28
    "uint64",           // 29
    "uint1",            // 30
    "uint2",            // 31
    "uint3",            // 32
    "uint4",            // 33
    "uint5",            // 34
    "uint6",            // 35
    "uint7",            // 36
    "int1",             // 37
    "int2",             // 38
    "int3",             // 39
    "int4",             // 40
    "int5",             // 41
    "int6",             // 42
    "int7",             // 43
    "float8_e8m0fnu",   // 44
    "float4_e2m1fn_x2", // 45
];

const UINT16: i32 = 27;
const UINT32: i32 = 28;
const UINT64: i32 = 29;

/// torch's name (without `torch.`) of libtorch scalar type `n`.
pub fn scalar_type_name(n: i32) -> String {
    usize::try_from(n)
        .ok()
        .and_then(|i| SCALAR_TYPES.get(i))
        .map_or_else(|| format!("scalar type {n}"), |s| s.to_string())
}

/// The libtorch scalar type number of `t` (defined for every dtype, unlike `Tensor::kind`).
fn scalar_type(t: &Tensor) -> std::result::Result<i32, String> {
    match t.f_kind() {
        Ok(k) => Ok(kind_number(k)),
        Err(TchError::UnknownKind(n)) => Ok(n),
        Err(e) => Err(crate::Error::from(e).to_string()),
    }
}

/// torch's name of a dtype (`float32`, `int64` ...).
pub fn kind_dtype_name(k: Kind) -> String {
    scalar_type_name(kind_number(k))
}

fn kind_number(k: Kind) -> i32 {
    match k {
        Kind::Uint8 => 0,
        Kind::Int8 => 1,
        Kind::Int16 => 2,
        Kind::Int => 3,
        Kind::Int64 => 4,
        Kind::Half => 5,
        Kind::Float => 6,
        Kind::Double => 7,
        Kind::ComplexHalf => 8,
        Kind::ComplexFloat => 9,
        Kind::ComplexDouble => 10,
        Kind::Bool => 11,
        Kind::QInt8 => 12,
        Kind::QUInt8 => 13,
        Kind::QInt32 => 14,
        Kind::BFloat16 => 15,
        Kind::Float8e5m2 => 23,
        Kind::Float8e4m3fn => 24,
        Kind::Float8e5m2fnuz => 25,
        Kind::Float8e4m3fnuz => 26,
    }
}

/// torch's name of `t`'s dtype (`float32`, `uint16`, `float8_e4m3fn` ...), for messages;
/// unlike `Tensor::kind` it never panics.
pub fn dtype_name(t: &Tensor) -> String {
    match scalar_type(t) {
        Ok(n) => scalar_type_name(n),
        Err(_) => "unknown".into(),
    }
}

/// True for a strided (dense) tensor: false for sparse (COO, CSR, CSC, BSR, BSC),
/// mkldnn and nested tensors, which have no strides. Reads host metadata only.
pub fn is_strided(t: &Tensor) -> bool {
    // sparse COO and mkldnn tensors answer strides; CSR-like and nested ones raise
    if !t.defined() || t.is_sparse() || t.is_mkldnn() {
        return false;
    }
    // SAFETY: `t` is a valid tensor for the duration of the calls; the C wrapper
    // catches the C++ exception that a tensor without strides raises and stores its
    // message, which is read back (and freed) here rather than left for tch to panic on.
    unsafe {
        let p = t.as_ptr() as *mut torch_sys::C_tensor;
        let d = torch_sys::at_dim(p);
        if let Some(e) = last_error() {
            drop(e);
            return false;
        }
        let mut buf = vec![0i64; d];
        torch_sys::at_stride(p, buf.as_mut_ptr());
        last_error().is_none()
    }
}

/// The pending libtorch error message of the C wrapper, if any (and clears it).
unsafe fn last_error() -> Option<String> {
    let e = torch_sys::get_and_reset_last_err();
    if e.is_null() {
        return None;
    }
    let msg = std::ffi::CStr::from_ptr(e).to_string_lossy().into_owned();
    libc::free(e as *mut libc::c_void);
    Some(msg)
}

/// Why `t` cannot be ktorch data, or None when it can: undefined, not strided, or
/// a dtype outside [`SUPPORTED`]. `given` describes the argument (`a torch.Tensor`).
pub fn problem(t: &Tensor, given: &str) -> Option<String> {
    if !t.defined() {
        return Some(format!(
            "undefined tensors are not supported, given {given}"
        ));
    }
    if !is_strided(t) {
        let what = if t.is_sparse() {
            "sparse"
        } else if t.is_mkldnn() {
            "mkldnn"
        } else {
            "sparse, mkldnn or nested"
        };
        return Some(format!(
            "{what} tensors are not supported (only strided tensors are), given {given} without strides"
        ));
    }
    match t.f_kind() {
        Ok(k) if SUPPORTED.contains(&k) => None,
        _ => {
            let name = dtype_name(t);
            Some(format!(
                "{name} tensors are not supported, given {given} of dtype torch.{name}"
            ))
        }
    }
}

/// A tensor ktorch can compute with, made from `t`: uint16 becomes int32, uint32
/// int64 and uint64 int64 when every value is below 2**63 (these conversions are
/// lossless; they copy). Every other tensor is returned as it is (shared) when it
/// is usable, else the reason it is not (see [`problem`]), a message without the
/// function's name.
pub fn admit(t: Tensor, given: &str) -> std::result::Result<Tensor, String> {
    if t.defined() && is_strided(&t) {
        let n = scalar_type(&t)?;
        let widened = match n {
            UINT16 => Some(t.f_to_kind(Kind::Int)),
            UINT32 | UINT64 => Some(t.f_to_kind(Kind::Int64)),
            _ => None,
        };
        if let Some(w) = widened {
            let w = w.map_err(|e| crate::Error::from(e).to_string())?;
            if n == UINT64 && has_negative(&w).map_err(|e| e.to_string())? {
                // values of 2**63 and more wrapped around to negative int64
                return Err(format!(
                    "uint64 values of 2**63 or more do not fit int64, given {given} of dtype uint64 with such a value"
                ));
            }
            return Ok(w);
        }
    }
    match problem(&t, given) {
        None => Ok(t),
        Some(p) => Err(p),
    }
}

fn has_negative(t: &Tensor) -> Result<bool> {
    if t.numel() == 0 {
        return Ok(false);
    }
    Ok(t.f_lt(0)?.f_any()?.f_int64_value(&[])? != 0)
}

/// Checks a tensor given to the core from outside: an [`Error::Invalid`](crate::Error::Invalid)
/// unless [`problem`] finds nothing wrong.
pub fn check(t: &Tensor) -> Result<()> {
    match problem(t, "a tensor") {
        None => Ok(()),
        Some(p) => Err(invalid(p)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    /// A tensor of libtorch scalar type `n`, which tch's Kind may not name.
    fn of_type(t: &Tensor, n: i32) -> Tensor {
        let mut out: *mut torch_sys::C_tensor = std::ptr::null_mut();
        // SAFETY: valid input tensor; the result is checked before use and owned by the Tensor.
        unsafe {
            torch_sys::c_generated::atg_to_dtype(
                &mut out,
                t.as_ptr() as *mut torch_sys::C_tensor,
                n,
                0,
                0,
            );
            assert!(last_error().is_none(), "to dtype {n}");
            Tensor::from_ptr(out)
        }
    }

    fn ints(t: &Tensor) -> Vec<i64> {
        Vec::<i64>::try_from(t).expect("values")
    }

    #[test]
    fn names_match_kinds() {
        assert_eq!(
            dtype_name(&Tensor::zeros([2], (Kind::Float, Device::Cpu))),
            "float32"
        );
        let x = Tensor::from_slice(&[1i64, 2]);
        assert_eq!(dtype_name(&of_type(&x, UINT16)), "uint16");
        assert_eq!(dtype_name(&of_type(&x, 24)), "float8_e4m3fn");
        assert_eq!(scalar_type_name(45), "float4_e2m1fn_x2");
        assert_eq!(scalar_type_name(99), "scalar type 99");
    }

    #[test]
    fn unsigned_widen_losslessly() {
        let x = Tensor::from_slice(&[0i64, 1, 65535]);
        let w = admit(of_type(&x, UINT16), "x").expect("uint16");
        assert_eq!(w.kind(), Kind::Int);
        assert_eq!(ints(&w.to_kind(Kind::Int64)), vec![0, 1, 65535]);
        let x = Tensor::from_slice(&[0i64, 4_294_967_295]);
        let w = admit(of_type(&x, UINT32), "x").expect("uint32");
        assert_eq!((w.kind(), ints(&w)), (Kind::Int64, vec![0, 4_294_967_295]));
        let x = Tensor::from_slice(&[0i64, i64::MAX]);
        let w = admit(of_type(&x, UINT64), "x").expect("uint64");
        assert_eq!(ints(&w), vec![0, i64::MAX]);
        // -1 as uint64 is 2**64-1: refused
        let x = Tensor::from_slice(&[3i64, -1]);
        let e = admit(of_type(&x, UINT64), "a tensor").expect_err("2**64-1");
        assert!(
            e.starts_with("uint64 values of 2**63 or more do not fit int64"),
            "{e}"
        );
    }

    #[test]
    fn refusals_name_the_kind() {
        let x = Tensor::from_slice(&[1.0f32, 2.0]);
        let e = admit(of_type(&x, 24), "a torch.Tensor").expect_err("float8");
        assert_eq!(
            e,
            "float8_e4m3fn tensors are not supported, given a torch.Tensor of dtype torch.float8_e4m3fn"
        );
        let e = check(&x.to_kind(Kind::ComplexHalf)).expect_err("complex32");
        assert_eq!(
            e.to_string(),
            "complex32 tensors are not supported, given a tensor of dtype torch.complex32"
        );
        let s = Tensor::eye(3, (Kind::Float, Device::Cpu)).to_sparse_sparse_dim(2);
        assert!(!is_strided(&s));
        assert!(!is_strided(&s.to_dense(None, false).to_sparse_csr(None)));
        assert!(!is_strided(&s.to_dense(None, false).to_mkldnn()));
        let e = check(&s).expect_err("sparse");
        assert!(e
            .to_string()
            .starts_with("sparse tensors are not supported"));
        // strided tensors of every supported kind pass and stay shared
        for k in SUPPORTED {
            let t = Tensor::zeros([2, 3], (*k, Device::Cpu));
            assert!(is_strided(&t));
            let a = admit(t.shallow_clone(), "x").expect("supported");
            assert_eq!(a.data_ptr(), t.data_ptr());
        }
        assert!(problem(&Tensor::new(), "x").is_some());
    }
}
