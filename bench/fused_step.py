"""Per-step time of ktorch's optimizer step (kt.step on gradients already set), with
torch.optim's single-tensor, foreach and fused steps on the same parameters for reference.

Not a test. Run it against two builds to compare, e.g. the installed ktorch (before) and a
worktree's (after):

    python bench/fused_step.py
    PYTHONPATH=/path/to/worktree/python python bench/fused_step.py
"""

import time

import numpy as np
import torch
import torch.nn as nn

import ktorch as kt

torch.set_num_threads(1)

MODELS = {
    "spirals 2->100->3": [2, 100, 3],
    "mlp 784->1024->256->10 (1.07M)": [784, 1024, 256, 10],
}
OPTS = [
    ("sgd", (0.01, 0.9), torch.optim.SGD, dict(lr=0.01, momentum=0.9)),
    ("adam", (0.001,), torch.optim.Adam, dict(lr=0.001)),
    ("adamw", (0.001,), torch.optim.AdamW, dict(lr=0.001)),
    ("adagrad", (0.01,), torch.optim.Adagrad, dict(lr=0.01)),
    ("rmsprop", (0.01,), torch.optim.RMSprop, dict(lr=0.01)),
]


def per_step(step, n):
    for _ in range(max(3, n // 10)):
        step()
    times = []
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(n):
            step()
        times.append((time.perf_counter() - t) / n)
    return float(np.median(times))


def layers(sizes):
    out = []
    for i, (a, b) in enumerate(zip(sizes, sizes[1:], strict=False)):
        if i:
            out.append("relu")
        out.append(("linear", a, b))
    return out


def main():
    print(f"ktorch from {kt.__file__}; torch {torch.__version__}, 1 thread")
    print(f"{'model':32} {'opt':8} {'ktorch':>10} {'torch 1-t':>10} {'foreach':>10} {'fused':>10}")
    for label, sizes in MODELS.items():
        n = 2000 if sizes[1] < 1000 else 50
        x = np.random.default_rng(0).standard_normal((64, sizes[0])).astype(np.float32)
        for name, pos, cls, settings in OPTS:
            q = kt.module(kt.seq("sequential", *layers(sizes)))
            kt.backward(kt.mean(kt.forward(q, x)))
            o = kt.opt(name, q, *pos)
            row = [per_step(lambda o=o: kt.step(o), n)]
            tm = nn.Sequential(*[nn.Linear(a, b) for a, b in zip(sizes, sizes[1:], strict=False)])
            tm(torch.from_numpy(x)).mean().backward()
            for kw in (dict(foreach=False), dict(foreach=True), dict(fused=True)):
                if "fused" in kw and cls is torch.optim.RMSprop:
                    row.append(float("nan"))  # torch.optim.RMSprop has no fused kernel
                    continue
                to = cls(tm.parameters(), **settings, **kw)
                row.append(per_step(to.step, n))
            print(f"{label:32} {name:8} " + " ".join(f"{t * 1e6:8.1f}us" if t == t else f"{'-':>10}" for t in row))


if __name__ == "__main__":
    main()
