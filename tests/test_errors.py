"""One base class for the errors a user can cause (errors.UserError): every exception class the package defines
derives from it, but the few that are no user's to fix, and the CLI prints those as one sentence."""

from __future__ import annotations

import importlib
import inspect

from tests.test_import_graph import modules

# Raised and handled inside the package, never shown as an error: the job restarts on the transformers path
# (UnslothLoadError), reports a stop with its signal's exit code (Stopped), or names the tokenizer in a GGUF error.
INTERNAL = {"UnslothLoadError", "Stopped", "UnknownPreTokenizer"}


def test_every_error_the_package_raises_for_the_user_shares_one_base():
    from autotrain_unsloth.errors import UserError

    defined = {}
    for name in modules():
        module = importlib.import_module(name)
        for attribute, value in vars(module).items():
            if inspect.isclass(value) and issubclass(value, Exception) and value.__module__ == name:
                defined[attribute] = value
    assert {"PlanError", "DataError", "ConfigError", "SettingsFileError", "PlanMismatch", "JobFailed",
            "NoRestartUnderLauncher"} <= set(defined)
    outside = sorted(name for name, cls in defined.items() if not issubclass(cls, UserError))
    assert outside == sorted(INTERNAL & set(defined)), outside


def test_the_cli_treats_a_user_error_as_one_sentence_and_anything_else_as_a_bug():
    from autotrain_unsloth.cli import user_error
    from autotrain_unsloth.data.files import DataError
    from autotrain_unsloth.trainers.divergence import Diverged

    assert user_error(DataError("x.csv: line 2: empty")) and user_error(Diverged("stopped at step 2"))
    assert not user_error(KeyError("a bug")) and isinstance(DataError("x"), ValueError)
