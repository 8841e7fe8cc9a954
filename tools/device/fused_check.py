"""On a GPU machine: ktorch's fused optimizer steps on CUDA parameters against torch.optim's
``fused=True`` (sgd, adam, adamw: libtorch's CUDA fused kernels; adagrad, which libtorch fuses
on the CPU only, takes ktorch's per-parameter path and is compared with ``foreach=False``).

    python tools/device/fused_check.py     # exits 1 on a mismatch
"""

import sys

import numpy as np
import torch

import ktorch as kt

CASES = [
    ("sgd", (0.1, 0.9, 0, 0.01, True), torch.optim.SGD,
     dict(lr=0.1, momentum=0.9, weight_decay=0.01, nesterov=True), dict(fused=True)),
    ("adam", (0.01, 0.9, 0.999, 1e-8, 0.05, True), torch.optim.Adam,
     dict(lr=0.01, weight_decay=0.05, amsgrad=True), dict(fused=True)),
    ("adamw", (0.01, 0.9, 0.99, 1e-8, 0.1), torch.optim.AdamW,
     dict(lr=0.01, betas=(0.9, 0.99), weight_decay=0.1), dict(fused=True)),
    ("adagrad", (0.1, 0.01, 0.02, 0.1), torch.optim.Adagrad,
     dict(lr=0.1, lr_decay=0.01, weight_decay=0.02, initial_accumulator_value=0.1), dict(foreach=False)),
]


def main():
    rng = np.random.default_rng(0)
    bad = 0
    for name, pos, cls, settings, how in CASES:
        init = [rng.standard_normal((64, 32)).astype(np.float32), rng.standard_normal(32).astype(np.float32),
                rng.standard_normal(10)]
        ks = [kt.tensor(x, "cuda", "grad") for x in init]
        ts = [torch.tensor(x, device="cuda", requires_grad=True) for x in init]
        o = kt.opt(name, kt.vector(ks), *pos)
        to = cls(ts, **settings, **how)
        worst = 0.0
        for _ in range(20):
            gs = [rng.standard_normal(x.shape).astype(x.dtype) for x in init]
            kt.zerograd(o)
            to.zero_grad()
            for k, t, g in zip(ks, ts, gs, strict=True):
                kt.backward(kt.mean(kt.mul(k, kt.tensor(g, "cuda"))))
                (t * torch.from_numpy(g).cuda()).mean().backward()
            kt.step(o)
            to.step()
            for k, t in zip(ks, ts, strict=True):
                a, b = kt.tensor(k), t.detach().cpu().numpy()
                worst = max(worst, float(np.max(np.abs(a - b) / (np.abs(b) + 1e-6))))
        ok = worst <= (0.0 if how.get("fused") else 1e-5)
        bad += not ok
        print(f"{name:8} cuda vs torch {how}: max relative difference {worst:.3g} {'ok' if ok else 'MISMATCH'}")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
