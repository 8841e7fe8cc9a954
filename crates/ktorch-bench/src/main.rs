//! The benchmark's Rust floor: each workload's loop hand-written against the core, timed per epoch.
//!
//! `ktorch-floor DIR WORKLOAD BATCH EPOCHS THREADS [test]` reads `DIR/x.npy`,
//! `DIR/y.npy` and the initial weights `DIR/p.<name>.npy`, then runs one pass
//! per line read from stdin (at most EPOCHS), printing one line per pass:
//! `epoch <seconds> <loss> [<accuracy>]`; the benchmark interleaves the passes
//! with those of the Python implementations, so all see the same machine load.
//! Nothing but libtorch work runs between batches: narrowed views of the data,
//! gradients released by one cached libtorch optimizer, losses kept on the
//! device and read once per epoch.

use std::io::{BufRead, Write};
use std::path::Path;
use std::time::Instant;

use ktorch_core::{Loss, Module, Optimizer, Result, Value};
use tch::{Kind, Tensor};

fn s(x: &str) -> Value {
    Value::Str(x.to_string())
}

fn i(x: i64) -> Value {
    Value::Int(x)
}

/// Module spec, loss and optimizer (name, settings) of a workload, as bench/bench.py builds them.
fn workload(name: &str) -> Option<(Value, &'static str, &'static str, Vec<Value>)> {
    let tup = Value::Tuple;
    let sgd = |lr: f64, mom: f64| vec![Value::Float(lr), Value::Float(mom)];
    Some(match name {
        "tiny" => (
            tup(vec![s("linear"), i(10), i(3)]),
            "ce",
            "sgd",
            sgd(0.1, 0.0),
        ),
        "spirals" => (
            Value::List(vec![
                s("sequential"),
                tup(vec![s("linear"), i(2), i(100)]),
                s("relu"),
                tup(vec![s("linear"), i(100), i(3)]),
            ]),
            "ce",
            "sgd",
            sgd(0.2, 0.99),
        ),
        "mnist" => (
            tup(vec![s("linear"), i(784), i(10)]),
            "ce",
            "sgd",
            sgd(0.1, 0.0),
        ),
        "cnn" => (
            Value::List(vec![
                s("sequential"),
                tup(vec![s("conv2d"), i(1), i(16), i(3)]),
                s("relu"),
                tup(vec![s("maxpool2d"), i(2)]),
                s("flatten"),
                tup(vec![s("linear"), i(16 * 13 * 13), i(10)]),
            ]),
            "ce",
            "sgd",
            sgd(0.05, 0.9),
        ),
        "lstm" => (
            Value::List(vec![
                s("sequential"),
                tup(vec![
                    s("lstm"),
                    i(10),
                    i(20),
                    Value::Dict(vec![("batchfirst".to_string(), Value::Bool(true))]),
                ]),
                tup(vec![s("linear"), i(20), i(5)]),
            ]),
            "mse",
            "sgd",
            sgd(0.1, 0.9),
        ),
        _ => return None,
    })
}

/// Waits for the next epoch's go-ahead on stdin; false at end of input.
fn next(epochs: &mut i64) -> bool {
    let _ = std::io::stdout().flush();
    let mut line = String::new();
    *epochs -= 1;
    *epochs >= 0 && matches!(std::io::stdin().lock().read_line(&mut line), Ok(n) if n > 0)
}

fn load(dir: &Path, name: &str) -> Result<Tensor> {
    Ok(Tensor::read_npy(dir.join(name))?)
}

fn main() -> Result<()> {
    let a: Vec<String> = std::env::args().collect();
    if a.len() < 6 {
        eprintln!("usage: ktorch-floor DIR WORKLOAD BATCH EPOCHS THREADS [test]");
        std::process::exit(2);
    }
    let dir = Path::new(&a[1]);
    let (spec, lname, oname, settings) = workload(&a[2]).unwrap_or_else(|| {
        eprintln!("unknown workload {}", a[2]);
        std::process::exit(2)
    });
    let parse = |k: usize| a[k].parse::<i64>().unwrap_or(0);
    let (w, mut epochs, threads) = (parse(3), parse(4), parse(5));
    let test = a.get(6).is_some_and(|x| x == "test");
    tch::set_num_threads(threads as i32);

    let mut m = Module::from_value(&spec)?;
    for name in m.parmnames() {
        m.set_param(&name, &load(dir, &format!("p.{name}.npy"))?)?;
    }
    let x = load(dir, "x.npy")?;
    let y = load(dir, "y.npy")?;
    let loss = Loss::new(lname, &[], &[])?;
    let n = x.size()[0];
    let w = if w <= 0 || w > n { n } else { w };
    let nb = (n + w - 1) / w;

    if test {
        m.set_training(false);
        let _g = tch::no_grad_guard();
        while next(&mut epochs) {
            let t0 = Instant::now();
            let mut losses = Vec::with_capacity(nb as usize);
            let mut correct: Option<Tensor> = None;
            for b in 0..nb {
                let len = w.min(n - b * w);
                let xb = x.f_narrow(0, b * w, len)?;
                let yb = y.f_narrow(0, b * w, len)?;
                let out = m.forward(std::slice::from_ref(&xb))?;
                losses.push(loss.forward(&out[..1], std::slice::from_ref(&yb))?);
                let c = out[0]
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
            println!(
                "epoch {:.9} {l:.17e} {acc:.17e}",
                t0.elapsed().as_secs_f64()
            );
        }
        return Ok(());
    }

    let params = m.parameters();
    let mut opt = Optimizer::new(oname, m.parameters(), &settings, &[])?;
    // libtorch's own optimizer releases gradients (sets them to None), as
    // torch.optim's zero_grad does; built once, it costs one call per step.
    let mut release = tch::COptimizer::sgd(0.0, 0.0, 0.0, 0.0, false)?;
    for p in &params {
        release.add_parameters(p, 0)?;
    }
    while next(&mut epochs) {
        let t0 = Instant::now();
        let mut losses = Vec::with_capacity(nb as usize);
        for b in 0..nb {
            let len = w.min(n - b * w);
            let xb = x.f_narrow(0, b * w, len)?;
            let yb = y.f_narrow(0, b * w, len)?;
            release.zero_grad()?;
            let out = m.forward(std::slice::from_ref(&xb))?;
            let l = loss.forward(&out[..1], std::slice::from_ref(&yb))?;
            l.f_backward()?;
            opt.step()?;
            losses.push(l.f_detach()?);
        }
        let l = Tensor::f_stack(&losses, 0)?
            .f_to_kind(Kind::Double)?
            .f_mean(Kind::Double)?
            .f_double_value(&[])?;
        println!("epoch {:.9} {l:.17e}", t0.elapsed().as_secs_f64());
    }
    Ok(())
}
