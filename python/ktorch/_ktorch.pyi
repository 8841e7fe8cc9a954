"""Type stubs and documentation for the native module ktorch._ktorch."""

import builtins
import os
from builtins import str as _str  # `str` below is kt.str
from collections.abc import Callable
from typing import Any, final, overload

import numpy as np
import torch

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
    "dict",
    "free",
    "addref",
    "use",
    "objclass",
    "size",
    "info",
    "grad",
    "seed",
    "help",
    "mul",
    "add",
    "mean",
    "std",
    "objects",
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
    "module",
    "parmnames",
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
    "state",
    "state_dict",
    "load_state_dict",
    "save",
    "load",
    "loss",
    "_lossfn",
    "_loss_types",
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
    "input",
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
    "str",
    "batchnorm",
    "cudadevice",
    "bcelogit1",
    "bcelogit2",
]

_malloc_tuned: bool  # import set glibc's malloc thresholds (KTORCH_MALLOC=system: not)

class KtorchError(RuntimeError):
    """Raised for a bad argument or a call that does not fit the object's state (the message
    names the function and the argument), and for libtorch's errors (libtorch's message).
    A subclass of RuntimeError; an argument of the wrong type raises TypeError instead.
    """

@final
class Tensor:
    """A handle to a tensor (batching narrows it in place); `kt.tensor(t)` reads its values."""
    def __array__(self, dtype: Any = None, copy: bool | None = None) -> Any:
        """``numpy.asarray(h)``: a Tensor's values (a copy); other handles raise TypeError."""
    def __dlpack__(self, **kw: Any) -> Any:
        """``torch.as_tensor(h)``, ``numpy.from_dlpack(h)``: a copy of a Tensor's values."""
    def __dlpack_device__(self) -> Any: ...

@final
class Vector:
    """A handle to a list of tensors; `kt.vector(v)` reads them."""
    def __array__(self, dtype: Any = None, copy: bool | None = None) -> Any:
        """``numpy.asarray(h)``: a Tensor's values (a copy); other handles raise TypeError."""
    def __dlpack__(self, **kw: Any) -> Any:
        """``torch.as_tensor(h)``, ``numpy.from_dlpack(h)``: a copy of a Tensor's values."""
    def __dlpack_device__(self) -> Any: ...

@final
class Dict:
    """A handle to tensors by name; `kt.dict(d)` reads them."""
    def __array__(self, dtype: Any = None, copy: bool | None = None) -> Any:
        """``numpy.asarray(h)``: a Tensor's values (a copy); other handles raise TypeError."""
    def __dlpack__(self, **kw: Any) -> Any:
        """``torch.as_tensor(h)``, ``numpy.from_dlpack(h)``: a copy of a Tensor's values."""
    def __dlpack_device__(self) -> Any: ...

@final
class Module:
    """A handle to a module tree (layers, parameters, buffers), made by `kt.module`."""
    def __array__(self, dtype: Any = None, copy: bool | None = None) -> Any:
        """``numpy.asarray(h)``: a Tensor's values (a copy); other handles raise TypeError."""
    def __dlpack__(self, **kw: Any) -> Any:
        """``torch.as_tensor(h)``, ``numpy.from_dlpack(h)``: a copy of a Tensor's values."""
    def __dlpack_device__(self) -> Any: ...

@final
class Loss:
    """A handle to a loss function and its settings, made by `kt.loss`."""
    def __array__(self, dtype: Any = None, copy: bool | None = None) -> Any:
        """``numpy.asarray(h)``: a Tensor's values (a copy); other handles raise TypeError."""
    def __dlpack__(self, **kw: Any) -> Any:
        """``torch.as_tensor(h)``, ``numpy.from_dlpack(h)``: a copy of a Tensor's values."""
    def __dlpack_device__(self) -> Any: ...

@final
class Optimizer:
    """A handle to an optimizer with parameter groups, made by `kt.opt`."""
    def __array__(self, dtype: Any = None, copy: bool | None = None) -> Any:
        """``numpy.asarray(h)``: a Tensor's values (a copy); other handles raise TypeError."""
    def __dlpack__(self, **kw: Any) -> Any:
        """``torch.as_tensor(h)``, ``numpy.from_dlpack(h)``: a copy of a Tensor's values."""
    def __dlpack_device__(self) -> Any: ...

@final
class Model:
    """A handle to a model: module, loss, optimizer, train/test options and data."""
    def __array__(self, dtype: Any = None, copy: bool | None = None) -> Any:
        """``numpy.asarray(h)``: a Tensor's values (a copy); other handles raise TypeError."""
    def __dlpack__(self, **kw: Any) -> Any:
        """``torch.as_tensor(h)``, ``numpy.from_dlpack(h)``: a copy of a Tensor's values."""
    def __dlpack_device__(self) -> Any: ...

_Handle = Tensor | Vector | Dict | Module | Loss | Optimizer | Model
_Array = np.ndarray | list[Any] | float | int | bool | torch.Tensor
_Data = _Array | Tensor | Any
_Inputs = _Data | Vector | Dict | tuple[Any, ...]

@overload
def tensor() -> Tensor:
    """tensor(data, *options) -> Tensor
    tensor(mode, *args, *options) -> Tensor
    tensor(t) -> numpy array
    tensor(v) -> list of arrays
    tensor(d) -> dict of arrays
    tensor(h, "torch") -> torch.Tensor (a list or dict of them for a Vector or Dict)

    Makes a tensor from data, or by a creation mode, or reads a handle's values.

    - data: a numpy array, a nested list, a scalar or a `torch.Tensor` (shared, not
      copied; arrays and lists are copied once). Python floats make double tensors.
    - options (strings, any order): `"grad"` (requires gradient), a dtype (`"float"`,
      `"double"`, `"half"`, `"bfloat"`, `"long"`, `"int"`, `"short"`, `"byte"`, `"char"`,
      `"bool"`), a device (`"cpu"`, `"cuda"`, `"cuda:1"`).
    - modes: `randn`, `rand`, `zeros`, `ones`, `empty` (size), `full` (size, value),
      `randint` (high, size or low, high, size; gives long), `eye`, `arange`, `linspace`,
      `logspace`, `randperm`; e.g. `tensor("randn", [3, 64])`, `tensor("randint", 10, 60000)`.
    - With a Tensor, Vector or Dict handle: a copy of its values as numpy array(s), or
      as torch.Tensor(s) with `"torch"`.

    Raises TypeError for data of a kind libtorch cannot hold, KtorchError for a bad
    mode, option or size.
    """
@overload
def tensor(h: Tensor, /) -> np.ndarray: ...
@overload
def tensor(h: Vector, /) -> list[np.ndarray]: ...
@overload
def tensor(h: Dict, /) -> builtins.dict[_str, np.ndarray]: ...
@overload
def tensor(mode: _str, /, *args: Any) -> Tensor: ...
@overload
def tensor(data: _Array, /, *options: _str) -> Tensor: ...

@overload
def vector(v: Vector, /) -> list[np.ndarray]:
    """vector(x, y, ...) -> Vector
    vector(v) -> list of arrays

    Makes a Vector (a list of tensors) from arrays, lists or Tensor handles (a Tensor
    handle is shared, not copied); given a Vector, returns its members as numpy arrays.
    """

@overload
def vector(*xs: _Array | Tensor) -> Vector: ...

@overload
def dict(d: Dict, /) -> builtins.dict[_str, np.ndarray]:
    """dict({"a": x, "b": y, ...}) -> Dict
    dict(d) -> dict of arrays

    Makes a Dict (tensors by name) from a Python dict of arrays or Tensor handles; given
    a Dict, returns its members as a Python dict of numpy arrays.
    """

@overload
def dict(d: builtins.dict[_str, Any], /) -> Dict: ...

def free(*handles: _Handle) -> None:
    """free(h) -> None
    free(h1, h2, ...) -> None

    Releases each handle's object now instead of when Python drops the handle. Any later
    use of a freed handle raises KtorchError; objects shared with other holders (a module
    inside a model) live on while a holder does.
    """

def addref(x: _Handle) -> _Handle:
    """addref(h) -> handle

    A second handle to the same object (freeing one leaves the other working).
    """

def use(h: _Handle, new: _Handle) -> None:
    """use(h, new) -> None

    Moves `new`'s object into handle `h`: `h`'s old object is released and `new` is
    freed (the q idiom `use[h]...`). Both must be of the same class.
    """

def objclass(x: _Handle) -> _str:
    """objclass(h) -> str

    The handle's class: `"tensor"`, `"vector"`, `"dictionary"`, `"module"`, `"loss"`,
    `"optimizer"` or `"model"` (q's `class`, a reserved word in Python).
    """

def size(x: _Handle) -> Any:
    """size(h) -> list or dict

    A tensor's shape (of the current batch while batching); for a Vector one shape per
    member, for a Dict a dict of shapes; for a Module a dict of its parameter shapes.
    """

def info(x: _Handle) -> Any:
    """info(h) -> dict

    A dict describing the object. Tensors: device, dtype, layout, gradient, pin,
    memory, leaf, gradfn, dim, size, stride, numel, itemsize, contiguous, offset, ref.
    Modules: type, name, training, parms, buffers, settings and options (as the spec gave
    them). Losses: type, options (every setting by name). Optimizers: type, groups, lr,
    settings (a dict a group) and defaults (what a new group starts from). Models:
    module, loss, optimizer, train and test rows, lossscale (the loss scale of float16
    autocast training, None before it).
    """

def grad(x: Tensor | Vector | Dict) -> Any:
    """grad(t) -> numpy array or None
    grad(v) -> list of arrays
    grad(d) -> dict of arrays

    The gradient of a tensor (of each member of a Vector or Dict), None where it is
    undefined (no backward pass yet, or after `nograd`).
    """

def objects() -> int:
    """objects() -> int

    The number of live handles (holding an object, not yet freed or garbage collected),
    for leak checks.
    """

def seed(n: int) -> None:
    """seed(n) -> None

    Seeds libtorch's random generators (weights, `randn`, dropout, shuffling).
    """

def help(name: _str | None = None, table: bool = False) -> Any:
    """help() -> list of topics
    help(topic) -> list or dict
    help(topic, table=True) -> list of dicts
    help(name) -> dict or str

    Tables from the api: `help("module")`, `help("loss")` and `help("optimizer")` list
    the type names (with `table=True`, a dict per type: its name under `module`, `loss`
    or `optimizer` and its `options`); `help("backward")` the backward modes (free,
    retain, create, createfree) as dicts; `help("device")` each device this process has
    (`cpu`, then `cuda`, `cuda:0`, ... where there are CUDA devices) mapped to its random
    seed (`seed(n)` sets them all). `help(name)` of a module, loss or optimizer type gives
    its options in order with their defaults, and example values for the options a
    module type requires, as the original shows them: `help("linear")` ->
    `{"in": 784, "out": 10, "bias": True}`; None marks a default that follows other
    options (a pooling stride that follows the size). `help(name)` of a ktorch function
    (`help("run")`) gives its reference, as Python's `help(kt.run)` shows it.
    """

def mul(x: _Data, y: _Data) -> Tensor:
    """mul(x, y) -> Tensor

    Elementwise product of two tensors, arrays or scalars (broadcasting), with gradient.
    """

def add(x: _Data, y: _Data) -> Tensor:
    """add(x, y) -> Tensor

    Elementwise sum of two tensors, arrays or scalars (broadcasting), with gradient.
    """

def mean(x: _Data, dim: int | None = None) -> Tensor:
    """mean(x) -> Tensor
    mean(x, dim) -> Tensor

    Mean of all elements, or along dimension `dim`.
    """

def std(x: _Data, dim: int | None = None) -> Tensor:
    """std(x) -> Tensor
    std(x, dim) -> Tensor

    Unbiased standard deviation of all elements, or along dimension `dim`.
    """

def module(spec: Any) -> Module:
    """module(spec) -> Module
    module(model) -> Module
    module(state) -> Module

    Builds a module from a spec, or returns the module of a model, or builds the module
    a `state(q)` describes (a dict, or a list of row dicts for a container) with its
    parameter and buffer values, training flags and frozen parameters.

    - `"relu"`: a type name alone (`help("module")` lists them).
    - `("linear", 784, 10)`: a type, then its options by position.
    - `("linear", "a", 64, 20)`: a name after the type; its parameters become
      `a.weight`, `a.bias` (unnamed children are named by index: `0.weight`).
    - `("linear", 2, 100, {"bias": False})`: options by name in a dict, last.
    - `seq("sequential", child, ...)`: a container and its children (nested freely).
    - `("callback", "cb", fn, {"parms": {...}})`: a module whose forward is the Python
      callable `fn(module, *inputs)`.

    Raises KtorchError naming the type and option at fault; an unknown type names the
    closest valid ones.
    """

def parmnames(m: Module | Model) -> list[_str]:
    """parmnames(m) -> list of str

    Parameter names of a module, optimizer's module or model, as PyTorch names them
    (`0.weight`, `0.bias`, `a.weight`, ...).
    """

def to(h: _Handle, *args: _str | Tensor | bool, non_blocking: bool | None = None) -> None:
    """to(h, device) -> None
    to(h, dtype) -> None
    to(h, device, dtype, ...) -> None
    to(h, example) -> None
    to(h, ..., async) -> None

    Moves or converts the object in place: a Tensor, Vector or Dict (each member, which
    may also take `grad`/`nograd`), a Module (parameters, their gradients and buffers), a
    Loss (its class weights), an Optimizer (parameters and state: momenta, moments, the
    lbfgs history) or a Model (module, loss and optimizer together; its data stays where
    it is and each batch goes to the module's device). Options are names (`"cuda"`,
    `"cuda:1"`, `"cpu"`, `"double"`, `"half"`, ...) or one example Tensor whose device and
    dtype are taken. A trailing `True` (or `non_blocking=True`) lets a copy from pinned
    host memory to a GPU return before it is done. Modules and optimizers keep their
    parameters' identity, so whatever shares them sees them moved. A call that fails
    changes nothing.
    """

def copyto(t: Tensor | Vector | Dict, *args: _str | Tensor | bool, non_blocking: bool | None = None) -> Any:
    """copyto(t, options...) -> Tensor
    copyto(t, example) -> Tensor
    copyto(t, ..., async) -> Tensor

    A copy of a Tensor (a Vector or Dict: of each member) on another device or as another
    dtype, leaving the source where it was; always new memory. Options as for `to`.
    """

def device(h: _Handle | None = None) -> Any:
    """device() -> str
    device(h) -> str (a list or dict of str for a Vector or Dict)

    With no argument, `"cuda"` where a CUDA device is available, else `"cpu"`. With a
    handle, where it lives: a tensor's device, each member's for a Vector or Dict, a
    module's (or model's, optimizer's) parameters' device (`"cpu"` for one without any).
    """

def dtype(h: _Handle) -> Any:
    """dtype(h) -> str (a list or dict of str for a Vector or Dict)

    The dtype of a tensor (of each member of a Vector or Dict), or of a module's
    (model's, optimizer's) floating-point parameters (None for one without any).
    """

def sync(x: _Handle | _str | int | None = None) -> None:
    """sync() -> None
    sync(device) -> None
    sync(h) -> None

    Waits for every kernel queued on a CUDA device to finish: the default one, a named
    one (`"cuda:1"`, or its index), or the one a handle's tensors or parameters are on.
    Nothing to wait for on the CPU.
    """

@overload
def cudadevices() -> list[_str]:
    """cudadevices() -> list of str
    cudadevices(None) -> int

    The CUDA devices this process can use: `["cuda", "cuda:0", "cuda:1", ...]`, empty
    where there are none; given None (the original's null argument), their number (0
    where there are none).
    """
@overload
def cudadevices(count: None, /) -> int: ...

def training(m: Module | Model, flag: bool | None = None) -> bool | None:
    """training(m) -> bool
    training(m, flag) -> None

    A module's (or model's module's) training flag, or sets it for the whole tree.
    `run` trains in training mode and `testrun`/`evaluate` evaluate in evaluation mode
    whatever the flag, each restoring it afterwards; explicit steps (`forward`,
    `backward`, `backstep`) use the flag as set.
    """

def freeze(m: Module | Model | Dict, names: Any = None, values: Any = None) -> None:
    """freeze(m) -> None
    freeze(m, names) -> None
    freeze(m, names, values) -> None
    freeze(m, {name: value, ...}) -> None

    Turns gradients off for every parameter of a module (or a model's module, or each
    member of a parameter Dict), or for the named ones, first setting their values where
    given (an array, list, scalar or Tensor each; a scalar fills). Frozen parameters get
    no gradient, no optimizer update (weight decay included) and no share of clipping.
    """

def unfreeze(m: Module | Model | Dict, names: Any = None, values: Any = None) -> None:
    """unfreeze(m) -> None
    unfreeze(m, names) -> None
    unfreeze(m, names, values) -> None
    unfreeze(m, {name: value, ...}) -> None

    Turns gradients back on, as `freeze` turns them off (the same forms).
    """

def gradflag(h: Tensor | Vector | Dict | Module | Model, flag: bool | None = None) -> Any:
    """gradflag(h) -> bool, list or dict
    gradflag(t, flag) -> None

    Whether a tensor takes gradients (each member of a Vector or Dict: a list or dict),
    or each parameter of a module or model (a dict of name to bool). With `flag`, sets a
    tensor's (every member's) flag.
    """

def parm(m: Module | Model, name: _str, value: _Data | None = None) -> Tensor | None:
    """parm(m, name) -> Tensor
    parm(m, name, value) -> None

    The named parameter as a Tensor sharing its storage (writing to it changes the
    module); with `value` (array, list or Tensor of the same shape), copies it in.
    """

def parms(m: Module | Model, child: _str | int | None = None) -> Dict:
    """parms(m) -> Dict
    parms(m, child) -> Dict

    The parameters of a module (or model's module), or of its child named `child` (a
    dotted path, or a position among the direct children), as a Dict sharing them:
    writing to a member changes the module, `freeze` shows in `gradflag`.
    """

def buffers(m: Module | Model, child: _str | int | None = None) -> Dict:
    """buffers(m) -> Dict
    buffers(m, child) -> Dict

    The buffers of a module (batchnorm's running_mean, running_var, num_batches_tracked),
    or of its child, as a Dict sharing them.
    """

def buffernames(m: Module | Model, child: _str | int | None = None) -> list[_str]:
    """buffernames(m) -> list of str
    buffernames(m, child) -> list of str

    The buffer names of a module, or of its child and below.
    """

def childnames(m: Module | Model, child: _str | int | None = None) -> list[_str]:
    """childnames(m) -> list of str
    childnames(m, child) -> list of str

    The names of a module's direct children, or of its child's direct children.
    """

def children(m: Module | Model, child: _str | int | None = None) -> builtins.dict[_str, Module]:
    """children(m) -> dict of str to Module
    children(m, child) -> dict of str to Module

    The direct children of a module (or of its child) by name, each a Module sharing
    the parent's parameters and buffers (and its lock).
    """

def child(m: Module | Model, child: _str | int) -> Module:
    """child(m, child) -> Module

    One child of a module by dotted path (`"encoder.layers.0"`) or position, as a Module
    sharing the parent's parameters and buffers (and its lock).
    """

def clone(h: Tensor | Vector | Dict | Module | Loss) -> Any:
    """clone(h) -> handle

    A deep copy: a Module with its settings, training flag and every parameter and
    buffer copied to new memory; a Loss with its weights copied; a Tensor, Vector or
    Dict with each member copied (gradient flags kept). Nothing is shared with `h`.
    """

def copyparms(m: Module | Model, d: Dict | builtins.dict[_str, Any] | None = None) -> Any:
    """copyparms(m) -> Dict
    copyparms(m, d) -> dict of str to bool

    With a module (or model): a Dict of copies of its parameters (new memory, no
    gradients), to average into or to restore later. With a Dict (or a dict of arrays)
    as well: copies its members into the parameters of the same names, each of the
    parameter's size or one that broadcasts to it (a scalar resets a whole array), and
    returns each parameter's name and whether it was copied; other names are ignored.
    Sizes are checked before any parameter changes.
    """

def avgparms(m: Module | Model, d: Dict) -> int:
    """avgparms(m, d) -> int

    Weight averaging: adds the module's (or model's) current parameters to the running
    average kept in Dict `d` (made by `copyparms(m)`), in place, and counts them in its
    member `.n` (added on the first call; the copy counts as the first value). Returns
    the count.
    """

def save(h: Module | Loss | Optimizer | Model, path: _str | os.PathLike[_str], data: bool = False) -> None:
    """save(h, path) -> None
    save(m, path, data=True) -> None

    Saves a module, loss, optimizer or model to a checkpoint file: one safetensors file
    with every tensor (a module's parameters and buffers as `parm/name`, `buffer/name`),
    and the rest (`state(h)`) as JSON metadata. A module: its parameters and buffers,
    options, training flags and frozen parameters. A loss: its settings. An optimizer:
    settings, groups and each parameter's state (momenta, moments, step counts, lbfgs's
    history), not the parameters (`load(path, q)` takes them from a module). A model: its
    module, loss and optimizer so, its training and test options, and where training
    stands: passes completed, the seeded shuffle generator, the row order in force, a run
    stopped by Ctrl-C between batches, and libtorch's CPU generator (load puts it back),
    so the same data given again to the loaded model trains on exactly as the saved one
    would; its data too with `data=True`. The write is atomic: a temporary file beside
    `path`, synced, then renamed over it, so an interrupted save leaves any old file
    whole. Callback modules cannot be saved (their forward is a Python function).
    """

def load(
    path: _str | os.PathLike[_str], parameters: Module | Model | Optimizer | Tensor | Vector | Dict | None = None
) -> Module | Loss | Optimizer | Model:
    """load(path) -> Module, Loss or Model
    load(path, parameters) -> Optimizer

    Loads what `save` wrote: built again from its recorded types and settings (nothing in
    the file is run), then every tensor copied in after checking that the file has each
    one with the same shape. An optimizer's file is loaded over `parameters` (a Module or
    Model: by parameter name where the file names them, else in order). A truncated,
    damaged, foreign, newer or mismatched file raises KtorchError naming the problem (the
    first mismatched parameter with both shapes).
    """

def state(h: Module | Loss | Optimizer | Model, data: bool = False) -> Any:
    """state(h) -> dict or list
    state(m, data=True) -> dict

    The whole state of a module, loss, optimizer or model as Python dicts, lists and
    numpy arrays: what `module(state)`, `loss(state)`, `opt(state, module)` and
    `model(state)` build an equal object from (`clone` without the round trip).

    - Module: a dict for a module without children, a list of row dicts for a
      container (the original's table, depth first), each with depth, module (type),
      name, options (every option given, by name), parms and buffers (arrays),
      training, frozen (parameters that take no gradient).
    - Loss: loss (type), options (every setting).
    - Optimizer: optimizer (type), options (one dict a group), defaults, parms (a row a
      parameter: parmgroup, name in its module where known, size, step, buffers such as
      `exp_avg`), history (lbfgs's).
    - Model: module, loss, optimizer as above, train and test (options), position (a dict
      a stage: epochs completed, the seeded shuffle generator, the row order in force, a
      pass stopped between batches); with `data=True`, data (each stage's inputs and
      targets in the order given).
    """
    ...

def state_dict(x: Module | Optimizer | Model, part: _str | None = None) -> Any:
    """state_dict(x) -> OrderedDict or dict
    state_dict(m, "opt") -> dict

    The state of a module (or a model's module) or optimizer as PyTorch's `state_dict()`
    gives it, to load into the equivalent torch.nn module or torch.optim optimizer.

    - Module, Model: an OrderedDict of torch.Tensors under torch.nn's names, in its order
      (a module's parameters, then its buffers such as batchnorm's `running_mean`,
      `running_var`, `num_batches_tracked`, then its children's); detached copies on the
      module's device.
    - Optimizer, or a Model with `"opt"`: torch.optim's layout, `{"state": {id: {"step":
      tensor, "exp_avg": tensor, ...}}, "param_groups": [{"lr": ..., "betas": ..., ...,
      "params": [0, 1, ...]}]}`, with torch.optim's setting names (`decay` is
      `weight_decay`, adagrad's `lrdecay` and `init` are `lr_decay` and
      `initial_accumulator_value`) and flags (`maximize`, `foreach`...). sgd, adam, adamw,
      adagrad and rmsprop; KtorchError for lbfgs and lamb.
    """

def load_state_dict(x: Module | Optimizer | Model, sd: builtins.dict[Any, Any], strict: bool = True) -> Any:
    """load_state_dict(x, sd, strict=True) -> (missing_keys, unexpected_keys) or None

    Loads PyTorch's `state_dict()` (a dict or OrderedDict of torch.Tensors or numpy
    arrays) into a module or optimizer; the counterpart of `state_dict`.

    - Module, Model: copies each value into the parameter or buffer of that name,
      converted to its dtype and device. With `strict`, keys missing from `sd` or unknown
      to the module are a KtorchError listing them; a shape that differs is one naming
      the key and both shapes, strict or not. Returns the named tuple
      `(missing_keys, unexpected_keys)`.
    - Optimizer (or a Model given torch.optim's layout, keys `state` and `param_groups`):
      torch.optim's `state_dict()` for the same optimizer (`strict` is not used); the
      group count and each group's parameter count must match. Sets each group's
      settings from torch.optim's names (`maximize=True` is refused) and each
      parameter's state (tensors copied to the parameter's dtype and device). Returns None.

    Everything is checked before anything changes: a call that fails changes nothing.
    """

def loss(*args: Any, **options: Any) -> Any:
    """loss(name, *settings, **options) -> Loss
    loss(state) -> Loss
    loss(l) -> dict
    loss(l, all) -> dict
    loss(m) -> Loss
    loss(l, x, y) -> Tensor
    loss(l, x, y, w) -> Tensor
    loss(m, x, y) -> Tensor

    Makes a loss (or the loss a `state(l)` describes), or gives a loss's definition
    (`module`: its type, `options`: its settings, all of them, or with `all` False only
    those that differ from the defaults), or a model's loss (shared with the model), or
    computes a loss (a Loss handle's or a model's) of output(s) `x` and target(s) `y`.

    - name: `help("loss")` lists them; e.g. `"ce"`, `"mse"`, `"bce"`.
    - settings: by position in the loss's order (ce: weight, ignore, smoothing,
      reduce) or by name; a trailing `"none"`, `"mean"` or `"sum"` is the reduction.
      PyTorch keywords are accepted (`reduction`, `ignore_index`, `label_smoothing`).
    - more tensors after `y` go with the targets: the batch weights of `bce` and
      `bcelogits` (`loss(l, x, y, w)`: each element's loss times its weight, beside the
      class weights of the definition), the third tensor of `cosineloss`, `margin` and
      `triplet` (`loss(l, x1, x2, y)`), the lengths of `ctc`.
    - `kt.ce(x, y)`, `kt.mse(x, y)`, ...: the functional form of each loss.
    """

def opt(*args: Any, **options: Any) -> Any:
    """opt(name) -> Optimizer
    opt(name, parameters, *settings, **options) -> Optimizer
    opt(o) -> dict
    opt(m) -> Optimizer
    opt(o, group, parameters, *settings) -> None
    opt(o, parameters, *settings) -> None
    opt(state, parameters) -> Optimizer

    Makes an optimizer, or adds or edits a parameter group of one, or builds the
    optimizer a `state(o)` describes (settings, groups, each parameter's state) over
    `parameters` (a Module or Model: matched by parameter name where the state names
    them, else in order; every shape must match). `opt(o)` gives an optimizer's
    definition (type, `options`: each group's settings, `parms`: each parameter's group,
    name and size); `opt(m)` a model's optimizer, shared with the model.

    - name: `"sgd"`, `"adam"`, `"adamw"`, `"adagrad"`, `"rmsprop"`, `"lbfgs"`, `"lamb"`.
    - parameters: a Module, Model, Tensor, Vector or Dict; left out, an empty optimizer.
      A selection takes part of one: `(v, 1)`, `(v, [2, 0])` members of a Vector,
      `(d, "b")`, `(d, ["b", "a"])` members of a Dict, `(q, 0)`, `(q, ["b", "a"])` children
      of a module (by position or dotted name, their parameters named from the module).
      An empty list is no parameters: `opt("sgd", [], .1)` makes an optimizer with an
      empty group 0 (its settings given), `opt(o, 1, [], .01)` adds an empty group 1.
    - settings: by position in the optimizer's order (sgd: lr, momentum, dampening,
      decay, nesterov) or by name; e.g. `opt("sgd", q, .2, .99)`, `opt("adam", q, lr=1e-3)`.
    - group: equal to the number of groups adds a group (from the defaults), less edits
      that group and appends the parameters, more is an error; left out, group 0
      (`opt(o, m)` adds parameters to it, `opt(o, [], .002, .9)` sets its settings).
    """

def lr(x: Optimizer | Model, r: float | list[float] | None = None) -> list[float] | None:
    """lr(o) -> list of float
    lr(m) -> list of float
    lr(o, r) -> None

    The learning rate of each parameter group of an optimizer (or a model's); with `r`
    (one rate, or one per group), sets them.
    """

@overload
def model(q: Module | builtins.dict[_str, Any], l: Loss | None = None, o: Optimizer | None = None) -> Model:
    """model(q, l, o) -> Model
    model(state) -> Model
    model(m, part, ...) -> None

    A model of a module, a loss and an optimizer, with training and test options
    (`train`, `test`) and data. The module and optimizer are shared, not copied.
    `model(state)` builds the model a `state(m)` describes: module, loss, optimizer
    with its state, options, where training stands, and data where the state has it.
    `model(m, part, ...)` replaces a model's module, loss and/or optimizer with the
    Module, Loss and Optimizer handles given (one of each at most, in any order),
    keeping its options and data: `model(m, kt.loss("mse"))`. `module(m)`, `loss(m)`
    and `opt(m)` give a model's parts.
    """

@overload
def model(q: Model, l: Module | Loss | Optimizer, o: Module | Loss | Optimizer | None = None,
          *rest: Module | Loss | Optimizer) -> None: ...

def zerograd(x: _Handle) -> None:
    """zerograd(x) -> None

    Sets the gradients of a tensor, vector, dict, module, optimizer or model to zero.
    """

def nograd(x: _Handle) -> None:
    """nograd(x) -> None

    Sets the gradients of a tensor, vector, dict, module, optimizer or model to undefined
    (`grad` gives None), as `run` does before each batch.
    """

def forward(*args: Any) -> Tensor | Vector:
    """forward(q, x, ...) -> Tensor or Vector
    forward(m) -> Tensor or Vector
    forward(m, x, ...) -> Tensor or Vector

    Runs the module (or the model's module, on its training inputs when no input is
    given) with gradients, in the module's own mode (see `training`). Host data meets a
    module on a GPU there. Several outputs come back as a Vector.
    """

def nforward(*args: Any) -> Tensor | Vector:
    """nforward(q, x, ...) -> Tensor or Vector
    nforward(m[, x, ...]) -> Tensor or Vector

    As `forward`, without gradients (in the module's own mode).
    """

def eforward(*args: Any) -> Tensor | Vector:
    """eforward(q, x, ...) -> Tensor or Vector
    eforward(m[, x, ...]) -> Tensor or Vector

    Evaluation mode (dropout off, batchnorm running statistics), no gradients; a model
    without inputs given uses its test inputs.
    """

def evaluate(*args: Any) -> Any:
    """evaluate(q, x, ...) -> numpy array(s)
    evaluate(m[, x, ...]) -> numpy array(s)

    As `eforward`, returning numpy arrays (torch.Tensors when the inputs came as
    torch.Tensor).
    """

def backward(*args: Any) -> float | None:
    """backward(t) -> None
    backward(t, gradient) -> None
    backward(t, mode) -> None
    backward(t, gradient, mode) -> None
    backward(m) -> float
    backward(m, x, y) -> float

    On a tensor: backpropagates, accumulating gradients into the leaves. `gradient` is
    needed for a tensor of more than one element; mode is `"free"` (the default: free
    the graph), `"retain"`, `"create"` (higher order derivatives) or `"createfree"`
    (`help("backward")` gives the table).

    On a model: forward on its training data (or on `x`, `y`), loss, backward; returns
    the loss. Gradients accumulate: call `zerograd` or `nograd` before.
    """

def clipv(x: _Handle, value: float) -> float:
    """clipv(x, value) -> float

    Clamps the gradients of a tensor, vector, dict, module, optimizer or model to
    [-value, value]; returns nan (as the original).
    """

def clip(x: _Handle, maxnorm: float, *args: Any) -> float | list[float]:
    """clip(x, maxnorm) -> float
    clip(x, maxnorm, normtype) -> float
    clip(x, maxnorm, normtype, group) -> list of float

    Scales the gradients of a tensor, vector, dict, module, optimizer or model so that
    their total norm (`normtype`, default 2; `float("inf")` for the largest absolute
    value) is at most `maxnorm`; returns the norm before clipping. With `group` true
    (an optimizer or model), clips each parameter group apart and returns one norm a
    group.
    """

def step(x: Optimizer | Model) -> None:
    """step(o) -> None
    step(m) -> None

    One optimizer update from the current gradients. LBFGS re-evaluates the loss and
    needs `backstep` instead.
    """

def backstep(m: Model, x: Any = None, y: Any = None) -> float:
    """backstep(m) -> float
    backstep(m, x, y) -> float

    One training step on the model's training data (or on `x`, `y`): gradients set to
    none, forward, loss, backward, clipping as the training options say, optimizer step.
    Returns the loss.
    """

def run(m: Model, *args: Any, callback: Callable[[builtins.dict[_str, Any]], Any] | None = None,
        every: int = 1) -> Any:
    """run(m) -> metrics
    run(m, x, y) -> metrics
    run(m, TensorDataset) -> metrics
    run(m, callback=f, every=n) -> metrics

    One training pass (epoch) over the model's training data (`run(m, x, y)` defines
    it first), with the loop in Rust. The module is in training mode for the pass;
    each batch: gradients set to none, forward, loss, backward, clipping (options
    clipnorm, clipvalue), optimizer step. Shuffles first when option shuffle is true.

    Returns the metrics of option `metrics` (default `["loss"]`): the value alone for
    one metric, a list for several, a dict with option `dictionary`; numpy values
    (torch.Tensors when the data came as torch.Tensor), or ktorch Tensors with option
    `tensor`. When the data was shuffled, `predict` and `output` come back in the
    original sample order. Raises KtorchError with no training data.

    Ctrl-C stops between batches with KeyboardInterrupt (the data back at full size),
    and the next `run` finishes that epoch: the batches not done, in the same order (no
    new shuffle), returning the metrics of the whole epoch, bitwise as a run that was
    never stopped. Defining the data again, changing the training options, or
    `batch`, `batchinit`, `shuffle`, `unshuffle`, `restore` in between make the next
    run start a new epoch instead.

    Progress: option `progress` draws a bar on stderr (a terminal only). `callback(info)`
    is called every `every` batches and after the last, with a dict: phase, batch,
    batches, elapsed (seconds), loss (running mean of the batch losses, None without).
    """

def testrun(m: Model, *args: Any, callback: Callable[[builtins.dict[_str, Any]], Any] | None = None,
            every: int = 1) -> Any:
    """testrun(m) -> metrics
    testrun(m, x, y) -> metrics
    testrun(m, callback=f, every=n) -> metrics

    One evaluation pass over the model's test data (`testrun(m, x, y)` defines it
    first): evaluation mode, no gradients; the loss is computed only when a loss metric
    is asked for. Returns the metrics of the test option `metrics`, as `run` does;
    `progress`, `callback` and `every` as for `run`; Ctrl-C stops between batches and
    the next `testrun` finishes the pass, as for `run`. Raises KtorchError with no test
    data.
    """

@overload
def train(m: Model, /) -> builtins.dict[_str, Any]:
    """train(m) -> dict
    train(m, name) -> value
    train(m, [name, ...]) -> dict
    train(m, {name: value, ...}) -> None
    train(m, name, value) -> None
    train(m, [name, ...], [value, ...]) -> None
    train(m, **options) -> None
    train(m, inputs) -> int
    train(m, inputs, targets) -> int

    Reads or sets the model's training options, or defines its training data.

    A string or list of strings as second argument names options; anything else
    (array, Tensor, Vector, Dict, tuple selecting members `(v, [0, 1])`,
    `(d, ["a", "b"])`) is data, and the number of batches is returned.

    Options (defaults): batchsize 32, droplast False, hidden False, tensor False,
    dictionary False, metrics ["loss"], clipgroup False, clipnorm None, clipvalue None,
    shuffle False, sync False, task 0, tasks 1, shufflecuda False, shuffleseed None,
    nonfinite "proceed", progress False, autocast None, dist None, distcheck False. An unknown
    name, a wrong type or an out-of-range value raises KtorchError and leaves every option as
    it was.

    `dist` trains over the processes of a `torch.distributed` process group as one process
    would on the same global batches: `train(m, dist=pg)` for a group, `dist=True` for the
    default group (after `torch.distributed.init_process_group`), `dist=None` for one process;
    it reads back as the group's name (`pg.group_name`), which it also accepts. Each `run`
    starts from rank 0's parameters and buffers (with `distcheck=True`: checks that every
    rank's equal rank 0's, raising on every rank otherwise), shuffles with rank 0's
    permutation, gives each
    rank its share of every global batch of `batchsize` rows (`task`/`tasks` are ignored),
    sums the gradients weighted by the shares before each step, and returns the metrics of
    the whole data on every rank; batch normalization keeps rank 0's running statistics. The
    test stage uses the same group unless `test(m, dist=...)` sets its own. A pass over a
    group is not resumed after Ctrl-C; the group is not saved with the model. Every rank must
    use the same options and data: a rank that fails makes the others raise within the
    group's timeout.
    """
@overload
def train(m: Model, name: _str, /) -> Any: ...
@overload
def train(m: Model, names: list[_str], /) -> builtins.dict[_str, Any]: ...
@overload
def train(m: Model, settings: builtins.dict[_str, Any], /) -> None: ...
@overload
def train(m: Model, name: _str, value: Any, /) -> None: ...
@overload
def train(m: Model, names: list[_str], values: list[Any] | tuple[Any, ...], /) -> None: ...
@overload
def train(m: Model, /, **options: Any) -> None: ...
@overload
def train(m: Model, inputs: _Inputs, targets: _Inputs | None = ..., /) -> int: ...

@overload
def test(m: Model, /) -> builtins.dict[_str, Any]:
    """test(m) -> dict
    test(m, name) -> value
    test(m, [name, ...]) -> dict
    test(m, {name: value, ...}) -> None
    test(m, name, value) -> None
    test(m, [name, ...], [value, ...]) -> None
    test(m, **options) -> None
    test(m, inputs) -> int
    test(m, inputs, targets) -> int

    As `train`, for the test options and data. Test options (defaults): batchsize 100,
    droplast False, hidden False, tensor False, dictionary False, metrics ["loss"],
    progress False, autocast None, task 0, tasks 1, dist None (None: the training options'
    group), distcheck False; training-only options (clipnorm, shuffle, ...) are an error here. With a group,
    `testrun` splits every batch over its processes and returns exact metrics of the whole
    test data on every rank.
    """
@overload
def test(m: Model, name: _str, /) -> Any: ...
@overload
def test(m: Model, names: list[_str], /) -> builtins.dict[_str, Any]: ...
@overload
def test(m: Model, settings: builtins.dict[_str, Any], /) -> None: ...
@overload
def test(m: Model, name: _str, value: Any, /) -> None: ...
@overload
def test(m: Model, names: list[_str], values: list[Any] | tuple[Any, ...], /) -> None: ...
@overload
def test(m: Model, /, **options: Any) -> None: ...
@overload
def test(m: Model, inputs: _Inputs, targets: _Inputs | None = ..., /) -> int: ...

def data(m: Model, *args: Any) -> Any:
    """data(m) -> [inputs, targets]
    data(m, x) -> int
    data(m, x, y) -> int

    The training data as numpy arrays (a list of arrays for several tensors, None where
    undefined), or defines it (as `train(m, x, y)`; returns the number of batches).
    """

def testdata(m: Model, *args: Any) -> Any:
    """testdata(m) -> [inputs, targets]
    testdata(m, x) -> int
    testdata(m, x, y) -> int

    As `data`, for the test data.
    """

def input(m: Model, *args: Any) -> Any:
    """input(m) -> Tensor or Vector
    input(m, x, ...) -> int

    The training inputs as a Tensor handle (a Vector for several), or defines them.
    """

def testinput(m: Model, *args: Any) -> Any:
    """testinput(m) -> Tensor or Vector
    testinput(m, x, ...) -> int

    As `input`, for the test inputs.
    """

def target(m: Model, *args: Any) -> Any:
    """target(m) -> numpy array(s) or None
    target(m, y, ...) -> int

    The training targets as numpy array(s), None where undefined; or defines them.
    """

def testtarget(m: Model, *args: Any) -> Any:
    """testtarget(m) -> numpy array(s) or None
    testtarget(m, y, ...) -> int

    As `target`, for the test targets.
    """

def datasize(m: Model) -> int:
    """datasize(m) -> int

    The number of training rows, of the current batch while batching.
    """

def testsize(m: Model) -> int:
    """testsize(m) -> int

    The number of test rows, of the current batch while batching.
    """

def batch(x: Any, size: Any = None, index: int | None = None) -> bool | None:
    """batch(m) -> bool
    batch(x, size) -> bool
    batch(x, (size, dim)) -> bool
    batch(x, size, i) -> None

    On a model: moves its training data to the next batch (option batchsize); True while
    a batch remains, then restores full size and returns False (start with `batchinit`).
    On a Tensor, Vector or Dict: narrows it in place to the next batch of `size` rows
    (along `dim`), True while batches remain, then restores and returns False; with `i`,
    selects batch `i` alone. `size` must be in 1 to n-1.
    """

def testbatch(m: Model) -> bool:
    """testbatch(m) -> bool

    As `batch(m)`, for the test data (start with `testinit`).
    """

def restore(x: Any, dim: int | None = None) -> int:
    """restore(m) -> int
    restore(x) -> int
    restore(x, dim) -> int

    Restores a model's training data (or a Tensor, Vector or Dict) to full size after
    batching; returns the number of rows (for a Tensor, Vector or Dict the size along
    the batching dimension). With `dim`, the size along `dim` is returned and `dim` must
    be the batching dimension (0 for a model): another raises KtorchError and leaves the
    batch in place.
    """

def testrestore(m: Model) -> int:
    """testrestore(m) -> int

    As `restore(m)`, for the test data.
    """

def batchinit(m: Model) -> int:
    """batchinit(m) -> int

    Starts a pass over the training data: restores full size, shuffles if option
    shuffle is true, resets the metrics; returns the number of batches (-1 with no
    data).
    """

def testinit(m: Model) -> int:
    """testinit(m) -> int

    As `batchinit`, for the test data (no shuffling).
    """

def shuffle(x: Any, dim: int = 0) -> None:
    """shuffle(m) -> None
    shuffle(x) -> None
    shuffle(x, dim) -> None

    Shuffles a model's training data (inputs and targets alike), or a Tensor, or the
    members of a Vector or Dict by one permutation (along `dim`, default 0).
    """

def unshuffle(m: Model) -> None:
    """unshuffle(m) -> None

    Puts the model's training data back in its original order.
    """

_Init = Tensor | Vector | Dict | Module | Model

@overload
def zeros(x: _Init, *args: Any) -> None:
    """zeros(x) -> None
    zeros(x, select) -> None
    zeros(array) -> numpy array

    Resets tensors to zeros in place, with gradients off (`torch.nn.init.zeros_`).

    - `x`: a Tensor, Vector or Dict handle (every tensor), or a Module or Model, which
      needs `select`: parameter or buffer names (`"0.bias"`, `["a.weight", "b.bias"]`) or
      parameter indices (in `parmnames` order).
    - `select`: an index or list of indices into a Tensor's first dimension or a Vector;
      a name or list of names of a Dict's tensors.
    - array data (numpy, list, scalar, torch.Tensor): a reset copy is returned.

    Raises KtorchError naming the index or name at fault; nothing changes.
    """
@overload
def zeros(x: _Array, *args: Any) -> Any: ...

@overload
def ones(x: _Init, *args: Any) -> None:
    """ones(x) -> None
    ones(x, select) -> None
    ones(array) -> numpy array

    Resets tensors to ones in place (`torch.nn.init.ones_`); `x` and `select` as for
    `zeros`.
    """
@overload
def ones(x: _Array, *args: Any) -> Any: ...

@overload
def fill(x: _Init, *args: Any, value: int | float | bool | None = None) -> None:
    """fill(x, value) -> None
    fill(x, select, value) -> None
    fill(array, value) -> numpy array
    fill(array, select, value) -> numpy array

    Fills tensors with a single value in place (`torch.nn.init.constant_`): an int,
    float or bool, last (or `value=`); `x` and `select` as for `zeros`. With two
    arguments after `x`, the first selects.
    """
@overload
def fill(x: _Array, *args: Any, value: int | float | bool | None = None) -> Any: ...

@overload
def eye(x: _Init, *args: Any) -> None:
    """eye(x) -> None
    eye(x, select) -> None
    eye(array) -> numpy array

    Sets 2-dimensional tensors to the identity matrix in place (`torch.nn.init.eye_`);
    `x` and `select` as for `zeros`. Raises KtorchError for a tensor of other than 2
    dimensions.
    """
@overload
def eye(x: _Array, *args: Any) -> Any: ...

@overload
def dirac(x: _Init, *args: Any, groups: int | None = None) -> None:
    """dirac(x) -> None
    dirac(x, select) -> None
    dirac(array) -> numpy array

    Fills 3, 4 or 5-dimensional convolution weights with the Dirac delta in place
    (`torch.nn.init.dirac_`): the input channels are kept as far as the output channels
    allow. `groups=` (default 1) keeps each group's identity. `x` and `select` as for
    `zeros`.
    """
@overload
def dirac(x: _Array, *args: Any, groups: int | None = None) -> Any: ...

@overload
def orthogonal(x: _Init, *args: Any, gain: float | None = None) -> None:
    """orthogonal(x) -> None
    orthogonal(x, gain) -> None
    orthogonal(x, select) -> None
    orthogonal(x, select, gain) -> None
    orthogonal(array, gain=1.0) -> numpy array

    Fills tensors of 2 or more dimensions with a (semi) orthogonal matrix times `gain`
    (default 1) in place, as `torch.nn.init.orthogonal_` (trailing dimensions
    flattened). `x` and `select` as for `zeros`: an int or list of ints after a Tensor
    or Vector selects, a float is the gain.
    """
@overload
def orthogonal(x: _Array, *args: Any, gain: float | None = None) -> Any: ...

@overload
def xnormal(x: _Init, *args: Any, gain: float | None = None) -> None:
    """xnormal(x) -> None
    xnormal(x, gain) -> None
    xnormal(x, select) -> None
    xnormal(x, select, gain) -> None
    xnormal(array, gain=1.0) -> numpy array

    Xavier (Glorot) normal initialisation in place, as `torch.nn.init.xavier_normal_`:
    values from N(0, std²), std = gain·√(2 / (fan_in + fan_out)), gain default 1.
    Tensors need 2 or more dimensions. `x` and `select` as for `orthogonal`.
    """
@overload
def xnormal(x: _Array, *args: Any, gain: float | None = None) -> Any: ...

@overload
def xuniform(x: _Init, *args: Any, gain: float | None = None) -> None:
    """xuniform(x) -> None
    xuniform(x, gain) -> None
    xuniform(x, select) -> None
    xuniform(x, select, gain) -> None
    xuniform(array, gain=1.0) -> numpy array

    Xavier (Glorot) uniform initialisation in place, as `torch.nn.init.xavier_uniform_`:
    values from U(-a, a), a = gain·√(6 / (fan_in + fan_out)), gain default 1. Tensors
    need 2 or more dimensions. `x` and `select` as for `orthogonal`.
    """
@overload
def xuniform(x: _Array, *args: Any, gain: float | None = None) -> Any: ...

@overload
def knormal(
    x: _Init, *args: Any, nonlinearity: _str | None = None, mode: _str | None = None,
    slope: float | None = None, a: float | None = None,
) -> None:
    """knormal(x, *options) -> None
    knormal(x, select, *options) -> None
    knormal(array, *options) -> numpy array

    Kaiming (He) normal initialisation in place, as `torch.nn.init.kaiming_normal_`:
    values from N(0, std²), std = gain / √fan.

    - options, in any order: a nonlinearity (`"leakyrelu"` by default, `"relu"`,
      `"tanh"`, `"sigmoid"`, `"linear"`, `"conv2d"`, `"selu"`...; `"leaky_relu"` as
      torch spells it), a fan mode (`"fanin"` by default, or `"fanout"`; `"in"`, `"out"`,
      `"fan_in"`, `"fan_out"`), a number: the negative slope of a leaky ReLU (default 0).
      By name: `nonlinearity=`, `mode=`, `slope=` (or torch's `a=`).
    - `x` and `select` as for `zeros`: an int or list of ints after a Tensor or Vector
      selects; after a Dict, a nonlinearity or fan mode name is read as the option, and
      a one-element list `["relu"]` as a name.

    Tensors need 2 or more dimensions (one with no elements is left as it is).
    """
@overload
def knormal(
    x: _Array, *args: Any, nonlinearity: _str | None = None, mode: _str | None = None,
    slope: float | None = None, a: float | None = None,
) -> Any: ...

@overload
def kuniform(
    x: _Init, *args: Any, nonlinearity: _str | None = None, mode: _str | None = None,
    slope: float | None = None, a: float | None = None,
) -> None:
    """kuniform(x, *options) -> None
    kuniform(x, select, *options) -> None
    kuniform(array, *options) -> numpy array

    Kaiming (He) uniform initialisation in place, as `torch.nn.init.kaiming_uniform_`:
    values from U(-bound, bound), bound = gain·√(3 / fan). Options (nonlinearity, fan
    mode, slope), `x` and `select` as for `knormal`.
    """
@overload
def kuniform(
    x: _Array, *args: Any, nonlinearity: _str | None = None, mode: _str | None = None,
    slope: float | None = None, a: float | None = None,
) -> Any: ...

@overload
def snormal(x: _Init, *args: Any, sparsity: float | None = None, std: float | None = None) -> None:
    """snormal(x, sparsity, std=0.01) -> None
    snormal(x, select, sparsity, std=0.01) -> None
    snormal(array, sparsity, std=0.01) -> numpy array

    Sparse initialisation of 2-dimensional tensors in place, as `torch.nn.init.sparse_`:
    values from N(0, std²), then the fraction `sparsity` (0 to 1) of each column set to
    zero. `sparsity` is a float (an int or list after a Tensor or Vector selects); `x`
    and `select` as for `zeros`.
    """
@overload
def snormal(x: _Array, *args: Any, sparsity: float | None = None, std: float | None = None) -> Any: ...

@overload
def normal(x: _Init, *args: Any, mean: float | None = None, std: float | None = None) -> None:
    """normal(x, mean=0.0, std=1.0) -> None
    normal(x, select, mean=0.0, std=1.0) -> None
    normal(array, mean=0.0, std=1.0) -> numpy array

    Fills tensors in place with values from the normal distribution N(mean, std²)
    (`torch.nn.init.normal_`).

    - `x`: a Tensor, Vector or Dict handle, or a Module or Model with `select`; array
      data returns a reset copy.
    - `select`: a list of indices into a Tensor's first dimension or a Vector, a name
      or list of names of a Dict's tensors or a module's parameters and buffers. A
      single int is read as the first option unless all the options follow it
      (`normal(v, 2, 0.0, 1.0)`): give `[2]` to select.
    """
@overload
def normal(x: _Array, *args: Any, mean: float | None = None, std: float | None = None) -> Any: ...

@overload
def uniform(x: _Init, *args: Any, low: float | None = None, high: float | None = None) -> None:
    """uniform(x, low=0.0, high=1.0) -> None
    uniform(x, select, low=0.0, high=1.0) -> None
    uniform(array, low=0.0, high=1.0) -> numpy array

    Fills tensors in place with values from the uniform distribution over [low, high)
    (`torch.nn.init.uniform_`). `x` and `select` as for `normal`.
    """
@overload
def uniform(x: _Array, *args: Any, low: float | None = None, high: float | None = None) -> Any: ...

@overload
def cauchy(x: _Init, *args: Any, median: float | None = None, sigma: float | None = None) -> None:
    """cauchy(x, median=0.0, sigma=1.0) -> None
    cauchy(x, select, median=0.0, sigma=1.0) -> None
    cauchy(array, median=0.0, sigma=1.0) -> numpy array

    Fills tensors in place with values from the Cauchy (Lorentz) distribution with the
    given median and half width `sigma` (`Tensor.cauchy_`). `x` and `select` as for
    `normal`.
    """
@overload
def cauchy(x: _Array, *args: Any, median: float | None = None, sigma: float | None = None) -> Any: ...

@overload
def exponential(x: _Init, *args: Any, rate: float | None = None) -> None:
    """exponential(x, rate=1.0) -> None
    exponential(x, select, rate=1.0) -> None
    exponential(array, rate=1.0) -> numpy array

    Fills tensors in place with values from the exponential distribution of the given
    rate (`Tensor.exponential_`). `x` and `select` as for `normal`; a single int is
    read as the rate unless the rate follows it.
    """
@overload
def exponential(x: _Array, *args: Any, rate: float | None = None) -> Any: ...

@overload
def geometric(x: _Init, *args: Any, p: float | None = None) -> None:
    """geometric(x, p) -> None
    geometric(x, select, p) -> None
    geometric(array, p) -> numpy array

    Fills tensors in place with values from the geometric distribution: the number of
    Bernoulli trials with success probability `p` (0 < p < 1) up to the first success
    (`Tensor.geometric_`). `x` and `select` as for `normal`.
    """
@overload
def geometric(x: _Array, *args: Any, p: float | None = None) -> Any: ...

@overload
def lognormal(x: _Init, *args: Any, mean: float | None = None, std: float | None = None) -> None:
    """lognormal(x, mean=1.0, std=2.0) -> None
    lognormal(x, select, mean=1.0, std=2.0) -> None
    lognormal(array, mean=1.0, std=2.0) -> numpy array

    Fills tensors in place with values from the log-normal distribution: their log is
    N(mean, std²) (`Tensor.log_normal_`). `x` and `select` as for `normal`.
    """
@overload
def lognormal(x: _Array, *args: Any, mean: float | None = None, std: float | None = None) -> Any: ...

@overload
def random(x: _Init, *args: Any, low: int | None = None, high: int | None = None) -> None:
    """random(x) -> None
    random(x, high) -> None
    random(x, low, high) -> None
    random(x, select, low, high) -> None
    random(array, ...) -> numpy array

    Fills tensors in place with integers from the discrete uniform distribution over
    [low, high) (`Tensor.random_`): with no limits, over the values the dtype holds
    exactly; with one, from 0 up to `high`. Limits are ints (`low=`, `high=` by name).
    `x` and `select` as for `normal`: `random(v, 2, 5)` draws from [2, 5) for every
    tensor of `v`, `random(v, [2], 5)` and `random(v, 2, 0, 5)` for `v`'s tensor 2 only.
    """
@overload
def random(x: _Array, *args: Any, low: int | None = None, high: int | None = None) -> Any: ...

def gain(nonlinearity: _str, param: float | None = None) -> float:
    """gain(nonlinearity) -> float
    gain(nonlinearity, param) -> float

    The recommended gain for a nonlinearity, the factor that scales the standard
    deviation (`torch.nn.init.calculate_gain`): 1 for `linear`, `conv1d`... `conv3d`,
    `convtranspose1d`... `convtranspose3d` and `sigmoid`; 5/3 for `tanh`; √2 for `relu`;
    √(2 / (1 + param²)) for `leakyrelu` (param is the negative slope, default 0.01); 3/4
    for `selu`. torch's spellings (`leaky_relu`, `conv_transpose2d`) are read too.
    """

def names(m: Module | Model, child: _str | int | None = None) -> list[_str]:
    """names(m) -> list of str
    names(m, child) -> list of str

    The dotted names of every module inside a module (or a model's module), depth first
    as PyTorch's `named_modules` lists them, the module itself left out:
    `["a", "a.fc", "a.act", "b", ...]`. With `child` (a dotted name, or a position among
    the direct children), the modules inside that child, named from it. `childnames`
    gives the direct children only.
    """

@overload
def moduletypes(m: Module | Model, types: None = None) -> builtins.dict[_str, _str]:
    """moduletypes(m) -> dict of str to str
    moduletypes(m, types) -> dict of str to str
    moduletypes(m, type) -> list of str

    Each module of a module tree (or a model's) by dotted name, mapped to its type; the
    module itself is named `""`. With a list of types, only modules of those types; with
    one type (a string), the list of names of the modules of that type:
    `moduletypes(q, "linear")` -> `["a", "b"]`.
    """
@overload
def moduletypes(m: Module | Model, types: _str) -> list[_str]: ...
@overload
def moduletypes(m: Module | Model, types: list[_str] | tuple[_str, ...]) -> builtins.dict[_str, _str]: ...

def parmtypes(m: Module | Model) -> builtins.dict[_str, _str]:
    """parmtypes(m) -> dict of str to str

    Each parameter of a module (or a model's module) by its full name, mapped to the type
    of the module that holds it: `{"a.weight": "conv2d", "a.bias": "conv2d",
    "b.weight": "batchnorm2d", ...}`, e.g. to pick the parameters to initialise.
    """

def kforward(m: Module | Model, child: _str | int, *x: _Inputs) -> Tensor | Vector:
    """kforward(m, child, x, ...) -> Tensor or Vector

    The forward calculation of one child of a module (a dotted name or a position), for
    use inside a callback module's function `fn(m, *inputs)`: it runs in whatever mode
    the outer call set, training or evaluation, with or without gradients, so a callback
    that runs its children with `kforward` follows `forward`, `nforward`, `evaluate` or
    `run` as a sequential module would. Several outputs come back as a Vector.
    """

def str(h: _Handle) -> Any:
    """str(h) -> str

    The printed form of an object as libtorch's C++ writes it: a module tree
    (`torch::nn::Sequential(\\n  (0): torch::nn::Linear(in_features=784,
    out_features=10, bias=true)\\n  (1): torch::nn::ReLU()\\n)`), a model's module, a loss
    (`torch::nn::CrossEntropyLoss()`), a tensor with its values and type
    (`[ CPUFloatType{2,3} ]`); a list of them for a Vector, a dict for a Dict. The
    original's own module types print as `knn::Name(setting=value, ...)`. Print it with
    `print(kt.str(h))`.
    """

@overload
def batchnorm(m: Module | Model, momenta: None = None) -> builtins.dict[_str, float | None]:
    """batchnorm(m) -> dict of str to float or None
    batchnorm(m, momenta) -> None

    Recomputes the running statistics of the batchnorm layers of a model's module after
    weight averaging (`copyparms`, `avgparms`), as `torch.optim.swa_utils.update_bn`: each
    layer's running mean is reset to 0, its variance to 1, its count to 0 and its momentum
    to None (a cumulative average); the module runs forward over the model's training
    inputs, batch by batch (option `batchsize`), in training mode without gradients; then
    each momentum and training flag is restored. Returns each batchnorm layer's name
    mapped to its momentum.

    Given a Module, or a model without training data, the layers are only reset (momentum
    None), for the statistics to be recomputed by hand (e.g. `nforward` over batches);
    `batchnorm(m, momenta)` then restores the momenta the first call returned.
    """
@overload
def batchnorm(m: Module | Model, momenta: builtins.dict[_str, float | None]) -> None: ...

def cudadevice(device: _str | None = None) -> _str | None:
    """cudadevice() -> str or None
    cudadevice(device) -> None

    The CUDA device that the generic name `"cuda"` means (`"cuda:0"` unless changed), None
    where there is no CUDA device; with a device name (`"cuda:1"`), makes `"cuda"` mean it
    from now on (for new tensors, `to`, `sync`), and makes it torch's current device.
    """

def bcelogit1(x: Any, y: Any, *args: Any, **options: Any) -> Tensor:
    """bcelogit1(x, y, *settings, **options) -> Tensor

    Binary cross entropy with logits of outputs `x` and targets `y`, with the settings of
    the `bcelogits` loss: class weights (PyTorch's `pos_weight`, one a class) and the
    reduction: `bcelogit1(x, y, [.25, .5, 1, 2, 4], "none")`. The same as `bcelogits`.
    """

def bcelogit2(x: Any, y: Any, w: Any, *args: Any, **options: Any) -> Tensor:
    """bcelogit2(x, y, w, *settings, **options) -> Tensor

    Binary cross entropy with logits with batch weights `w` (the size of `x` and `y`,
    weighting each element's loss) given with the inputs, then the settings of the
    `bcelogits` loss (class weights, reduction):
    `bcelogit2(x, y, w, [.25, .5, 1, 2, 4], "none")`.
    """

def _lossfn(name: _str, x: Any, y: Any, *args: Any, **options: Any) -> Tensor:
    """_lossfn(name, x, y, *settings, **options) -> Tensor

    The functional form of a loss, behind `kt.ce(x, y)`, `kt.mse(x, y)`, ...
    """

def _loss_types() -> list[_str]:
    """_loss_types() -> list of str

    The names of every loss (as `help("loss")`).
    """

_Callback = Callable[..., Any]
