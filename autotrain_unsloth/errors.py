"""The one base class of the errors a user can cause and fix.

Its message is one sentence that names the setting, file, row or flag at fault and the fix. The entry points (the
`aitraining` command, the training job, in-process `train()` callers who catch it) print it and exit non-zero,
without a traceback; any other exception is a bug and keeps its traceback. Each subclass also keeps the built-in
base it had (ValueError for bad input, RuntimeError for a failed run), so `except ValueError` still catches it.
"""

from __future__ import annotations


class UserError(Exception):
    """An error in the user's settings, data, files or run, said in one sentence with the fix."""
