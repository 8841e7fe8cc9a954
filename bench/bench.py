"""Speed and memory parity: the PyTorch Python loop, ktorch run(m), ktorch explicit steps, the Rust floor.

One process, one run: every workload is timed through each implementation on the
same data from the same initial weights, their epochs interleaved so that all see
the same machine load; per-epoch times, medians after discarded warm-up epochs,
ratios. The epoch losses must agree (rtol 1e-5) or the benchmark
fails. Results go to stdout and bench/RESULTS.md. Run with `make bench`.

GPU rows (same workloads, everything on `cuda:0`) follow when torch sees a CUDA device:
the PyTorch loop with its best settings, ktorch `run` and the Rust floor. `--gpu-only` runs
only those, replacing the GPU section of bench/RESULTS.md; it needs no Rust toolchain (a
prebuilt floor binary is used when found, else its row is left out with a note). See
`make gpu-check`.
"""

import argparse
import datetime
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import results
import torch

import ktorch as kt

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# One thread by default: with the floor in a second process, epochs interleaved, idle
# OpenMP workers of one process spin on the cores the other needs (and this 2-core
# machine is shared); BENCH_THREADS=2 sets another count for all three alike.
THREADS = int(os.environ.get("BENCH_THREADS", 1))
RTOL = 1e-5
FUSED_RTOL = 1e-4  # torch's per-tensor SGD rounds differently from its fused one
# GPU rows: the first two epochs, as cuBLAS/cuDNN may pick other kernels in another process
GPU_RTOL = 1e-4
GPU = "cuda"  # the device of the GPU rows
torch.set_num_threads(THREADS)  # libtorch is shared in-process: ktorch runs with the same count


def floor_binary():
    if os.environ.get("KTORCH_FLOOR"):
        return Path(os.environ["KTORCH_FLOOR"])
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    return target / "release" / "ktorch-floor"


# ---------------------------------------------------------------- workloads


class LstmNet(torch.nn.Module):
    """lstm(10, 20, batch_first) then linear(20, 5), named as ktorch's sequential names them."""

    def __init__(self):
        super().__init__()
        self.add_module("0", torch.nn.LSTM(10, 20, batch_first=True))
        self.add_module("1", torch.nn.Linear(20, 5))

    def forward(self, x):
        y, _ = self._modules["0"](x)
        return self._modules["1"](y)


def spirals(n, k, seed):
    rng = np.random.default_rng(seed)
    r = np.arange(n) / (n - 1)
    xs = []
    for c in range(k):
        a = 4 * r + 4 * c + 0.2 * rng.standard_normal(n)
        xs.append(np.stack([r * np.sin(a), r * np.cos(a)], 1))
    return np.concatenate(xs).astype(np.float32), np.repeat(np.arange(k), n).astype(np.int64)


def classes(rng, n, k):
    return rng.integers(0, k, n).astype(np.int64)


def lstm_data(rng):
    # Lightning's AverageDataset: 300 sequences of 100 steps, target top + rolled bottom half
    x = rng.standard_normal((300, 100, 10)).astype(np.float32)
    top, bottom = x[..., :5], x[..., 5:]
    return x, (top + np.roll(bottom, 1, -1)).astype(np.float32)


SEQ_MLP = kt.seq("sequential", ("linear", 2, 100), "relu", ("linear", 100, 3))
CNN = kt.seq(
    "sequential", ("conv2d", 1, 16, 3), "relu", ("maxpool2d", 2), "flatten", ("linear", 16 * 13 * 13, 10)
)
LSTM = kt.seq("sequential", ("lstm", 10, 20, {"batchfirst": True}), ("linear", 20, 5))
ENCODER = ("encoder", ("encoderlayer", 64, 4, 128, 0.0, {"batchfirst": True}), 2)

mlp = lambda: torch.nn.Sequential(torch.nn.Linear(2, 100), torch.nn.ReLU(), torch.nn.Linear(100, 3))  # noqa: E731
encoder = lambda: torch.nn.TransformerEncoder(  # noqa: E731
    torch.nn.TransformerEncoderLayer(64, 4, 128, 0.0, batch_first=True), 2, enable_nested_tensor=False
)
cnn = lambda: torch.nn.Sequential(  # noqa: E731
    torch.nn.Conv2d(1, 16, 3),
    torch.nn.ReLU(),
    torch.nn.MaxPool2d(2),
    torch.nn.Flatten(),
    torch.nn.Linear(16 * 13 * 13, 10),
)


def encoder_data(rng):
    # 640 sequences of 32 steps, 64 features; target: each step's predecessor, halved
    x = rng.standard_normal((640, 32, 64)).astype(np.float32)
    return x, (0.5 * np.roll(x, 1, 1)).astype(np.float32)


def workloads():
    """The workloads: ktorch spec and torch builder, loss, sgd (lr, momentum), data, batch size,
    warm-up and timed epochs, run metrics; `floor` names the Rust floor's copy of the workload."""
    rng = np.random.default_rng(0)
    mnist = (rng.standard_normal((60000, 784)).astype(np.float32), classes(rng, 60000, 10))
    sp = spirals(1000, 3, 0)
    cnn_x = rng.standard_normal((6000, 1, 28, 28)).astype(np.float32)
    return [
        dict(
            name="tiny step (linear 10->3, 7 rows)",
            floor="tiny",
            spec=("linear", 10, 3),
            torch=lambda: torch.nn.Linear(10, 3),
            loss="ce",
            opt=(0.1, 0.0),
            data=(rng.standard_normal((7, 10)).astype(np.float32), classes(rng, 7, 3)),
            batch=7,
            warm=300,
            epochs=3000,
            metrics="loss",
        ),
        dict(
            name="spirals 2->100->3, batch 32",
            floor="spirals",
            spec=SEQ_MLP,
            torch=mlp,
            loss="ce",
            opt=(0.2, 0.99),
            data=sp,
            batch=32,
            warm=2,
            epochs=15,
            metrics="loss",
        ),
        dict(
            name="spirals 2->100->3, full batch",
            floor="spirals",
            spec=SEQ_MLP,
            torch=mlp,
            loss="ce",
            opt=(0.2, 0.99),
            data=sp,
            batch=3000,
            warm=10,
            epochs=150,
            metrics="loss",
        ),
        dict(
            name="MNIST-sized linear 784->10, batch 1000",
            floor="mnist",
            spec=("linear", 784, 10),
            torch=lambda: torch.nn.Linear(784, 10),
            loss="ce",
            opt=(0.1, 0.0),
            data=mnist,
            batch=1000,
            warm=1,
            epochs=5,
            metrics=["loss", "batchloss"],
        ),
        dict(
            name="CNN conv2d 1->16/relu/maxpool/linear, 6000x28x28, batch 64",
            floor="cnn",
            spec=CNN,
            torch=cnn,
            loss="ce",
            opt=(0.05, 0.9),
            data=(cnn_x, classes(rng, 6000, 10)),
            batch=64,
            warm=1,
            epochs=3,
            metrics="loss",
        ),
        dict(
            name="LSTM(10,20)+linear, 300 seqs x 100, batch 30",
            floor="lstm",
            spec=LSTM,
            torch=LstmNet,
            loss="mse",
            opt=(0.1, 0.9),
            data=lstm_data(rng),
            batch=30,
            warm=1,
            epochs=5,
            metrics="loss",
        ),
        dict(
            name="transformer encoder 2 layers d=64 (4 heads, ff 128), 640 seqs x 32, batch 32",
            floor="encoder",
            spec=ENCODER,
            torch=encoder,
            loss="mse",
            opt=(0.01, 0.9),
            data=encoder_data(rng),
            batch=32,
            warm=1,
            epochs=4,
            metrics="loss",
        ),
        dict(
            name="testrun accuracy, MNIST-sized, batch 5000",
            floor="mnist",
            spec=("linear", 784, 10),
            torch=lambda: torch.nn.Linear(784, 10),
            loss="ce",
            opt=(0.1, 0.0),
            data=mnist,
            batch=5000,
            warm=1,
            epochs=6,
            metrics=["loss", "accuracy"],
            test=True,
        ),
    ]


# ---------------------------------------------------------------- implementations


def init_weights(w):
    """Initial weights drawn by ktorch, by parameter name."""
    kt.seed(1)
    q = kt.module(w["spec"])
    ws = {n: np.array(kt.tensor(kt.parm(q, n))) for n in kt.parmnames(q)}
    kt.free(q)
    return ws


def kt_module(w, ws):
    q = kt.module(w["spec"])
    for n, v in ws.items():
        kt.parm(q, n, v)
    return q


def sync(device):
    """Waits for the device's queued work before a clock is read (nothing to wait for on the cpu)."""
    if device != "cpu":
        torch.cuda.synchronize(device)


def torch_loop(w, ws, fused=False, device="cpu"):
    """The PyTorch loop; on a GPU the model (LSTM weights flattened by .to) and data move there once."""
    net = w["torch"]()
    net.load_state_dict({n: torch.from_numpy(v) for n, v in ws.items()})
    net.to(device)
    x, y = (torch.from_numpy(a).to(device) for a in w["data"])
    lossf = torch.nn.functional.cross_entropy if w["loss"] == "ce" else torch.nn.functional.mse_loss
    n, b = len(x), w["batch"]
    if w.get("test"):
        net.eval()
        while True:
            t0 = time.perf_counter()
            with torch.no_grad():
                ls, correct = [], None
                for i in range(0, n, b):
                    xb, yb = x[i : i + b], y[i : i + b]
                    out = net(xb)
                    ls.append(lossf(out, yb))
                    c = (out.argmax(-1) == yb).sum()
                    correct = c if correct is None else correct + c
                loss = torch.stack(ls).double().mean().item()
                acc = correct.item() * 100.0 / n
            sync(device)
            yield time.perf_counter() - t0, (loss, acc)
    opt = torch.optim.SGD(net.parameters(), lr=w["opt"][0], momentum=w["opt"][1], fused=fused or None)
    while True:
        t0 = time.perf_counter()
        ls = []
        for i in range(0, n, b):
            xb, yb = x[i : i + b], y[i : i + b]
            opt.zero_grad()
            loss = lossf(net(xb), yb)
            loss.backward()
            opt.step()
            ls.append(loss.detach())
        loss = torch.stack(ls).double().mean().item()
        sync(device)
        yield time.perf_counter() - t0, loss


def kt_model(w, ws):
    q = kt_module(w, ws)
    m = kt.model(q, kt.loss(w["loss"]), kt.opt("sgd", q, *w["opt"]))
    return q, m


def kt_run(w, ws, device="cpu"):
    """ktorch run/testrun; on a GPU the model is built on the cpu with the same weights, moved
    with kt.to, and given the data as CUDA torch.Tensors (shared, not copied)."""
    q, m = kt_model(w, ws)
    x, y = w["data"]
    if device != "cpu":
        kt.to(m, device)
        if not kt.device(q).startswith(device):
            raise RuntimeError(f"kt.to(m, {device!r}) left the module on {kt.device(q)}")
        x, y = (torch.from_numpy(a).to(device) for a in (x, y))
    test = w.get("test")
    setopt = kt.test if test else kt.train
    setopt(m, batchsize=w["batch"], metrics=w["metrics"])
    if not test:
        kt.train(m, shuffle=False)
    setopt(m, x, y)
    fn = kt.testrun if test else kt.run
    try:
        while True:
            t0 = time.perf_counter()
            r = fn(m)
            if device != "cpu":
                kt.sync(device)
            t = time.perf_counter() - t0
            yield t, (float(r[0]), float(r[1])) if test else float(r[0] if isinstance(r, list) else r)
    finally:
        kt.free(m, q)


def kt_explicit(w, ws):
    q = kt_module(w, ws)
    lf, o = kt.loss(w["loss"]), kt.opt("sgd", q, *w["opt"])
    X, Y = (kt.tensor(a) for a in w["data"])
    n, b = len(w["data"][0]), w["batch"]
    nb = (n + b - 1) // b
    try:
        while True:
            t0 = time.perf_counter()
            zs = []
            for i in range(nb):
                if nb > 1:  # a batch is a narrowed view of the data, set in place
                    kt.batch(X, b, i)
                    kt.batch(Y, b, i)
                kt.zerograd(o)
                yhat = kt.forward(q, X)
                z = kt.loss(lf, yhat, Y)
                kt.backward(z)
                kt.step(o)
                zs.append(z)
            loss = float(np.mean(np.array([kt.tensor(z) for z in zs], dtype=np.float64)))
            yield time.perf_counter() - t0, loss
            kt.free(*zs)
    finally:
        kt.free(q, lf, o, X, Y)


def floor(w, ws, tmp, device="cpu"):
    d = Path(tmp) / w["floor"]
    d.mkdir(exist_ok=True)
    x, y = w["data"]
    np.save(d / "x.npy", x)
    np.save(d / "y.npy", y)
    for n, v in ws.items():
        np.save(d / f"p.{n}.npy", v)
    env = dict(os.environ, LD_LIBRARY_PATH=os.path.join(os.path.dirname(torch.__file__), "lib"))
    args = [
        str(floor_binary()),
        str(d),
        w["floor"],
        str(w["batch"]),
        str(w["warm"] + w["epochs"]),
        str(THREADS),
    ]
    if w.get("test"):
        args.append("test")
    if device != "cpu":
        args.append("cuda")
    with subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env) as p:
        try:
            while True:
                p.stdin.write("\n")
                p.stdin.flush()
                f = p.stdout.readline().split()
                if not f or f[0] != "epoch":
                    raise RuntimeError(f"ktorch-floor failed on {w['floor']}")
                yield float(f[1]), (float(f[2]), float(f[3])) if w.get("test") else float(f[2])
        finally:
            p.stdin.close()


# ---------------------------------------------------------------- memory


def rss_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def memory_checks():
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((7, 10)).astype(np.float32), classes(rng, 7, 3)
    out = {}
    # run(m): 20000 one-batch epochs
    q = kt.module(("linear", 10, 3))
    m = kt.model(q, kt.loss("ce"), kt.opt("sgd", q, 0.1))
    kt.train(m, batchsize=7, metrics="loss")
    kt.train(m, x, y)
    for _ in range(2000):
        kt.run(m)
    r0 = rss_mb()
    for _ in range(20000):
        kt.run(m)
    out["run(m), 20000 steps"] = rss_mb() - r0
    kt.free(m, q)
    # explicit steps
    q = kt.module(("linear", 10, 3))
    lf, o = kt.loss("ce"), kt.opt("sgd", q, 0.1)
    X, Y = kt.tensor(x), kt.tensor(y)

    def steps(k):
        for _ in range(k):
            kt.zerograd(o)
            yhat = kt.forward(q, X)
            z = kt.loss(lf, yhat, Y)
            kt.backward(z)
            kt.step(o)

    steps(2000)
    r0 = rss_mb()
    steps(20000)
    out["explicit steps, 20000 steps"] = rss_mb() - r0
    kt.free(q, lf, o, X, Y)
    # free releases everything: a model holding 188 MB of data gives it back
    big = np.random.default_rng(2).standard_normal((60000, 784)).astype(np.float32)
    r0 = rss_mb()
    q = kt.module(("linear", 784, 10))
    m = kt.model(q, kt.loss("ce"), kt.opt("sgd", q, 0.1))
    kt.train(m, big, classes(rng, 60000, 10))
    kt.run(m)
    held = rss_mb() - r0
    kt.free(m, q)
    out["model with 60000x784 data: held"] = held
    out["... after free"] = rss_mb() - r0
    try:
        kt.run(m)
        out["freed handle raises"] = "no"
    except kt.KtorchError:
        out["freed handle raises"] = "yes"
    return out


# ---------------------------------------------------------------- report


def med(ts, warm):
    return statistics.median(ts[warm:])


def agree(a, b, rtol=RTOL):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return a.shape == b.shape and np.allclose(a, b, rtol=rtol, atol=0)


def rel(a, b):
    """The largest relative difference between two loss series (nan when their shapes differ)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.max(np.abs(a - b) / np.abs(b))) if a.shape == b.shape and a.size else float("nan")


def fmt_t(s):
    return f"{s * 1e6:.1f} us" if s < 1e-3 else f"{s * 1e3:.2f} ms" if s < 1 else f"{s:.3f} s"


def interleave(w, gens, optional=()):
    """Epochs of every implementation in turn, so that all see the same machine load:
    {name: (times, losses)}. An `optional` implementation that fails (its process did not
    start, say) is dropped with a note instead of failing the benchmark."""
    res = {k: ([], []) for k in gens}
    notes = []
    try:
        for _ in range(w["warm"] + w["epochs"]):
            for k, g in list(gens.items()):
                try:
                    t, loss = next(g)
                except (RuntimeError, OSError) as e:
                    if k not in optional:
                        raise
                    notes.append(f"{w['name']}: {k} dropped: {e}")
                    gens.pop(k).close()
                    res.pop(k)
                    continue
                res[k][0].append(t)
                res[k][1].append(loss)
    finally:
        for g in gens.values():
            g.close()
    return res, notes


def cpu_rows(tmp, failures):
    rows = []
    for w in workloads():
        ws = init_weights(w)
        gens = {
            "torch": torch_loop(w, ws),
            "fused": None if w.get("test") else torch_loop(w, ws, fused=True),
            "run": kt_run(w, ws),
            "explicit": None if w.get("test") else kt_explicit(w, ws),
            "floor": floor(w, ws, tmp),
        }
        res, _ = interleave(w, {k: g for k, g in gens.items() if g is not None})
        res.setdefault("explicit", None)
        res.setdefault("fused", None)
        # ktorch's sgd is torch's fused kernel: every implementation is compared with
        # the fused PyTorch loop; the per-tensor update rounds differently, and on the
        # chaotic spirals (momentum 0.99) drifts away, so `torch` is compared on its
        # first two epochs
        ref = (res["fused"] or res["torch"])[1]
        for k, r in res.items():
            if r is None:
                continue
            short = k == "torch" and res["fused"] is not None
            got, want, rtol = (r[1][:2], ref[:2], FUSED_RTOL) if short else (r[1], ref, RTOL)
            if not agree(got, want, rtol):
                failures.append(
                    f"{w['name']}: {k} losses {r[1][:3]}... vs torch {ref[:3]}... (max rel {rel(r[1], ref):.1e})"
                )
        t = {k: (med(r[0], w["warm"]) if r else None) for k, r in res.items()}
        rows.append((w, t))
        line = "  ".join(f"{k} {fmt_t(v)}" for k, v in t.items() if v is not None)
        print(f"{w['name']}: {line}", flush=True)
    return rows


def gpu_rows(tmp, failures):
    """The GPU rows: (rows, notes), rows None without a CUDA device. Each implementation's
    epoch losses are compared with the PyTorch loop's on the first two epochs (GPU_RTOL); the
    largest relative difference over all epochs is reported."""
    if not torch.cuda.is_available():
        return None, []
    dev = GPU
    notes = []
    has_to = hasattr(kt, "to")
    if not has_to:
        notes.append("ktorch `run` on CUDA left out: this ktorch has no `kt.to` (the device api)")
    binary = floor_binary()
    if not binary.exists():
        notes.append(f"floor on CUDA left out: {binary} not found (cargo build --release -p ktorch-bench)")
    rows = []
    for w in workloads():
        ws = init_weights(w)
        gens = {"torch": torch_loop(w, ws, fused=not w.get("test"), device=dev)}
        if has_to:
            gens["run"] = kt_run(w, ws, device=dev)
        if binary.exists():
            gens["floor"] = floor(w, ws, tmp, device=dev)
        res, dropped = interleave(w, gens, optional=("floor",))
        notes += dropped
        ref = res["torch"][1]
        diffs = {}
        for k, r in res.items():
            if k == "torch":
                continue
            diffs[k] = rel(r[1], ref)
            if not agree(r[1][:2], ref[:2], GPU_RTOL):
                failures.append(
                    f"GPU {w['name']}: {k} losses {r[1][:3]}... vs torch {ref[:3]}... (max rel {diffs[k]:.1e})"
                )
        t = {k: med(r[0], w["warm"]) for k, r in res.items()}
        rows.append((w, t, diffs))
        line = "  ".join(f"{k} {fmt_t(v)}" for k, v in t.items())
        print(f"GPU {w['name']}: {line}", flush=True)
    return rows, notes


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--gpu-only",
        action="store_true",
        help="only the GPU rows (no Rust toolchain needed): replaces the GPU section of bench/RESULTS.md",
    )
    args = ap.parse_args(argv)
    binary = floor_binary()
    if not args.gpu_only and not binary.exists():
        sys.exit(f"bench: floor binary {binary} not built (cargo build --release -p ktorch-bench)")
    failures, gpu_failures = [], []
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        rows = None if args.gpu_only else cpu_rows(tmp, failures)
        t_gpu = time.perf_counter()
        grows, notes = gpu_rows(tmp, gpu_failures)
        t_gpu = time.perf_counter() - t_gpu
    gpu = render_gpu(grows, notes, t_gpu, gpu_failures)
    path = HERE / "RESULTS.md"
    if args.gpu_only:
        report = splice_gpu(path.read_text() if path.exists() else "# ktorch benchmark results\n", gpu)
    else:
        mem = memory_checks()
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        total = time.perf_counter() - t_start
        report = render(rows, mem, peak, total, failures, gpu)
        # the sections other scripts own (bench/dist.py's) are kept as they were
        old = path.read_text() if path.exists() else ""
        for title in [results.DIST]:
            kept = results.section(old, title)
            if kept:
                report = results.splice(report, title, kept)
    path.write_text(report)
    print(gpu if args.gpu_only else report)
    if failures or gpu_failures:
        print("FAILED: the implementations disagree:\n" + "\n".join(failures + gpu_failures), file=sys.stderr)
        sys.exit(1)


def cpu_name():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def render(rows, mem, peak, total, failures, gpu):
    build = HERE / ".buildtime"
    out = [
        "# ktorch benchmark results",
        "",
        f"- date: {datetime.datetime.now().isoformat(timespec='seconds')}",
        f"- machine: {cpu_name()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}",
        f"- torch {torch.__version__}, {THREADS} thread(s) everywhere "
        "(torch.set_num_threads / tch::set_num_threads)",
        f"- python {platform.python_version()}; benchmark wall time {total:.0f} s",
        "",
        "Median time per epoch after discarded warm-up epochs. `torch`: the idiomatic PyTorch loop "
        "(torch.optim, slicing in-memory tensors); `run`: ktorch `run(m)`/`testrun(m)`; `explicit`: ktorch "
        "zerograd/forward/loss/backward/step called from Python; `fused`: the PyTorch loop with "
        "`torch.optim.SGD(fused=True)`, the best PyTorch loop; `floor`: the same loop hand-written in Rust "
        "directly on tch, no ktorch-core (`ktorch-floor`). `best torch` is the faster of `torch` and `fused`. "
        "Every process runs with ktorch's glibc allocator thresholds (set by `import ktorch`, and by the floor). "
        "Ratios < 1 are faster. "
        "Epoch losses of all implementations agree "
        f"with the fused PyTorch loop to rtol {RTOL} (`torch`: its first two epochs, to {FUSED_RTOL}): "
        f"{'yes' if not failures else 'NO'}.",
        "",
        "| workload | torch | fused | run | explicit | floor | run/floor | run/best torch | explicit/best torch |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for w, t in rows:
        ex, fu = t["explicit"], t["fused"]
        best = min(t["torch"], fu) if fu else t["torch"]
        exr = f"{ex / best:.2f}" if ex else "-"
        out.append(
            f"| {w['name']} | {fmt_t(t['torch'])} | {fmt_t(fu) if fu else '-'} | {fmt_t(t['run'])} | "
            f"{fmt_t(ex) if ex else '-'} | {fmt_t(t['floor'])} | {t['run'] / t['floor']:.2f} | "
            f"{t['run'] / best:.2f} | {exr} |"
        )
    out += ["", gpu.rstrip("\n")]
    out += ["", "## Memory", "", f"- peak RSS of the benchmark process: {peak:.0f} MB"]
    for k, v in mem.items():
        out.append(f"- {k}: {v:+.2f} MB" if isinstance(v, float) else f"- {k}: {v}")
    if build.exists():
        out += ["", "## Build", "", f"- {build.read_text().strip()}"]
    if failures:
        out += ["", "## FAILED", ""] + [f"- {f}" for f in failures]
    return "\n".join(out) + "\n"


def render_gpu(rows, notes, total, failures):
    """The `## GPU` section of RESULTS.md."""
    out = ["## GPU", ""]
    if rows is None:
        return "\n".join(out + ["GPU rows: no CUDA device in this run."]) + "\n"
    p = torch.cuda.get_device_properties(0)
    try:
        cudnn = torch.backends.cudnn.version()
    except Exception:  # noqa: BLE001 - only a label
        cudnn = "?"
    out += [
        f"- date: {datetime.datetime.now().isoformat(timespec='seconds')}",
        f"- device: {p.name}, {p.total_memory / 2**30:.0f} GiB; host {cpu_name()}, {os.cpu_count()} cores",
        f"- torch {torch.__version__} (CUDA {torch.version.cuda}, cuDNN {cudnn}), "
        f"python {platform.python_version()}; GPU rows' wall time {total:.0f} s",
        "",
        "The same workloads with weights and data on `cuda:0`, moved there once before the first epoch; no "
        "host sync inside an epoch; the device synchronised before each epoch's clock is read. Median time per "
        "epoch after the same discarded warm-up epochs. `torch`: the best PyTorch loop "
        "(`torch.optim.SGD(fused=True)`; the eval loop for testrun); `run`: ktorch `run(m)`/`testrun(m)` on a "
        'model built on the cpu with the same weights and moved with `kt.to(m, "cuda")`, CUDA torch.Tensors as '
        "data; `floor`: `ktorch-floor ... cuda`, the Rust floor on `Device::Cuda(0)`. Ratios < 1 are faster. "
        f"Epoch losses agree with the PyTorch loop's to rtol {GPU_RTOL} on the first two epochs: "
        f"{'yes' if not failures else 'NO'}; `max rel`: the largest relative difference over all epochs.",
        "",
        "| workload | torch | run | floor | run/torch | run/floor | max rel (run, floor) |",
        "|---|---|---|---|---|---|---|",
    ]
    for w, t, diffs in rows:
        run, fl, tt = t.get("run"), t.get("floor"), t["torch"]
        d = ", ".join(f"{diffs[k]:.0e}" if k in diffs else "-" for k in ("run", "floor"))
        out.append(
            f"| {w['name']} | {fmt_t(tt)} | {fmt_t(run) if run else '-'} | {fmt_t(fl) if fl else '-'} | "
            f"{f'{run / tt:.2f}' if run else '-'} | {f'{run / fl:.2f}' if run and fl else '-'} | {d} |"
        )
    if notes:
        out += [""] + [f"- {n}" for n in notes]
    if failures:
        out += ["", "### GPU FAILED", ""] + [f"- {f}" for f in failures]
    return "\n".join(out) + "\n"


def splice_gpu(text, gpu):
    """RESULTS.md with its `## GPU` section replaced by `gpu` (placed before `## Memory` when absent)."""
    return results.splice(text, "GPU", gpu, before="Memory")


if __name__ == "__main__":
    main()
