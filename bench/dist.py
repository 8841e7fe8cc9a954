"""Multi-process training on gloo: ktorch's `run` with option `dist` against PyTorch's
DistributedDataParallel Python loop, on the same model, data and global batches, with
1 and 2 processes (one thread each). Prints a markdown table (median time per epoch
after a warm-up epoch) and the scaling from 1 to 2 processes.

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


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def data():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((ROWS, 2)).astype(np.float32)
    y = (x.sum(1) > 0).astype(np.int64) + (x[:, 0] > 1).astype(np.int64)
    return x, y


def net():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(2, 100), torch.nn.ReLU(), torch.nn.Linear(100, 3))


def worker(rank, world, port, out):
    import ktorch as kt

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    x, y = data()
    # ktorch: one run per epoch over the global batches, this rank's share of each
    kt.seed(0)
    q = kt.module(kt.seq("sequential", ("linear", 2, 100), "relu", ("linear", 100, 3)))
    m = kt.model(q, kt.loss("ce"), kt.opt("sgd", q, 0.05))
    kt.train(m, x, y)
    kt.train(m, batchsize=BATCH, dist=True)
    kt_times = []
    for _ in range(EPOCHS + 1):
        t = time.perf_counter()
        kt_loss = kt.run(m)
        kt_times.append(time.perf_counter() - t)
    # PyTorch: DDP over the same global batches, this rank's contiguous share of each
    model = torch.nn.parallel.DistributedDataParallel(net())
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


def measure(world):
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    port = free_port()
    procs = [ctx.Process(target=worker, args=(r, world, port, out)) for r in range(world)]
    for p in procs:
        p.start()
    r = out.get(timeout=600)
    for p in procs:
        p.join(60)
    return r


def main():
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    rows = {w: measure(w) for w in (1, 2)}
    print(f"MLP 2->100->3, {ROWS} rows, global batch {BATCH}, gloo on 127.0.0.1, 1 thread per process,"
          f" median of {EPOCHS} epochs after one warm-up\n")
    print("| processes | ktorch run | PyTorch DDP loop | run/DDP |")
    print("|---|---|---|---|")
    for w, (k, t, _) in rows.items():
        print(f"| {w} | {k * 1e3:.1f} ms | {t * 1e3:.1f} ms | {k / t:.2f} |")
    k1, t1, _ = rows[1]
    k2, t2, _ = rows[2]
    print(f"\nscaling 1 -> 2 processes (time ratio): ktorch {k2 / k1:.2f}, DDP {t2 / t1:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
