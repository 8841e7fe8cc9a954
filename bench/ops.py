"""Top-level libtorch ops per training step: ktorch's run(m) and the PyTorch loop, by the torch profiler.

ktorch runs in this process on the same libtorch, so the profiler records its calls too.
`python bench/ops.py`: for the tiny and spirals (batch 32) workloads, the ops of one epoch
divided by its steps, per implementation, and each op's count per step.
"""

import collections

import numpy as np
import torch
from torch.profiler import ProfilerActivity, profile

import ktorch as kt

torch.set_num_threads(1)


def workloads():
    rng = np.random.default_rng(0)
    r = np.arange(1000) / 999
    xs = []
    for c in range(3):
        a = 4 * r + 4 * c + 0.2 * rng.standard_normal(1000)
        xs.append(np.stack([r * np.sin(a), r * np.cos(a)], 1))
    sp = (np.concatenate(xs).astype(np.float32), np.repeat(np.arange(3), 1000))
    tiny = (rng.standard_normal((7, 10)).astype(np.float32), rng.integers(0, 3, 7))
    mlp = kt.seq("sequential", ("linear", 2, 100), "relu", ("linear", 100, 3))
    return [
        ("tiny (linear 10->3, 7 rows)", ("linear", 10, 3), lambda: torch.nn.Linear(10, 3), tiny, 7, (0.1, 0.0)),
        ("spirals 2->100->3, batch 32", mlp,
         lambda: torch.nn.Sequential(torch.nn.Linear(2, 100), torch.nn.ReLU(), torch.nn.Linear(100, 3)),
         sp, 32, (0.2, 0.99)),
    ]


def top_level(prof):
    """The ops called from outside libtorch: events without an aten parent."""
    counts = collections.Counter()
    for e in prof.events():
        if e.name.startswith("aten::") and (e.cpu_parent is None or not e.cpu_parent.name.startswith("aten::")):
            counts[e.name] += 1
    return counts


def ktorch_epoch(spec, data, batch, opt):
    q = kt.module(spec)
    m = kt.model(q, kt.loss("ce"), kt.opt("sgd", q, *opt))
    kt.train(m, *data)
    kt.train(m, batchsize=batch)
    kt.run(m)
    with profile(activities=[ProfilerActivity.CPU]) as p:
        kt.run(m)
    return top_level(p)


def torch_epoch(make, data, batch, opt, fused):
    net = make()
    o = torch.optim.SGD(net.parameters(), lr=opt[0], momentum=opt[1], fused=fused or None)
    x, y = (torch.from_numpy(a) for a in data)

    def epoch():
        ls = []
        for i in range(0, len(x), batch):
            o.zero_grad()
            loss = torch.nn.functional.cross_entropy(net(x[i : i + batch]), y[i : i + batch])
            loss.backward()
            o.step()
            ls.append(loss.detach())
        return torch.stack(ls).mean().item()

    epoch()
    with profile(activities=[ProfilerActivity.CPU]) as p:
        epoch()
    return top_level(p)


def main():
    for name, spec, make, data, batch, opt in workloads():
        steps = (len(data[0]) + batch - 1) // batch
        rows = {
            "run": ktorch_epoch(spec, data, batch, opt),
            "torch": torch_epoch(make, data, batch, opt, False),
            "torch fused": torch_epoch(make, data, batch, opt, True),
        }
        print(f"\n{name}: top-level libtorch ops per step")
        for k, c in rows.items():
            print(f"  {k:12} {sum(c.values()) / steps:6.1f}")
        names = sorted(set().union(*rows.values()))
        print(f"  {'op':40} " + " ".join(f"{k:>11}" for k in rows))
        for n in names:
            print(f"  {n:40} " + " ".join(f"{rows[k][n] / steps:11.2f}" for k in rows))


if __name__ == "__main__":
    main()
