"""Leak soak: 100k training steps and 10k model create/free cycles; RSS must stay flat.

Usage: python bench/soak.py [steps] [cycles]. Exits non-zero when RSS grows more
than the allowance or handles stay alive.
"""

import gc
import os
import sys
import time

import numpy as np
import torch

import ktorch as kt


def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def steps(n):
    kt.seed(0)
    q = kt.module(("linear", 10, 3))
    m = kt.model(q, kt.loss("ce"), kt.opt("sgd", q, 0.01))
    x = np.random.default_rng(0).standard_normal((7, 10)).astype(np.float32)
    y = np.arange(7) % 3
    kt.train(m, batchsize=7)
    kt.train(m, x, y)
    explicit = n // 2
    marks = {}
    t0 = time.perf_counter()
    for i in range(explicit):  # explicit steps from Python, freeing as the spec's f does
        kt.zerograd(m)
        yhat = kt.forward(m)
        z = kt.loss(m, yhat, kt.target(m))
        kt.backward(z)
        kt.step(m)
        kt.free(yhat, z)
        if i in (explicit // 10, explicit - 1):
            marks[i] = rss_mb()
    t1 = time.perf_counter()
    for i in range(n - explicit):  # run(m) epochs of one batch
        kt.run(m)
        if i in ((n - explicit) // 10, n - explicit - 1):
            marks[explicit + i] = rss_mb()
    t2 = time.perf_counter()
    kt.free(m, q)
    k = sorted(marks)
    return {
        "explicit_growth_mb": marks[k[1]] - marks[k[0]],
        "run_growth_mb": marks[k[3]] - marks[k[2]],
        "explicit_us_per_step": 1e6 * (t1 - t0) / explicit,
        "run_us_per_step": 1e6 * (t2 - t1) / (n - explicit),
    }


def cycles(n):
    x = np.random.default_rng(1).standard_normal((64, 10)).astype(np.float32)
    y = np.arange(64) % 3
    first = None
    for i in range(n):
        q = kt.module(kt.seq("sequential", ("linear", 10, 16), "relu", ("linear", 16, 3)))
        m = kt.model(q, kt.loss("ce"), kt.opt("adam", q))
        kt.train(m, batchsize=16, shuffle=True)
        kt.train(m, x, y)
        kt.run(m)
        kt.free(m, q)
        if i == n // 10:
            first = rss_mb()
    return {"cycle_growth_mb": rss_mb() - first}


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    c = int(sys.argv[2]) if len(sys.argv) > 2 else 10_000
    torch.set_num_threads(1)
    gc.collect()
    base = kt.objects()
    r = steps(n)
    r.update(cycles(c))
    gc.collect()
    r["live_handles_after"] = kt.objects() - base
    r["peak_rss_mb"] = rss_mb()
    for k, v in r.items():
        print(f"{k:24s} {v:10.3f}" if isinstance(v, float) else f"{k:24s} {v:10d}")
    ok = r["live_handles_after"] == 0 and max(r["explicit_growth_mb"], r["run_growth_mb"], r["cycle_growth_mb"]) < 1.0
    print(f"soak: {n} steps, {c} create/free cycles: {'flat' if ok else 'GROWTH'}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
