"""One run at a time in a project folder.

`<project>/.autotrain.lock` is held with filelock's operating-system lock while a run writes the folder, so a
second run into the same folder is refused at once, with the folder and the process holding it. The kernel
releases the lock when its process ends, however it ends; the holder's process id is kept beside it in
`.autotrain.lock.pid`, removed on a clean exit, so that a run that finds one left by a process that died says
that it takes the folder over.

The project (`AutoTrainProject.create`) holds the lock from before it writes anything until its job ends; the
job holds it itself only when started directly (`python -m autotrain_unsloth.trainers.clm`), on rank 0.
"""

from __future__ import annotations

import contextlib
import os
from typing import Iterator

from autotrain_unsloth.plan.types import PlanError

LOCK = ".autotrain.lock"
HOLDER = ".autotrain.lock.pid"
HELD_BY_PARENT = "AUTOTRAIN_UNSLOTH_PROJECT_LOCKED"  # set in the job's environment by the process holding the lock


class ProjectBusy(PlanError):
    """Another run holds the project folder."""


def _holder(project: str) -> int | None:
    try:
        with open(os.path.join(project, HOLDER)) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


@contextlib.contextmanager
def holding(project: str) -> Iterator[None]:
    """Hold the project folder for this process (creating it), or raise ProjectBusy naming the holder."""
    from filelock import FileLock, Timeout

    created = not os.path.isdir(project)
    os.makedirs(project, exist_ok=True)
    lock = FileLock(os.path.join(project, LOCK))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        holder = _holder(project)
        raise ProjectBusy(f"the project folder {project}/ is in use by another run"
                          + (f" (process {holder})" if holder else "") + "; wait for it to end, stop it, or use "
                          "another --project-name") from None
    try:
        left = _holder(project)
        if left is not None and left != os.getpid():
            print(f"Note: {project}/ was held by process {left}, which ended without releasing it; this run takes it "
                  "over.", flush=True)
        with open(os.path.join(project, HOLDER), "w") as f:
            f.write(f"{os.getpid()}\n")
        yield
    finally:
        with contextlib.suppress(OSError):
            os.remove(os.path.join(project, HOLDER))
        lock.release()
        if created and set(os.listdir(project)) <= {LOCK}:  # refused before writing: leave nothing behind
            with contextlib.suppress(OSError):
                os.remove(os.path.join(project, LOCK))
                os.rmdir(project)


def holding_unless_parent_does(project: str, main_process: bool):
    """The job's lock: none when the project that launched it holds the folder, or on ranks other than 0."""
    if os.environ.get(HELD_BY_PARENT) or not main_process:
        return contextlib.nullcontext()
    return holding(project)


def clear_folder(project: str) -> None:
    """Delete everything in the project folder but its lock (overwrite_project: the lock is held meanwhile)."""
    import shutil

    for name in os.listdir(project):
        if name in (LOCK, HOLDER):
            continue
        path = os.path.join(project, name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.remove(path)
