"""Long-running service concerns: threads, interrupts, live handles, non-finite gradients."""

import gc
import signal
import threading
import time

import numpy as np
import pytest
import torch

import ktorch as kt


def make_model(seed=0, rows=2000, batch=20, lr=0.05):
    kt.seed(seed)
    q = kt.module(kt.seq("sequential", ("linear", 8, 32), "relu", ("linear", 32, 3)))
    m = kt.model(q, kt.loss("ce"), kt.opt("sgd", q, lr))
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((rows, 8)).astype(np.float32)
    y = rng.integers(0, 3, rows)
    kt.train(m, batchsize=batch, metrics=["loss", "batchloss"])
    kt.train(m, x, y)
    return q, m, x, y


def test_threads_train_separate_models_like_one_thread():
    expect = []
    for s in range(3):
        _, m, _, _ = make_model(s)
        expect.append([kt.run(m)[0] for _ in range(3)])
    models = [make_model(s)[1] for s in range(3)]
    got = [None] * 3
    errors = []

    def work(i):
        try:
            got[i] = [kt.run(models[i])[0] for _ in range(3)]
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    ts = [threading.Thread(target=work, args=(i,)) for i in range(3)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    assert not errors
    np.testing.assert_allclose(np.array(got), np.array(expect), rtol=1e-6)


def test_two_threads_on_one_model_are_serialized():
    q, m, x, y = make_model(1)
    errors, done = [], []

    def work():
        try:
            for _ in range(4):
                loss, bl = kt.run(m)
                assert bl.shape == (100,) and np.isfinite(loss)
                assert kt.datasize(m) == 2000  # never left mid-batch by the other thread
            done.append(1)
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    ts = [threading.Thread(target=work) for _ in range(2)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(120)
    assert not errors and len(done) == 2
    assert kt.restore(m) == 2000


def test_gil_released_during_run():
    q, m, x, y = make_model(2, rows=40000, batch=10)
    ticks = []
    stop = threading.Event()

    def ticker():
        while not stop.is_set():
            ticks.append(time.perf_counter())
            time.sleep(0.001)

    t = threading.Thread(target=ticker)
    t.start()
    t0 = time.perf_counter()
    kt.run(m)
    t1 = time.perf_counter()
    stop.set()
    t.join()
    during = [s for s in ticks if t0 < s < t1]
    # a held GIL would let the ticker run only at the start/end of the run
    assert t1 - t0 > 0.05 and len(during) > 10


def test_ctrl_c_stops_run_between_batches_and_restores_data():
    q, m, x, y = make_model(3, rows=200000, batch=10)
    w0 = kt.tensor(kt.parm(q, "0.weight"))
    timer = threading.Timer(0.3, lambda: signal.raise_signal(signal.SIGINT))
    timer.start()
    t0 = time.perf_counter()
    with pytest.raises(KeyboardInterrupt):
        kt.run(m)
    assert time.perf_counter() - t0 < 10
    timer.join()
    assert kt.datasize(m) == 200000  # full size restored
    assert kt.batch(m)  # batching starts again from the first batch
    np.testing.assert_array_equal(kt.tensor(kt.input(m)), x[:10])
    kt.restore(m)
    assert not np.array_equal(kt.tensor(kt.parm(q, "0.weight")), w0)  # some batches did train
    loss = kt.run(kt.model(q, kt.loss("ce"), kt.opt("sgd", q, 0.05)), x[:100], y[:100])
    assert np.isfinite(loss)


def test_ctrl_c_then_run_again_finishes_the_epoch_bitwise_as_one_run():
    """Ctrl-C keeps the run's place: the next run does the batches not done, in the same shuffled
    order, and returns the whole epoch's metrics, bitwise as a twin model's uninterrupted run."""
    rows, batch = 40000, 10

    def make():
        kt.seed(7)
        q = kt.module(kt.seq("sequential", ("linear", 8, 32), "relu", ("linear", 32, 3)))
        m = kt.model(q, kt.loss("ce"), kt.opt("adam", q, 0.002))
        rng = np.random.default_rng(7)
        kt.train(m, batchsize=batch, shuffle=True, metrics=["loss", "predict"])
        kt.train(m, rng.standard_normal((rows, 8)).astype(np.float32), rng.integers(0, 3, rows))
        return q, m

    def parms(q):
        return {n: kt.tensor(kt.parm(q, n)) for n in kt.parmnames(q)}

    qa, a = make()
    qb, b = make()
    kt.copyparms(b, kt.copyparms(a))  # the same initial weights, whatever the seed gave
    for n, w in parms(qa).items():
        assert parms(qb)[n].tobytes() == w.tobytes(), n
    kt.seed(11)  # the unseeded shuffle draws from the process's generator: the same draw
    t0 = time.perf_counter()
    want = kt.run(a)
    uninterrupted = time.perf_counter() - t0
    assert uninterrupted > 0.3, f"an epoch takes {uninterrupted:.2f}s: too short to interrupt"
    kt.seed(11)
    # a third of the way through the epoch
    timer = threading.Timer(uninterrupted / 3, lambda: signal.raise_signal(signal.SIGINT))
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        kt.run(b)
    timer.join()
    assert kt.datasize(b) == rows  # full size restored
    assert kt.testsize(b) == 0
    ticks = []
    got = kt.run(b, callback=lambda info: ticks.append((info["batch"], info["batches"])), every=1)
    # the batches not done, numbered on from those done before the interrupt
    done = ticks[0][0] - 1
    assert 0 < done < rows // batch
    assert ticks == [(i, rows // batch) for i in range(done + 1, rows // batch + 1)]
    assert np.asarray(got[0]).tobytes() == np.asarray(want[0]).tobytes()  # the epoch's loss
    assert got[1].shape == (rows,)
    np.testing.assert_array_equal(got[1], want[1])  # predictions of every row, in the given order
    for n, w in parms(qa).items():
        assert parms(qb)[n].tobytes() == w.tobytes(), n
    # the optimizer's state too: the next epochs stay equal
    kt.seed(12)
    want = kt.run(a)
    kt.seed(12)
    got = kt.run(b)
    assert np.asarray(got[0]).tobytes() == np.asarray(want[0]).tobytes()
    np.testing.assert_array_equal(got[1], want[1])
    for n, w in parms(qa).items():
        assert parms(qb)[n].tobytes() == w.tobytes(), n


def test_free_leaves_no_live_handles():
    gc.collect()
    base = kt.objects()
    q, m, x, y = make_model(4, rows=50)
    t = kt.tensor([1.0, 2.0])
    v = kt.vector(t, [3, 4])
    assert kt.objects() == base + 4  # q and m (the loss and optimizer handles were dropped), t, v
    kt.free(t, v, m, q)
    del t, v, m, q
    gc.collect()
    assert kt.objects() == base


def test_handle_count_returns_after_create_free_cycles():
    gc.collect()
    base = kt.objects()
    for _ in range(200):
        q = kt.module(("linear", 4, 2))
        m = kt.model(q, kt.loss("mse"), kt.opt("adam", q))
        kt.train(m, np.zeros((8, 4), np.float32), np.zeros((8, 2), np.float32))
        kt.run(m)
        kt.free(m, q)
    gc.collect()
    assert kt.objects() == base


def grads_with_nan(m, x, y):
    """Targets with a NaN make the gradient norm NaN for the batch that holds it."""
    y = y.astype(np.float32).copy()
    y[5] = np.nan
    return y


def make_regression(nonfinite):
    kt.seed(5)
    q = kt.module(("linear", 3, 1))
    m = kt.model(q, kt.loss("mse"), kt.opt("sgd", q, 0.1))
    x = np.random.default_rng(0).standard_normal((30, 3)).astype(np.float32)
    y = np.random.default_rng(1).standard_normal((30, 1)).astype(np.float32)
    y[5, 0] = np.nan
    kt.train(m, batchsize=10, nonfinite=nonfinite, metrics=["batchloss", "gradnorm"])
    kt.train(m, x, y)
    return q, m, x, y


def test_nonfinite_raise():
    q, m, x, y = make_regression("raise")
    w0 = kt.tensor(kt.parm(q, "weight"))
    with pytest.raises(kt.KtorchError, match="run: non-finite gradient norm: NaN"):
        kt.run(m)
    np.testing.assert_array_equal(kt.tensor(kt.parm(q, "weight")), w0)
    assert kt.datasize(m) == 30


def test_nonfinite_skip_matches_torch_loop_without_that_batch():
    q, m, x, y = make_regression("skip")
    w, b = kt.tensor(kt.parm(q, "weight")), kt.tensor(kt.parm(q, "bias"))
    bl, norms = kt.run(m)
    tq = torch.nn.Linear(3, 1)
    with torch.no_grad():
        tq.weight.copy_(torch.from_numpy(w))
        tq.bias.copy_(torch.from_numpy(b))
    o = torch.optim.SGD(tq.parameters(), lr=0.1)
    tnorms = []
    for i in range(3):
        o.zero_grad()
        loss = torch.nn.functional.mse_loss(tq(torch.from_numpy(x[i * 10 : i * 10 + 10])), torch.from_numpy(y[i * 10 : i * 10 + 10]))
        loss.backward()
        tnorms.append(float(torch.nn.utils.get_total_norm([p.grad for p in tq.parameters()])))
        if i != 0:  # batch 0 holds the NaN: skipped
            o.step()
    assert np.isnan(norms[0]) and np.isnan(bl[0])
    np.testing.assert_allclose(norms[1:], tnorms[1:], rtol=1e-5)
    np.testing.assert_allclose(kt.tensor(kt.parm(q, "weight")), tq.weight.detach().numpy(), rtol=1e-5)
    assert np.all(np.isfinite(kt.tensor(kt.parm(q, "weight"))))


def test_nonfinite_proceed_is_the_default():
    q, m, x, y = make_regression("proceed")
    assert kt.train(make_model(0, rows=10)[1], "nonfinite") == "proceed"
    kt.run(m)
    assert np.all(np.isnan(kt.tensor(kt.parm(q, "weight"))))


def test_nonfinite_bad_value_and_test_stage():
    q, m, x, y = make_regression("skip")
    with pytest.raises(kt.KtorchError, match="^train: nonfinite: unrecognized setting `maybe`"):
        kt.train(m, nonfinite="maybe")
    assert kt.train(m, "nonfinite") == "skip"
    with pytest.raises(kt.KtorchError, match="^test: nonfinite: not set for evaluation"):
        kt.test(m, nonfinite="skip")


def test_callback_reentry_raises_instead_of_hanging():
    holder = {}

    def fn(mod, x):
        kt.train(holder["m"], "batchsize")  # the model is busy in this thread
        return x

    q = kt.module(("callback", "cb", fn, {"parms": {"w": [1.0]}}))
    m = kt.model(q, kt.loss("mse"), kt.opt("sgd", q))
    holder["m"] = m
    kt.train(m, np.zeros((4, 1), np.float32), np.zeros((4, 1), np.float32))
    with pytest.raises(kt.KtorchError, match="in use by this thread"):
        kt.run(m)
    assert kt.datasize(m) == 4


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: kt.tensor("full", [2, 2], 300, "byte"), "tensor: value cannot be converted to type uint8_t without overflow"),
        (lambda: kt.tensor("logspace", 0, 1, 5, "bool"), "tensor: \"logspace_cpu\" not implemented for 'Bool'"),
    ],
)
def test_libtorch_errors_inside_tch_panics_become_ktorch_errors(call, message, capfd):
    # tch turns some libtorch errors into Rust panics; they must surface as
    # KtorchError naming the function, with nothing printed to stderr
    with pytest.raises(kt.KtorchError) as e:
        call()
    assert str(e.value) == message
    assert "panicked" not in capfd.readouterr().err
    assert kt.tensor(kt.tensor("full", [2], 3, "byte")).tolist() == [3, 3]


def test_callback_returning_nothing_is_an_error_for_every_metric():
    q = kt.module(("callback", "cb", lambda mod, x: (), {"parms": {"w": [1.0]}}))
    m = kt.model(q, kt.loss("mse"), kt.opt("sgd", q))
    kt.test(m, metrics=["predict", "output", "accuracy"])
    kt.test(m, np.zeros((4, 2), np.float32), np.zeros(4, np.int64))
    with pytest.raises(kt.KtorchError, match="metrics: the module returned no output"):
        kt.testrun(m)
    assert kt.testsize(m) == 4


def test_waiting_for_a_busy_model_releases_the_gil():
    # a worker trains a model whose callback module needs the GIL every batch; the main
    # thread asks the same model for its options meanwhile: neither may deadlock
    q = kt.module(("callback", "cb", lambda mod, x: kt.mul(x, kt.parm(mod, "w")), {"parms": {"w": [1.0]}}))
    m = kt.model(q, kt.loss("mse"), kt.opt("sgd", q))
    x = np.random.default_rng(0).standard_normal((3000, 2)).astype(np.float32)
    kt.train(m, batchsize=1, metrics=["batchloss"])
    kt.train(m, x, x)
    out = []
    t = threading.Thread(target=lambda: out.append(kt.run(m)))
    t.start()
    seen = 0
    deadline = time.perf_counter() + 30
    while t.is_alive() and time.perf_counter() < deadline:
        assert kt.train(m, "batchsize") == 1
        assert kt.datasize(m) in (1, 3000)
        seen += 1
    t.join(30)
    assert not t.is_alive() and out[0].shape == (3000,) and seen > 0
