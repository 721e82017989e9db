"""The runner: AutoTrain's `AutoTrainProject(params=p, backend="local", process=True).create()`.

create() plans (and fails early on anything that cannot run), prepares local data, shows the plan, writes
training_params.json (without the token) and plan.json, then runs the training job in its own process
with `accelerate launch ... -m autotrain_unsloth.trainers.clm`, streaming its output to the terminal and
to `<project>/autotrain.log`. It returns the job's process id, and raises JobFailed when the job fails.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import shlex
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass
from types import FrameType
from typing import Iterator, cast

from autotrain_unsloth.data.job.load import max_samples_note
from autotrain_unsloth.data.prepare.counts import count_training_data
from autotrain_unsloth.data.prepare.local_data import check_data_path, local_train_file, prepare_local_data
from autotrain_unsloth.data.prepare.text_column import settle_text_column
from autotrain_unsloth.data.prepare.tokenizer_template import settle_tokenizer_template
from autotrain_unsloth.errors import UserError
from autotrain_unsloth.params import LLMTrainingParams
from autotrain_unsloth.plan import Plan, PlanError, make_plan, probe
from autotrain_unsloth.project_lock import HELD_BY_PARENT, clear_folder, holding

LOCAL_BACKENDS = ("local", "local-cli")


class JobFailed(UserError, RuntimeError):
    def __init__(self, returncode: int, log_path: str):
        if returncode < 0 or returncode > 128:  # ended by a signal: the job's last lines say how to resume
            number = -returncode if returncode < 0 else returncode - 128
            super().__init__(f"the job stopped on {signal.Signals(number).name}; the output is in {log_path}")
            self.returncode = 128 + number  # the shell's convention for a process ended by a signal
        else:
            super().__init__(f"training failed with exit code {returncode}; the output is in {log_path}")
            self.returncode = returncode


@dataclass
class AutoTrainProject:
    params: LLMTrainingParams
    backend: str = "local"
    process: bool = False

    def __post_init__(self) -> None:
        if self.backend not in LOCAL_BACKENDS:
            raise PlanError(f"backend {self.backend!r} is not available in autotrain-unsloth; use one of "
                            f"{', '.join(LOCAL_BACKENDS)}")

    def _first_plan(self) -> tuple[LLMTrainingParams, Plan]:
        """The settings with the data's text column settled, and their plan; raises before anything is written."""
        check_data_path(self.params)
        params, notes = settle_text_column(self.params)
        params, fallback = settle_tokenizer_template(params)
        notes += fallback + max_samples_note(params)
        return params, make_plan(params, dataclasses.replace(probe(params), data_notes=notes))

    def _counted(self, params: LLMTrainingParams, plan: Plan) -> Plan:
        """The plan again, with the training split counted as the job will see it (the step schedule needs it)."""
        counts = {**count_training_data(params, plan), "data_path": self.params.data_path}
        return make_plan(params, dataclasses.replace(plan.probed_environment(), data_counts=counts))

    def plan(self) -> Plan:
        """The plan this project would follow, printed; loads no weights and writes nothing (a dry run). Local
        data is counted for the step schedule; a Hub dataset is not downloaded for it."""
        params, plan = self._first_plan()
        # counted as the job will see the rows: data that auto_convert_dataset converts is counted once converted
        if local_train_file(params) is not None and not params.auto_convert_dataset:
            plan = self._counted(params, plan)
        print(plan.render(), flush=True)
        return plan

    def create(self) -> int:
        params, plan = self._first_plan()
        with holding(params.project_name):  # one run at a time in a project folder, from its first write to the end
            params, plan = self._prepare(params, plan)
            return run_job(params, plan, token=self.params.token)

    def prepare(self) -> tuple[LLMTrainingParams, Plan]:
        """Everything create() does before launching the job, for a caller that holds the project folder itself
        (the job, in_process.train): plan, prepare the data, show and save both."""
        return self._prepare(*self._first_plan())

    def _prepare(self, params: LLMTrainingParams, plan: Plan) -> tuple[LLMTrainingParams, Plan]:
        if params.overwrite_project and plan.probed_environment().project_finished:
            clear_folder(params.project_name)  # the plan said so (rules.resume); nothing of this run is written yet
        if self.process:
            params = prepare_local_data(params)
            plan = self._counted(params, make_plan(params, plan.probed_environment()))
        print(plan.render(), flush=True)
        params.save(params.project_name)
        plan.save(params.project_name)
        return params, plan


def launch_command(params: LLMTrainingParams, plan: Plan) -> list[str]:
    """AutoTrain's launch command, for the number of processes the plan chose."""
    command = [sys.executable, "-m", "accelerate.commands.launch"]
    if plan.num_processes == 0:
        command += ["--cpu", "--num_machines", "1", "--num_processes", "1"]
    elif plan.num_processes == 1:
        command += ["--num_machines", "1", "--num_processes", "1"]
    elif params.distributed_backend == "deepspeed":
        command += ["--use_deepspeed", "--zero_stage", "3", "--offload_optimizer_device", "none",
                    "--offload_param_device", "none", "--zero3_save_16bit_model", "true", "--zero3_init_flag", "true",
                    "--deepspeed_multinode_launcher", "standard", "--gradient_accumulation_steps",
                    str(plan.gradient_accumulation), "--num_processes", str(plan.num_processes)]
    else:
        command += ["--multi_gpu", "--num_machines", "1", "--num_processes", str(plan.num_processes)]
    # The Trainer sets autocast from the plan, and accelerate must not add its own on top; DeepSpeed takes the
    # plan's precision from accelerate (its config must agree with the Trainer's bf16/fp16).
    precision = plan.autocast if plan.num_processes > 1 and params.distributed_backend == "deepspeed" else "no"
    # --quiet: a failed job's own message is the error; the launcher's traceback about it would only bury it.
    command += ["--mixed_precision", precision, "--dynamo_backend", "no", "--quiet"]
    command += ["-m", "autotrain_unsloth.trainers.clm", "--training_config",
                os.path.join(params.project_name, "training_params.json")]
    return command


def run_job(params: LLMTrainingParams, plan: Plan, token: str | None = None) -> int:
    """Run the training child; stream its output to the terminal and autotrain.log; raise if it fails."""
    command = launch_command(params, plan)
    env = dict(os.environ, PYTHONUNBUFFERED="1", **{HELD_BY_PARENT: str(os.getpid())})
    if token:
        env["HF_TOKEN"] = token  # the child reads it from the environment; it is never written down
    # Masked in everything the job prints, whichever way it came: the setting or the environment.
    secrets = [secret.encode() for secret in {token, env.get("HF_TOKEN")} if secret]
    log_path = os.path.join(params.project_name, "autotrain.log")
    print("Launching: " + shlex.join(command), flush=True)
    with open(log_path, "ab") as log, _forwarding_stop_signals() as forward:
        # A session of its own: SIGTERM or Ctrl-C reach the job through the handler below, and the job saves a
        # checkpoint before it stops; this process keeps streaming its last words meanwhile.
        child = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                 start_new_session=True)
        forward.children.append(child)
        stdout = cast(io.BufferedReader, child.stdout)  # stdout=PIPE, default buffering: typeshed says IO | None
        while chunk := stdout.read1(65536):
            for secret in secrets:
                chunk = chunk.replace(secret, b"*****")
            log.write(chunk)
            _echo(chunk)
        returncode = child.wait()
    if returncode != 0 and forward.received is not None:
        returncode = 128 + forward.received  # the launcher reports its stopped job as failed (1): say which signal
    if returncode != 0:
        raise JobFailed(returncode, log_path)
    print(f"Job {child.pid} finished: {params.project_name}/", flush=True)
    return child.pid


@dataclass
class _Forwarding:
    children: list = dataclasses.field(default_factory=list)
    received: int | None = None  # the first stop signal this process got


@contextlib.contextmanager
def _forwarding_stop_signals() -> Iterator[_Forwarding]:
    """While the job runs, SIGTERM and SIGINT sent to this process are passed on, as they are, to the training
    processes under the launcher. Not to the launcher itself: it would kill them 5 seconds later, in the middle of
    saving their checkpoint."""
    forwarding = _Forwarding()

    def forward(number: int, frame: FrameType | None) -> None:
        import psutil

        forwarding.received = forwarding.received or number
        for child in forwarding.children:
            with contextlib.suppress(psutil.NoSuchProcess):
                # The launcher's own children: the training processes (not their data-loader workers).
                for process in psutil.Process(child.pid).children() or [psutil.Process(child.pid)]:
                    with contextlib.suppress(psutil.NoSuchProcess):
                        process.send_signal(number)

    if threading.current_thread() is not threading.main_thread():
        yield forwarding  # handlers can only be set from the main thread; the job then gets signals itself
        return
    saved = {number: signal.signal(number, forward) for number in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield forwarding
    finally:
        for number, handler in saved.items():
            signal.signal(number, handler)


def _echo(chunk: bytes) -> None:
    # Raw bytes keep tqdm's carriage returns intact; a replaced sys.stdout (pytest, notebooks) gets text.
    if hasattr(sys.stdout, "buffer"):
        sys.stdout.buffer.write(chunk)
    else:
        sys.stdout.write(chunk.decode(errors="replace"))
    sys.stdout.flush()
