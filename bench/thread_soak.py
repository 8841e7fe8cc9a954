"""Thread soak: threads calling every ktorch function at random on shared objects.

Usage: python bench/thread_soak.py [seconds] [threads]. One model, its module,
optimizer and parameter handles, a second model sharing nothing, an LBFGS model,
a callback module, tensors, vectors and dicts are shared by every thread; each
thread calls random functions of the api on them. Exits non-zero on a stray
exception (anything but KtorchError/TypeError) or a thread still alive long after
the end (a deadlock); a crash ends the process. Prints calls, rate and RSS.
"""

import os
import random
import sys
import threading
import time
import traceback

import numpy as np

import ktorch as kt

seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 10
nthreads = int(sys.argv[2]) if len(sys.argv) > 2 else 8


def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


rng = np.random.default_rng(0)
X = rng.standard_normal((200, 4)).astype("f")
Y = rng.integers(0, 3, 200)
q = kt.module(kt.seq("sequential", ("linear", 4, 8), "relu", ("linear", 8, 3)))
o = kt.opt("adam", q, .01)
m = kt.model(q, kt.loss("ce"), o)
kt.train(m, batchsize=16, shuffle=True, metrics=["loss", "accuracy", "gradnorm"])
kt.train(m, X, Y)
kt.test(m, X, Y)
q2 = kt.module(kt.seq("sequential", ("linear", 4, 3)))
o2 = kt.opt("sgd", kt.parm(q, "0.bias"), .01)
m2 = kt.model(q2, kt.loss("ce"), kt.opt("lbfgs", q2))
kt.train(m2, X, Y)
cb = kt.module(("callback", "cb", lambda mod, x: kt.mul(x, kt.parm(mod, "w")), {"parms": {"w": [1.0]}}))
w = kt.parm(q, "0.weight")
t = kt.tensor(X)
v = kt.vector([w, kt.parm(q, "2.bias")])
d = kt.dict({"a": X, "b": Y})
m3 = kt.model(cb, kt.loss("mse"), kt.opt("sgd", cb, 0.001))
kt.train(m3, batchsize=50)
kt.train(m3, X[:, :1], X[:, 1:2])
t2 = kt.tensor(X)
Ok = (kt.KtorchError, TypeError)
calls = [
    lambda: kt.run(m), lambda: kt.testrun(m), lambda: kt.run(m2), lambda: kt.backstep(m),
    lambda: kt.backward(m), lambda: kt.step(m), lambda: kt.step(o2), lambda: kt.zerograd(q),
    lambda: kt.nograd(m), lambda: kt.clip(m, 1.0), lambda: kt.clip(o, 1.0, True), lambda: kt.clipv(v, 1),
    lambda: kt.grad(w), lambda: kt.grad(v), lambda: kt.parm(q, "0.weight", kt.tensor(w)),
    lambda: kt.parmnames(m), lambda: kt.info(m), lambda: kt.info(w), lambda: kt.size(q),
    lambda: kt.forward(q, X), lambda: kt.evaluate(m, X), lambda: kt.eforward(cb, X[:, :1]),
    lambda: kt.nforward(m), lambda: kt.loss(m, kt.forward(q, t), Y), lambda: kt.lr(m),
    lambda: kt.lr(o, [0.01]), lambda: kt.train(m, "batchsize"), lambda: kt.train(m, batchsize=16),
    lambda: kt.train(m), lambda: kt.test(m, metrics="loss"), lambda: kt.data(m), lambda: kt.input(m),
    lambda: kt.target(m), lambda: kt.datasize(m), lambda: kt.testsize(m), lambda: kt.batch(m),
    lambda: kt.restore(m), lambda: kt.batchinit(m), lambda: kt.testinit(m), lambda: kt.testbatch(m),
    lambda: kt.shuffle(m), lambda: kt.unshuffle(m), lambda: kt.shuffle(d), lambda: kt.batch(d, 50),
    lambda: kt.restore(d), lambda: kt.dict(d), lambda: kt.vector(v), lambda: kt.tensor(t),
    lambda: kt.mean(t), lambda: kt.std(t, 0), lambda: kt.add(t, 1), lambda: kt.objclass(v),
    lambda: kt.addref(m), lambda: kt.module(m), lambda: kt.opt("sgd", m), lambda: kt.objects(),
    lambda: kt.train(m, X, Y), lambda: kt.data(m2, X, Y), lambda: kt.input(m2, X),
    lambda: kt.target(m2, Y), lambda: kt.batch(t, 7), lambda: kt.restore(t),
    lambda: kt.shuffle(t), lambda: kt.free(kt.addref(q)), lambda: kt.backward(kt.mean(kt.mul(w, w))),
    lambda: kt.run(m3), lambda: kt.evaluate(m3), lambda: kt.opt(o2, 1, kt.parm(q2, "0.weight"), 0.01),
    lambda: kt.free(kt.model(q, kt.loss("ce"), kt.opt("sgd", q))), lambda: kt.use(t2, kt.tensor(X)),
    lambda: kt.info(t2), lambda: kt.forward(q2, t2), lambda: kt.size(v), lambda: kt.info(o2),
]
errors, counts = [], [0] * nthreads


def work(i):
    r = random.Random(i)
    end = time.time() + seconds
    while time.time() < end:
        c = r.choice(calls)
        try:
            c()
        except Ok:
            pass
        except Exception:
            errors.append(traceback.format_exc())
            return
        counts[i] += 1


rss0 = rss_mb()
t0 = time.time()
ts = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(nthreads)]
for x in ts:
    x.start()
last = t0
while any(x.is_alive() for x in ts) and time.time() < t0 + seconds + 120:
    time.sleep(1)
    if time.time() - last >= 60:
        last = time.time()
        print(f"{last - t0:6.0f} s  calls {sum(counts)}  rss {rss_mb():.0f} MB", flush=True)
alive = sum(x.is_alive() for x in ts)
took = time.time() - t0
print(f"calls {sum(counts)} threads {nthreads} seconds {took:.0f} rate {sum(counts) / took:.0f}/s "
      f"alive {alive} errors {len(errors)} rss {rss0:.0f}->{rss_mb():.0f} MB", flush=True)
if errors:
    print(errors[0])
sys.exit(1 if alive or errors else 0)
