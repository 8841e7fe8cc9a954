"""Training over a torch.distributed process group (option `dist`), gloo on the CPU.

2 and 3 processes (children running this file's scenarios in one process group each) train
the same models on the same data as one process does here: losses, parameters, optimizer
state, accuracy, predictions, outputs and test metrics agree to 1e-12 (float64; float32:
1e-5), parameters bitwise across ranks after every epoch; a model with several gradient
buckets reduces some during backward. Shuffles (seeded and unseeded),
clipping, an uneven last batch and, with 3 ranks, an empty share are in the data. A rank that
fails makes every rank raise within the group's timeout; the option's own errors and a
destroyed group raise KtorchError (TypeError for a wrong type)."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import timedelta

import numpy as np
import pytest
import torch
import torch.distributed as td

import ktorch as kt

HERE = os.path.dirname(os.path.abspath(__file__))
TIMEOUT = 10  # seconds: the children's group timeout

CHILD = r"""
import sys
sys.path.insert(0, sys.argv[1])
import test_dist
test_dist.child(*sys.argv[2:])
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------- scenarios
# Each returns named arrays; `dist` is None (one process) or True (the default group).

METRICS = ["loss", "batchloss", "accuracy", "predict", "output", "gradnorm"]
TESTMETRICS = ["loss", "batchloss", "accuracy", "predict", "output"]


def data(rows, dtype, seed=0, ignore=False):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((rows, 4)).astype(dtype)
    y = rng.integers(0, 3, rows)
    if ignore:
        y[rng.random(rows) < 0.2] = -100
    return x, y


def flat(prefix, v, out):
    """Nested dicts and lists of arrays and numbers as arrays named by their path."""
    if isinstance(v, dict):
        for k, x in v.items():
            flat(f"{prefix}.{k}", x, out)
    elif isinstance(v, (list, tuple)):
        for i, x in enumerate(v):
            flat(f"{prefix}.{i}", x, out)
    elif isinstance(v, (np.ndarray, int, float, bool)):
        out[prefix] = np.asarray(v)


def params(q, out, tag):
    for k in kt.parmnames(q):
        out[f"{tag}.{k}"] = kt.tensor(kt.parm(q, k))


def scenario(dist, opt, dtype="double", shuffle=None, clip=None, loss="ce", rows=50, batchsize=16,
             epochs=3, ignore=False, wide=False):
    kt.seed(7)
    torch.manual_seed(7)
    npdtype = np.float64 if dtype == "double" else np.float32
    if wide:
        # 1.3 MB of gradients: two buckets, the first (the last layers) reduced during backward
        q = kt.module(kt.seq("sequential", ("linear", 4, 400), "tanh", ("linear", 400, 400), "tanh",
                             ("linear", 400, 3)))
    else:
        q = kt.module(kt.seq("sequential", ("linear", 4, 6), "tanh", ("linear", 6, 3)))
    kt.to(q, dtype)
    o = {"sgd": lambda: kt.opt("sgd", q, 0.1, 0.9),
         "adam": lambda: kt.opt("adam", q, 0.02),
         # few iterations a step: near a minimum lbfgs's history amplifies rounding
         "lbfgs": lambda: kt.opt("lbfgs", q, 0.5, {"iter": 4, "search": "strong_wolfe"})}[opt]()
    m = kt.model(q, kt.loss(*loss) if isinstance(loss, tuple) else kt.loss(loss), o)
    x, y = data(rows, npdtype, ignore=ignore)
    if loss == "mse":
        y = np.eye(3, dtype=npdtype)[y]
    ms = [k for k in METRICS if k != "accuracy" or loss != "mse"]  # one-hot targets: no accuracy
    tms = [k for k in TESTMETRICS if k in ms]
    kt.train(m, x, y)
    kt.train(m, batchsize=batchsize, metrics=ms)
    if shuffle is not None:
        kt.train(m, shuffle=True, shuffleseed=shuffle if shuffle >= 0 else None)
    if clip is not None:
        kt.train(m, clipnorm=clip)
    if dist:
        kt.train(m, dist=dist)
    out = {}
    for e in range(epochs):
        for name, v in zip(ms, kt.run(m), strict=True):
            out[f"{name}.{e}"] = np.asarray(v)
        params(q, out, f"p{e}")
    flat("opt", kt.state(o), out)
    xt, yt = data(23, npdtype, seed=1, ignore=ignore)
    if loss == "mse":
        yt = np.eye(3, dtype=npdtype)[yt]
    kt.test(m, xt, yt)
    kt.test(m, batchsize=10, metrics=tms)  # 10, 10, 3 rows
    for name, v in zip(tms, kt.testrun(m), strict=True):
        out[f"test.{name}"] = np.asarray(v)
    return out


def scenario_layers(dist, kind):
    """Batchnorm or dropout: trains; parameters and buffers must agree across ranks."""
    kt.seed(3)
    torch.manual_seed(3)
    mid = ("batchnorm1d", 6) if kind == "batchnorm" else ("drop", 0.5)
    q = kt.module(kt.seq("sequential", ("linear", 4, 6), mid, "relu", ("linear", 6, 3)))
    kt.to(q, "double")
    m = kt.model(q, kt.loss("ce"), kt.opt("adam", q, 0.01))
    x, y = data(40, np.float64)
    kt.train(m, x, y)
    kt.train(m, batchsize=15, shuffle=True, metrics=["loss", "accuracy"])
    kt.test(m, x, y)
    kt.test(m, batchsize=15, metrics=["loss", "accuracy"])
    if dist:
        kt.train(m, dist=dist)
    out = {}
    for e in range(2):
        out[f"run.{e}"] = np.asarray(kt.run(m))
        params(q, out, f"p{e}")
    for k, v in kt.dict(kt.buffers(q)).items():
        out[f"buffer.{k}"] = np.asarray(v)
    out["test"] = np.asarray(kt.testrun(m))
    return out


SCENARIOS = {
    "sgd-unseeded-clip": lambda d: scenario(d, "sgd", shuffle=-1, clip=1.0),
    "adam-seeded-weighted-ignore": lambda d: scenario(
        d, "adam", shuffle=5, loss=("ce", {"weight": [1.0, 2.0, 0.5]}), ignore=True),
    "lbfgs-mse": lambda d: scenario(d, "lbfgs", loss="mse", batchsize=24, epochs=2),
    "sgd-float32-sum": lambda d: scenario(d, "sgd", dtype="float", shuffle=2, loss=("ce", "sum")),
    "adam-buckets": lambda d: scenario(d, "adam", shuffle=3, wide=True, epochs=2),
    "batchnorm": lambda d: scenario_layers(d, "batchnorm"),
    "dropout": lambda d: scenario_layers(d, "dropout"),
}
EQUAL = [k for k in SCENARIOS if k not in ("batchnorm", "dropout")]


def failing(rank, how, outdir):
    """One rank fails (`how`): bad targets at the first batch, Ctrl-C or an exception in a
    run callback after the second batch (then it stays, so that the other rank's collective
    ends at the group's timeout), or it exits before the run; every rank that stays reports
    what it raised and when."""
    kt.seed(1)
    q = kt.module(kt.seq("sequential", ("linear", 4, 3)))
    m = kt.model(q, kt.loss("ce"), kt.opt("sgd", q, 0.1))
    x, y = data(40, np.float32)
    if rank == 1 and how == "targets":
        y = np.zeros((40, 5), np.int64)  # the wrong shape for ce
    kt.train(m, x, y)
    kt.train(m, batchsize=8, dist=True)
    if rank == 1 and how == "exits":
        os._exit(3)
    def tick(info):
        if info["batch"] == 2:
            if how == "sigint":
                signal.raise_signal(signal.SIGINT)
            raise ValueError("a failing callback")

    start = time.monotonic()
    try:
        if rank == 1 and how in ("sigint", "callback"):
            kt.run(m, callback=tick, every=1)
        else:
            kt.run(m)
        got = {"error": None}
    except (Exception, KeyboardInterrupt) as e:  # noqa: BLE001 - the test checks which
        got = {"error": type(e).__name__, "message": str(e)}
    got["seconds"] = time.monotonic() - start
    if rank == 1:
        # stay in the group until rank 0 is done
        done = os.path.join(outdir, f"{how}.0.json")
        while not os.path.exists(done) and time.monotonic() - start < 3 * TIMEOUT:
            time.sleep(0.1)
    # the model is left usable: one process again
    kt.train(m, dist=None)
    kt.train(m, x, data(40, np.float32)[1])
    got["after"] = float(kt.run(m))
    return got


def differing(rank):
    """Rank 1's module starts from other parameters. With distcheck every rank raises, naming
    them, and changes nothing; without it every rank trains from rank 0's, after which a
    check passes."""
    kt.seed(1 + rank)
    q = kt.module(kt.seq("sequential", ("linear", 4, 3)))
    m = kt.model(q, kt.loss("ce"), kt.opt("sgd", q, 0.1))
    x, y = data(40, np.float32)
    kt.train(m, x, y)
    kt.train(m, batchsize=8, dist=True, distcheck=True)
    before = {k: kt.tensor(kt.parm(q, k)).tolist() for k in kt.parmnames(q)}
    got = {"options": [kt.train(m, "distcheck"), kt.test(m, "distcheck")]}
    try:
        kt.run(m)
        got["error"] = None
    except kt.KtorchError as e:
        got["error"] = str(e)
    got["unchanged"] = before == {k: kt.tensor(kt.parm(q, k)).tolist() for k in kt.parmnames(q)}
    kt.train(m, distcheck=False)
    kt.run(m)
    kt.train(m, distcheck=True)
    kt.test(m, x, y)
    kt.test(m, distcheck=True)
    got["checked"] = [float(kt.run(m)), float(kt.testrun(m))]
    got["params"] = {k: kt.tensor(kt.parm(q, k)).tolist() for k in kt.parmnames(q)}
    return got


def child(rank, size, port, outdir, suite):
    rank, size = int(rank), int(size)
    torch.set_num_threads(1)
    td.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=size,
                          timeout=timedelta(seconds=TIMEOUT))
    if suite == "equal":
        for name, f in SCENARIOS.items():
            np.savez(os.path.join(outdir, f"{name}.{rank}.npz"), **f(True))
    else:
        got = json.dumps(differing(rank) if suite == "differ" else failing(rank, suite, outdir))
        with open(os.path.join(outdir, f"{suite}.{rank}.json"), "w") as fh:
            fh.write(got)
    print("CHILD DONE", flush=True)
    os._exit(0)  # no teardown of a group whose peers may be gone


def spawn(size, outdir, suite, wait=180):
    port = free_port()
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in [os.path.dirname(kt.__path__[0]),
                                                     env.get("PYTHONPATH", "")] if p)
    kids = [subprocess.Popen([sys.executable, "-c", CHILD, HERE, str(r), str(size), str(port),
                              str(outdir), suite],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True)
            for r in range(size)]
    outs = []
    for k in kids:
        try:
            out, _ = k.communicate(timeout=wait)
        except subprocess.TimeoutExpired:
            for j in kids:
                j.kill()
            out, _ = k.communicate()
            pytest.fail(f"a child hung:\n{out}")
        outs.append((k.returncode, out))
    return outs


@pytest.fixture(scope="module", params=[2, 3], ids=["2-ranks", "3-ranks"])
def ranks(request, tmp_path_factory):
    """Runs every scenario in `size` children; gives (size, load(name, rank))."""
    size = request.param
    outdir = tmp_path_factory.mktemp(f"dist{size}")
    for rank, (code, out) in enumerate(spawn(size, outdir, "equal")):
        assert code == 0 and "CHILD DONE" in out, f"rank {rank}:\n{out}"
    return size, lambda name, rank: dict(np.load(outdir / f"{name}.{rank}.npz"))


@pytest.fixture(scope="module")
def reference():
    """Each scenario in this process, without a group, once."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return {name: SCENARIOS[name](None) for name in EQUAL}
    finally:
        torch.set_num_threads(n)


def biggest(a, b):
    return max((float(np.max(np.abs(a[k].astype(np.float64) - b[k].astype(np.float64))))
                for k in a if a[k].size), default=0.0)


@pytest.mark.parametrize("name", EQUAL)
def test_ranks_train_as_one_process(ranks, reference, name):
    size, load = ranks
    want = reference[name]
    tol = 1e-5 if "float32" in name else 1e-12
    for rank in range(size):
        got = load(name, rank)
        assert sorted(got) == sorted(want), (rank, set(got) ^ set(want))
        for k, v in want.items():
            g = got[k]
            assert g.shape == v.shape and g.dtype == v.dtype, (name, rank, k, g.shape, v.shape)
            if k.startswith(("predict", "test.predict")):
                assert np.array_equal(g, v), (name, rank, k)
            else:
                np.testing.assert_allclose(g, v, rtol=0, atol=tol * max(1.0, float(np.max(np.abs(v)))),
                                           err_msg=f"{name} rank {rank} {k}")
    # parameters after every epoch, the optimizer state and every metric: bitwise across ranks
    first = load(name, 0)
    for rank in range(1, size):
        other = load(name, rank)
        for k, v in first.items():
            assert np.array_equal(other[k], v), (name, rank, k)


def test_the_data_has_uneven_and_empty_shares(ranks):
    """50 rows in batches of 16: the last has 2 rows, so with 3 ranks rank 0's share is empty;
    the losses are still those of one process (the test above)."""
    size, load = ranks
    got = load("sgd-unseeded-clip", 0)
    assert got["batchloss.0"].shape == (4,) and got["predict.0"].shape == (50,)
    assert got["test.output"].shape == (23, 3)


@pytest.mark.parametrize("name", ["batchnorm", "dropout"])
def test_batchnorm_and_dropout_agree_across_ranks(ranks, name):
    size, load = ranks
    first = load(name, 0)
    assert any(k.startswith("buffer.") for k in first) == (name == "batchnorm")
    assert np.all(np.isfinite(first["run.1"]))
    for rank in range(1, size):
        other = load(name, rank)
        for k, v in first.items():
            assert np.array_equal(other[k], v), (name, rank, k)


# what the failing rank 1 raises: its exception's type and the start of its message
FAILED = {"targets": ("KtorchError", "run: ce:"), "sigint": ("KeyboardInterrupt", ""),
          "callback": ("KtorchError", "callback: ValueError: a failing callback")}


@pytest.mark.parametrize("how", ["targets", "exits", "sigint", "callback"])
def test_a_failing_rank_makes_every_rank_raise(tmp_path, how):
    outs = spawn(2, tmp_path, how, wait=4 * TIMEOUT + 60)
    if how == "exits":
        assert outs[1][0] == 3, outs[1][1]
    else:
        assert outs[1][0] == 0, outs[1][1]
    assert outs[0][0] == 0, outs[0][1]
    for rank in [0] if how == "exits" else [0, 1]:
        got = json.loads((tmp_path / f"{how}.{rank}.json").read_text())
        if rank == 1:
            kind, start = FAILED[how]
            assert got["error"] == kind and got["message"].startswith(start), got
        else:
            assert got["error"] == "KtorchError", got
            assert got["message"].startswith("run: dist: "), got
        assert got["seconds"] < TIMEOUT + 15, got
        assert np.isfinite(got["after"])
    if how != "exits":
        # rank 1 stayed: rank 0's allreduce ended at the timeout
        got = json.loads((tmp_path / f"{how}.0.json").read_text())
        assert got["message"].startswith("run: dist: allreduce:"), got
        assert got["seconds"] > TIMEOUT - 1, got


def test_distcheck_refuses_ranks_that_differ(tmp_path):
    outs = spawn(2, tmp_path, "differ")
    for rank, (code, out) in enumerate(outs):
        assert code == 0 and "CHILD DONE" in out, f"rank {rank}:\n{out}"
    got = [json.loads((tmp_path / f"differ.{r}.json").read_text()) for r in range(2)]
    for g in got:
        assert g["options"] == [True, False], g["options"]
        assert g["error"] == ("run: dist: parameters or buffers differ from rank 0's (option "
                              "distcheck): 0.weight (1 rank), 0.bias (1 rank)"), g["error"]
        assert g["unchanged"]
        assert all(np.isfinite(g["checked"]))
    # without the check both trained from rank 0's parameters: they agree
    assert got[0]["params"] == got[1]["params"]
    assert got[0]["checked"] == got[1]["checked"]


@pytest.mark.parametrize("torchrun", [True, False], ids=["torchrun-2", "alone"])
def test_the_torchrun_example_trains(torchrun):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in [os.path.dirname(kt.__path__[0]),
                                                     env.get("PYTHONPATH", "")] if p)
    env["OMP_NUM_THREADS"] = "1"
    example = os.path.join(HERE, "..", "examples", "ddp.py")
    launch = ([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
               "--master_addr", "127.0.0.1", "--master_port", str(free_port())]
              if torchrun else [sys.executable])
    r = subprocess.run([*launch, example, "--epochs", "5", "--cpu"], env=env, text=True,
                       capture_output=True, timeout=180)
    assert r.returncode == 0, r.stdout + r.stderr
    lines = [x for x in r.stdout.splitlines() if x.startswith("epoch")]
    size = 2 if torchrun else 1
    assert len(lines) == 2 and all(f"({size} process(es), cpu)" in x for x in lines), r.stdout
    assert ("parameters equal on all 2 processes" in r.stdout) == torchrun, r.stdout


def rust_example():
    """The core's examples/ddp.rs as `cargo test` (make test-rust) builds it."""
    target = os.environ.get("CARGO_TARGET_DIR") or os.path.join(HERE, "..", "target")
    exe = os.path.join(target, "release", "examples", "ddp")
    if not os.path.exists(exe):
        pytest.skip("target/release/examples/ddp not built (make test-rust builds it)")
    return exe


@pytest.mark.parametrize("torchrun", [True, False], ids=["torchrun-agent-store", "rank-0-store"])
def test_the_rust_example_trains_over_two_processes(torchrun):
    """A Rust program alone (no Python in it) makes its gloo group from torch's launch
    variables: under torchrun (whose agent serves the store), and started by hand (rank 0
    serves it); both ranks end with rank 0's parameters and the metrics of one process."""
    exe = rust_example()
    env = dict(os.environ)
    env["LD_LIBRARY_PATH"] = os.pathsep.join(
        p for p in [os.path.join(os.path.dirname(torch.__file__), "lib"), env.get("LD_LIBRARY_PATH")] if p)
    alone = subprocess.run([exe], env=env, text=True, capture_output=True, timeout=120)
    assert alone.returncode == 0, alone.stdout + alone.stderr
    port = str(free_port())
    if torchrun:
        r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--no-python",
                            "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
                            "--master_port", port, exe],
                           env=env, text=True, capture_output=True, timeout=180)
        assert r.returncode == 0, r.stdout + r.stderr
        out = r.stdout
    else:
        env.update(WORLD_SIZE="2", MASTER_ADDR="127.0.0.1", MASTER_PORT=port)
        env.pop("TORCHELASTIC_USE_AGENT_STORE", None)
        kids = [subprocess.Popen([exe], env={**env, "RANK": str(r), "LOCAL_RANK": str(r)}, text=True,
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for r in range(2)]
        outs = [k.communicate(timeout=180)[0] for k in kids]
        assert all(k.returncode == 0 for k in kids), outs
        out = outs[0]
    assert "parameters equal on all 2 processes" in out, out
    metrics = [x.split("(")[0] for x in out.splitlines() if x.startswith("epoch")]
    assert metrics == [x.split("(")[0] for x in alone.stdout.splitlines() if x.startswith("epoch")]
    assert len(metrics) == 3


# ---------------------------------------------------------------- in this process


def small():
    q = kt.module(("linear", 4, 3))
    m = kt.model(q, kt.loss("ce"), kt.opt("sgd", q, 0.1))
    x, y = data(20, np.float32)
    kt.train(m, x, y)
    kt.train(m, batchsize=6, metrics=["loss", "predict"])
    kt.test(m, x, y)
    return q, m


def test_option_errors_without_a_group():
    assert not td.is_initialized()
    q, m = small()
    assert kt.train(m, "dist") is None and kt.test(m, "dist") is None
    with pytest.raises(kt.KtorchError, match=r"^train: dist: True names the default process group"):
        kt.train(m, dist=True)
    with pytest.raises(kt.KtorchError, match=r"^train: dist: no process group named \"nosuch\""):
        kt.train(m, "dist", "nosuch")
    with pytest.raises(TypeError, match=r"^train: dist: expecting a torch.distributed ProcessGroup"):
        kt.train(m, dist=3)
    with pytest.raises(TypeError, match=r"^test: dist: expecting a torch.distributed ProcessGroup"):
        kt.test(m, {"dist": [1]})
    kt.train(m, dist=False)
    kt.train(m, dist=None)
    assert kt.train(m, "dist") is None
    with pytest.raises(kt.KtorchError, match=r"^train: distcheck: value expects a boolean, given int"):
        kt.train(m, distcheck=3)
    kt.test(m, distcheck=True)
    assert kt.test(m, "distcheck") is True and kt.train(m, "distcheck") is False
    kt.testrun(m)  # without a group the check has nothing to do


@pytest.fixture
def group_of_one():
    td.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{free_port()}", rank=0, world_size=1,
                          timeout=timedelta(seconds=TIMEOUT))
    try:
        yield
    finally:
        if td.is_initialized():
            td.destroy_process_group()


def test_a_group_of_one_process(group_of_one, tmp_path):
    kt.seed(5)
    q, m = small()
    kt.seed(5)
    q2, m2 = small()
    kt.train(m, dist=True)
    assert kt.train(m, "dist") == td.group.WORLD.group_name == "0"
    assert kt.test(m, "dist") is None  # the test stage uses the training stage's group
    for _ in range(2):
        a, b = kt.run(m), kt.run(m2)
        np.testing.assert_allclose(a[0], b[0], rtol=1e-6)
        np.testing.assert_array_equal(a[1], b[1])
    np.testing.assert_allclose(kt.testrun(m), kt.testrun(m2), rtol=1e-6)
    # a group object; the state and a saved model keep no group
    g = td.new_group([0])
    kt.train(m, "dist", g)
    assert kt.train(m, "dist") == g.group_name
    kt.test(m, dist=g)
    assert kt.state(m)["train"]["dist"] is None
    kt.save(m, tmp_path / "m.kt")
    assert kt.train(kt.load(tmp_path / "m.kt"), "dist") is None
    kt.run(m)
    kt.testrun(m)
    # a destroyed group is an error, and the model trains again without it
    td.destroy_process_group(g)
    with pytest.raises(kt.KtorchError, match="^run: the process group was destroyed"):
        kt.run(m)
    with pytest.raises(kt.KtorchError, match="^testrun: the process group was destroyed"):
        kt.testrun(m)
    kt.train(m, dist=None)
    kt.test(m, dist=None)
    kt.run(m)
    kt.train(m, dist=True)
    kt.run(m)
    kt.free(m)


@pytest.mark.cuda
def test_nccl_group_of_one_on_the_gpu():
    """NCCL on CUDA: a one-process group trains a CUDA model as the same model without a
    group does (one GPU here; several ranks need one GPU each)."""
    td.init_process_group("nccl", init_method=f"tcp://127.0.0.1:{free_port()}", rank=0, world_size=1,
                          timeout=timedelta(seconds=60))
    try:
        kt.seed(5)
        q, m = small()
        kt.seed(5)
        q2, m2 = small()
        for x in (q, q2):
            kt.to(x, "cuda")
        kt.train(m, dist=True)
        assert kt.train(m, "dist") == td.group.WORLD.group_name
        for _ in range(2):
            a, b = kt.run(m), kt.run(m2)
            np.testing.assert_allclose(a[0], b[0], rtol=1e-5)
            np.testing.assert_array_equal(a[1], b[1])
        np.testing.assert_allclose(kt.testrun(m), kt.testrun(m2), rtol=1e-5)
        kt.train(m, dist=None)
        kt.free(m)
    finally:
        td.destroy_process_group()


def test_tasks_share_one_permutation_without_a_seed():
    """Tasks with shuffle and no shuffleseed all seed one generator from 0 (as the original):
    their batches do not overlap and cover the data."""
    def rows(task, tasks):
        q = kt.module("identity")
        m = kt.model(q, kt.loss("mse"), kt.opt("sgd"))
        kt.train(m, shuffle=True, tasks=tasks, task=task, batchsize=3)
        kt.train(m, np.arange(20))
        kt.batchinit(m)
        got = []
        while kt.batch(m):
            got.extend(kt.tensor(kt.input(m)).tolist())
        return got

    for tasks in (2, 3):
        parts = [rows(k, tasks) for k in range(tasks)]
        assert sorted(r for p in parts for r in p) == list(range(20))


def test_test_stage_takes_task_and_tasks():
    q = kt.module("identity")
    m = kt.model(q, kt.loss("mse"), kt.opt("sgd"))
    kt.test(m, tasks=2, task=1, batchsize=3, metrics="output")
    assert kt.test(m, np.arange(10.0), np.arange(10.0)) == 2  # batches 1 and 3
    np.testing.assert_array_equal(kt.testrun(m), [3, 4, 5, 9])
    assert kt.test(m, ["task", "tasks"]) == {"task": 1, "tasks": 2}
