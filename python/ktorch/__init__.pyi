"""ktorch: the ktorch training api on libtorch, run from Rust (type stubs)."""

from typing import Any

from ktorch import _ktorch as _ktorch
from ktorch import callbacks as callbacks
from ktorch._fit import fit as fit
from ktorch._ktorch import (
    Dict as Dict,
)
from ktorch._ktorch import (
    KtorchError as KtorchError,
)
from ktorch._ktorch import (
    Loss as Loss,
)
from ktorch._ktorch import (
    Model as Model,
)
from ktorch._ktorch import (
    Module as Module,
)
from ktorch._ktorch import (
    Optimizer as Optimizer,
)
from ktorch._ktorch import (
    Tensor as Tensor,
)
from ktorch._ktorch import (
    Vector as Vector,
)
from ktorch._ktorch import (
    add as add,
)
from ktorch._ktorch import (
    addref as addref,
)
from ktorch._ktorch import (
    avgparms as avgparms,
)
from ktorch._ktorch import (
    backstep as backstep,
)
from ktorch._ktorch import (
    backward as backward,
)
from ktorch._ktorch import (
    batch as batch,
)
from ktorch._ktorch import (
    batchinit as batchinit,
)
from ktorch._ktorch import (
    batchnorm as batchnorm,
)
from ktorch._ktorch import (
    bcelogit1 as bcelogit1,
)
from ktorch._ktorch import (
    bcelogit2 as bcelogit2,
)
from ktorch._ktorch import (
    buffernames as buffernames,
)
from ktorch._ktorch import (
    buffers as buffers,
)
from ktorch._ktorch import (
    cauchy as cauchy,
)
from ktorch._ktorch import (
    child as child,
)
from ktorch._ktorch import (
    childnames as childnames,
)
from ktorch._ktorch import (
    children as children,
)
from ktorch._ktorch import (
    clip as clip,
)
from ktorch._ktorch import (
    clipv as clipv,
)
from ktorch._ktorch import (
    clone as clone,
)
from ktorch._ktorch import (
    copyparms as copyparms,
)
from ktorch._ktorch import (
    copyto as copyto,
)
from ktorch._ktorch import (
    cudadevice as cudadevice,
)
from ktorch._ktorch import (
    cudadevices as cudadevices,
)
from ktorch._ktorch import (
    data as data,
)
from ktorch._ktorch import (
    datasize as datasize,
)
from ktorch._ktorch import (
    device as device,
)
from ktorch._ktorch import (
    dict as dict,
)
from ktorch._ktorch import (
    dirac as dirac,
)
from ktorch._ktorch import (
    dtype as dtype,
)
from ktorch._ktorch import (
    eforward as eforward,
)
from ktorch._ktorch import (
    evaluate as evaluate,
)
from ktorch._ktorch import (
    exponential as exponential,
)
from ktorch._ktorch import (
    eye as eye,
)
from ktorch._ktorch import (
    fill as fill,
)
from ktorch._ktorch import (
    forward as forward,
)
from ktorch._ktorch import (
    free as free,
)
from ktorch._ktorch import (
    freeze as freeze,
)
from ktorch._ktorch import (
    gain as gain,
)
from ktorch._ktorch import (
    geometric as geometric,
)
from ktorch._ktorch import (
    grad as grad,
)
from ktorch._ktorch import (
    gradflag as gradflag,
)
from ktorch._ktorch import (
    help as help,
)
from ktorch._ktorch import (
    info as info,
)
from ktorch._ktorch import (
    input as input,
)
from ktorch._ktorch import (
    kforward as kforward,
)
from ktorch._ktorch import (
    knormal as knormal,
)
from ktorch._ktorch import (
    kuniform as kuniform,
)
from ktorch._ktorch import (
    load as load,
)
from ktorch._ktorch import (
    load_state_dict as load_state_dict,
)
from ktorch._ktorch import (
    lognormal as lognormal,
)
from ktorch._ktorch import (
    loss as loss,
)
from ktorch._ktorch import (
    lr as lr,
)
from ktorch._ktorch import (
    mean as mean,
)
from ktorch._ktorch import (
    model as model,
)
from ktorch._ktorch import (
    module as module,
)
from ktorch._ktorch import (
    moduletypes as moduletypes,
)
from ktorch._ktorch import (
    mul as mul,
)
from ktorch._ktorch import (
    names as names,
)
from ktorch._ktorch import (
    nforward as nforward,
)
from ktorch._ktorch import (
    nograd as nograd,
)
from ktorch._ktorch import (
    normal as normal,
)
from ktorch._ktorch import (
    objclass as objclass,
)
from ktorch._ktorch import (
    objects as objects,
)
from ktorch._ktorch import (
    ones as ones,
)
from ktorch._ktorch import (
    opt as opt,
)
from ktorch._ktorch import (
    orthogonal as orthogonal,
)
from ktorch._ktorch import (
    parm as parm,
)
from ktorch._ktorch import (
    parmnames as parmnames,
)
from ktorch._ktorch import (
    parms as parms,
)
from ktorch._ktorch import (
    parmtypes as parmtypes,
)
from ktorch._ktorch import (
    random as random,
)
from ktorch._ktorch import (
    restore as restore,
)
from ktorch._ktorch import (
    run as run,
)
from ktorch._ktorch import (
    save as save,
)
from ktorch._ktorch import (
    seed as seed,
)
from ktorch._ktorch import (
    shuffle as shuffle,
)
from ktorch._ktorch import (
    size as size,
)
from ktorch._ktorch import (
    snormal as snormal,
)
from ktorch._ktorch import (
    state as state,
)
from ktorch._ktorch import (
    state_dict as state_dict,
)
from ktorch._ktorch import (
    std as std,
)
from ktorch._ktorch import (
    step as step,
)
from ktorch._ktorch import (
    str as str,
)
from ktorch._ktorch import (
    sync as sync,
)
from ktorch._ktorch import (
    target as target,
)
from ktorch._ktorch import (
    tensor as tensor,
)
from ktorch._ktorch import (
    test as test,
)
from ktorch._ktorch import (
    testbatch as testbatch,
)
from ktorch._ktorch import (
    testdata as testdata,
)
from ktorch._ktorch import (
    testinit as testinit,
)
from ktorch._ktorch import (
    testinput as testinput,
)
from ktorch._ktorch import (
    testrestore as testrestore,
)
from ktorch._ktorch import (
    testrun as testrun,
)
from ktorch._ktorch import (
    testsize as testsize,
)
from ktorch._ktorch import (
    testtarget as testtarget,
)
from ktorch._ktorch import (
    to as to,
)
from ktorch._ktorch import (
    train as train,
)
from ktorch._ktorch import (
    training as training,
)
from ktorch._ktorch import (
    unfreeze as unfreeze,
)
from ktorch._ktorch import (
    uniform as uniform,
)
from ktorch._ktorch import (
    unshuffle as unshuffle,
)
from ktorch._ktorch import (
    use as use,
)
from ktorch._ktorch import (
    vector as vector,
)
from ktorch._ktorch import (
    xnormal as xnormal,
)
from ktorch._ktorch import (
    xuniform as xuniform,
)
from ktorch._ktorch import (
    zerograd as zerograd,
)
from ktorch._ktorch import (
    zeros as zeros,
)

def seq(container: Any, *children: Any) -> list[Any]:
    """seq(container, *children) -> list

    A container spec with its children, for `module`:
    `kt.module(kt.seq("sequential", ("linear", 2, 100), "relu"))`. Returns the list
    `[container, child, ...]`, the form `module` reads as a container followed by its
    children (a child may itself be such a list).
    """

def ce(x: Any, y: Any, *settings: Any, **options: Any) -> Tensor:
    """ce(x, y, *settings, **options) -> Tensor

    The ce loss of output(s) x and target(s) y, with settings
    as kt.loss("ce", *settings, **options) takes them.
    """

def nll(x: Any, y: Any, *settings: Any, **options: Any) -> Tensor:
    """nll(x, y, *settings, **options) -> Tensor

    The nll loss of output(s) x and target(s) y, with settings
    as kt.loss("nll", *settings, **options) takes them.
    """

def bce(x: Any, y: Any, *settings: Any, **options: Any) -> Tensor:
    """bce(x, y, *settings, **options) -> Tensor

    The bce loss of output(s) x and target(s) y, with settings
    as kt.loss("bce", *settings, **options) takes them.
    """

def bcelogits(x: Any, y: Any, *settings: Any, **options: Any) -> Tensor:
    """bcelogits(x, y, *settings, **options) -> Tensor

    The bcelogits loss of output(s) x and target(s) y, with settings
    as kt.loss("bcelogits", *settings, **options) takes them.
    """

def multisoft(x: Any, y: Any, *settings: Any, **options: Any) -> Tensor:
    """multisoft(x, y, *settings, **options) -> Tensor

    The multisoft loss of output(s) x and target(s) y, with settings
    as kt.loss("multisoft", *settings, **options) takes them.
    """

def mse(x: Any, y: Any, *settings: Any, **options: Any) -> Tensor:
    """mse(x, y, *settings, **options) -> Tensor

    The mse loss of output(s) x and target(s) y, with settings
    as kt.loss("mse", *settings, **options) takes them.
    """

def l1(x: Any, y: Any, *settings: Any, **options: Any) -> Tensor:
    """l1(x, y, *settings, **options) -> Tensor

    The l1 loss of output(s) x and target(s) y, with settings
    as kt.loss("l1", *settings, **options) takes them.
    """

def kl(x: Any, y: Any, *settings: Any, **options: Any) -> Tensor:
    """kl(x, y, *settings, **options) -> Tensor

    The kl loss of output(s) x and target(s) y, with settings
    as kt.loss("kl", *settings, **options) takes them.
    """

def multilabel(x: Any, y: Any, *settings: Any, **options: Any) -> Tensor:
    """multilabel(x, y, *settings, **options) -> Tensor

    The multilabel loss of output(s) x and target(s) y, with settings
    as kt.loss("multilabel", *settings, **options) takes them.
    """

def softmargin(x: Any, y: Any, *settings: Any, **options: Any) -> Tensor:
    """softmargin(x, y, *settings, **options) -> Tensor

    The softmargin loss of output(s) x and target(s) y, with settings
    as kt.loss("softmargin", *settings, **options) takes them.
    """

def smoothl1(x: Any, y: Any, *settings: Any, **options: Any) -> Tensor:
    """smoothl1(x, y, *settings, **options) -> Tensor

    The smoothl1 loss of output(s) x and target(s) y, with settings
    as kt.loss("smoothl1", *settings, **options) takes them.
    """

def huber(x: Any, y: Any, *settings: Any, **options: Any) -> Tensor:
    """huber(x, y, *settings, **options) -> Tensor

    The huber loss of output(s) x and target(s) y, with settings
    as kt.loss("huber", *settings, **options) takes them.
    """

def hinge(x: Any, y: Any, *settings: Any, **options: Any) -> Tensor:
    """hinge(x, y, *settings, **options) -> Tensor

    The hinge loss of output(s) x and target(s) y, with settings
    as kt.loss("hinge", *settings, **options) takes them.
    """

def cosineloss(x: Any, y: Any, *settings: Any, **options: Any) -> Tensor:
    """cosineloss(x, y, *settings, **options) -> Tensor

    The cosineloss loss of output(s) x and target(s) y, with settings
    as kt.loss("cosineloss", *settings, **options) takes them.
    """

def margin(x: Any, y: Any, *settings: Any, **options: Any) -> Tensor:
    """margin(x, y, *settings, **options) -> Tensor

    The margin loss of output(s) x and target(s) y, with settings
    as kt.loss("margin", *settings, **options) takes them.
    """

def multimargin(x: Any, y: Any, *settings: Any, **options: Any) -> Tensor:
    """multimargin(x, y, *settings, **options) -> Tensor

    The multimargin loss of output(s) x and target(s) y, with settings
    as kt.loss("multimargin", *settings, **options) takes them.
    """

def triplet(x: Any, y: Any, *settings: Any, **options: Any) -> Tensor:
    """triplet(x, y, *settings, **options) -> Tensor

    The triplet loss of output(s) x and target(s) y, with settings
    as kt.loss("triplet", *settings, **options) takes them.
    """

def poissonloss(x: Any, y: Any, *settings: Any, **options: Any) -> Tensor:
    """poissonloss(x, y, *settings, **options) -> Tensor

    The poissonloss loss of output(s) x and target(s) y, with settings
    as kt.loss("poissonloss", *settings, **options) takes them.
    """

def ctc(x: Any, y: Any, *settings: Any, **options: Any) -> Tensor:
    """ctc(x, y, *settings, **options) -> Tensor

    The ctc loss of output(s) x and target(s) y, with settings
    as kt.loss("ctc", *settings, **options) takes them.
    """

def pairwise(x: Any, y: Any, *settings: Any, **options: Any) -> Tensor:
    """pairwise(x, y, *settings, **options) -> Tensor

    The pairwise loss of output(s) x and target(s) y, with settings
    as kt.loss("pairwise", *settings, **options) takes them.
    """

def similar(x: Any, y: Any, *settings: Any, **options: Any) -> Tensor:
    """similar(x, y, *settings, **options) -> Tensor

    The similar loss of output(s) x and target(s) y, with settings
    as kt.loss("similar", *settings, **options) takes them.
    """

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
    "to",
    "copyto",
    "device",
    "dtype",
    "sync",
    "cudadevices",
    "training",
    "freeze",
    "unfreeze",
    "gradflag",
    "parm",
    "parms",
    "buffers",
    "buffernames",
    "childnames",
    "children",
    "child",
    "clone",
    "copyparms",
    "avgparms",
    "save",
    "load",
    "state",
    "state_dict",
    "load_state_dict",
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
    "zeros",
    "ones",
    "fill",
    "eye",
    "dirac",
    "orthogonal",
    "xnormal",
    "xuniform",
    "knormal",
    "kuniform",
    "snormal",
    "normal",
    "uniform",
    "cauchy",
    "exponential",
    "geometric",
    "lognormal",
    "random",
    "gain",
    "names",
    "moduletypes",
    "parmtypes",
    "kforward",
    "batchnorm",
    "cudadevice",
    "bcelogit1",
    "bcelogit2",
    "seq",
    "fit",
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
