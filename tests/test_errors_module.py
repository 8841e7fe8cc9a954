"""Bad input for modules and callback modules (module, parm, parmnames, callbacks): see tests/errorcases.py."""


import numpy as np
import pytest
from errorcases import F32, ODD, XC, K, T, check_case

import ktorch as kt

# id, call(env), exception, message prefix (ends with ":") or substring
CASES = [
    # unknown names
    ("module-unknown", lambda e: kt.module("nosuch"), K, "module: unrecognized module type: nosuch"),
    ("module-unknown-in-seq", lambda e: kt.module(kt.seq("sequential", "relu", "nosuch")), K, "module: unrecognized module type"),
    ("module-typo", lambda e: kt.module("linearr"), K, "module: unrecognized module type: linearr (did you mean linear?), help(\"module\") lists all"),
    ("module-typo-several", lambda e: kt.module(("conv", 1, 2, 3)), K, "(did you mean conv1d, conv2d or conv3d?)"),
    ("module-typo-in-seq", lambda e: kt.module(kt.seq("sequential", "reluu")), K, "reluu (did you mean relu or relu6?)"),
    # wrong types
    ("module-int", lambda e: kt.module(3), K, "module:"),
    ("module-not-container", lambda e: kt.module(["relu", "relu"]), K, "relu: not a container"),
    ("parm-int-name", lambda e: kt.parm(e.q, 3), T, "parm: expecting a parameter name"),
    # freed handles
    ("freed-module-parmnames", lambda e: kt.parmnames(e.fq), K, "parmnames:"),
    # shapes
    ("parm-size", lambda e: kt.parm(e.q, "0.weight", np.zeros((2, 2), np.float32)), K, "parm: parameter `0.weight` has size"),
    ("parm-name", lambda e: kt.parm(e.q, "nosuch"), K, "parm: parameter `nosuch` not found"),
    # module settings
    ("linear-missing", lambda e: kt.module(("linear", 4)), K, "linear:"),
    ("linear-negative", lambda e: kt.module(("linear", -1, 3)), K, "linear: in must be positive"),
    ("linear-unknown-setting", lambda e: kt.module(("linear", 4, 3, {"nosuch": 1})), K, "linear: unrecognized option: nosuch"),
    ("conv-missing-size", lambda e: kt.module(("conv2d", 2, 3)), K, "conv2d:"),
    ("softmax-no-dim", lambda e: kt.module("softmax"), K, "softmax:"),
    ("drop-p", lambda e: kt.module(("drop", 1.5)), K, "drop: p must be in the range 0-1"),
    # --- wrong types and arities, None where data is needed ---
    ("module-none", lambda e: kt.module(None), K, "module: expecting a module type"),
    ("parmnames-loss", lambda e: kt.parmnames(e.l), T, "parmnames: expecting a Module or Model"),
    ("parm-value-str", lambda e: kt.parm(e.q, "0.bias", "abc"), T, "parm: expecting array data"),
    # --- freed handles ---
    ("freed-module-parm", lambda e: kt.parm(e.fq, "weight"), K, "parm: Module has been freed"),
    # --- mismatched shapes and dtypes ---
    ("parm-transposed", lambda e: kt.parm(e.q, "0.weight", np.zeros((4, 8), F32)), K, "parm: parameter `0.weight` has size"),
    # --- unknown names and module/loss settings ---
    ("module-empty-name", lambda e: kt.module(""), K, "module: unrecognized module type"),
    ("module-empty-tuple", lambda e: kt.module(()), K, "module: empty module spec"),
    ("module-empty-list", lambda e: kt.module([]), K, "module: empty module list"),
    ("module-size-overflow", lambda e: kt.module(("linear", 2**31, 2**31)), K, "overflow"),
    ("linear-float-size", lambda e: kt.module(("linear", 2.5, 3)), K, "linear: in expects an integer"),
    ("linear-zero", lambda e: kt.module(("linear", 0, 3)), K, "linear: in must be positive, given 0"),
    ("conv-zero-kernel", lambda e: kt.module(("conv2d", 1, 1, 0)), K, "conv2d: size must be positive"),
    ("conv-negative-stride", lambda e: kt.module(("conv2d", 1, 1, 3, {"stride": -1})), K, "conv2d: stride must be positive"),
    ("embed-negative", lambda e: kt.module(("embed", -1, 3)), K, "embed: rows must be positive"),
    ("lstm-zero", lambda e: kt.module(("lstm", 0, 3)), K, "lstm: in must be positive"),
    ("batchnorm-zero", lambda e: kt.module(("batchnorm1d", 0)), K, "batchnorm1d: in must be positive"),
    ("drop-negative", lambda e: kt.module(("drop", -0.1)), K, "drop: p must be in the range 0-1"),
    ("callback-not-callable", lambda e: kt.module(("callback", "cb", 3, {"parms": {"x": [1.0]}})), K, "callback: fn expects a callable"),
    ("callback-bad-parms", lambda e: kt.module(("callback", "cb", lambda m, x: x, {"parms": 3})), K, "callback: parms expects a dict"),
    ("callback-no-fn", lambda e: kt.module(("callback", "cb")), K, "callback: fn not defined"),
    # --- a callback module that raises, returns the wrong thing, or calls back in ---
    ("cb-raise-forward", lambda e: e.cb("raise", lambda: kt.forward(e.cq, XC[0])), K, "callback: ValueError: boom"),
    ("cb-raise-backstep", lambda e: e.cb("raise", lambda: kt.backstep(e.cm)), K, "callback: ValueError: boom"),
    ("cb-raise-run", lambda e: e.cb("raise", lambda: kt.run(e.cm)), K, "callback: ValueError: boom"),
    ("cb-raise-evaluate", lambda e: e.cb("raise", lambda: kt.evaluate(e.cq, XC)), K, "callback: ValueError: boom"),
    ("cb-returns-none", lambda e: e.cb("none", lambda: kt.forward(e.cq, XC[0])), K, "callback: TypeError: callback: expecting array data, given NoneType"),
    ("cb-returns-str", lambda e: e.cb("str", lambda: kt.run(e.cm)), K, "callback: TypeError: callback: expecting array data, given str"),
    ("cb-wrong-shape-backstep", lambda e: e.cb("shape", lambda: kt.backstep(e.cm)), K, "mse: output size [7] does not match target size [6, 3]"),
    ("cb-wrong-shape-run", lambda e: e.cb("shape", lambda: kt.run(e.cm)), K, "mse: output size [7] does not match target size [2, 3]"),
    ("cb-reenter-model-run", lambda e: e.cb("reenter-model", lambda: kt.run(e.cm)), K, "in use by this thread"),
    ("cb-reenter-model-backstep", lambda e: e.cb("reenter-model", lambda: kt.backstep(e.cm)), K, "in use by this thread"),
    ("cb-reenter-module-forward", lambda e: e.cb("reenter-module", lambda: kt.forward(e.cq, XC[0])), K, "in use by this thread"),
    ("cb-reenter-parm-run", lambda e: e.cb("reenter-parm", lambda: kt.run(e.cm)), K, "in use by this thread"),
    # --- dtypes, layouts and devices ktorch cannot compute with: refused at the boundary, never a panic ---
    ("parm-nested-jagged", lambda e: kt.parm(e.q, "0.bias", ODD["jagged"]), T, "parm: nested tensors are not supported, given a torch.Tensor with layout torch.jagged"),
    ("parm-nested-strided", lambda e: kt.parm(e.q, "0.bias", ODD["nested"]), T, "parm: nested tensors are not supported, given a nested torch.Tensor"),
    ("cb-returns-sparse", lambda e: e.cb("sparse", lambda: kt.forward(e.cq, XC[0])), K, "callback: TypeError: callback: sparse_coo tensors are not supported"),
    ("cb-returns-uint64-big", lambda e: e.cb("uint64", lambda: kt.run(e.cm)), K, "callback: TypeError: callback: uint64 values of 2**63 or more"),
]


@pytest.mark.parametrize("call,exc,want", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input(call, exc, want):
    check_case(call, exc, want)
