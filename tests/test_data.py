"""Defining data, model data access, shuffling and batching of model data."""

import numpy as np
import pytest
from conftest import identity_model

import ktorch as kt


def _rows(v):
    return [len(a) for a in kt.tensor(v)]


@pytest.fixture
def multi():
    m = identity_model()
    kt.train(m, "batchsize", 100)
    x1 = kt.tensor("randn", [500, 32])
    x2 = kt.tensor("randint", 10, 500)
    y = kt.tensor(np.ones(500, np.float32))
    return m, x1, x2, y


def test_multiple_inputs(multi):
    m, x1, x2, y = multi
    assert kt.train(m, (x1, x2), y) == 5
    v = kt.vector(x1, x2)
    assert kt.train(m, v) == 5
    assert _rows(kt.input(m)) == [500, 500]
    assert kt.target(m) is None
    assert kt.train(m, v, y) == 5
    assert _rows(kt.input(m)) == [500, 500]
    assert len(kt.target(m)) == 500
    assert kt.train(m, (v, [0, 1]), y) == 5
    assert kt.train(m, ((v, 0), (v, 1)), y) == 5
    np.testing.assert_array_equal(kt.tensor(kt.input(m))[1], kt.tensor(x2))
    d = kt.dict({"a": kt.tensor(x1), "b": kt.tensor(x2)})
    assert kt.train(m, d, y) == 5
    assert kt.train(m, (d, ["a", "b"]), y) == 5
    assert kt.train(m, ((d, "a"), (d, "b")), y) == 5
    assert _rows(kt.input(m)) == [500, 500]
    assert len(kt.target(m)) == 500
    # selection order is respected
    assert kt.train(m, (d, ["b", "a"]), y) == 5
    np.testing.assert_array_equal(kt.tensor(kt.input(m))[0], kt.tensor(x2))


def test_size_mismatch():
    m = identity_model()
    with pytest.raises(kt.KtorchError, match="tensor size mismatch, 100 vs 10"):
        kt.train(m, np.zeros(100, np.int64), np.ones(10, np.int64))
    assert kt.data(m) == [None, None] or all(a is None for a in kt.data(m))


def test_data_forms():
    m = identity_model()
    assert kt.data(m, [1, 2, 3], [10, 11, 12]) == 1
    d = kt.data(m)
    np.testing.assert_array_equal(d[0], [1, 2, 3])
    np.testing.assert_array_equal(d[1], [10, 11, 12])
    kt.data(m, ([0.1, 0.2, 0.3], np.repeat([1, 2, 3], 5).reshape(3, 5)), [10, 11, 12])
    first = kt.data(m)[0]
    assert isinstance(first, list) and len(first) == 2
    np.testing.assert_allclose(first[0], [0.1, 0.2, 0.3])
    np.testing.assert_array_equal(first[1], np.repeat([1, 2, 3], 5).reshape(3, 5))
    np.testing.assert_array_equal(kt.data(m)[-1], [10, 11, 12])


def test_testdata():
    m = identity_model()
    kt.test(m, "batchsize", 5)
    assert kt.testdata(m, np.arange(100), np.tile([0, 1], 50)) == 20
    d = kt.testdata(m)
    np.testing.assert_array_equal(d[0], np.arange(100))
    np.testing.assert_array_equal(d[1], np.tile([0, 1], 50))
    assert kt.testsize(m) == 100
    assert kt.data(m)[0] is None


def test_datasize_in_batches():
    m = kt.model(kt.module("relu"), kt.loss("ce"), kt.opt("sgd"))
    kt.train(m, "batchsize", 3)
    assert kt.data(m, 1 + np.arange(10), 100 + np.arange(10)) == 4
    assert kt.datasize(m) == 10
    seen = []
    while kt.batch(m):
        x, y = kt.data(m)
        seen.append((kt.datasize(m), x.tolist(), y.tolist()))
    assert seen == [
        (3, [1, 2, 3], [100, 101, 102]),
        (3, [4, 5, 6], [103, 104, 105]),
        (3, [7, 8, 9], [106, 107, 108]),
        (1, [10], [109]),
    ]
    assert kt.datasize(m) == 10


def test_input_get_and_batches():
    m = identity_model()
    kt.train(m, "batchsize", 16)
    x = 101 + np.arange(64)
    assert kt.input(m, x) == 4
    inp = kt.input(m)
    assert kt.objclass(inp) == "tensor"
    np.testing.assert_array_equal(kt.tensor(inp), x)
    seen = []
    while kt.batch(m):
        seen.append(kt.tensor(kt.input(m)).tolist())
    assert seen == [x[i:i + 16].tolist() for i in range(0, 64, 16)]


def test_input_forms():
    m = identity_model()
    assert kt.train(m, "batchsize") == 32
    assert kt.input(m, np.arange(100)) == 4
    np.testing.assert_array_equal(kt.tensor(kt.input(m)), np.arange(100))
    x1 = kt.tensor("randn", [64, 5])
    x2 = kt.tensor("randn", [64, 1])
    assert kt.input(m, x1, x2) == 2
    v = kt.input(m)
    assert kt.objclass(v) == "vector"
    assert kt.size(v) == [[64, 5], [64, 1]]
    r = kt.tensor(v)
    np.testing.assert_array_equal(r[0], kt.tensor(x1))
    np.testing.assert_array_equal(r[1], kt.tensor(x2))


def test_target_forms():
    m = identity_model()
    kt.test(m, "batchsize", 4)
    assert kt.target(m) is None
    assert kt.input(m, np.arange(10)) == 1
    assert kt.target(m) is None
    assert kt.target(m, np.arange(10)) == 1
    np.testing.assert_array_equal(kt.target(m), np.arange(10))
    assert kt.testinput(m, np.arange(10) * 2) == 3
    np.testing.assert_array_equal(kt.tensor(kt.testinput(m)), np.arange(10) * 2)
    assert kt.testtarget(m, np.arange(10.0)) == 3
    np.testing.assert_array_equal(kt.testtarget(m), np.arange(10.0))


def test_model_shuffle_unshuffle():
    m = identity_model()
    assert kt.train(m, np.arange(7), 100 + np.arange(7)) == 1
    x, y = kt.data(m)
    np.testing.assert_array_equal(x, np.arange(7))
    np.testing.assert_array_equal(y, 100 + np.arange(7))
    changed = False
    for _ in range(4):
        assert kt.shuffle(m) is None
        x, y = kt.data(m)
        assert sorted(x.tolist()) == list(range(7))
        np.testing.assert_array_equal(y, 100 + x)  # inputs and targets share the permutation
        changed |= x.tolist() != list(range(7))
    assert changed
    assert kt.unshuffle(m) is None
    x, y = kt.data(m)
    np.testing.assert_array_equal(x, np.arange(7))
    np.testing.assert_array_equal(y, 100 + np.arange(7))


def test_model_batch_restore():
    m = identity_model()
    kt.train(m, "batchsize", 3)
    assert kt.train(m, np.arange(10), 10 + np.arange(10)) == 4
    seen = []
    while kt.batch(m):
        seen.append(kt.tensor(kt.input(m)).tolist())
    assert seen == [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9]]
    assert kt.batch(m) is True
    np.testing.assert_array_equal(kt.tensor(kt.input(m)), [0, 1, 2])
    assert kt.restore(m) == 10
    np.testing.assert_array_equal(kt.tensor(kt.input(m)), np.arange(10))


def test_testrestore():
    m = identity_model()
    kt.test(m, "batchsize", 4)
    kt.test(m, np.arange(10), np.arange(10))
    assert kt.testbatch(m) is True
    assert kt.testsize(m) == 4
    assert kt.testrestore(m) == 10
    assert kt.testsize(m) == 10


def test_batchinit_testinit():
    m = identity_model()
    assert kt.batchinit(m) == -1
    assert kt.testinit(m) == -1
    kt.train(m, "batchsize", 3)
    assert kt.train(m, np.arange(7), 100 + np.arange(7)) == 3
    assert kt.batch(m) is True
    x, y = kt.data(m)
    assert x.tolist() == [0, 1, 2] and y.tolist() == [100, 101, 102]
    assert kt.batchinit(m) == 3
    x, y = kt.data(m)
    np.testing.assert_array_equal(x, np.arange(7))
    np.testing.assert_array_equal(y, 100 + np.arange(7))
    kt.test(m, "batchsize", 5)
    kt.test(m, np.arange(7), np.arange(7))
    assert kt.testbatch(m) is True
    assert kt.testinit(m) == 2
    assert kt.testsize(m) == 7


def test_batchinit_shuffles_when_option_set():
    m = identity_model()
    kt.train(m, "shuffle", True)
    kt.train(m, np.arange(50), 100 + np.arange(50))
    assert kt.batchinit(m) == 2
    x, y = kt.data(m)
    assert sorted(x.tolist()) == list(range(50)) and x.tolist() != list(range(50))
    np.testing.assert_array_equal(y, 100 + x)
