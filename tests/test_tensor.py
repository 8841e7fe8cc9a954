"""Tensor-level api: gradients, reset, backward modes, clipv, tensor batching and shuffling."""

import numpy as np
import pytest
import torch

import ktorch as kt


def test_grad_of_mean_square():
    x = kt.tensor([1, 2, 3.0], "grad")
    y = kt.mul(x, x)
    z = kt.mean(y)
    kt.backward(z)
    np.testing.assert_allclose(kt.grad(x), [2 / 3, 4 / 3, 2], rtol=1e-6)


def test_zerograd_nograd_tensor():
    x = kt.tensor([1, 2, 3.0], "grad")
    z = kt.mean(kt.mul(x, x))
    kt.backward(z)
    np.testing.assert_allclose(kt.grad(x), [0.6666667, 1.333333, 2], rtol=1e-6)
    assert kt.zerograd(x) is None
    g = kt.grad(x)
    np.testing.assert_array_equal(g, [0, 0, 0])
    assert g.dtype == np.float64
    assert kt.nograd(x) is None
    assert kt.grad(x) is None


def test_zerograd_nograd_dict():
    x = kt.tensor([1, 2, 3.0], "grad")
    x2 = kt.mul(x, x)
    y = kt.tensor([2, 4, 6.0], "grad")
    y2 = kt.mul(y, y)
    z = kt.add(x2, y2)
    kt.backward(z, [1, 1, 1])
    np.testing.assert_array_equal(kt.grad(x), [2, 4, 6])
    np.testing.assert_array_equal(kt.grad(y), [4, 8, 12])
    d = kt.dict({"x": kt.addref(x), "y": kt.addref(y)})
    kt.zerograd(d)
    np.testing.assert_array_equal(kt.grad(x), [0, 0, 0])
    np.testing.assert_array_equal(kt.grad(y), [0, 0, 0])
    kt.nograd(d)
    assert kt.grad(x) is None
    assert kt.grad(y) is None


def test_info_of_graph():
    x = kt.tensor(np.array([1, 2, 3], np.float32), "grad")
    y = kt.mul(x, x)
    z = kt.mean(y)
    rows = [kt.info(a) for a in (x, y, z)]
    assert [r["device"] for r in rows] == ["cpu"] * 3
    assert [r["dtype"] for r in rows] == ["float"] * 3
    assert [r["gradient"] for r in rows] == ["grad"] * 3
    assert [r["gradfn"] for r in rows] == ["", "MulBackward0", "MeanBackward0"]
    assert [r["leaf"] for r in rows] == [True, False, False]


def test_backward_retain_with_gradtensor_then_free():
    x = kt.tensor(np.array([1, 2, 3], np.float32), "grad")
    y = kt.mul(x, x)
    z = kt.mean(y)
    kt.backward(y, 1.0, "retain")
    g = kt.grad(x)
    np.testing.assert_array_equal(g, [2, 4, 6])
    assert g.dtype == np.float32
    kt.zerograd(x)
    np.testing.assert_array_equal(kt.grad(x), [0, 0, 0])
    kt.backward(z)
    np.testing.assert_allclose(kt.grad(x), [0.6666667, 1.333333, 2], rtol=1e-6)


def test_help_backward_table():
    h = kt.help("backward")
    assert [(r["mode"], bool(r["retain"]), bool(r["create"])) for r in h] == [
        ("free", False, False),
        ("retain", True, False),
        ("create", True, True),
        ("createfree", False, True),
    ]
    assert h[0]["description"] == "free graph, no higher order derivatives"
    assert h[1]["description"] == "retain graph, no higher order derivatives"


def test_backward_twice_without_retain_raises():
    x = kt.tensor(np.array([1, 2, 3], np.float32), "grad")
    y = kt.mul(x, x)
    m = kt.mean(y)
    z = kt.std(y)
    kt.backward(m)
    np.testing.assert_allclose(kt.grad(x), [0.6666667, 1.333333, 2], rtol=1e-6)
    with pytest.raises(kt.KtorchError, match="Trying to backward through the graph a second time"):
        kt.backward(z)
    with pytest.raises(kt.KtorchError, match="retain_graph=True"):
        kt.backward(z)
    # a failed call changes nothing
    np.testing.assert_allclose(kt.grad(x), [0.6666667, 1.333333, 2], rtol=1e-6)
    kt.free(x, y, m, z)


def test_backward_retain_then_std_gradient():
    x = kt.tensor(np.array([1, 2, 3], np.float32), "grad")
    y = kt.mul(x, x)
    m = kt.mean(y)
    z = kt.std(y)
    kt.backward(m, "retain")
    np.testing.assert_allclose(kt.grad(x), [0.6666667, 1.333333, 2], rtol=1e-6)
    kt.nograd(x)
    assert kt.grad(x) is None
    kt.backward(z)
    np.testing.assert_allclose(kt.grad(x), [-0.9072646, -0.3299144, 3.216666], rtol=1e-5)
    # against torch
    tx = torch.tensor([1, 2, 3.0], requires_grad=True)
    torch.std(tx * tx).backward()
    np.testing.assert_allclose(kt.grad(x), tx.grad.numpy(), rtol=1e-5)


@pytest.mark.parametrize("mode", ["free", "retain", "create", "createfree"])
def test_backward_modes_accepted(mode):
    x = kt.tensor([1, 2, 3.0], "grad")
    z = kt.mean(kt.mul(x, x))
    assert kt.backward(z, mode) is None
    np.testing.assert_allclose(kt.grad(x), [2 / 3, 4 / 3, 2], rtol=1e-6)
    if mode in ("retain", "create"):
        kt.backward(z)  # graph retained: a second call works and accumulates
        np.testing.assert_allclose(kt.grad(x), [4 / 3, 8 / 3, 4], rtol=1e-6)
    else:
        with pytest.raises(kt.KtorchError, match="second time"):
            kt.backward(z)


def test_backward_unknown_mode():
    x = kt.tensor([1, 2, 3.0], "grad")
    z = kt.mean(kt.mul(x, x))
    with pytest.raises(kt.KtorchError):
        kt.backward(z, "keep")


def test_clipv_tensor():
    x = kt.tensor(np.array([1, 2, 3], np.float32), "grad")
    z = kt.mean(kt.mul(x, x))
    kt.backward(z)
    np.testing.assert_allclose(kt.grad(x), [0.6666667, 1.333333, 2], rtol=1e-6)
    r = kt.clipv(x, 1.2)
    assert np.isnan(r)
    np.testing.assert_allclose(kt.grad(x), [0.6666667, 1.2, 1.2], rtol=1e-6)


def test_identity_forward_and_tensor_batches():
    x = kt.tensor(np.arange(7))
    q = kt.module("identity")
    y = kt.forward(q, x)
    np.testing.assert_array_equal(kt.tensor(y), np.arange(7))
    seen = []
    while kt.batch(x, 3):
        kt.use(y, kt.forward(q, x))
        seen.append(kt.tensor(y).tolist())
    assert seen == [[0, 1, 2], [3, 4, 5], [6]]
    # batching over: x restored to full size
    np.testing.assert_array_equal(kt.tensor(x), np.arange(7))
    e = kt.evaluate(q, x)
    assert isinstance(e, np.ndarray)
    np.testing.assert_array_equal(e, np.arange(7))


def _is_perm(a, n):
    return sorted(np.asarray(a).tolist()) == list(range(n))


def test_shuffle_tensor():
    x = kt.tensor(np.arange(7))
    np.testing.assert_array_equal(kt.tensor(x), np.arange(7))
    changed = False
    for _ in range(5):
        assert kt.shuffle(x) is None
        v = kt.tensor(x)
        assert _is_perm(v, 7)
        changed |= v.tolist() != list(range(7))
    assert changed


def test_shuffle_matrix_rows_then_columns():
    x = kt.tensor(np.arange(7))
    kt.use(x, kt.tensor(np.arange(12).reshape(3, 4)))
    base = np.arange(12).reshape(3, 4)
    kt.shuffle(x)
    v = kt.tensor(x)
    assert v.shape == (3, 4)
    rows = v[:, 0] // 4
    assert _is_perm(rows, 3)
    np.testing.assert_array_equal(v, base[rows])
    kt.shuffle(x, 1)
    w = kt.tensor(x)
    cols = w[0] % 4
    assert _is_perm(cols, 4)
    np.testing.assert_array_equal(w, v[:, cols])  # whole columns moved, rows kept


def test_shuffle_dict_shares_permutation():
    d = kt.dict({"a": np.arange(12).reshape(3, 4), "b": np.array([1, 2, 3])})
    for _ in range(3):
        kt.shuffle(d)
        r = kt.dict(d) if not isinstance(kt.tensor(d), dict) else kt.tensor(d)
        a, b = r["a"], r["b"]
        assert _is_perm(b - 1, 3)
        np.testing.assert_array_equal(a, np.arange(12).reshape(3, 4)[b - 1])


def test_shuffle_removes_batching():
    x = kt.tensor(np.arange(7))
    kt.batch(x, 3, 0)
    np.testing.assert_array_equal(kt.tensor(x), [0, 1, 2])
    kt.shuffle(x)
    v = kt.tensor(x)
    assert len(v) == 7 and _is_perm(v, 7)


def test_info_offset_and_references_follow_the_tensor():
    x = kt.tensor(np.arange(12.0).reshape(3, 4))
    i = kt.info(x)
    assert (i["offset"], i["ref"], i["pin"], i["size"], i["stride"]) == (0, 1, False, [3, 4], [4, 1])
    assert kt.batch(x, 2) and kt.batch(x, 2)  # second batch: row 2 of the storage
    assert kt.info(x)["offset"] == 8
    kt.restore(x)
    v = kt.vector(x)  # the vector shares the tensor
    assert kt.info(x)["ref"] == 2
    kt.free(v)
    assert kt.info(x)["ref"] == 1
