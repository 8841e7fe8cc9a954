"""ktorch: the ktorch training api on libtorch, run from Rust (type stubs)."""

from typing import Any

from ktorch import _ktorch as _ktorch
from ktorch._ktorch import (
    KtorchError as KtorchError,
    Tensor as Tensor,
    Vector as Vector,
    Dict as Dict,
    Module as Module,
    Loss as Loss,
    Optimizer as Optimizer,
    Model as Model,
    tensor as tensor,
    vector as vector,
    dict as dict,
    free as free,
    addref as addref,
    use as use,
    objclass as objclass,
    size as size,
    info as info,
    grad as grad,
    seed as seed,
    help as help,
    mul as mul,
    add as add,
    mean as mean,
    std as std,
    objects as objects,
    module as module,
    parmnames as parmnames,
    parm as parm,
    loss as loss,
    opt as opt,
    lr as lr,
    model as model,
    zerograd as zerograd,
    nograd as nograd,
    forward as forward,
    nforward as nforward,
    eforward as eforward,
    evaluate as evaluate,
    backward as backward,
    clipv as clipv,
    clip as clip,
    step as step,
    backstep as backstep,
    run as run,
    testrun as testrun,
    train as train,
    test as test,
    data as data,
    testdata as testdata,
    input as input,
    testinput as testinput,
    target as target,
    testtarget as testtarget,
    datasize as datasize,
    testsize as testsize,
    batch as batch,
    testbatch as testbatch,
    restore as restore,
    testrestore as testrestore,
    batchinit as batchinit,
    testinit as testinit,
    shuffle as shuffle,
    unshuffle as unshuffle,
)

def seq(container: Any, *children: Any) -> list[Any]:
    """A container spec with its children: ``seq("sequential", ("linear", 2, 100), "relu")``."""

def ce(x: Any, y: Any, *settings: Any, **options: Any) -> Tensor:
    """The ce loss of output(s) x and target(s) y, returned as a Tensor."""

def nll(x: Any, y: Any, *settings: Any, **options: Any) -> Tensor:
    """The nll loss of output(s) x and target(s) y, returned as a Tensor."""

def bce(x: Any, y: Any, *settings: Any, **options: Any) -> Tensor:
    """The bce loss of output(s) x and target(s) y, returned as a Tensor."""

def bcelogits(x: Any, y: Any, *settings: Any, **options: Any) -> Tensor:
    """The bcelogits loss of output(s) x and target(s) y, returned as a Tensor."""

def multisoft(x: Any, y: Any, *settings: Any, **options: Any) -> Tensor:
    """The multisoft loss of output(s) x and target(s) y, returned as a Tensor."""

def mse(x: Any, y: Any, *settings: Any, **options: Any) -> Tensor:
    """The mse loss of output(s) x and target(s) y, returned as a Tensor."""

def l1(x: Any, y: Any, *settings: Any, **options: Any) -> Tensor:
    """The l1 loss of output(s) x and target(s) y, returned as a Tensor."""

def kl(x: Any, y: Any, *settings: Any, **options: Any) -> Tensor:
    """The kl loss of output(s) x and target(s) y, returned as a Tensor."""

def multilabel(x: Any, y: Any, *settings: Any, **options: Any) -> Tensor:
    """The multilabel loss of output(s) x and target(s) y, returned as a Tensor."""

def softmargin(x: Any, y: Any, *settings: Any, **options: Any) -> Tensor:
    """The softmargin loss of output(s) x and target(s) y, returned as a Tensor."""

def smoothl1(x: Any, y: Any, *settings: Any, **options: Any) -> Tensor:
    """The smoothl1 loss of output(s) x and target(s) y, returned as a Tensor."""

def huber(x: Any, y: Any, *settings: Any, **options: Any) -> Tensor:
    """The huber loss of output(s) x and target(s) y, returned as a Tensor."""

def hinge(x: Any, y: Any, *settings: Any, **options: Any) -> Tensor:
    """The hinge loss of output(s) x and target(s) y, returned as a Tensor."""

def cosineloss(x: Any, y: Any, *settings: Any, **options: Any) -> Tensor:
    """The cosineloss loss of output(s) x and target(s) y, returned as a Tensor."""

def margin(x: Any, y: Any, *settings: Any, **options: Any) -> Tensor:
    """The margin loss of output(s) x and target(s) y, returned as a Tensor."""

def multimargin(x: Any, y: Any, *settings: Any, **options: Any) -> Tensor:
    """The multimargin loss of output(s) x and target(s) y, returned as a Tensor."""

def triplet(x: Any, y: Any, *settings: Any, **options: Any) -> Tensor:
    """The triplet loss of output(s) x and target(s) y, returned as a Tensor."""

def poissonloss(x: Any, y: Any, *settings: Any, **options: Any) -> Tensor:
    """The poissonloss loss of output(s) x and target(s) y, returned as a Tensor."""

def ctc(x: Any, y: Any, *settings: Any, **options: Any) -> Tensor:
    """The ctc loss of output(s) x and target(s) y, returned as a Tensor."""

def pairwise(x: Any, y: Any, *settings: Any, **options: Any) -> Tensor:
    """The pairwise loss of output(s) x and target(s) y, returned as a Tensor."""

def similar(x: Any, y: Any, *settings: Any, **options: Any) -> Tensor:
    """The similar loss of output(s) x and target(s) y, returned as a Tensor."""

__all__ = [
    "KtorchError",
    "Tensor",
    "Vector",
    "Dict",
    "Module",
    "Loss",
    "Optimizer",
    "Model",
    "tensor",
    "vector",
    "free",
    "addref",
    "use",
    "objclass",
    "size",
    "info",
    "grad",
    "seed",
    "mul",
    "add",
    "mean",
    "std",
    "objects",
    "module",
    "parmnames",
    "parm",
    "loss",
    "opt",
    "lr",
    "model",
    "zerograd",
    "nograd",
    "forward",
    "nforward",
    "eforward",
    "evaluate",
    "backward",
    "clipv",
    "clip",
    "step",
    "backstep",
    "run",
    "testrun",
    "train",
    "test",
    "data",
    "testdata",
    "testinput",
    "target",
    "testtarget",
    "datasize",
    "testsize",
    "batch",
    "testbatch",
    "restore",
    "testrestore",
    "batchinit",
    "testinit",
    "shuffle",
    "unshuffle",
    "seq",
    "ce",
    "nll",
    "bce",
    "bcelogits",
    "multisoft",
    "mse",
    "l1",
    "kl",
    "multilabel",
    "softmargin",
    "smoothl1",
    "huber",
    "hinge",
    "cosineloss",
    "margin",
    "multimargin",
    "triplet",
    "poissonloss",
    "ctc",
    "pairwise",
    "similar",
]
