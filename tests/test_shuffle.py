"""Shuffle properties: shared permutations, exact unshuffle, seeded order, task partitions."""

import numpy as np
import pytest

import ktorch as kt


def identity_model():
    return kt.model(kt.module("identity"), kt.loss("mse"), kt.opt("sgd"))


def test_tensor_shuffle_is_a_permutation():
    x = kt.tensor(np.arange(50))
    kt.shuffle(x)
    v = kt.tensor(x)
    assert sorted(v.tolist()) == list(range(50))


def test_dict_members_share_the_permutation_along_any_dim():
    a = np.arange(24).reshape(4, 6)
    d = kt.dict({"a": a, "b": np.arange(10, 16).reshape(1, 6)})
    kt.shuffle(d, 1)
    r = kt.dict(d)
    perm = r["b"][0] - 10
    assert sorted(perm.tolist()) == list(range(6))
    np.testing.assert_array_equal(r["a"], a[:, perm])


def test_unshuffle_is_exact_after_many_shuffles():
    m = identity_model()
    x = np.arange(37, dtype=np.float32)
    y = 100 + np.arange(37, dtype=np.float32)
    kt.train(m, x, y)
    for _ in range(25):
        kt.shuffle(m)
        xs, ys = kt.data(m)
        np.testing.assert_array_equal(ys - xs, 100)
    kt.unshuffle(m)
    xs, ys = kt.data(m)
    np.testing.assert_array_equal(xs, x)
    np.testing.assert_array_equal(ys, y)


def order_with_seed(seed, task=0, tasks=1, n=20, batchsize=3):
    m = identity_model()
    kt.train(m, shuffle=True, shuffleseed=seed, tasks=tasks, task=task, batchsize=batchsize)
    kt.train(m, np.arange(n))
    kt.batchinit(m)
    rows = []
    while kt.batch(m):
        rows.extend(kt.tensor(kt.input(m)).tolist())
    return rows


def test_same_shuffleseed_gives_same_order():
    assert order_with_seed(5) == order_with_seed(5)
    assert order_with_seed(5) != order_with_seed(6)
    assert sorted(order_with_seed(5)) == list(range(20))


def test_tasks_partition_the_batches():
    tasks = 3
    parts = [order_with_seed(11, k, tasks) for k in range(tasks)]
    seen = [r for p in parts for r in p]
    assert sorted(seen) == list(range(20))
    assert all(len(set(a) & set(b)) == 0 for i, a in enumerate(parts) for b in parts[i + 1 :])


def test_task_batches_follow_k_plus_tasks():
    m = identity_model()
    kt.train(m, tasks=2, task=1, batchsize=3)
    assert kt.train(m, np.arange(10)) == 2  # batches 1 and 3 of 0..3
    got = []
    while kt.batch(m):
        got.append(kt.tensor(kt.input(m)).tolist())
    assert got == [[3, 4, 5], [9]]


def test_task_must_be_below_tasks():
    m = identity_model()
    with pytest.raises(kt.KtorchError, match="train: task 2 implies at least 3 tasks, but only 2 defined"):
        kt.train(m, {"tasks": 2, "task": 2})
    assert kt.train(m, "tasks") == 1


def test_run_predict_and_output_in_original_order_after_shuffle():
    kt.seed(3)
    q = kt.module(("linear", 4, 3))
    m = kt.model(q, kt.loss("ce"), kt.opt("sgd", q, 0.0))  # lr 0: weights fixed
    x = np.random.default_rng(0).standard_normal((30, 4)).astype(np.float32)
    y = np.arange(30) % 3
    kt.train(m, batchsize=7, shuffle=True, metrics=["output", "predict"])
    kt.train(m, x, y)
    out, pred = kt.run(m)
    expect = kt.evaluate(q, x)
    np.testing.assert_allclose(out, expect, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(pred, expect.argmax(1))


def test_hidden_state_passed_between_batches():
    kt.seed(1)
    q = kt.module(("lstm", 3, 5, {"batchfirst": True}))
    m = kt.model(q, kt.loss("mse"), kt.opt("sgd", q, 0.0))
    x = np.random.default_rng(1).standard_normal((4, 6, 3)).astype(np.float32)
    y = np.zeros((4, 6, 5), np.float32)
    kt.train(m, batchsize=2, hidden=True, metrics=["output", "hidden", "hiddencell"])
    kt.train(m, x, y)
    out, h, c = kt.run(m)
    # every batch's state, joined along dim 0 as the original does
    assert out.shape == (4, 6, 5) and h.shape == (2, 2, 5) and c.shape == (2, 2, 5)
    # the second batch starts from the first batch's final state
    first = kt.evaluate(q, x[:2])
    h0, c0 = kt.tensor(kt.tensor(first[1])), kt.tensor(kt.tensor(first[2]))
    second = kt.evaluate(q, x[2:], h0, c0)
    np.testing.assert_allclose(out[2:], second[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(h, np.concatenate([h0, second[1]]), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(c, np.concatenate([c0, second[2]]), rtol=1e-5, atol=1e-6)
