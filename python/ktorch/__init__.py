"""ktorch: the ktorch training api on libtorch, run from Rust.

torch is imported first so that its libtorch is the one the native module uses.
"""

import torch  # noqa: F401  (loads libtorch before the extension)

from ktorch import _ktorch
from ktorch import callbacks as callbacks
from ktorch._fit import fit as fit
from ktorch._ktorch import *  # noqa: F403
from ktorch._ktorch import KtorchError as KtorchError
from ktorch._ktorch import _malloc_tuned as _malloc_tuned

# names that would shadow Python builtins stay in the module but out of `import *`
_BUILTINS = {"dict", "help", "input", "str"}
__all__ = [n for n in _ktorch.__all__ if not n.startswith("_") and n not in _BUILTINS] + ["seq", "fit"]


def seq(container, *children):
    """seq(container, *children) -> list

    A container spec with its children, for `module`:
    `kt.module(kt.seq("sequential", ("linear", 2, 100), "relu"))`. Returns the list
    `[container, child, ...]`, the form `module` reads as a container followed by its
    children (a child may itself be such a list).
    """
    return [container, *children]


def _loss_function(name):
    def f(x, y, *settings, **options):
        return _ktorch._lossfn(name, x, y, *settings, **options)

    f.__name__ = name
    f.__qualname__ = name
    f.__doc__ = (f"{name}(x, y, *settings, **options) -> Tensor\n\n"
                 f"The {name} loss of output(s) x and target(s) y, with settings\n"
                 f'as kt.loss("{name}", *settings, **options) takes them.')
    return f


def _add_loss_functions():
    for name in _ktorch._loss_types():
        if name not in globals():
            globals()[name] = _loss_function(name)
            __all__.append(name)


_add_loss_functions()
