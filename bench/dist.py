"""Multi-process training on gloo: ktorch's `run` with option `dist` against PyTorch's
DistributedDataParallel Python loop, on the same model, data and global batches, with
1 and 2 processes (one thread each, epochs of the two alternating), for a small MLP (one gradient bucket) and a wide one
(2.3 MB of gradients: two buckets, the first reduced during backward). Prints a markdown
table (median time per epoch after a warm-up epoch) and the scaling from 1 to 2 processes, and
writes them as the multi-process section of bench/RESULTS.md.

    python bench/dist.py            # 1 and 2 processes
"""

import datetime
import os
import socket
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import results
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

HERE = Path(__file__).resolve().parent

ROWS, BATCH, EPOCHS = 12800, 64, 8
# name: inputs, hidden widths, classes
MODELS = {"MLP 2->100->3": (2, [100], 3), "MLP 32->512->512->10": (32, [512, 512], 10)}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def data(inputs, classes):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((ROWS, inputs)).astype(np.float32)
    y = ((x.sum(1) > 0).astype(np.int64) + (x[:, 0] > 1).astype(np.int64)) % classes
    return x, y


def widths(spec):
    inputs, hidden, classes = spec
    return list(zip([inputs, *hidden], [*hidden, classes], strict=True))


def net(spec):
    torch.manual_seed(0)
    layers = []
    for i, (a, b) in enumerate(widths(spec)):
        layers += [torch.nn.ReLU()] if i else []
        layers.append(torch.nn.Linear(a, b))
    return torch.nn.Sequential(*layers)


def worker(rank, world, port, spec, out):
    import ktorch as kt

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    x, y = data(spec[0], spec[2])
    # ktorch: one run per epoch over the global batches, this rank's share of each
    kt.seed(0)
    layers = []
    for i, (a, b) in enumerate(widths(spec)):
        layers += ["relu"] if i else []
        layers.append(("linear", a, b))
    q = kt.module(kt.seq("sequential", *layers))
    m = kt.model(q, kt.loss("ce"), kt.opt("sgd", q, 0.05))
    kt.train(m, x, y)
    kt.train(m, batchsize=BATCH, dist=True)
    # PyTorch: DDP over the same global batches, this rank's contiguous share of each
    model = torch.nn.parallel.DistributedDataParallel(net(spec))
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    lossf = torch.nn.CrossEntropyLoss()
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)

    def ddp_epoch():
        for b in range(0, ROWS, BATCH):
            n = min(BATCH, ROWS - b)
            lo, hi = b + rank * n // world, b + (rank + 1) * n // world
            opt.zero_grad(set_to_none=True)
            loss = lossf(model(xt[lo:hi]), yt[lo:hi])
            loss.backward()
            opt.step()

    # epochs of the two alternate, so that both meet the same load on the machine
    kt_times, th_times = [], []
    for _ in range(EPOCHS + 1):
        t = time.perf_counter()
        kt_loss = kt.run(m)
        kt_times.append(time.perf_counter() - t)
        t = time.perf_counter()
        ddp_epoch()
        th_times.append(time.perf_counter() - t)
    if rank == 0:
        out.put((statistics.median(kt_times[1:]), statistics.median(th_times[1:]), float(kt_loss)))
    dist.destroy_process_group()


def measure(world, spec):
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    port = free_port()
    procs = [ctx.Process(target=worker, args=(r, world, port, spec, out)) for r in range(world)]
    for p in procs:
        p.start()
    r = out.get(timeout=600)
    for p in procs:
        p.join(60)
    return r


def main():
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    out = [
        f"## {results.DIST}",
        "",
        f"`python bench/dist.py` ({datetime.date.today().isoformat()}, {os.cpu_count()} cores): ktorch `run` "
        "with option `dist` against PyTorch's DistributedDataParallel Python loop, same model, data and "
        f"global batches, each process one thread. {ROWS} rows, global batch {BATCH}, SGD, gloo on "
        f"127.0.0.1, median time per epoch of {EPOCHS} epochs after one warm-up, epochs of the two "
        "alternating.",
        "",
        "| model | processes | ktorch run | PyTorch DDP loop | run/DDP |",
        "|---|---|---|---|---|",
    ]
    print("\n".join(out), flush=True)
    scaling = []
    for name, spec in MODELS.items():
        rows = {w: measure(w, spec) for w in (1, 2)}
        for w, (k, t, _) in rows.items():
            out.append(f"| {name} | {w} | {k * 1e3:.1f} ms | {t * 1e3:.1f} ms | {k / t:.2f} |")
            print(out[-1], flush=True)
        scaling.append(f"{name}: ktorch {rows[2][0] / rows[1][0]:.2f}, DDP {rows[2][1] / rows[1][1]:.2f}")
    out += ["", "Scaling 1 -> 2 processes (time ratio): " + "; ".join(scaling) + ".",
            "", "The small MLP's gradients make one bucket: one collective per step (gradients, the weighted "
            "loss and the gradient flags together). The wide MLP's make two, the first allreduced while "
            "backward goes on, as DDP's reducer does. With fewer cores than processes plus gloo's threads, "
            "two processes are slower than one for models this small: the table compares two ways of doing "
            "the same work."]
    print("\n".join(out[-3:]))
    path = HERE / "RESULTS.md"
    text = path.read_text() if path.exists() else "# ktorch benchmark results\n"
    path.write_text(results.splice(text, results.DIST, "\n".join(out)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
