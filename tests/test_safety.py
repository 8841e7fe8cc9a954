"""Memory safety under threads, signals that keep their meaning, lifetimes (issue 8).

The crash tests run their stress in a child process: a crash there (SIGABRT,
SIGSEGV, heap corruption) is a failed test here, not a dead test session.
"""

import gc
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

import ktorch as kt

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_child(code, timeout=120):
    """Runs `code` in a fresh interpreter; returns (returncode, output)."""
    r = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True, text=True, timeout=timeout, cwd=ROOT,
    )
    return r.returncode, r.stdout + r.stderr


def big_model(rows=100_000, batch=4, seed=0):
    kt.seed(seed)
    q = kt.module(kt.seq("sequential", ("linear", 8, 16), "relu", ("linear", 16, 3)))
    m = kt.model(q, kt.loss("ce"), kt.opt("sgd", q, 0.01))
    rng = np.random.default_rng(seed)
    kt.train(m, batchsize=batch)
    kt.train(m, rng.standard_normal((rows, 8)).astype("f"), rng.integers(0, 3, rows))
    return q, m


def slow_model(stop):
    """A model whose run takes ~1 ms a batch for 100k batches, ended early by `stop`."""

    def fn(mod, x):
        if stop.is_set():
            raise RuntimeError("stopped")
        time.sleep(0.001)
        return kt.mul(x, kt.parm(mod, "w"))

    q = kt.module(("callback", "cb", fn, {"parms": {"w": [1.0]}}))
    m = kt.model(q, kt.loss("mse"), kt.opt("sgd", q))
    kt.train(m, batchsize=2)
    kt.train(m, np.ones((200_000, 1), "f"), np.ones((200_000, 1), "f"))
    return m


def start_run(m):
    """Runs `m` in a thread; returns the thread and the list its outcome goes to."""
    done = []

    def worker():
        try:
            kt.run(m)
            done.append(None)
        except BaseException as e:  # noqa: BLE001
            done.append(e)

    t = threading.Thread(target=worker)
    t.start()
    return t, done


# ---------------------------------------------------------------------------
# 1. gradients and parameters touched only under their owner's lock

GRAD_RACE = """
import threading, time, numpy as np, ktorch as kt
q = kt.module(kt.seq("sequential", ("linear", 8, 16), "relu", ("linear", 16, 3)))
m = kt.model(q, kt.loss("ce"), kt.opt("sgd", q, .01)); kt.train(m, batchsize=4)
kt.train(m, np.random.randn(400, 8).astype("f"), np.random.randint(0, 3, 400))
stop = threading.Event()
def runner():
    while not stop.is_set():
        kt.run(m)
t = threading.Thread(target=runner, daemon=True); t.start()
w = kt.parm(q, "0.weight")
o = kt.opt("sgd", q, .01)      # a second optimizer over the same parameters
v = kt.vector([w, kt.parm(q, "0.bias")])
calls = [lambda: kt.zerograd(q), lambda: kt.nograd(q), lambda: kt.clipv(q, 1),
         lambda: kt.grad(w), lambda: kt.clip(q, 1.0), lambda: kt.zerograd(o),
         lambda: kt.step(o), lambda: kt.nograd(v), lambda: kt.grad(v), lambda: kt.clipv(w, .5),
         lambda: kt.tensor(w), lambda: kt.mul(w, 2), lambda: kt.size(q), lambda: kt.info(w)]
n = 0
end = time.time() + {seconds}
while time.time() < end:
    for c in calls:
        c(); n += 1
stop.set(); t.join(30)
assert not t.is_alive()
print("calls", n)
"""

GRAPH_RACE = """
import threading, time, numpy as np, ktorch as kt
q = kt.module(kt.seq("sequential", ("linear", 8, 16), "relu", ("linear", 16, 3)))
m = kt.model(q, kt.loss("ce"), kt.opt("sgd", q, .01)); kt.train(m, batchsize=1)
X, Y = np.random.randn(400, 8).astype("f"), np.random.randint(0, 3, 400)
kt.train(m, X, Y)
stop = threading.Event()
def runner():
    while not stop.is_set():
        kt.run(m)
t = threading.Thread(target=runner, daemon=True); t.start()
w, l = kt.parm(q, "0.weight"), kt.loss("ce")
ok = stale = 0
end = time.time() + {seconds}
while time.time() < end:
    # results of calls on parameters carry their graph: backward on them writes the
    # parameters' gradients, which the running model frees and recreates every batch
    for make in (lambda: kt.mean(kt.mul(w, w)), lambda: kt.loss(l, kt.forward(q, X[:8]), Y[:8]),
                 lambda: kt.loss(m, kt.forward(m, X[:8]), Y[:8]), lambda: kt.std(kt.add(w, 1))):
        try:
            kt.backward(make()); ok += 1
        except kt.KtorchError as e:  # the run's step changed a parameter between the two calls
            assert "modified by an inplace operation" in str(e), e
            stale += 1
stop.set(); t.join(30)
assert not t.is_alive()
print("calls", ok + stale, "ok", ok)
"""

DAEMON_AT_EXIT = """
import threading, time, numpy as np, ktorch as kt
q = kt.module(kt.seq("sequential", ("linear", 8, 16), "relu", ("linear", 16, 3)))
m = kt.model(q, kt.loss("ce"), kt.opt("sgd", q, .01)); kt.train(m, batchsize=2)
kt.train(m, np.random.randn(200000, 8).astype("f"), np.random.randint(0, 3, 200000))
threading.Thread(target=lambda: [kt.run(m) for _ in range(99)], daemon=True).start()
threading.Thread(target=lambda: [kt.datasize(m) for _ in range(99)], daemon=True).start()
time.sleep(0.3)
print("exiting")
"""


def test_interpreter_exit_with_daemon_threads_inside_calls():
    # daemon threads still running or waiting inside ktorch when the interpreter
    # exits must not abort the process
    for _ in range(3):
        rc, out = run_child(DAEMON_AT_EXIT, timeout=60)
        assert rc == 0 and "exiting" in out, out[-3000:]


def test_gradients_are_touched_under_the_owners_lock():
    # the reproduction: every call here crashed within seconds before
    rc, out = run_child(GRAD_RACE.format(seconds=4))
    assert rc == 0, out[-3000:]
    assert int(out.split("calls")[1].split()[0]) > 100




def test_backward_on_results_waits_for_the_parameters_owner():
    # results of mul/mean/forward/loss on a module's parameters are locked with
    # the module: backward on them in one thread and a run in another never
    # touch the same gradients at once (this crashed the thread soak: free(): invalid pointer)
    rc, out = run_child(GRAPH_RACE.format(seconds=5))
    assert rc == 0, out[-3000:]
    assert int(out.split("ok")[1].split()[0]) > 20


def test_threads_calling_every_function_on_shared_objects():
    # 6 threads, random calls of every kind on one model, its module, optimizer,
    # parameter handles and a second model: no crash, no deadlock, no stray exception
    r = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "thread_soak.py"), "8", "6"],
                       capture_output=True, text=True, timeout=240, cwd=ROOT)
    rc, out = r.returncode, r.stdout + r.stderr
    assert rc == 0, out[-4000:]
    assert int(out.split("calls")[1].split()[0]) > 200


def test_failed_calls_hold_no_lock():
    q, m = big_model(rows=100)
    with pytest.raises(kt.KtorchError):
        kt.train(m, batchsize=-5)
    with pytest.raises(TypeError):
        kt.forward(q, "x")
    # a failure leaves nothing held: another thread gets the objects at once
    out = []
    t = threading.Thread(target=lambda: out.append((kt.train(m, "batchsize"), kt.parmnames(q))))
    t.start()
    t.join(10)
    assert out == [(4, ["0.weight", "0.bias", "2.weight", "2.bias"])]


def test_parameter_handles_wait_for_a_running_model():
    # grad(parm) while run holds the model: it waits for the run, then reads
    started = threading.Event()
    calls = [0]

    def fn(mod, x):
        started.set()
        calls[0] += 1
        time.sleep(0.001)
        return kt.mul(x, kt.parm(mod, "w"))

    q = kt.module(("callback", "cb", fn, {"parms": {"w": [1.0]}}))
    m = kt.model(q, kt.loss("mse"), kt.opt("sgd", q))
    kt.train(m, batchsize=1)
    kt.train(m, np.ones((300, 1), "f"), np.ones((300, 1), "f"))
    w = kt.parm(q, "w")
    t, done = start_run(m)
    assert started.wait(30)
    g = kt.grad(w)
    seen = calls[0]
    t.join(60)
    assert done == [None]
    assert seen == 300  # grad could only be read once the run was over
    assert g.shape == (1,)


# ---------------------------------------------------------------------------
# 2. signals and exceptions keep their meaning

class Alarm(Exception):
    pass


def with_handler(sig, handler):
    old = signal.signal(sig, handler)
    return lambda: signal.signal(sig, old)


def test_a_signal_handlers_exception_comes_out_of_run():
    q, m = big_model()

    def handler(s, f):
        raise Alarm("alarm went off")

    undo = with_handler(signal.SIGALRM, handler)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.1)
        with pytest.raises(Alarm, match="alarm went off"):
            kt.run(m)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        undo()
    assert kt.datasize(m) == 100_000


def test_sys_exit_in_a_sigterm_handler_exits_run_with_its_code():
    q, m = big_model()
    undo = with_handler(signal.SIGTERM, lambda s, f: sys.exit(7))
    try:
        threading.Timer(0.1, os.kill, (os.getpid(), signal.SIGTERM)).start()
        with pytest.raises(SystemExit) as e:
            kt.testrun(m) if False else kt.run(m)
        assert e.value.code == 7
    finally:
        undo()


def test_testrun_propagates_the_handlers_exception_too():
    q, m = big_model()
    rows = 200_000
    kt.test(m, batchsize=2)
    kt.test(m, np.zeros((rows, 8), "f"), np.zeros(rows, np.int64))
    undo = with_handler(signal.SIGALRM, lambda s, f: (_ for _ in ()).throw(Alarm("stop")))
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.1)
        with pytest.raises(Alarm):
            kt.testrun(m)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        undo()
    assert kt.testsize(m) == rows


def test_ctrl_c_interrupts_a_wait_for_a_busy_object_promptly():
    stop = threading.Event()
    m = slow_model(stop)
    t, done = start_run(m)
    time.sleep(0.3)  # the worker holds the model now
    sent = []

    def send():
        sent.append(time.perf_counter())
        os.kill(os.getpid(), signal.SIGINT)

    threading.Timer(0.3, send).start()
    try:
        t0 = time.perf_counter()
        with pytest.raises(KeyboardInterrupt):
            kt.train(m, "batchsize")  # waits for the run
        t1 = time.perf_counter()
        assert t.is_alive(), "the run finished before the interrupt"
        assert t1 - sent[0] < 0.5  # the wait ended promptly after the signal
        assert t1 - t0 < 5
    finally:
        stop.set()
        t.join(60)
    assert isinstance(done[0], kt.KtorchError) and "stopped" in str(done[0])
    # the interrupted call changed nothing and the model still answers
    assert kt.train(m, "batchsize") == 2
    assert kt.datasize(m) == 200_000


def callback_model(fn):
    q = kt.module(("callback", "cb", fn, {"parms": {"w": [1.0]}}))
    m = kt.model(q, kt.loss("mse"), kt.opt("sgd", q))
    kt.train(m, np.ones((8, 1), "f"), np.ones((8, 1), "f"))
    return q, m


@pytest.mark.parametrize("exc", [KeyboardInterrupt(), SystemExit(3), GeneratorExit()])
def test_a_callbacks_base_exception_is_raised_unchanged(exc):
    def fn(mod, x):
        raise exc

    q, m = callback_model(fn)
    for call in (lambda: kt.run(m), lambda: kt.forward(q, np.ones((2, 1), "f")), lambda: kt.backstep(m)):
        with pytest.raises(type(exc)) as e:
            call()
        assert e.value is exc
    assert kt.datasize(m) == 8


def test_a_callbacks_exception_is_the_cause_of_the_ktorch_error():
    boom = ValueError("boom")

    def fn(mod, x):
        raise boom

    q, m = callback_model(fn)
    with pytest.raises(kt.KtorchError, match="callback: ValueError: boom") as e:
        kt.run(m)
    assert e.value.__cause__ is boom


# ---------------------------------------------------------------------------
# 5. lifetimes: cycles through callbacks are collected; fork does not hang

def test_a_callback_closure_naming_its_own_model_is_collected():
    # the idiom: `lambda mod, x: kt.forward(m2, x)` keeps m2 alive through
    # its closure; the cycle handle -> callback -> closure -> handle must be collected
    gc.collect()
    base = kt.objects()
    def make():
        m2 = None
        q = kt.module(("callback", "cb", lambda mod, x: kt.forward(m2, x), {"parms": {"w": [1.0]}}))
        m2 = kt.model(q, kt.loss("mse"), kt.opt("sgd", q))
        kt.train(m2, np.ones((1000, 10), "f"), np.ones((1000, 1), "f"))

    for _ in range(100):
        make()
    gc.collect()
    assert kt.objects() == base


def test_a_trained_model_whose_closure_names_it_is_collected():
    gc.collect()
    base = kt.objects()
    def make():
        m2 = None

        def fn(mod, x):
            assert m2 is not None  # the closure refers to the model it runs in
            return kt.mul(x, kt.parm(mod, "w"))

        q = kt.module(("callback", "cb", fn, {"parms": {"w": [1.0]}}))
        m2 = kt.model(q, kt.loss("mse"), kt.opt("sgd", q))
        kt.train(m2, np.ones((16, 1), "f"), np.ones((16, 1), "f"))
        kt.run(m2)

    for _ in range(50):
        make()
    gc.collect()
    assert kt.objects() == base


def test_the_callback_still_runs_while_a_handle_keeps_its_module():
    gc.collect()

    def make():
        q = kt.module(("callback", "cb", lambda mod, x: kt.mul(x, kt.parm(mod, "w")), {"parms": {"w": [2.0]}}))
        return kt.model(q, kt.loss("mse"), kt.opt("sgd", q))

    m = make()  # the lambda is referenced only through the model's handle
    gc.collect()
    out = kt.evaluate(m, np.ones((2, 1), "f"))
    np.testing.assert_allclose(out, [[2.0], [2.0]])
    q = kt.module(m)
    kt.free(m)
    gc.collect()
    np.testing.assert_allclose(kt.evaluate(q, np.ones((1, 1), "f")), [[2.0]])


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_fork_while_a_thread_runs_gives_the_child_an_error_not_a_hang():
    stop = threading.Event()
    m = slow_model(stop)
    t, done = start_run(m)
    time.sleep(0.3)
    assert t.is_alive()
    pid = os.fork()
    if pid == 0:  # the child: the model was in use by a thread that is not here
        code = 3
        try:
            kt.train(m, "batchsize")
        except kt.KtorchError as e:
            code = 0 if "forked" in str(e) else 2
        except BaseException:  # noqa: BLE001
            code = 4
        os._exit(code)
    try:
        deadline = time.time() + 30
        status = None
        while time.time() < deadline:
            done_pid, status = os.waitpid(pid, os.WNOHANG)
            if done_pid:
                break
            time.sleep(0.05)
        else:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail("the forked child hung on the inherited lock")
    finally:
        stop.set()
        t.join(60)
    assert os.waitstatus_to_exitcode(status) == 0
    # the parent is unaffected
    assert kt.train(m, "batchsize") == 2
