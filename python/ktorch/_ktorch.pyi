"""Type stubs and documentation for the native module ktorch._ktorch."""

import builtins
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
    "module",
    "parmnames",
    "parm",
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
]

class KtorchError(RuntimeError):
    """Raised for bad arguments and libtorch errors; the message names the function."""

@final
class Tensor:
    """A handle to a tensor (batching narrows it in place)."""
    def __array__(self, dtype: Any = None, copy: bool | None = None) -> Any:
        """``numpy.asarray(h)``: a Tensor's values (a copy); other handles raise TypeError."""
    def __dlpack__(self, **kw: Any) -> Any:
        """``torch.as_tensor(h)``, ``numpy.from_dlpack(h)``: a copy of a Tensor's values."""
    def __dlpack_device__(self) -> Any: ...

@final
class Vector:
    """A handle to a list of tensors."""
    def __array__(self, dtype: Any = None, copy: bool | None = None) -> Any:
        """``numpy.asarray(h)``: a Tensor's values (a copy); other handles raise TypeError."""
    def __dlpack__(self, **kw: Any) -> Any:
        """``torch.as_tensor(h)``, ``numpy.from_dlpack(h)``: a copy of a Tensor's values."""
    def __dlpack_device__(self) -> Any: ...

@final
class Dict:
    """A handle to tensors by name."""
    def __array__(self, dtype: Any = None, copy: bool | None = None) -> Any:
        """``numpy.asarray(h)``: a Tensor's values (a copy); other handles raise TypeError."""
    def __dlpack__(self, **kw: Any) -> Any:
        """``torch.as_tensor(h)``, ``numpy.from_dlpack(h)``: a copy of a Tensor's values."""
    def __dlpack_device__(self) -> Any: ...

@final
class Module:
    """A handle to a module tree (layers, parameters, buffers)."""
    def __array__(self, dtype: Any = None, copy: bool | None = None) -> Any:
        """``numpy.asarray(h)``: a Tensor's values (a copy); other handles raise TypeError."""
    def __dlpack__(self, **kw: Any) -> Any:
        """``torch.as_tensor(h)``, ``numpy.from_dlpack(h)``: a copy of a Tensor's values."""
    def __dlpack_device__(self) -> Any: ...

@final
class Loss:
    """A handle to a loss function."""
    def __array__(self, dtype: Any = None, copy: bool | None = None) -> Any:
        """``numpy.asarray(h)``: a Tensor's values (a copy); other handles raise TypeError."""
    def __dlpack__(self, **kw: Any) -> Any:
        """``torch.as_tensor(h)``, ``numpy.from_dlpack(h)``: a copy of a Tensor's values."""
    def __dlpack_device__(self) -> Any: ...

@final
class Optimizer:
    """A handle to an optimizer with parameter groups."""
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
    """tensor(data, *options) -> Tensor; tensor(mode, *args, *options) -> Tensor;
    tensor(handle) -> numpy array (list of arrays for a Vector, dict for a Dict).

    options: "grad", a dtype ("float", "double", "long", ...), a device ("cpu", "cuda").
    modes: randn, rand, randint(high, size) or (low, high, size), zeros, ones, full(size, value),
    empty, eye, arange, linspace, logspace, randperm.
    """
@overload
def tensor(h: Tensor, /) -> np.ndarray: ...
@overload
def tensor(h: Vector, /) -> list[np.ndarray]: ...
@overload
def tensor(h: Dict, /) -> builtins.dict[str, np.ndarray]: ...
@overload
def tensor(mode: str, /, *args: Any) -> Tensor: ...
@overload
def tensor(data: _Array, /, *options: str) -> Tensor: ...

@overload
def vector(v: Vector, /) -> list[np.ndarray]:
    """vector(x, y, ...) -> Vector of tensors (Tensor handles in a list are shared);
    vector(v) -> list of arrays."""

@overload
def vector(*xs: _Array | Tensor) -> Vector: ...

@overload
def dict(d: Dict, /) -> builtins.dict[str, np.ndarray]:
    """dict({"a": x, ...}) -> Dict; dict(d) with a Dict -> dict of arrays."""

@overload
def dict(d: builtins.dict[str, Any], /) -> Dict: ...

def free(*handles: _Handle) -> None:
    """Releases each handle's object; any later use raises KtorchError."""

def addref(x: _Handle) -> _Handle:
    """A second handle to the same object."""

def use(h: _Handle, new: _Handle) -> None:
    """Moves new's object into h (the old object is released, new is freed)."""

def objclass(x: _Handle) -> str:
    """tensor, vector, dictionary, module, loss, optimizer or model."""

def size(x: _Handle) -> Any:
    """Shape of a tensor; shapes of a vector's or dict's members; a module's parameter shapes."""

def info(x: _Handle) -> Any:
    """A dict describing the object (tensors: device, dtype, layout, gradient, leaf, gradfn, ...)."""

def grad(x: Tensor | Vector | Dict) -> Any:
    """The gradient as a numpy array, or None where undefined."""

def objects() -> int:
    """The number of live handles (holding an object, not yet freed or garbage collected)."""

def seed(n: int) -> None:
    """Seeds libtorch's random generators."""

def help(name: str | None = None) -> Any:
    """help("backward") gives the mode table; help("module"/"loss"/"optimizer") the names."""

def mul(x: _Data, y: _Data) -> Tensor: ...
def add(x: _Data, y: _Data) -> Tensor: ...
def mean(x: _Data, dim: int | None = None) -> Tensor: ...
def std(x: _Data, dim: int | None = None) -> Tensor:
    """Unbiased standard deviation."""

def module(spec: Any) -> Module:
    """module("relu"), module(("linear", 784, 10)), module(("linear", "a", 64, 20, {"bias": False})),
    module(seq("sequential", child, ...)); module(model) gives the model's module.
    A ("callback", name, fn, {"parms": {...}}) module runs fn(module, *inputs)."""

def parmnames(m: Module | Model) -> list[str]:
    """Parameter names, as PyTorch names them."""

def parm(m: Module | Model, name: str, value: _Data | None = None) -> Tensor | None:
    """The named parameter as a Tensor sharing its storage; with value, copies value in."""

def loss(*args: Any, **options: Any) -> Any:
    """loss(name, *settings) -> Loss; loss(l or model, output, target) -> Tensor."""

def opt(*args: Any, **options: Any) -> Any:
    """opt(name[, parameters], *settings) -> Optimizer; opt(o, group, parameters, *settings)
    adds (group == groups) or edits (group < groups) a parameter group."""

def lr(x: Optimizer | Model, r: float | list[float] | None = None) -> list[float] | None:
    """Learning rate per group; with r, sets it."""

def model(q: Module, l: Loss, o: Optimizer) -> Model:
    """A model of module, loss and optimizer."""

def zerograd(x: _Handle) -> None:
    """Sets gradients to zero (tensor, vector, dict, module, optimizer or model)."""

def nograd(x: _Handle) -> None:
    """Sets gradients to None."""

def forward(*args: Any) -> Tensor | Vector:
    """forward(q, x, ...) or forward(m[, x, ...]): training mode with gradients."""

def nforward(*args: Any) -> Tensor | Vector:
    """Training mode without gradients."""

def eforward(*args: Any) -> Tensor | Vector:
    """Evaluation mode without gradients (a model uses its test data)."""

def evaluate(*args: Any) -> Any:
    """Evaluation mode without gradients, returning numpy array(s)."""

def backward(*args: Any) -> float | None:
    """backward(t[, gradient][, mode]) with mode free/retain/create/createfree;
    backward(m[, x, y]) runs forward, loss and backward and returns the loss."""

def clipv(x: _Handle, value: float) -> float:
    """Clamps gradients to [-value, value]; returns nan."""

def clip(x: _Handle, maxnorm: float, *args: Any) -> float | list[float]:
    """clip(x, maxnorm[, normtype][, groupflag]): scales gradients to at most maxnorm;
    returns the previous norm (one per optimizer group with the group flag)."""

def step(x: Optimizer | Model) -> None:
    """One optimizer update (LBFGS needs backstep)."""

def backstep(m: Model, x: Any = None, y: Any = None) -> float:
    """Forward, loss, backward, clipping by the training options, optimizer step; returns the loss."""

def run(m: Model, *args: Any, callback: Callable[[builtins.dict[str, Any]], Any] | None = None, every: int = 1) -> Any:
    """One training pass over the data (run(m, x, y) or run(m, TensorDataset) defines it first);
    returns the metrics (torch.Tensor when the inputs came as torch.Tensor).
    When the data was shuffled, predict and output come back in the original order.
    callback(info) is called every `every` batches and after the last, with a dict:
    phase, batch, batches, elapsed (seconds), loss (running mean, None without one)."""

def testrun(m: Model, *args: Any, callback: Callable[[builtins.dict[str, Any]], Any] | None = None,
            every: int = 1) -> Any:
    """One evaluation pass over the test data without gradients; returns the metrics.
    callback and every as for run."""

@overload
def train(m: Model, /) -> builtins.dict[str, Any]:
    """train(m) -> all options; train(m, name) -> value; train(m, [names]) -> dict;
    train(m, {name: value}), train(m, name, value), train(m, [names], [values]), train(m, **options) set;
    train(m, inputs[, targets]) defines data and returns the number of batches."""
@overload
def train(m: Model, name: str, /) -> Any: ...
@overload
def train(m: Model, names: list[str], /) -> builtins.dict[str, Any]: ...
@overload
def train(m: Model, settings: builtins.dict[str, Any], /) -> None: ...
@overload
def train(m: Model, name: str, value: Any, /) -> None: ...
@overload
def train(m: Model, names: list[str], values: list[Any] | tuple[Any, ...], /) -> None: ...
@overload
def train(m: Model, /, **options: Any) -> None: ...
@overload
def train(m: Model, inputs: _Inputs, targets: _Inputs | None = ..., /) -> int: ...

@overload
def test(m: Model, /) -> builtins.dict[str, Any]:
    """As train, for the test options and data."""
@overload
def test(m: Model, name: str, /) -> Any: ...
@overload
def test(m: Model, names: list[str], /) -> builtins.dict[str, Any]: ...
@overload
def test(m: Model, settings: builtins.dict[str, Any], /) -> None: ...
@overload
def test(m: Model, name: str, value: Any, /) -> None: ...
@overload
def test(m: Model, names: list[str], values: list[Any] | tuple[Any, ...], /) -> None: ...
@overload
def test(m: Model, /, **options: Any) -> None: ...
@overload
def test(m: Model, inputs: _Inputs, targets: _Inputs | None = ..., /) -> int: ...

def data(m: Model, *args: Any) -> Any:
    """data(m) -> [inputs, targets]; data(m, x, y) defines training data."""

def testdata(m: Model, *args: Any) -> Any: ...
def input(m: Model, *args: Any) -> Any:
    """input(m) -> Tensor (Vector for several inputs); input(m, x, ...) defines inputs."""

def testinput(m: Model, *args: Any) -> Any: ...
def target(m: Model, *args: Any) -> Any:
    """target(m) -> array(s) or None; target(m, y) defines targets."""

def testtarget(m: Model, *args: Any) -> Any: ...
def datasize(m: Model) -> int:
    """Training rows, in the current batch when batching."""

def testsize(m: Model) -> int: ...
def batch(x: Any, size: Any = None, index: int | None = None) -> bool | None:
    """batch(m) -> True while a batch remains; batch(x, size), batch(x, (size, dim)), batch(x, size, i)."""

def testbatch(m: Model) -> bool: ...
def restore(x: Any) -> int:
    """Restores full size; returns the number of rows."""

def testrestore(m: Model) -> int: ...
def batchinit(m: Model) -> int:
    """Restore, shuffle if the option says so, reset metrics; number of batches (-1 with no data)."""

def testinit(m: Model) -> int: ...
def shuffle(x: Any, dim: int = 0) -> None:
    """Shuffles tensors (one permutation for all members) or a model's training data."""

def unshuffle(m: Model) -> None:
    """Restores the model's training data to its original order."""

def _lossfn(name: str, x: Any, y: Any, *args: Any, **options: Any) -> Tensor: ...
def _loss_types() -> list[str]: ...

_Callback = Callable[..., Any]
