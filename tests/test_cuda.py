"""Devices: tensors and training on each device of the `device` fixture ("cpu", then "cuda",
marked cuda: skipped without a CUDA device, selected by `pytest -m cuda` / `make gpu-check`)."""

import pytest
import torch
import torch.nn.functional as F
from conftest import spirals, torch_seq

import ktorch as kt

# the device api (kt.to, kt.device, kt.sync) is newer than some builds these tests run against
needs_to = pytest.mark.skipif(not hasattr(kt, "to"), reason="this ktorch has no kt.to (the device api)")


def test_tensor_created_and_shared_on_device(device):
    h = kt.tensor("randn", [3, 4], device)
    assert kt.info(h)["device"].split(":")[0] == device
    x = torch.arange(6.0, device=device).reshape(2, 3)
    s = kt.tensor(x)
    x[0, 0] = 7.0  # shared with torch, not copied
    back = kt.tensor(s, "torch")
    assert back.device.type == device
    assert float(back[0, 0]) == 7.0
    kt.free(h, s)


@needs_to
def test_run_on_device_matches_torch(device):
    """A model built on the cpu, moved with kt.to, trained on device data: the same epoch losses
    as the PyTorch loop (fused SGD, the kernel ktorch's sgd calls) on that device."""
    x, y = spirals(100, 3, 0)
    q = kt.module(kt.seq("sequential", ("linear", 2, 16), "relu", ("linear", 16, 3)))
    net = torch_seq(q).to(device)
    m = kt.model(q, kt.loss("ce"), kt.opt("sgd", q, 0.1, 0.9))
    kt.to(m, device)
    assert kt.device(q) == ("cuda:0" if device == "cuda" else "cpu")
    X, Y = torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)
    kt.train(m, batchsize=50, shuffle=False, metrics="loss")
    kt.train(m, X, Y)
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, fused=True)
    for _ in range(3):
        got = float(kt.run(m))
        losses = []
        for i in range(0, len(X), 50):
            opt.zero_grad()
            loss = F.cross_entropy(net(X[i : i + 50]), Y[i : i + 50])
            loss.backward()
            opt.step()
            losses.append(loss.detach())
        assert got == pytest.approx(torch.stack(losses).double().mean().item(), rel=1e-5)
    if device == "cuda":
        kt.sync("cuda")
    kt.free(m, q)
