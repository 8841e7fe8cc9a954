"""Shared helpers for the ktorch tests: seeding, small models, torch mirrors, devices.

Devices: a test marked `@pytest.mark.cuda` needs a CUDA device and is skipped ("no CUDA
device") without one; `pytest -m cuda` runs just those (`make gpu-check` on a GPU machine).
To run a test on every device, take the `device` fixture (or parametrize over DEVICE_PARAMS):
it runs once with "cpu" and once with "cuda", the latter marked `cuda`, so it is skipped here
and selected by `-m cuda`. DEVICES names the devices this run has, for loops inside a test.
"""

import numpy as np
import pytest
import torch

import ktorch as kt

CUDA = torch.cuda.is_available()
DEVICES = ["cpu"] + (["cuda"] if CUDA else [])
DEVICE_PARAMS = ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)]


@pytest.fixture(params=DEVICE_PARAMS)
def device(request):
    """The device name a test runs on: "cpu", then "cuda" (marked cuda)."""
    return request.param


def pytest_collection_modifyitems(config, items):
    """Tests marked cuda (or gpu) are skipped without a CUDA device."""
    if CUDA:
        return
    skip = pytest.mark.skip(reason="no CUDA device")
    for item in items:
        if item.get_closest_marker("cuda") or item.get_closest_marker("gpu"):
            item.add_marker(skip)


@pytest.fixture(scope="module")
def one_thread():
    """One libtorch thread for a module's tiny models: faster, and far faster on a busy machine;
    the count is restored afterwards."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(autouse=True)
def _seed():
    kt.seed(123)
    torch.manual_seed(123)
    yield


def identity_model():
    """The spec's dummy model: model(module`identity; loss`mse; opt`sgd)."""
    return kt.model(kt.module("identity"), kt.loss("mse"), kt.opt("sgd"))


def t(x):
    """A ktorch handle's values (or an array) as a torch tensor."""
    if isinstance(x, np.ndarray):
        return torch.from_numpy(np.array(x))
    return torch.from_numpy(np.array(kt.tensor(x)))


def parm(q, name):
    """A module parameter copied out of ktorch into torch."""
    return torch.from_numpy(np.array(kt.tensor(kt.parm(q, name))))


def spirals(n, k, seed):
    """k noisy spirals of n points each, as the spec builds them (float32 inputs, long classes)."""
    rng = np.random.default_rng(seed)
    r = np.arange(n) / (n - 1)
    xs = []
    for c in range(k):
        a = 4 * r + 4 * c + 0.2 * rng.standard_normal(n)
        xs.append(np.stack([r * np.sin(a), r * np.cos(a)], 1))
    return np.concatenate(xs).astype(np.float32), np.repeat(np.arange(k), n)


def torch_seq(q, names=("0", "2"), k=3):
    """torch copy of seq(`sequential; (`linear;2;100); `relu; (`linear;100;k)) with q's weights."""
    a, b = names
    w1, b1 = parm(q, f"{a}.weight"), parm(q, f"{a}.bias")
    w2, b2 = parm(q, f"{b}.weight"), parm(q, f"{b}.bias")
    net = torch.nn.Sequential(torch.nn.Linear(w1.shape[1], w1.shape[0]), torch.nn.ReLU(),
                              torch.nn.Linear(w2.shape[1], w2.shape[0]))
    with torch.no_grad():
        net[0].weight.copy_(w1)
        net[0].bias.copy_(b1)
        net[2].weight.copy_(w2)
        net[2].bias.copy_(b2)
    return net


def torch_linear(q, prefix=""):
    """torch.nn.Linear with the weights of a ktorch linear module."""
    w, b = parm(q, prefix + "weight"), parm(q, prefix + "bias")
    lin = torch.nn.Linear(w.shape[1], w.shape[0])
    with torch.no_grad():
        lin.weight.copy_(w)
        lin.bias.copy_(b)
    return lin
