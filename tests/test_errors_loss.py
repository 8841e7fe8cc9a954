"""Bad input for losses (loss and the loss functions): see tests/errorcases.py."""


import numpy as np
import pytest
from errorcases import F32, ODD, K, T, X, Y, check_case

import ktorch as kt

# id, call(env), exception, message prefix (ends with ":") or substring
CASES = [
    # unknown names
    ("loss-unknown", lambda e: kt.loss("nosuch"), K, "loss: unrecognized loss: nosuch"),
    ("loss-typo", lambda e: kt.loss("CE"), K, "loss: unrecognized loss: CE (did you mean ce?), expecting one of: ce, nll,"),
    # freed handles
    ("freed-loss", lambda e: kt.loss(e.fl, X, X), K, "loss: Loss has been freed"),
    # losses
    ("loss-target-batch", lambda e: kt.loss(e.l, np.zeros((3, 4), np.float32), np.zeros(5, np.int64)), K, "loss: ce:"),
    ("mse-shape", lambda e: kt.mse(np.zeros((3, 4), np.float32), np.zeros((5, 2), np.float32)), K, "mse: output size [3, 4] does not match target size [5, 2]"),
    ("loss-too-many-settings", lambda e: kt.loss("mse", 1, 2), K, "mse:"),
    ("loss-bad-reduction", lambda e: kt.loss("mse", {"reduce": "nosuch"}), K, "mse: reduce: unrecognized value `nosuch`"),
    ("model-loss-shape", lambda e: kt.loss(e.m, np.zeros((3, 3), np.float32), np.zeros(7, np.int64)), K, "loss: ce:"),
    # --- wrong types and arities, None where data is needed ---
    ("loss-arity", lambda e: kt.loss(e.l, X), T, "loss: expecting (loss or model, output, target)"),
    # --- empty and zero-sized data ---
    ("mse-empty-vs-rows", lambda e: kt.mse(np.zeros((0, 3), F32), np.zeros((2, 3), F32)), K, "mse: output size [0, 3] does not match target size [2, 3]"),
    # --- mismatched shapes and dtypes ---
    ("ce-batch-mismatch", lambda e: kt.ce(X, Y[:3]), K, "ce: Expected input batch_size (10) to match target batch_size (3)"),
    # --- unknown names and module/loss settings ---
    ("loss-unknown-option", lambda e: kt.loss("ce", {"nosuch": 1}), K, "ce: unrecognized option: nosuch"),
    ("loss-bad-weight", lambda e: kt.loss("ce", {"weight": "x"}), K, "ce: weight expects a number"),
    ("lossfn-unknown", lambda e: kt._lossfn("nosuch", X, X), K, "loss: unrecognized loss: nosuch"),
    # --- dtypes, layouts and devices ktorch cannot compute with: refused at the boundary, never a panic ---
    ("mse-complex32", lambda e: kt.mse(ODD["complex32"], ODD["complex32"]), T, "mse: complex32 tensors are not supported"),
    ("loss-bits8", lambda e: kt.loss(e.l, ODD["bits8"], Y), T, "loss: bits8 tensors are not supported, given a torch.Tensor of dtype torch.bits8"),
]


@pytest.mark.parametrize("call,exc,want", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input(call, exc, want):
    check_case(call, exc, want)
