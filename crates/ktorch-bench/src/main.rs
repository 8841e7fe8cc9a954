//! The benchmark's Rust floor: each workload's loop hand-written directly on tch
//! (libtorch's tensor ops, no ktorch-core), timed per epoch.
//!
//! `ktorch-floor DIR WORKLOAD BATCH EPOCHS THREADS [test] [cuda]` reads `DIR/x.npy`,
//! `DIR/y.npy` and the initial weights `DIR/p.<name>.npy`, then runs one pass
//! per line read from stdin (at most EPOCHS), printing one line per pass:
//! `epoch <seconds> <loss> [<accuracy>]`; the benchmark interleaves the passes
//! with those of the Python implementations, so all see the same machine load.
//! With `cuda` the weights and data go to `Device::Cuda(0)` once, before the first
//! pass (libtorch's CUDA backend registered first, see `ktorch_shim::cuda`), and each
//! pass ends with a device synchronisation before its clock is read.
//! Nothing but libtorch work runs between batches: narrowed views of the data,
//! the forward written as libtorch calls, gradients released and the SGD step
//! taken by the same libtorch calls ktorch makes (ktorch-shim: `p.grad = None`,
//! `_fused_sgd_`, torch.optim.SGD(fused=True)'s kernel), losses kept on the
//! device and read once per epoch.

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::path::Path;
use std::time::Instant;

use tch::{Device, Kind, Reduction, Tensor};

type Result<T> = std::result::Result<T, tch::TchError>;

/// A workload: parameter names (as ktorch names them), forward, loss, SGD settings.
struct Workload {
    names: &'static [&'static str],
    forward: fn(&HashMap<&str, Tensor>, &Tensor) -> Result<Tensor>,
    mse: bool,
    lr: f64,
    momentum: f64,
}

fn linear(ps: &HashMap<&str, Tensor>, x: &Tensor, w: &str, b: &str) -> Result<Tensor> {
    x.f_linear(&ps[w], Some(&ps[b]))
}

/// The encoder workload's parameters: torch.nn.TransformerEncoder's names, per layer.
const ENCODER: &[&str] = &[
    "layers.0.self_attn.in_proj_weight",
    "layers.0.self_attn.in_proj_bias",
    "layers.0.self_attn.out_proj.weight",
    "layers.0.self_attn.out_proj.bias",
    "layers.0.linear1.weight",
    "layers.0.linear1.bias",
    "layers.0.linear2.weight",
    "layers.0.linear2.bias",
    "layers.0.norm1.weight",
    "layers.0.norm1.bias",
    "layers.0.norm2.weight",
    "layers.0.norm2.bias",
    "layers.1.self_attn.in_proj_weight",
    "layers.1.self_attn.in_proj_bias",
    "layers.1.self_attn.out_proj.weight",
    "layers.1.self_attn.out_proj.bias",
    "layers.1.linear1.weight",
    "layers.1.linear1.bias",
    "layers.1.linear2.weight",
    "layers.1.linear2.bias",
    "layers.1.norm1.weight",
    "layers.1.norm1.bias",
    "layers.1.norm2.weight",
    "layers.1.norm2.bias",
];

/// One post-norm encoder layer, batch first, relu, no dropout, 4 heads: torch's
/// TransformerEncoderLayer in training mode (the packed projection, then
/// scaled_dot_product_attention, as multi_head_attention_forward calls them).
fn encoder_layer(ps: &HashMap<&str, Tensor>, x: &Tensor, l: usize) -> Result<Tensor> {
    let p = |n: &str| &ps[format!("layers.{l}.{n}").as_str()];
    let (n, s, e) = x.size3()?;
    let (h, hd) = (4, e / 4);
    let proj = x
        .f_transpose(1, 0)?
        .f_linear(
            p("self_attn.in_proj_weight"),
            Some(p("self_attn.in_proj_bias")),
        )?
        .f_unflatten(-1, [3, e])?
        .f_unsqueeze(0)?
        .f_transpose(0, -2)?
        .f_squeeze_dim(-2)?
        .f_contiguous()?;
    let head = |i: i64| -> Result<Tensor> {
        proj.f_get(i)?
            .f_view([s, n * h, hd])?
            .f_transpose(0, 1)?
            .f_view([n, h, s, hd])
    };
    let a = Tensor::f_scaled_dot_product_attention::<Tensor>(
        &head(0)?,
        &head(1)?,
        &head(2)?,
        None,
        0.0,
        false,
        None,
        false,
    )?
    .f_permute([2, 0, 1, 3])?
    .f_contiguous()?
    .f_view([n * s, e])?
    .f_linear(
        p("self_attn.out_proj.weight"),
        Some(p("self_attn.out_proj.bias")),
    )?
    .f_view([s, n, e])?
    .f_transpose(1, 0)?;
    let norm = |x: &Tensor, k: &str| {
        x.f_layer_norm(
            [e],
            Some(p(&format!("{k}.weight"))),
            Some(p(&format!("{k}.bias"))),
            1e-5,
            true,
        )
    };
    let x = norm(&x.f_add(&a)?, "norm1")?;
    let f = x
        .f_linear(p("linear1.weight"), Some(p("linear1.bias")))?
        .f_relu()?
        .f_linear(p("linear2.weight"), Some(p("linear2.bias")))?;
    norm(&x.f_add(&f)?, "norm2")
}

fn workload(name: &str) -> Option<Workload> {
    Some(match name {
        "tiny" | "mnist" => Workload {
            names: &["weight", "bias"],
            forward: |ps, x| linear(ps, x, "weight", "bias"),
            mse: false,
            lr: 0.1,
            momentum: 0.0,
        },
        "spirals" => Workload {
            names: &["0.weight", "0.bias", "2.weight", "2.bias"],
            forward: |ps, x| {
                let h = linear(ps, x, "0.weight", "0.bias")?.f_relu()?;
                linear(ps, &h, "2.weight", "2.bias")
            },
            mse: false,
            lr: 0.2,
            momentum: 0.99,
        },
        "cnn" => Workload {
            names: &["0.weight", "0.bias", "4.weight", "4.bias"],
            forward: |ps, x| {
                let h = x
                    .f_conv2d(
                        &ps["0.weight"],
                        Some(&ps["0.bias"]),
                        [1, 1],
                        [0, 0],
                        [1, 1],
                        1,
                    )?
                    .f_relu()?
                    .f_max_pool2d([2, 2], [2, 2], [0, 0], [1, 1], false)?
                    .f_flatten(1, -1)?;
                linear(ps, &h, "4.weight", "4.bias")
            },
            mse: false,
            lr: 0.05,
            momentum: 0.9,
        },
        "lstm" => Workload {
            names: &[
                "0.weight_ih_l0",
                "0.weight_hh_l0",
                "0.bias_ih_l0",
                "0.bias_hh_l0",
                "1.weight",
                "1.bias",
            ],
            forward: |ps, x| {
                let n = x.size()[0];
                let h0 = Tensor::f_zeros([1, n, 20], (x.kind(), x.device()))?;
                let flat = [
                    &ps["0.weight_ih_l0"],
                    &ps["0.weight_hh_l0"],
                    &ps["0.bias_ih_l0"],
                    &ps["0.bias_hh_l0"],
                ];
                let (y, _, _) = x.f_lstm(&[&h0, &h0], &flat, true, 1, 0.0, true, false, true)?;
                linear(ps, &y, "1.weight", "1.bias")
            },
            mse: true,
            lr: 0.1,
            momentum: 0.9,
        },
        "encoder" => Workload {
            names: ENCODER,
            forward: |ps, x| encoder_layer(ps, &encoder_layer(ps, x, 0)?, 1),
            mse: true,
            lr: 0.01,
            momentum: 0.9,
        },
        _ => return None,
    })
}

/// glibc's thresholds as `import ktorch` sets them (ktorch_core::malloc), so that
/// every process the benchmark compares allocates alike; `KTORCH_MALLOC=system`
/// keeps glibc's own, as it does for ktorch.
fn malloc_tune() {
    if std::env::var("KTORCH_MALLOC").is_ok_and(|v| v == "system") {
        return;
    }
    #[allow(unsafe_code)]
    // SAFETY: mallopt only sets allocator parameters; any values are valid input.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 512 << 20);
    }
}

/// Waits for the next epoch's go-ahead on stdin; false at end of input.
fn next(epochs: &mut i64) -> bool {
    let _ = std::io::stdout().flush();
    let mut line = String::new();
    *epochs -= 1;
    *epochs >= 0 && matches!(std::io::stdin().lock().read_line(&mut line), Ok(n) if n > 0)
}

fn load(dir: &Path, name: &str) -> Result<Tensor> {
    Tensor::read_npy(dir.join(name))
}

fn main() -> Result<()> {
    let a: Vec<String> = std::env::args().collect();
    if a.len() < 6 || a[6..].iter().any(|x| x != "test" && x != "cuda") {
        eprintln!("usage: ktorch-floor DIR WORKLOAD BATCH EPOCHS THREADS [test] [cuda]");
        std::process::exit(2);
    }
    let flag = |f: &str| a[6..].iter().any(|x| x == f);
    let (test, cuda) = (flag("test"), flag("cuda"));
    // before any other libtorch call: the CUDA backend is dropped from Rust binaries at link
    // time, and libtorch fixes its CUDA hooks the first time anything asks about CUDA
    if cuda && !ktorch_shim::cuda::register() {
        let why = ktorch_shim::cuda::backend().problem().unwrap_or_default();
        eprintln!("ktorch-floor: no CUDA backend: {why}");
        std::process::exit(2);
    }
    let device = if cuda { Device::Cuda(0) } else { Device::Cpu };
    let dir = Path::new(&a[1]);
    let wl = workload(&a[2]).unwrap_or_else(|| {
        eprintln!("unknown workload {}", a[2]);
        std::process::exit(2)
    });
    let parse = |k: usize| a[k].parse::<i64>().unwrap_or(0);
    let (w, mut epochs, threads) = (parse(3), parse(4), parse(5));
    tch::set_num_threads(threads as i32);
    malloc_tune();

    let mut ps: HashMap<&str, Tensor> = HashMap::new();
    for name in wl.names {
        let p = load(dir, &format!("p.{name}.npy"))?
            .f_to_device(device)?
            .f_set_requires_grad(!test)?;
        ps.insert(name, p);
    }
    let x = load(dir, "x.npy")?.f_to_device(device)?;
    let y = load(dir, "y.npy")?.f_to_device(device)?;
    // waits for the device's queued work (no-op on the cpu), before a pass's clock is read
    let sync = || {
        if cuda {
            tch::Cuda::synchronize(0);
        }
    };
    let lossf = |out: &Tensor, y: &Tensor| -> Result<Tensor> {
        if wl.mse {
            out.f_mse_loss(y, Reduction::Mean)
        } else {
            out.f_cross_entropy_loss::<Tensor>(y, None, Reduction::Mean, -100, 0.0)
        }
    };
    let n = x.size()[0];
    let w = if w <= 0 || w > n { n } else { w };
    let nb = (n + w - 1) / w;

    if test {
        let _g = tch::no_grad_guard();
        while next(&mut epochs) {
            let t0 = Instant::now();
            let mut losses = Vec::with_capacity(nb as usize);
            let mut correct: Option<Tensor> = None;
            for b in 0..nb {
                let len = w.min(n - b * w);
                let xb = x.f_narrow(0, b * w, len)?;
                let yb = y.f_narrow(0, b * w, len)?;
                let out = (wl.forward)(&ps, &xb)?;
                losses.push(lossf(&out, &yb)?);
                let c = out
                    .f_argmax(-1, false)?
                    .f_eq_tensor(&yb)?
                    .f_sum(Kind::Int64)?;
                correct = Some(match correct {
                    None => c,
                    Some(a) => a.f_add(&c)?,
                });
            }
            let l = Tensor::f_stack(&losses, 0)?
                .f_to_kind(Kind::Double)?
                .f_mean(Kind::Double)?
                .f_double_value(&[])?;
            let acc = correct.map_or(Ok(0.0), |c| c.f_double_value(&[]))? * 100.0 / n as f64;
            sync();
            println!(
                "epoch {:.9} {l:.17e} {acc:.17e}",
                t0.elapsed().as_secs_f64()
            );
        }
        return Ok(());
    }

    let params: Vec<Tensor> = wl.names.iter().map(|k| ps[k].shallow_clone()).collect();
    let bufs: Vec<Tensor> = if wl.momentum != 0.0 {
        params.iter().map(Tensor::zeros_like).collect()
    } else {
        vec![]
    };
    let sgd = ktorch_shim::SgdSettings {
        weight_decay: 0.0,
        momentum: wl.momentum,
        lr: wl.lr,
        dampening: 0.0,
        nesterov: false,
        maximize: false,
    };
    let mut first = true;
    let shim = |e: ktorch_shim::Error| tch::TchError::Torch(e.0);
    while next(&mut epochs) {
        let t0 = Instant::now();
        let mut losses = Vec::with_capacity(nb as usize);
        for b in 0..nb {
            let len = w.min(n - b * w);
            let xb = x.f_narrow(0, b * w, len)?;
            let yb = y.f_narrow(0, b * w, len)?;
            // gradients to None (torch.optim's zero_grad), then forward, loss, backward
            ktorch_shim::release_grads(&params).map_err(shim)?;
            let out = (wl.forward)(&ps, &xb)?;
            let l = lossf(&out, &yb)?;
            l.f_backward()?;
            // the kernel ktorch's sgd calls (torch.optim.SGD(fused=True)'s)
            let grads: Vec<Tensor> = params.iter().map(Tensor::grad).collect();
            ktorch_shim::fused_sgd_(&params, &grads, &bufs, &sgd, first).map_err(shim)?;
            first = false;
            losses.push(l.f_detach()?);
        }
        let l = Tensor::f_stack(&losses, 0)?
            .f_to_kind(Kind::Double)?
            .f_mean(Kind::Double)?
            .f_double_value(&[])?;
        sync();
        println!("epoch {:.9} {l:.17e}", t0.elapsed().as_secs_f64());
    }
    Ok(())
}
