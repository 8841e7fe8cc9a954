"""Data-parallel training over torch.distributed processes: one model, the run loop in Rust.

    torchrun --nproc_per_node 2 examples/ddp.py [--epochs 20] [--batchsize 100] [--cpu]

Every process builds the same model and loads the same data; `kt.train(m, dist=True)` splits
each global batch of `batchsize` rows over the processes of the default group and sums the
gradients, so the processes train one model exactly as one process would (the parameters agree
bitwise across processes after every step). Run without torchrun it trains in one process.
Where CUDA is available (and not --cpu), each process trains on GPU `LOCAL_RANK` over NCCL
(`torchrun --nproc_per_node <GPUs>`); else on the CPU over gloo.
"""

import argparse
import os
from datetime import timedelta

import numpy as np
import torch
import torch.distributed as dist

import ktorch as kt


def spirals(n, k, seed):
    """k noisy spirals of n points each (examples/spirals.py's data)."""
    rng = np.random.default_rng(seed)
    r = np.arange(n) / (n - 1)
    xs = []
    for c in range(k):
        a = 4 * r + 4 * c + 0.2 * rng.standard_normal(n)
        xs.append(np.stack([r * np.sin(a), r * np.cos(a)], 1))
    return np.concatenate(xs).astype(np.float32), np.repeat(np.arange(k), n)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=20, help="epochs (default 20)")
    p.add_argument("--batchsize", type=int, default=100, help="rows of a global batch (default 100)")
    p.add_argument("--cpu", action="store_true", help="train on the CPU (gloo) even with CUDA")
    args = p.parse_args(argv)

    group = "RANK" in os.environ  # started by torchrun
    cuda = torch.cuda.is_available() and not args.cpu
    local = int(os.environ.get("LOCAL_RANK", "0"))  # this process's GPU
    device = f"cuda:{local}" if cuda else "cpu"
    if cuda:
        torch.cuda.set_device(local)
    if group:
        # torchrun sets RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT
        dist.init_process_group("nccl" if cuda else "gloo", timeout=timedelta(seconds=60))
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // dist.get_world_size()))
    rank = dist.get_rank() if group else 0
    size = dist.get_world_size() if group else 1

    kt.seed(42)  # the same initial weights everywhere (rank 0's are broadcast anyway)
    x, y = spirals(1000, 3, 0)
    xt, yt = spirals(200, 3, 1)
    q = kt.module(kt.seq("sequential", ("linear", 2, 100), "relu", ("linear", 100, 3)))
    m = kt.model(q, kt.loss("ce"), kt.opt("sgd", q, 0.2, 0.9))
    if cuda:
        kt.to(m, device)  # the data stays on the host: each batch is copied as it is used
    kt.train(m, x, y)
    kt.test(m, xt, yt)
    kt.train(m, batchsize=args.batchsize, shuffle=True, metrics=["loss", "accuracy"])
    kt.test(m, metrics=["loss", "accuracy"])
    if group:
        kt.train(m, dist=True)  # the test stage uses the same group

    for epoch in range(1, args.epochs + 1):
        loss, acc = kt.run(m)  # the metrics of all the data, on every rank
        tloss, tacc = kt.testrun(m)
        if rank == 0 and (epoch % 5 == 0 or epoch == 1):
            print(f"epoch {epoch:3d}  loss {loss:.4f}  accuracy {acc:5.1f}%  "
                  f"test loss {tloss:.4f}  test accuracy {tacc:5.1f}%  ({size} process(es), {device})")
    if group:
        # every rank holds the same parameters: check against rank 0's
        w = torch.from_numpy(kt.tensor(kt.parm(q, "2.weight"))).to(device)
        w0 = w.clone()
        dist.broadcast(w0, 0)
        assert torch.equal(w, w0), "the ranks' parameters differ"
        if rank == 0:
            print(f"parameters equal on all {size} processes")
        kt.free(m)
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
