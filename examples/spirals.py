"""The spec's spiral example: explicit training steps, then run/testrun epochs.

    python examples/spirals.py [--plot out.png] [--epochs 30]

--plot writes the loss and accuracy curves and the decision regions to a PNG (needs matplotlib,
see examples/plots.py).
"""

import argparse

import numpy as np

import ktorch as kt

n, k = 1000, 3  # sample size, classes


def spirals(n, k, seed):
    """k noisy spirals of n points each, as the spec builds them."""
    rng = np.random.default_rng(seed)
    r = np.arange(n) / (n - 1)
    xs = []
    for c in range(k):
        a = 4 * r + 4 * c + 0.2 * rng.standard_normal(n)
        xs.append(np.stack([r * np.sin(a), r * np.cos(a)], 1))
    return np.concatenate(xs).astype(np.float32), np.repeat(np.arange(k), n)


def accuracy(q, x, y):
    return 100.0 * np.mean(kt.evaluate(q, x).argmax(1) == y)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--plot", metavar="PNG", help="write curves and decision regions to this PNG file")
    p.add_argument("--epochs", type=int, default=30, help="run/testrun epochs (default 30)")
    args = p.parse_args(argv)

    kt.seed(42)
    x, y = spirals(n, k, 0)
    q = kt.module(kt.seq("sequential", ("linear", 2, 100), "relu", ("linear", 100, k)))
    lossfn = kt.loss("ce")
    o = kt.opt("sgd", q, 0.2, 0.99)

    print("explicit steps: zerograd, forward, loss, backward, step")
    X, Y = kt.tensor(x), kt.tensor(y)
    for i in range(1, 201):
        kt.zerograd(o)
        yhat = kt.forward(q, X)
        z = kt.loss(lossfn, yhat, Y)
        kt.backward(z)
        kt.step(o)
        if i % 20 == 0:
            print(f"  step {i:3d}  loss {float(kt.tensor(z)):.4f}")
        kt.free(yhat, z)
    print(f"  training accuracy {accuracy(q, X, y):.1f}%")

    print("run/testrun: batch 100, shuffled, metrics loss and accuracy")
    kt.seed(7)
    q = kt.module(kt.seq("sequential", ("linear", 2, 100), "relu", ("linear", 100, k)))
    m = kt.model(q, kt.loss("ce"), kt.opt("sgd", q, 0.2, 0.9))
    kt.train(m, batchsize=100, shuffle=True, metrics=["loss", "accuracy"])
    kt.test(m, batchsize=1000, metrics=["loss", "accuracy"])
    kt.train(m, x, y)
    xt, yt = spirals(n // 2, k, 1)
    kt.test(m, xt, yt)
    history = {"loss": [], "accuracy": [], "test_loss": [], "test_accuracy": []}
    for epoch in range(1, args.epochs + 1):
        loss, acc = kt.run(m)
        tloss, tacc = kt.testrun(m)
        for name, v in zip(history, (loss, acc, tloss, tacc), strict=True):
            history[name].append(float(v))
        if epoch % 3 == 0:
            print(f"  epoch {epoch:2d}  train loss {loss:.4f} acc {acc:5.1f}%   test loss {tloss:.4f} acc {tacc:5.1f}%")

    if args.plot:
        from plots import save_summary

        print(f"plot: {save_summary(history, m, xt, yt, args.plot)}")


if __name__ == "__main__":
    main()
