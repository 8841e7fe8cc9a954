//! Gloo process groups across processes, from Rust alone: each test starts 2 or 3 children
//! (this test binary again, running only `dist_child`, told its scenario, rank, size and port
//! through `KTORCH_DIST_CHILD`), which make a group with `ProcessGroup::gloo` on 127.0.0.1 and
//! check collectives with known values; the test checks their exit codes and outputs.

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ktorch_shim::dist::{ProcessGroup, ReduceOp};
use tch::{Device, Kind, Tensor};

const CHILD: &str = "KTORCH_DIST_CHILD";
/// The timeout of groups whose peers all take part (never reached unless something hangs).
const SLOW: Duration = Duration::from_secs(30);
/// The timeout of groups where a peer fails on purpose.
const SHORT: Duration = Duration::from_secs(3);
/// Exit code of the rank that leaves on purpose.
const LEFT: i32 = 7;

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

struct Out {
    code: Option<i32>,
    text: String,
}

/// Runs `scenario` in `size` children, one per rank, and gives each one's exit code and output
/// (stdout then stderr), in rank order; children still running after 60 s are killed.
fn run(scenario: &str, size: i64) -> Vec<Out> {
    let port = free_port();
    let exe = std::env::current_exe().expect("test binary");
    let mut kids: Vec<Child> = (0..size)
        .map(|rank| {
            Command::new(&exe)
                .args(["--exact", "dist_child", "--nocapture", "--test-threads=1"])
                .env(CHILD, format!("{scenario}:{rank}:{size}:{port}"))
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn child")
        })
        .collect();
    // read the pipes on threads, so that a chatty child never blocks on a full pipe
    let readers: Vec<_> = kids
        .iter_mut()
        .map(|k| {
            let mut o = k.stdout.take().expect("stdout");
            let mut e = k.stderr.take().expect("stderr");
            std::thread::spawn(move || {
                let (mut a, mut b) = (String::new(), String::new());
                let _ = o.read_to_string(&mut a);
                let _ = e.read_to_string(&mut b);
                a + &b
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut codes = vec![None; kids.len()];
    let mut done = vec![false; kids.len()];
    while done.iter().any(|d| !d) {
        for (i, k) in kids.iter_mut().enumerate() {
            if !done[i] {
                if let Some(st) = k.try_wait().expect("wait") {
                    codes[i] = st.code();
                    done[i] = true;
                }
            }
        }
        if Instant::now() > deadline {
            for (i, k) in kids.iter_mut().enumerate() {
                if !done[i] {
                    let _ = k.kill();
                    let _ = k.wait();
                    done[i] = true;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    codes
        .into_iter()
        .zip(readers)
        .map(|(code, r)| Out {
            code,
            text: r.join().expect("reader"),
        })
        .collect()
}

fn assert_all_ok(outs: &[Out]) {
    for (rank, o) in outs.iter().enumerate() {
        assert_eq!(o.code, Some(0), "rank {rank} failed:\n{}", o.text);
        assert!(o.text.contains("CHILD DONE"), "rank {rank}:\n{}", o.text);
    }
}

#[test]
fn collectives_on_two_ranks() {
    assert_all_ok(&run("collectives", 2));
}

#[test]
fn collectives_on_three_ranks() {
    assert_all_ok(&run("collectives", 3));
}

/// Rank 1 exits (its connections close) before the collective that rank 0 then calls.
#[test]
fn a_peer_that_died_gives_an_error() {
    let outs = run("dies1", 2);
    assert_eq!(outs[1].code, Some(LEFT), "rank 1:\n{}", outs[1].text);
    assert_eq!(outs[0].code, Some(0), "rank 0:\n{}", outs[0].text);
    assert!(outs[0].text.contains("CHILD DONE"), "{}", outs[0].text);
}

/// The same when rank 0, which serves the TCPStore, is the one that exits.
#[test]
fn a_dead_rank_0_gives_an_error() {
    let outs = run("dies0", 2);
    assert_eq!(outs[0].code, Some(LEFT), "rank 0:\n{}", outs[0].text);
    assert_eq!(outs[1].code, Some(0), "rank 1:\n{}", outs[1].text);
    assert!(outs[1].text.contains("CHILD DONE"), "{}", outs[1].text);
}

/// Rank 1 stays alive but never joins the collective: rank 0's call fails at the timeout.
#[test]
fn a_peer_that_stalls_gives_an_error_at_the_timeout() {
    let outs = run("stalls", 2);
    assert_eq!(outs[1].code, Some(LEFT), "rank 1:\n{}", outs[1].text);
    assert_eq!(outs[0].code, Some(0), "rank 0:\n{}", outs[0].text);
    assert!(outs[0].text.contains("CHILD DONE"), "{}", outs[0].text);
}

/// A rank whose peers never come: the rendezvous fails at the timeout, for the server (rank 0)
/// and for a client (no server).
#[test]
fn a_rendezvous_without_peers_fails_at_the_timeout() {
    let t = Duration::from_secs(1);
    for rank in [0, 1] {
        let start = Instant::now();
        let e = ProcessGroup::gloo("127.0.0.1", free_port(), rank, 2, t).expect_err("no peers");
        let took = start.elapsed();
        assert!(!e.0.is_empty());
        assert!(
            took >= t && took < t + Duration::from_secs(5),
            "rank {rank}: {took:?}: {e}"
        );
    }
}

/// The entry point of the children (a no-op when not started by `run`).
#[test]
fn dist_child() {
    let Ok(role) = std::env::var(CHILD) else {
        return;
    };
    let f: Vec<&str> = role.split(':').collect();
    let (scenario, rank, size, port) = (
        f[0],
        f[1].parse::<i64>().expect("rank"),
        f[2].parse::<i64>().expect("size"),
        f[3].parse::<u16>().expect("port"),
    );
    match scenario {
        "collectives" => collectives(rank, size, port),
        "dies0" => dies(rank, port, 0),
        "dies1" => dies(rank, port, 1),
        "stalls" => stalls(rank, port),
        _ => panic!("unknown scenario {scenario}"),
    }
    println!("CHILD DONE");
}

fn f32s(t: &Tensor) -> Vec<f32> {
    Vec::<f32>::try_from(&t.flatten(0, -1)).expect("f32")
}
fn f64s(t: &Tensor) -> Vec<f64> {
    Vec::<f64>::try_from(&t.flatten(0, -1)).expect("f64")
}
fn i64s(t: &Tensor) -> Vec<i64> {
    Vec::<i64>::try_from(&t.flatten(0, -1)).expect("i64")
}

fn collectives(rank: i64, size: i64, port: u16) {
    let pg = ProcessGroup::gloo("127.0.0.1", port, rank, size, SLOW).expect("gloo");
    assert_eq!((pg.rank(), pg.size()), (rank, size));
    assert_eq!(pg.backend(), "gloo");
    let (r, n) = (rank, size);
    let k = (r + 1) as f64; // this rank's factor: 1..=n
    let sum_k = (n * (n + 1) / 2) as f64;
    let nf = n as f64;

    // one tensor per call, each dtype and reduction
    for (op, factor) in [
        (ReduceOp::Sum, sum_k),
        (ReduceOp::Max, nf),
        (ReduceOp::Min, 1.0),
    ] {
        let a = Tensor::from_slice(&[1.0f32, -2.0, 3.5]) * k;
        pg.allreduce_(&[&a], op).expect("allreduce f32");
        let want: Vec<f32> = [1.0, -2.0, 3.5].iter().map(|v| v * factor as f32).collect();
        // Max/Min of a negative entry: the extreme factor flips
        let got = f32s(&a);
        assert_eq!(got[0], want[0], "{op:?}");
        assert_eq!(got[2], want[2], "{op:?}");
        let neg = match op {
            ReduceOp::Sum => -2.0 * sum_k as f32,
            ReduceOp::Max => -2.0,
            ReduceOp::Min => -2.0 * nf as f32,
        };
        assert_eq!(got[1], neg, "{op:?}");

        let b = Tensor::from_slice(&[0.25f64, 1.0, 2.0, 4.0, 8.0, 16.0]).reshape([2, 3]) * k;
        pg.allreduce_(&[&b], op).expect("allreduce f64");
        let want: Vec<f64> = [0.25, 1.0, 2.0, 4.0, 8.0, 16.0]
            .iter()
            .map(|v| v * factor)
            .collect();
        assert_eq!(f64s(&b), want, "{op:?}");
        assert_eq!(b.size(), [2, 3]);
    }
    let c = Tensor::from_slice(&[r, -r, 10]);
    pg.allreduce_(&[&c], ReduceOp::Sum).expect("allreduce i64");
    let s = n * (n - 1) / 2;
    assert_eq!(i64s(&c), [s, -s, 10 * n]);
    let c = Tensor::from_slice(&[r, -r, 10]);
    pg.allreduce_(&[&c], ReduceOp::Max).expect("max i64");
    assert_eq!(i64s(&c), [n - 1, 0, 10]);
    let c = Tensor::from_slice(&[r, -r, 10]);
    pg.allreduce_(&[&c], ReduceOp::Min).expect("min i64");
    assert_eq!(i64s(&c), [0, -(n - 1), 10]);

    // many tensors of different shapes and dtypes in one call (several share a bucket; two
    // of 20 MiB exceed the 32 MiB bucket cap together; a 0-dim and an empty one)
    let big = 5 << 20; // float32 elements: 20 MiB
    let ts = [
        Tensor::from_slice(&[1.0f32, 2.0, 3.0]) * k,
        Tensor::from_slice(&[1.0f64, 2.0, 3.0, 4.0, 5.0, 6.0]).reshape([3, 2]) * k,
        Tensor::from_slice(&[r, 2 * r, 3 * r, 4 * r]).reshape([2, 1, 2]),
        Tensor::full([big], k, (Kind::Float, Device::Cpu)),
        Tensor::from_slice(&[0.5f32, 1.5, 2.5, 3.5]).reshape([2, 2]) * k,
        Tensor::full([big], 2.0 * k, (Kind::Float, Device::Cpu)),
        Tensor::from(k as f32),
        Tensor::zeros([0], (Kind::Float, Device::Cpu)),
        Tensor::from_slice(&[7i64]) * (r + 1),
    ];
    pg.allreduce_(&ts, ReduceOp::Sum).expect("allreduce many");
    let sk = sum_k as f32;
    assert_eq!(f32s(&ts[0]), [sk, 2.0 * sk, 3.0 * sk]);
    assert_eq!(ts[1].size(), [3, 2]);
    let want: Vec<f64> = (1..=6).map(|v| v as f64 * sum_k).collect();
    assert_eq!(f64s(&ts[1]), want);
    assert_eq!(ts[2].size(), [2, 1, 2]);
    assert_eq!(i64s(&ts[2]), [s, 2 * s, 3 * s, 4 * s]);
    assert_eq!(ts[3].size(), [big]);
    assert!(ts[3].eq(sum_k).all().int64_value(&[]) == 1);
    assert_eq!(f32s(&ts[4]), [0.5 * sk, 1.5 * sk, 2.5 * sk, 3.5 * sk]);
    assert!(ts[5].eq(2.0 * sum_k).all().int64_value(&[]) == 1);
    assert_eq!(ts[6].dim(), 0);
    assert_eq!(ts[6].double_value(&[]), sum_k);
    assert_eq!(ts[7].size(), [0]);
    assert_eq!(i64s(&ts[8]), [7 * n * (n + 1) / 2]);

    // broadcast from rank 0, then from rank 1, of tensors of several dtypes
    for root in [0, 1] {
        let a = Tensor::full([2, 3], r as f64, (Kind::Float, Device::Cpu));
        let b = Tensor::from_slice(&[r, r * 100]);
        let c = Tensor::full([4], r as f64 + 0.5, (Kind::Double, Device::Cpu));
        let d = Tensor::full([3], -(r as f64), (Kind::Float, Device::Cpu));
        pg.broadcast_(&[&a, &b, &c, &d], root).expect("broadcast");
        assert!(a.eq(root as f64).all().int64_value(&[]) == 1, "root {root}");
        assert_eq!(i64s(&b), [root, root * 100]);
        assert_eq!(f64s(&c), [root as f64 + 0.5; 4]);
        assert_eq!(f32s(&d), [-(root as f32); 3]);
    }

    // parameters that require grad (leaves), as when rank 0's initial model is broadcast
    let w = Tensor::full([3, 2], k, (Kind::Float, Device::Cpu)).set_requires_grad(true);
    let b = Tensor::full([2], -k, (Kind::Float, Device::Cpu)).set_requires_grad(true);
    pg.broadcast_(&[&w, &b], 0).expect("broadcast parameters");
    assert_eq!(f32s(&w.detach()), [1.0; 6]);
    assert_eq!(f32s(&b.detach()), [-1.0; 2]);
    assert!(w.requires_grad() && b.requires_grad());

    // allgather: every rank's tensor in rank order
    let mine = Tensor::from_slice(&[r, 10 * r, 100 * r]).reshape([3, 1]);
    let all = pg.allgather(&mine).expect("allgather");
    assert_eq!(all.len() as i64, n);
    for (i, t) in all.iter().enumerate() {
        let i = i as i64;
        assert_eq!(t.size(), [3, 1]);
        assert_eq!(i64s(t), [i, 10 * i, 100 * i]);
    }
    let mine = Tensor::full([2, 2], k, (Kind::Double, Device::Cpu));
    let all = pg.allgather(&mine).expect("allgather f64");
    for (i, t) in all.iter().enumerate() {
        assert_eq!(f64s(t), [(i + 1) as f64; 4]);
    }

    // from other threads (the group is Send + Sync), one collective at a time
    std::thread::scope(|s| {
        s.spawn(|| pg.barrier().expect("barrier on a thread"))
            .join()
            .expect("thread");
    });
    let moved = std::thread::spawn(move || {
        pg.barrier()
            .expect("barrier on the thread that owns the group");
        pg
    })
    .join()
    .expect("thread");
    moved.barrier().expect("barrier");
    drop(moved);
}

/// Rank `leaves` exits after a barrier; the other's next collective fails well within the
/// timeout.
fn dies(rank: i64, port: u16, leaves: i64) {
    let pg = ProcessGroup::gloo("127.0.0.1", port, rank, 2, SHORT).expect("gloo");
    pg.barrier().expect("barrier");
    if rank == leaves {
        std::process::exit(LEFT);
    }
    let start = Instant::now();
    let t = Tensor::ones([1000], (Kind::Float, Device::Cpu));
    let e = pg
        .allreduce_(&[&t], ReduceOp::Sum)
        .expect_err("the peer is gone");
    let took = start.elapsed();
    println!("rank {rank}: allreduce failed after {took:?}: {e}");
    assert!(e.0.starts_with("allreduce: "), "{e}");
    assert!(took < SHORT + Duration::from_secs(2), "{took:?}");
    // the group keeps failing cleanly, and dropping it does not hang
    let e = pg.barrier().expect_err("still gone");
    println!("rank {rank}: barrier failed: {e}");
    let start = Instant::now();
    drop(pg);
    println!("rank {rank}: dropped in {:?}", start.elapsed());
}

/// Rank 1 stays connected but idle; rank 0's collective fails at the timeout.
fn stalls(rank: i64, port: u16) {
    let pg = ProcessGroup::gloo("127.0.0.1", port, rank, 2, SHORT).expect("gloo");
    pg.barrier().expect("barrier");
    if rank == 1 {
        std::thread::sleep(SHORT + Duration::from_millis(1500));
        std::process::exit(LEFT);
    }
    let start = Instant::now();
    let t = Tensor::ones([10], (Kind::Double, Device::Cpu));
    let e = pg
        .allreduce_(&[&t], ReduceOp::Max)
        .expect_err("the peer is idle");
    let took = start.elapsed();
    println!("rank 0: allreduce failed after {took:?}: {e}");
    assert!(took >= SHORT - Duration::from_millis(100), "{took:?}");
    assert!(took < SHORT + Duration::from_secs(2), "{took:?}");
    let start = Instant::now();
    drop(pg);
    println!("rank 0: dropped in {:?}", start.elapsed());
}
