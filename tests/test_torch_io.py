"""torch in, torch out: results as torch.Tensor, one sharing rule, dtype conversion, more data kinds."""

import numpy as np
import pandas as pd
import pytest
import torch

import ktorch as kt


def linear_model(loss="mse"):
    torch.manual_seed(0)
    q = kt.module(("linear", 3, 1))
    return q, kt.model(q, kt.loss(loss), kt.opt("sgd", q, 0.1))


# ---------------------------------------------------------------------------
# Results as torch.Tensor
# ---------------------------------------------------------------------------

def test_tensor_values_as_torch():
    h = kt.tensor(np.arange(6.0).reshape(2, 3))
    t = kt.tensor(h, "torch")
    assert isinstance(t, torch.Tensor) and t.dtype == torch.float64
    torch.testing.assert_close(t, torch.arange(6.0, dtype=torch.float64).reshape(2, 3))
    t[0, 0] = 99.0  # a copy: the handle keeps its values
    assert kt.tensor(h)[0, 0] == 0.0
    v = kt.tensor(kt.vector(np.zeros(2), np.ones(3)), "torch")
    assert [type(x) for x in v] == [torch.Tensor, torch.Tensor] and [len(x) for x in v] == [2, 3]
    d = kt.tensor(kt.dict({"a": np.zeros(2), "b": np.ones(1)}), "torch")
    assert list(d) == ["a", "b"] and all(isinstance(x, torch.Tensor) for x in d.values())


def test_tensor_values_bad_form():
    h = kt.tensor([1.0])
    with pytest.raises(TypeError, match="^tensor: expecting a Tensor, Vector or Dict"):
        kt.tensor(h, "numpy")
    with pytest.raises(TypeError, match="^tensor:"):
        kt.tensor(h, "torch", "x")


def test_metrics_follow_the_data():
    q, m = linear_model()
    x, y = torch.randn(10, 3), torch.randn(10, 1)
    kt.train(m, x, y)
    kt.test(m, x, y)
    r, t = kt.run(m), kt.testrun(m)
    assert isinstance(r, torch.Tensor) and isinstance(t, torch.Tensor)
    kt.train(m, "metrics", ["loss", "output"])
    loss, out = kt.run(m)
    assert isinstance(loss, torch.Tensor) and isinstance(out, torch.Tensor) and out.shape == (10, 1)
    # numpy data: numpy results, as before
    kt.train(m, x.numpy(), y.numpy())
    loss, out = kt.run(m)
    assert isinstance(out, np.ndarray)
    # the tensor option still gives handles
    kt.train(m, x, y)
    kt.train(m, "tensor", True)
    loss, out = kt.run(m)
    assert isinstance(out, kt.Tensor)


def test_targets_alone_keep_the_inputs_kind():
    q, m = linear_model()
    kt.train(m, torch.randn(10, 3), torch.randn(10, 1))
    kt.target(m, np.random.randn(10, 1))
    assert isinstance(kt.run(m), torch.Tensor)
    kt.input(m, np.random.randn(10, 3))
    assert isinstance(kt.run(m), np.floating)


def test_evaluate_follows_its_input():
    q, m = linear_model()
    x = torch.randn(4, 3)
    out = kt.evaluate(q, x)
    assert isinstance(out, torch.Tensor)
    with torch.no_grad():
        w, b = torch.as_tensor(kt.parm(q, "weight")), torch.as_tensor(kt.parm(q, "bias"))
    torch.testing.assert_close(out, x @ w.T + b)
    assert isinstance(kt.evaluate(q, x.numpy()), np.ndarray)
    kt.test(m, x, torch.zeros(4, 1))
    assert isinstance(kt.evaluate(m), torch.Tensor)


# ---------------------------------------------------------------------------
# One sharing rule: torch.Tensor data is shared, numpy arrays and lists are copied
# ---------------------------------------------------------------------------

def _read_tensor(t):
    h = kt.tensor(t)
    return lambda: kt.tensor(h)


def _read_vector(t):
    h = kt.vector(t)
    return lambda: kt.vector(h)[0]


def _read_dict(t):
    h = kt.dict({"x": t})
    return lambda: kt.dict(h)["x"]


def _read_train(t):
    q, m = linear_model()
    kt.train(m, t, np.zeros((len(t), 1), np.float32))
    return lambda: kt.data(m)[0]


def _read_input(t):
    q, m = linear_model()
    kt.train(m, np.zeros((len(t), 3), np.float32))
    kt.input(m, t)
    return lambda: kt.input(m) and kt.data(m)[0]


@pytest.mark.parametrize("read", [_read_tensor, _read_vector, _read_dict, _read_train, _read_input],
                         ids=["tensor", "vector", "dict", "train", "input"])
def test_one_sharing_rule(read):
    t = torch.zeros(4, 3)
    get = read(t)
    t[1, 2] = 7.0
    assert get()[1, 2] == 7.0  # shared: the caller's writes are seen
    a = np.zeros((4, 3), np.float32)
    get = read(a)
    a[1, 2] = 7.0
    assert get()[1, 2] == 0.0  # copied


# ---------------------------------------------------------------------------
# float64 data meeting a float32 module
# ---------------------------------------------------------------------------

def test_float64_arrays_are_converted_to_the_module_dtype():
    q, m = linear_model()
    x, y = np.random.default_rng(0).normal(size=(8, 3)), np.random.default_rng(1).normal(size=(8, 1))
    w, b = torch.tensor(kt.parm(q, "weight")), torch.tensor(kt.parm(q, "bias"))
    kt.train(m, x, y)
    assert kt.data(m)[0].dtype == np.float32
    loss = kt.run(m)
    want = torch.nn.functional.mse_loss(torch.tensor(x, dtype=torch.float32) @ w.T + b,
                                        torch.tensor(y, dtype=torch.float32))
    assert loss == pytest.approx(want.item(), rel=1e-6)
    out = kt.evaluate(q, [[1.0, 2.0, 3.0]])
    assert out.dtype == np.float32


def test_float64_torch_data_is_a_clear_error_and_changes_nothing():
    q, m = linear_model()
    kt.train(m, torch.zeros(4, 3), torch.zeros(4, 1))
    with pytest.raises(kt.KtorchError,
                       match=r"^train: inputs are torch\.float64, the module's parameters torch\.float32"):
        kt.train(m, torch.zeros(5, 3, dtype=torch.float64), torch.zeros(5, 1))
    with pytest.raises(kt.KtorchError, match=r"^train: targets are torch\.float64"):
        kt.train(m, torch.zeros(5, 3), torch.zeros(5, 1, dtype=torch.float64))
    with pytest.raises(kt.KtorchError, match=r"^evaluate: inputs are torch\.float64"):
        kt.evaluate(q, torch.zeros(2, 3, dtype=torch.float64))
    assert kt.datasize(m) == 4
    # integer targets (class indices) are never converted
    q2 = kt.module(("linear", 3, 2))
    m2 = kt.model(q2, kt.loss("ce"), kt.opt("sgd", q2))
    kt.train(m2, torch.zeros(4, 3), torch.zeros(4, dtype=torch.long))
    assert kt.run(m2) > 0


# ---------------------------------------------------------------------------
# More kinds of data
# ---------------------------------------------------------------------------

def test_tensor_dataset():
    q, m = linear_model()
    x, y = torch.randn(10, 3), torch.randn(10, 1)
    ds = torch.utils.data.TensorDataset(x, y)
    assert kt.train(m, ds) == 1
    np.testing.assert_array_equal(kt.data(m)[1], y.numpy())
    assert isinstance(kt.run(m, ds), torch.Tensor)
    kt.batch(m)


def test_pandas_data():
    q, m = linear_model()
    rng = np.random.default_rng(0)
    df = pd.DataFrame(rng.normal(size=(10, 3)), columns=["a", "b", "c"])
    s = pd.Series(rng.normal(size=10))
    kt.train(m, df, s.to_frame())
    x, y = kt.data(m)
    np.testing.assert_allclose(x, df.to_numpy(np.float32))
    np.testing.assert_allclose(y[:, 0], s.to_numpy(np.float32))
    assert np.isfinite(kt.run(m))
    np.testing.assert_array_equal(kt.tensor(kt.tensor(s)), s.to_numpy())


class ArrayLike:
    def __init__(self, a):
        self.a = a

    def __array__(self, dtype=None, copy=None):
        return np.asarray(self.a, dtype=dtype)


class DLPackLike:
    def __init__(self, t):
        self.t = t

    def __dlpack__(self, **kw):
        return self.t.__dlpack__(**kw)

    def __dlpack_device__(self):
        return self.t.__dlpack_device__()


def test_array_and_dlpack_objects():
    a = np.arange(6.0).reshape(2, 3)
    h = kt.tensor(ArrayLike(a))
    np.testing.assert_array_equal(kt.tensor(h), a)
    t = torch.zeros(2, 3)
    h = kt.tensor(DLPackLike(t))
    t[0, 1] = 3.0  # __dlpack__ data is shared, like torch.Tensor
    assert kt.tensor(h)[0, 1] == 3.0
    q, m = linear_model()
    kt.train(m, ArrayLike(np.zeros((4, 3))), ArrayLike(np.zeros((4, 1))))
    assert kt.datasize(m) == 4


def test_handles_as_arrays():
    h = kt.tensor(np.arange(4.0))
    np.testing.assert_array_equal(np.asarray(h), np.arange(4.0))
    assert np.asarray(h, dtype=np.float32).dtype == np.float32
    torch.testing.assert_close(torch.as_tensor(h), torch.arange(4.0, dtype=torch.float64))
    np.testing.assert_array_equal(np.from_dlpack(h), np.arange(4.0))
    with pytest.raises(ValueError, match="always copied"):
        np.asarray(h, copy=False)
    q = kt.module(("linear", 2, 2))
    with pytest.raises(TypeError, match="^__array__: a Module has no array form"):
        np.asarray(q)
    with pytest.raises(TypeError, match="^__dlpack(_device)?__: a Vector has no tensor form"):
        torch.as_tensor(kt.vector(np.zeros(2)))
    kt.free(h)
    with pytest.raises(kt.KtorchError, match="freed"):
        np.asarray(h)
