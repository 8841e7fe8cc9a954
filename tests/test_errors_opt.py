"""Bad input for optimizers (opt, lr, step): see tests/errorcases.py."""


import pytest
from errorcases import NAN, K, T, check_case

import ktorch as kt

# id, call(env), exception, message prefix (ends with ":") or substring
CASES = [
    # unknown names
    ("opt-unknown", lambda e: kt.opt("nosuch", e.q), K, "opt: unrecognized optimizer: nosuch"),
    ("opt-typo", lambda e: kt.opt("adma", e.q), K, "opt: unrecognized optimizer: adma (did you mean adam?), expecting one of: sgd, adam, adamw,"),
    # wrong types
    ("step-module", lambda e: kt.step(e.q), T, "step: expecting an Optimizer or Model"),
    ("lr-module", lambda e: kt.lr(e.q), T, "lr: expecting an Optimizer or Model"),
    ("opt-loss-params", lambda e: kt.opt("sgd", e.l), T, "opt: a Loss has no parameters"),
    ("opt-group-str", lambda e: kt.opt(e.o3, "x", e.q), T, "opt: group expects an integer"),
    # freed handles
    ("freed-opt-step", lambda e: kt.step(e.fo), K, "step: Optimizer has been freed"),
    # optimizers
    ("opt-group-too-big", lambda e: kt.opt(e.o3, 4, e.q), K, "opt: group 4 invalid, cannot be greater than number of groups(3)"),
    ("opt-group-missing-parms", lambda e: kt.opt(e.o3, 1), T, "opt: expecting (optimizer, group, parameters"),
    ("opt-lr-negative", lambda e: kt.opt("sgd", e.q, -1.0), K, "sgd: lr must be non-negative"),
    ("opt-adam-beta", lambda e: kt.opt("adam", e.q, 0.1, 2.0), K, "adam: beta1 must be in the range [0,1)"),
    ("opt-unknown-setting", lambda e: kt.opt("sgd", e.q, 0.1, nosuch=1), K, "sgd: unrecognized option: nosuch"),
    ("opt-group-bad-setting", lambda e: kt.opt(e.o3, 1, kt.module(("linear", 2, 2)), -5.0), K, "sgd: lr must be non-negative"),
    # --- wrong types and arities, None where data is needed ---
    ("opt-none", lambda e: kt.opt(None), T, "opt: expecting an optimizer name"),
    # --- freed handles ---
    ("freed-model-step", lambda e: kt.step(e.fm), K, "step: Model has been freed"),
    ("freed-opt-lr", lambda e: kt.lr(e.fo), K, "lr: Optimizer has been freed"),
    ("freed-opt-add-group", lambda e: kt.opt(e.fo, 1, e.q), K, "opt: Optimizer has been freed"),
    ("freed-module-in-opt", lambda e: kt.opt("sgd", e.fq), K, "opt: Module has been freed"),
    # --- calls in the wrong order: no data, no test data ---
    ("step-lbfgs-without-closure", lambda e: kt.step(kt.opt("lbfgs", e.q)), K, "lbfgs: step needs a closure"),
    # --- NaN/inf where a number must be finite or in range ---
    ("lr-nan", lambda e: kt.lr(e.o, NAN), K, "lr: learning rate must be non-negative, given NaN"),
    ("lr-negative", lambda e: kt.lr(e.m, -1.0), K, "lr: learning rate must be non-negative"),
    ("lr-list-length", lambda e: kt.lr(e.o, [0.1, 0.2]), K, "lr:"),
    ("lr-str", lambda e: kt.lr(e.o, "x"), K, "lr: rate expects a number"),
    ("opt-lr-nan", lambda e: kt.opt("sgd", e.q, NAN), K, "sgd: lr must be non-negative, given NaN"),
    # --- out-of-range and ill-typed options ---
    ("opt-momentum-negative", lambda e: kt.opt("sgd", e.q, 0.1, -0.5), K, "sgd: momentum must be non-negative"),
    ("opt-nesterov-no-momentum", lambda e: kt.opt("sgd", e.q, 0.1, 0.0, 0.0, 0.0, True), K, "sgd: nesterov momentum requires a momentum"),
    ("opt-too-many-settings", lambda e: kt.opt("sgd", e.q, 0.1, 0.9, 0, 0, False, 9, 9, 9), K, "sgd: expecting at most 5 positional setting(s), given 8"),
    ("opt-eps-negative", lambda e: kt.opt("adam", e.q, eps=-1.0), K, "adam: eps must be non-negative"),
    ("opt-setting-str", lambda e: kt.opt("sgd", e.q, "x"), K, "sgd: lr expects a number"),
    ("opt-group-negative", lambda e: kt.opt(e.o3, -1, e.q), K, "opt: group -1 invalid, must be non-negative"),
    ("opt-group-duplicate-parms", lambda e: kt.opt(e.o, 1, e.q), K, "opt: some parameters appear more than once"),
]


@pytest.mark.parametrize("call,exc,want", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input(call, exc, want):
    check_case(call, exc, want)
