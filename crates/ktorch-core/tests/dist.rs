//! A model trained over a gloo process group made in Rust (option `dist`): 2 children (this
//! test binary again, running only `dist_child`, told rank, size and port through
//! `KTORCH_DIST_CHILD`) train the same float64 model on the same data as this process does
//! alone; losses and parameters after every epoch agree to 1e-12, bitwise across the ranks.
//! The model's 1.3 MB of gradients make two buckets, the first reduced during backward. With
//! option `distcheck`, ranks whose parameters differ all fail.

use std::process::{Command, Stdio};
use std::time::Duration;

use ktorch_core::device::Place;
use ktorch_core::dist::{Group, ProcessGroup};
use ktorch_core::model::Metric;
use ktorch_core::nn::layers;
use ktorch_core::sync::{lock, shared};
use ktorch_core::{Loss, Model, Module, Optimizer, Value};
use tch::{Device, Kind, Tensor};

const CHILD: &str = "KTORCH_DIST_CHILD";
const EPOCHS: usize = 3;

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// Losses of each epoch, then the parameters after each epoch, as one list of numbers.
fn train(group: Option<Group>) -> Vec<f64> {
    tch::manual_seed(7);
    let q = Module::sequential([
        layers::linear(4, 400).expect("linear"),
        layers::relu().expect("relu"),
        layers::linear(400, 400).expect("linear"),
        layers::relu().expect("relu"),
        layers::linear(400, 3).expect("linear"),
    ])
    .expect("module");
    q.to(&Place {
        kind: Some(Kind::Double),
        ..Place::default()
    })
    .expect("double");
    let o = Optimizer::new(
        "sgd",
        q.parameters(),
        &[Value::Float(0.1), Value::Float(0.9)],
        &[],
    )
    .expect("sgd");
    let l = Loss::new("ce", &[], &[]).expect("ce");
    let q = shared(q);
    let mut m = Model::new(q.clone(), shared(l), shared(o));
    m.train_options()
        .batchsize(16)
        .and_then(|o| o.shuffle(true))
        .and_then(|o| o.shuffleseed(Some(3)))
        .and_then(|o| o.clipnorm(2.0, 2.0))
        .and_then(|o| o.metrics(&[Metric::Loss, Metric::Accuracy]))
        .expect("options")
        .dist(group);
    // 50 rows: batches of 16, 16, 16 and 2
    let i = Tensor::arange(50 * 4, (Kind::Double, Device::Cpu)).reshape([50, 4]);
    let x = (i * 0.37).sin();
    let y = Tensor::arange(50, (Kind::Int64, Device::Cpu))
        .multiply_scalar(7)
        .remainder(3);
    m.train.set_data(vec![x], Some(vec![y])).expect("data");
    let mut out = vec![];
    let mut ps = vec![];
    for _ in 0..EPOCHS {
        let r = m.run().expect("run");
        for (_, v) in &r {
            out.push(v.as_ref().expect("metric").double_value(&[]));
        }
        // per parameter: its sum, its sum of squares and its first values
        for p in lock(&q).expect("module").parameters() {
            let f = p.flatten(0, -1);
            ps.push(f.sum(Kind::Double).double_value(&[]));
            ps.push(f.square().sum(Kind::Double).double_value(&[]));
            ps.extend(Vec::<f64>::try_from(&f.narrow(0, 0, f.size()[0].min(8))).expect("floats"));
        }
    }
    out.extend(ps);
    out
}

/// A child's part: one rank of the group, printing its numbers' bits. Ignored in a plain
/// `cargo test`: the parent runs it in each child with `--ignored`.
#[test]
#[ignore = "a child process of two_ranks_train_as_one_process"]
fn dist_child() {
    let spec = std::env::var(CHILD).expect("KTORCH_DIST_CHILD: rank:size:port");
    let v: Vec<i64> = spec.split(':').map(|s| s.parse().expect("spec")).collect();
    let (rank, size, port) = (v[0], v[1], v[2] as u16);
    tch::set_num_threads(1);
    let pg =
        ProcessGroup::gloo("127.0.0.1", port, rank, size, Duration::from_secs(30)).expect("gloo");
    let group = Group::new(pg);
    let got = train(Some(group.clone()));
    let bits: Vec<String> = got.iter().map(|f| format!("{:x}", f.to_bits())).collect();
    println!("\nRESULT {}", bits.join(","));
    println!("\nCHECK {}", check(group, rank));
}

/// With option `distcheck`, a run where rank 1's parameters differ: the error every rank
/// gets, then whether the parameters were left as they were.
fn check(group: Group, rank: i64) -> String {
    tch::manual_seed(1 + rank);
    let q = Module::sequential([layers::linear(4, 3).expect("linear")]).expect("module");
    let o = Optimizer::new("sgd", q.parameters(), &[Value::Float(0.1)], &[]).expect("sgd");
    let before: Vec<Tensor> = q.parameters().iter().map(Tensor::copy).collect();
    let q = shared(q);
    let l = Loss::new("ce", &[], &[]).expect("ce");
    let mut m = Model::new(q.clone(), shared(l), shared(o));
    m.train_options().dist(Some(group)).distcheck(true);
    let x = Tensor::ones([6, 4], (Kind::Float, Device::Cpu));
    let y = Tensor::zeros([6], (Kind::Int64, Device::Cpu));
    m.train.set_data(vec![x], Some(vec![y])).expect("data");
    let e = m.run().expect_err("parameters differ");
    let same = lock(&q)
        .expect("module")
        .parameters()
        .iter()
        .zip(&before)
        .all(|(a, b)| a.equal(b));
    format!("{e} / unchanged {same}")
}

#[test]
fn two_ranks_train_as_one_process() {
    let port = free_port();
    let exe = std::env::current_exe().expect("test binary");
    let size = 2;
    let kids: Vec<_> = (0..size)
        .map(|rank| {
            Command::new(&exe)
                .args([
                    "--exact",
                    "dist_child",
                    "--ignored",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(CHILD, format!("{rank}:{size}:{port}"))
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn child")
        })
        .collect();
    tch::set_num_threads(1);
    let want = train(None);
    let mut ranks = vec![];
    for (rank, k) in kids.into_iter().enumerate() {
        let out = k.wait_with_output().expect("child");
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "rank {rank}:\n{text}");
        let line = text
            .lines()
            .find_map(|l| l.split_once("RESULT ").map(|(_, r)| r))
            .unwrap_or_else(|| panic!("rank {rank} printed no result:\n{text}"));
        let got: Vec<f64> = line
            .split(',')
            .map(|h| f64::from_bits(u64::from_str_radix(h, 16).expect("bits")))
            .collect();
        ranks.push(got);
        let check = text
            .lines()
            .find_map(|l| l.split_once("CHECK ").map(|(_, r)| r.to_string()))
            .unwrap_or_else(|| panic!("rank {rank} printed no check:\n{text}"));
        assert_eq!(
            check,
            "dist: parameters or buffers differ from rank 0's (option distcheck): 0.weight \
             (1 rank), 0.bias (1 rank) / unchanged true"
        );
    }
    for (rank, got) in ranks.iter().enumerate() {
        assert_eq!(got.len(), want.len(), "rank {rank}");
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!(
                (g - w).abs() <= 1e-12 * w.abs().max(1.0),
                "rank {rank}, value {i}: {g} against {w}"
            );
        }
        assert_eq!(got, &ranks[0], "rank {rank} differs from rank 0");
    }
}
