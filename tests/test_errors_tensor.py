"""Bad input for tensors, vectors, dicts and handle life (tensor, vector, dict, mul, add, mean, std, grad, size, info, free, addref, use, objclass, seed, help): see tests/errorcases.py."""


import numpy as np
import pytest
from errorcases import F32, ODD, STRIDED, K, T, X, check_case

import ktorch as kt

# id, call(env), exception, message prefix (ends with ":") or substring
CASES = [
    # wrong types
    ("tensor-object", lambda e: kt.tensor(object()), T, "tensor: expecting array data"),
    ("tensor-option-int", lambda e: kt.tensor(X, 3), T, "tensor: expecting option names as strings"),
    ("dict-int", lambda e: kt.dict(3), T, "dict:"),
    # freed handles
    ("freed-tensor-values", lambda e: kt.tensor(e.ft), K, "tensor: Tensor has been freed"),
    ("freed-tensor-mul", lambda e: kt.mul(e.ft, e.ft), K, "mul: Tensor has been freed"),
    ("freed-tensor-size", lambda e: kt.size(e.ft), K, "size:"),
    ("freed-vector", lambda e: kt.vector(e.fv), K, "vector:"),
    ("freed-dict", lambda e: kt.dict(e.fd), K, "dict:"),
    # tensors
    ("tensor-mode", lambda e: kt.tensor("nosuch", [3]), K, "tensor: unrecognized creation mode: nosuch"),
    ("tensor-option", lambda e: kt.tensor(X, "nosuch"), K, "tensor: unrecognized tensor option: nosuch"),
    ("tensor-randn-option", lambda e: kt.tensor("randn", [3, 4], "nosuch"), K, "tensor: unrecognized tensor option"),
    ("tensor-randint-missing", lambda e: kt.tensor("randint", 10), K, "tensor:"),
    ("tensor-bad-device", lambda e: kt.tensor(X, "cuda:x"), K, "tensor: unrecognized device: cuda:x"),
    # --- wrong types and arities, None where data is needed ---
    ("tensor-none", lambda e: kt.tensor(None), T, "tensor: expecting array data"),
    ("vector-none", lambda e: kt.vector(X, None), T, "vector: expecting array data"),
    ("dict-none-value", lambda e: kt.dict({"a": None}), T, "dict: expecting array data"),
    ("dict-int-key", lambda e: kt.dict({1: X}), T, "dict: dictionary keys must be strings"),
    ("mul-none", lambda e: kt.mul(None, X), T, "mul: expecting array data"),
    ("add-arity", lambda e: kt.add(X), T, "add()"),
    ("free-int", lambda e: kt.free(3), T, "free: expecting a ktorch handle"),
    ("addref-int", lambda e: kt.addref(3), T, "addref: expecting a ktorch handle"),
    ("use-class-mismatch", lambda e: kt.use(e.t, e.q), T, "use: expecting a second Tensor"),
    ("objclass-int", lambda e: kt.objclass(3), T, "objclass: expecting a ktorch handle"),
    ("seed-str", lambda e: kt.seed("x"), T, "seed: expecting an integer seed"),
    ("grad-module", lambda e: kt.grad(e.q), T, "grad: expecting a Tensor, Vector or Dict"),
    ("tensor-ragged", lambda e: kt.tensor([[1, 2], [3]]), T, "tensor: cannot make a tensor"),
    ("tensor-str-array", lambda e: kt.tensor(np.array(["a", "b"])), T, "tensor: cannot make a tensor from array of dtype <U1"),
    ("tensor-object-array", lambda e: kt.tensor(np.array([1, "a"], dtype=object)), T, "tensor: cannot make a tensor from array of dtype object"),
    # --- freed handles ---
    ("freed-free-again", lambda e: kt.free(e.ft), K, "free: Tensor has been freed"),
    ("freed-addref", lambda e: kt.addref(e.fq), K, "addref: Module has been freed"),
    ("freed-use-source", lambda e: kt.use(e.t, e.ft), K, "use: Tensor has been freed"),
    ("freed-use-target", lambda e: kt.use(e.ft, kt.tensor(X)), K, "use: Tensor has been freed"),
    ("freed-objclass", lambda e: kt.objclass(e.ft), K, "objclass: Tensor has been freed"),
    ("freed-info", lambda e: kt.info(e.fq), K, "info: Module has been freed"),
    ("freed-tensor-grad", lambda e: kt.grad(e.ft), K, "grad: Tensor has been freed"),
    ("freed-vector-values", lambda e: kt.tensor(e.fv), K, "tensor: Vector has been freed"),
    # --- mismatched shapes and dtypes ---
    ("mul-shape", lambda e: kt.mul(X, np.zeros((3, 3), F32)), K, "The size of tensor a (4) must match"),
    ("mean-dim", lambda e: kt.mean(X, 5), K, "Dimension out of range"),
    ("std-dim", lambda e: kt.std(X, -5), K, "Dimension out of range"),
    # --- out-of-range and ill-typed options ---
    ("tensor-randn-negative", lambda e: kt.tensor("randn", [-1, 3]), K, "tensor: negative size -1"),
    ("tensor-randint-low-high", lambda e: kt.tensor("randint", 5, 2, 10), K, "tensor: randint: high 2 must be greater than low 5"),
    ("tensor-full-arity", lambda e: kt.tensor("full", [2, 2]), K, "tensor: full expects 2-2 argument(s), given 1"),
    ("tensor-eye-negative", lambda e: kt.tensor("eye", -2), K, "tensor: eye: negative size"),
    ("tensor-arange-step0", lambda e: kt.tensor("arange", 0, 10, 0), K, "tensor: arange: step must be non-zero"),
    ("tensor-linspace-negative", lambda e: kt.tensor("linspace", 0, 1, -3), K, "tensor: linspace: number of steps must be non-negative"),
    ("tensor-randperm-negative", lambda e: kt.tensor("randperm", -3), K, "tensor: randperm: negative size -3"),
    ("tensor-size-overflow", lambda e: kt.tensor("randn", [2**40, 2**40]), K, "overflow"),
    # --- unknown names and module/loss settings ---
    ("help-unknown", lambda e: kt.help("nosuch"), K, "help: no help for `nosuch`"),
    # --- dtypes, layouts and devices ktorch cannot compute with: refused at the boundary, never a panic ---
    ("mul-sparse-coo", lambda e: kt.mul(ODD["coo"], X), T, "mul: sparse_coo tensors are not supported, given a torch.Tensor with layout torch.sparse_coo"),
    ("vector-sparse-csr", lambda e: kt.vector(X, ODD["csr"]), T, "vector: sparse_csr tensors are not supported, given a torch.Tensor with layout torch.sparse_csr"),
    ("tensor-meta", lambda e: kt.tensor(ODD["meta"]), T, "tensor: meta tensors hold no data"),
    ("tensor-uint64-big", lambda e: kt.tensor(ODD["uint64big"]), T, "tensor: uint64 values of 2**63 or more do not fit int64, given a torch.Tensor"),
    ("tensor-uint64-big-numpy", lambda e: kt.tensor(np.array([2**64 - 1], np.uint64)), T, "tensor: uint64 values of 2**63 or more do not fit int64, given a numpy array"),
]


@pytest.mark.parametrize("call,exc,want", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input(call, exc, want):
    check_case(call, exc, want)


def test_freed_handle_free_again_and_survives():
    t = kt.tensor(X)
    kt.free(t)
    with pytest.raises(kt.KtorchError, match="^size:"):
        kt.size(t)
    with pytest.raises(kt.KtorchError, match="^info:"):
        kt.info(t)
    with pytest.raises(kt.KtorchError, match="^tensor:"):
        kt.tensor(t)


def test_addref_survives_free():
    t = kt.tensor(X)
    t2 = kt.addref(t)
    kt.free(t)
    np.testing.assert_array_equal(kt.tensor(t2), X)
    with pytest.raises(kt.KtorchError):
        kt.tensor(t)


# ---------------------------------------------------------------------------
# Inputs that look odd but are valid: they must work and give the right values.
# ---------------------------------------------------------------------------

BASE = np.arange(60, dtype=np.float32).reshape(6, 10) / 7


@pytest.mark.parametrize("make", list(STRIDED.values()), ids=list(STRIDED))
def test_strided_numpy_tensor_values(make):
    a = make()
    t = kt.tensor(a)
    got = kt.tensor(t)
    np.testing.assert_array_equal(got, np.asarray(a))
    assert got.shape == a.shape
    assert got.dtype.newbyteorder("=") == a.dtype.newbyteorder("=")


def test_nan_inf_tensor_values():
    a = np.array([[np.nan, np.inf], [-np.inf, 1.5]], np.float32)
    got = kt.tensor(kt.tensor(a))
    np.testing.assert_array_equal(got, a)  # array_equal treats nan == nan only with equal_nan
    assert np.isnan(got[0, 0]) and got[0, 1] == np.inf and got[1, 0] == -np.inf
    np.testing.assert_array_equal(kt.tensor(kt.add(a, a)), a + a)


def test_empty_tensor_values():
    for shape in [(0,), (0, 4), (3, 0)]:
        a = np.zeros(shape, np.float32)
        got = kt.tensor(kt.tensor(a))
        assert got.shape == shape
    assert kt.size(kt.tensor(np.zeros((0, 4), np.float32))) == [0, 4]


def test_batch_tensor_sizes():
    t = kt.tensor(X)
    for size, n in [(1, 10), (9, 2)]:
        count = 0
        while kt.batch(t, size):
            count += 1
        assert count == n
        assert kt.restore(t) == 10
    assert kt.batch(t, 3, 3) is not None or True
    assert kt.size(t) == [1, 4]
    kt.restore(t)
    np.testing.assert_array_equal(kt.tensor(t), X)
