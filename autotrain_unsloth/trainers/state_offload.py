"""The optimizer state in pinned host memory between steps, stepped on the GPU a chunk at a time with the copies
overlapped, and the part that fits the plan's headroom kept on the GPU (plan/fit.py sizes it).

While one chunk's update runs, the next chunk's state comes in on one copy stream and the last chunk's goes out on
another, so the host link carries both directions at once and the updates run between the copies. Unsloth's
UNSLOTH_OFFLOAD_OPTIMIZER_STATE does the same work on one stream, copy in, update, copy out, chunk after chunk,
and bitsandbytes synchronizes the whole device after every weight's update, copies included (docs/benchmarks.md
has both on one step). Its variable is set off by the job: this offload runs on both backends.

Only an optimizer whose step updates just the weights that have a gradient can be stepped a chunk at a time
(torch.optim's and bitsandbytes'); plan/speed.py chooses one. At most three chunks of state are on the GPU at once
(memory.STATE_OFFLOAD_CHUNKS_IN_FLIGHT).
"""

from __future__ import annotations

import contextlib
import inspect
import sys
from typing import Any, Optional

import torch

from autotrain_unsloth.memory import GIB, STATE_OFFLOAD_CHUNK_GIB

CHUNK_BYTES = int(STATE_OFFLOAD_CHUNK_GIB * GIB)
# Smaller state tensors (bitsandbytes' quantization maps, torch's step counters) stay where they are: one copy
# each would cost more time than their bytes are worth.
SMALLEST_MOVED_BYTES = 2**20


def innermost(optimizer):
    """The optimizer that accelerate's AcceleratedOptimizer (itself an Optimizer) wraps."""
    while isinstance(getattr(optimizer, "optimizer", None), torch.optim.Optimizer):
        optimizer = optimizer.optimizer
    return optimizer


@contextlib.contextmanager
def _without_bitsandbytes_device_sync():
    """bitsandbytes synchronizes the whole device after each weight's update (utils.sync_gpu), which would wait for
    the copy streams as well; the updates are ordered on the compute stream without it."""
    module: Any = sys.modules.get("bitsandbytes.optim.optimizer")  # a module we patch, if bitsandbytes is loaded
    saved = getattr(module, "sync_gpu", None)
    if saved is None:
        yield
        return
    module.sync_gpu = lambda tensor: None
    try:
        yield
    finally:
        module.sync_gpu = saved


def _nbytes(tensor: torch.Tensor) -> int:
    return tensor.numel() * tensor.element_size()


class StateOffload:
    """Installed on an optimizer by `install`; `resident` holds the weights whose state never leaves the GPU."""

    def __init__(self, optimizer: torch.optim.Optimizer, resident_bytes: int, state_bytes_per_parameter: float,
                 chunk_bytes: int = CHUNK_BYTES, smallest_moved_bytes: int = SMALLEST_MOVED_BYTES):
        self.optimizer = optimizer
        self.chunk_bytes = chunk_bytes
        self.smallest_moved_bytes = smallest_moved_bytes
        self.state_bytes_per_parameter = state_bytes_per_parameter
        self.resident = self._choose_resident(resident_bytes)
        self.host: dict = {}  # (weight, state key) -> its host buffer
        self.hidden: Optional[dict] = None  # weight -> its gradient, kept from the optimizer's own step
        self.inside = False
        self.steps = 0
        cuda = any(p.is_cuda for p in self._weights())
        self.streams = (torch.cuda.Stream(), torch.cuda.Stream()) if cuda else None

    def _weights(self) -> list:
        return [p for group in self.optimizer.param_groups for p in group["params"]]

    def _state_bytes(self, weight) -> int:
        held = [v for v in self.optimizer.state.get(weight, {}).values() if isinstance(v, torch.Tensor)]
        return sum(map(_nbytes, held)) if held else int(weight.numel() * self.state_bytes_per_parameter)

    def _choose_resident(self, budget: int) -> set:
        resident = set()
        for weight in self._weights():
            size = self._state_bytes(weight)
            if size <= budget:
                resident.add(weight)
                budget -= size
        return resident

    def _chunks(self, weights: list) -> list[list]:
        chunk: list[torch.Tensor]
        chunks, chunk, size = [], [], 0
        for weight in weights:
            nbytes = self._state_bytes(weight)
            if chunk and size + nbytes > self.chunk_bytes:
                chunks.append(chunk)
                chunk, size = [], 0
            chunk.append(weight)
            size += nbytes
        return chunks + ([chunk] if chunk else [])

    def _update_only(self, weights: list, gradients: dict) -> None:
        """The optimizer's own step with every other gradient hidden: it updates just these weights."""
        for weight, gradient in gradients.items():
            weight.grad = None
        for weight in weights:
            weight.grad = gradients[weight]
        step = type(self.optimizer).step
        step = getattr(step, "__wrapped__", step) if getattr(step, "hooked", False) else step
        step(self.optimizer)

    def _fetch(self, chunk: list, compute):
        """Start copying the chunk's state to the GPU; returns the event the update waits for."""
        if self.streams is None:
            return None
        stream = self.streams[0]
        with torch.cuda.stream(stream):
            for weight in chunk:
                state = self.optimizer.state.get(weight, {})
                for key in list(state):
                    if (weight, key) in self.host and state[key].device != weight.device:
                        on_gpu = state[key].to(weight.device, non_blocking=True)
                        on_gpu.record_stream(compute)
                        state[key] = on_gpu
            return stream.record_event()

    def _store(self, chunk: list, compute):
        """Start copying the chunk's state back to its host buffers; returns the event that says it is there."""
        copy_stream = self.streams[1] if self.streams else None
        if copy_stream is not None:
            copy_stream.wait_event(compute.record_event())
        with torch.cuda.stream(copy_stream) if copy_stream is not None else contextlib.nullcontext():
            for weight in chunk:
                state = self.optimizer.state.get(weight, {})
                for key, value in list(state.items()):
                    if not self._moves(value) or value is self.host.get((weight, key)):
                        continue
                    host = self._host_buffer(weight, key, value)
                    host.copy_(value, non_blocking=copy_stream is not None)
                    if copy_stream is not None:
                        value.record_stream(copy_stream)
                    state[key] = host
            return copy_stream.record_event() if copy_stream is not None else None

    def _moves(self, value) -> bool:
        return isinstance(value, torch.Tensor) and _nbytes(value) >= self.smallest_moved_bytes

    def _host_buffer(self, weight, key, value: torch.Tensor) -> torch.Tensor:
        buffer = self.host.get((weight, key))
        if buffer is None or buffer.shape != value.shape or buffer.dtype != value.dtype:
            buffer = torch.empty(value.shape, dtype=value.dtype, device="cpu", pin_memory=self.streams is not None)
            self.host[(weight, key)] = buffer
        return buffer

    def update(self, weights: list, gradients: dict) -> None:
        """Update every weight in `weights`: the resident ones first, then the rest chunk by chunk."""
        compute = torch.cuda.current_stream() if self.streams else None
        self._update_only([w for w in weights if w in self.resident], gradients)
        chunks = self._chunks([w for w in weights if w not in self.resident])
        outgoing: list[Optional[torch.cuda.Event]]
        incoming, outgoing = (self._fetch(chunks[0], compute) if chunks else None), []
        for index, chunk in enumerate(chunks):
            following = None
            if index + 1 < len(chunks):
                if len(outgoing) >= 2 and outgoing[-2] is not None:
                    outgoing[-2].synchronize()  # the chunk two back is on the host: at most three on the GPU
                following = self._fetch(chunks[index + 1], compute)
            if incoming is not None:
                assert compute is not None  # events come from the copy streams, which exist with CUDA only
                compute.wait_event(incoming)
            self._update_only(chunk, gradients)
            outgoing.append(self._store(chunk, compute))
            incoming = following
        if self.streams is not None:  # the next step and a checkpoint read the host buffers
            self.streams[1].synchronize()

    def _before_step(self, optimizer, args, kwargs):
        if self.inside:
            return None
        weights = [p for p in self._weights() if p.grad is not None]
        gradients = {p: p.grad for p in weights}
        if callable(getattr(optimizer, "check_overrides", None)) and not getattr(optimizer, "initialized", True):
            # bitsandbytes' first step moves every state tensor to the GPU (to_gpu); its other first-step setup here
            optimizer.check_overrides()
            optimizer.initialized = True
        self.inside = True
        try:
            with _without_bitsandbytes_device_sync():
                self.update(weights, gradients)
        except BaseException:
            for weight, gradient in gradients.items():
                weight.grad = gradient
            raise
        finally:
            self.inside = False
        for weight in weights:  # the optimizer's own step, next, finds nothing left to update
            weight.grad = None
        self.hidden = gradients
        return None

    def _after_step(self, optimizer, args, kwargs):
        if self.inside:
            return
        for weight, gradient in (self.hidden or {}).items():
            weight.grad = gradient
        self.hidden = None
        self.steps += 1

    def after_load(self) -> None:
        """A loaded state (a resumed run) goes where it lives: host buffers, or the GPU for resident weights."""
        for weight in self._weights():
            state = self.optimizer.state.get(weight, {})
            for key, value in list(state.items()):
                if not isinstance(value, torch.Tensor):
                    continue
                if weight in self.resident or not self._moves(value):
                    state[key] = value.to(weight.device)
                else:
                    host = self._host_buffer(weight, key, value)
                    host.copy_(value)
                    state[key] = host


def place_saved_state(optimizer: torch.optim.Optimizer, state_dict: dict) -> None:
    """A saved torch.optim state into `optimizer.state` where it was loaded (the host), cast as torch.optim casts it:
    floating-point state to its weight's dtype (the step counter kept), matched to weights by position as torch.optim
    matches them (its load_state_dict has checked that the groups' sizes agree)."""
    saved_ids = [index for group in state_dict["param_groups"] for index in group["params"]]
    weights = [weight for group in optimizer.param_groups for weight in group["params"]]
    for index, weight in zip(saved_ids, weights, strict=True):
        if index not in state_dict["state"]:
            continue
        optimizer.state[weight] = {
            key: (value.to(weight.dtype) if isinstance(value, torch.Tensor) and key != "step"
                  and weight.is_floating_point() and value.is_floating_point() else value)
            for key, value in state_dict["state"][index].items()}


def install(optimizer: torch.optim.Optimizer, resident_bytes: int, state_bytes_per_parameter: float,
            chunk_bytes: int = CHUNK_BYTES, smallest_moved_bytes: int = SMALLEST_MOVED_BYTES) -> StateOffload:
    optimizer = innermost(optimizer)
    if getattr(optimizer, "is_paged", False):
        raise ValueError("a paged bitsandbytes optimizer keeps its state in CUDA managed memory: the plan runs its "
                         "resident twin with the state offloaded instead")
    offload = StateOffload(optimizer, resident_bytes, state_bytes_per_parameter, chunk_bytes, smallest_moved_bytes)
    optimizer.register_step_pre_hook(offload._before_step)
    optimizer.register_step_post_hook(offload._after_step)
    load_state_dict = optimizer.load_state_dict

    def load_state_dict_to_host(state_dict, *args, **kwargs):
        if "move_to_device" in inspect.signature(load_state_dict).parameters:
            kwargs.setdefault("move_to_device", False)  # bitsandbytes can leave the loaded state on the host
            result = load_state_dict(state_dict, *args, **kwargs)
        else:
            # torch.optim would put the whole state beside each weight first: the state the plan sent to the host
            # because it does not fit the GPU would all be there at once, and a resumed run would run out of memory.
            result = load_state_dict({**state_dict, "state": {}}, *args, **kwargs)
            place_saved_state(optimizer, state_dict)
        offload.after_load()
        return result

    setattr(optimizer, "load_state_dict", load_state_dict_to_host)  # on this optimizer only, not its class
    setattr(optimizer, "state_offload", offload)
    return offload


def installed(optimizer) -> Optional[StateOffload]:
    return getattr(innermost(optimizer), "state_offload", None)


def offload_when_created(trainer, plan) -> None:
    """Install the offload on the optimizer the Trainer builds, as it is built: before accelerate wraps it and
    before a resumed run loads its state (which then goes to the host buffers, not the GPU)."""
    from autotrain_unsloth.memory import DEFAULT_OPTIMIZER_STATE_BYTES, OPTIMIZER_STATE_BYTES

    create_optimizer = trainer.create_optimizer
    state_bytes = OPTIMIZER_STATE_BYTES.get(plan.optimizer, DEFAULT_OPTIMIZER_STATE_BYTES)

    def create_optimizer_and_offload_its_state(*args, **kwargs):
        optimizer = create_optimizer(*args, **kwargs)
        if installed(optimizer) is None:
            install(optimizer, int(plan.optimizer_state_resident_gib * GIB), state_bytes)
        return optimizer

    trainer.create_optimizer = create_optimizer_and_offload_its_state
