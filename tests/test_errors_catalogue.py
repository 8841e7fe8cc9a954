"""The bad-input catalogue as a whole: every api group has cases, ids are unique, and it stays large."""

import test_errors_loss
import test_errors_model
import test_errors_module
import test_errors_opt
import test_errors_run
import test_errors_tensor

import ktorch as kt

GROUPS = [test_errors_tensor, test_errors_module, test_errors_loss, test_errors_opt, test_errors_model, test_errors_run]


def test_catalogue_size():
    ids = [c[0] for g in GROUPS for c in g.CASES]
    assert all(g.CASES for g in GROUPS)
    assert len(set(ids)) == len(ids) >= 280


def test_ktorcherror_is_runtimeerror():
    assert issubclass(kt.KtorchError, RuntimeError)
