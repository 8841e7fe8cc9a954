"""Multi-process training on gloo: ktorch's `run` with option `dist` against PyTorch's
DistributedDataParallel Python loop, on the same model, data and global batches, with
1 and 2 processes (one thread each), for a small MLP (one gradient bucket) and a wide one
(2.3 MB of gradients: two buckets, the first reduced during backward). Prints a markdown
table (median time per epoch after a warm-up epoch) and the scaling from 1 to 2 processes.

    python bench/dist.py            # 1 and 2 processes
"""

import os
import socket
import statistics
import sys
import time

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

ROWS, BATCH, EPOCHS = 12800, 64, 4
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
    kt_times = []
    for _ in range(EPOCHS + 1):
        t = time.perf_counter()
        kt_loss = kt.run(m)
        kt_times.append(time.perf_counter() - t)
    # PyTorch: DDP over the same global batches, this rank's contiguous share of each
    model = torch.nn.parallel.DistributedDataParallel(net(spec))
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    lossf = torch.nn.CrossEntropyLoss()
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    th_times = []
    for _ in range(EPOCHS + 1):
        t = time.perf_counter()
        for b in range(0, ROWS, BATCH):
            n = min(BATCH, ROWS - b)
            lo, hi = b + rank * n // world, b + (rank + 1) * n // world
            opt.zero_grad(set_to_none=True)
            loss = lossf(model(xt[lo:hi]), yt[lo:hi])
            loss.backward()
            opt.step()
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
    print(f"{ROWS} rows, global batch {BATCH}, SGD, gloo on 127.0.0.1, 1 thread per process,"
          f" median of {EPOCHS} epochs after one warm-up\n")
    print("| model | processes | ktorch run | PyTorch DDP loop | run/DDP |")
    print("|---|---|---|---|---|")
    scaling = []
    for name, spec in MODELS.items():
        rows = {w: measure(w, spec) for w in (1, 2)}
        for w, (k, t, _) in rows.items():
            print(f"| {name} | {w} | {k * 1e3:.1f} ms | {t * 1e3:.1f} ms | {k / t:.2f} |", flush=True)
        scaling.append((name, rows[2][0] / rows[1][0], rows[2][1] / rows[1][1]))
    print()
    for name, k, t in scaling:
        print(f"{name}: scaling 1 -> 2 processes (time ratio): ktorch {k:.2f}, DDP {t:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
