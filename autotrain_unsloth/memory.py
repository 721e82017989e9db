"""How much GPU memory a training step will need, estimated from the model's config.json alone.

The planner fits the step to the machine with it before any weight loads (plan/fit.py): checkpointing,
optimizer-state offload and the micro-batch, or a refusal with the numbers. Every saved activation of a decoder
layer is counted as if nothing were freed or fused, then scaled where a path is known to save fewer (Unsloth's
LoRA kernels) or more (PEFT's k-bit preparation), each factor measured; the transformers path materialises the
logits with their fp32 upcast and gradients, Unsloth's chunked loss does not. bench/ records the estimate next
to the measured peak for every run, and tests/test_memory.py holds it within 15% of them.

Shapes cover the decoder-only transformers the fast path knows (Llama, Mistral, Gemma, Qwen2 and their
relatives): hidden size, MLP size, layers, attention and key/value heads, head size, vocabulary. Biases (Qwen2's
q/k/v) are left out: a few parameters per layer.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Optional

GIB = 2**30

# Optimizer state bytes per trainable parameter (bitsandbytes' 8-bit Adam keeps two 1-byte states).
OPTIMIZER_STATE_BYTES = {
    "adamw_8bit": 2, "adamw_bnb_8bit": 2, "paged_adamw_8bit": 2, "adamw_torch_8bit": 2, "lion_8bit": 1,
    "paged_lion_8bit": 1, "lion_32bit": 4, "paged_lion_32bit": 4, "adafactor": 1, "sgd": 0,
}
DEFAULT_OPTIMIZER_STATE_BYTES = 8  # fp32 Adam moments: adamw_torch, adamw_torch_fused, paged_adamw_32bit, ...

# Bytes per weight of the quantized decoder projections, block scales included (nf4 with double quantization
# stores 4 bits plus about 0.13 bits of scales; LLM.int8 one byte plus a per-row scale).
QUANTIZED_WEIGHT_BYTES = {"qlora-4bit": 0.55, "lora-8bit": 1.02}
# Quantized LoRA on transformers + PEFT: prepare_model_for_kbit_training casts the norms, the embeddings and the
# head to fp32, and fp32 norm weights turn the hidden states they scale into fp32, so a large part of each layer's
# saved activations is fp32. Measured on an 8B QLoRA step without checkpointing (H100, 2026-11-24): 47.6 GiB,
# where the 16-bit count gives 33.2; 1.65 x the activations covers it.
PEFT_KBIT_ACTIVATION_FACTOR = 1.65
DTYPE_BYTES = {"bf16": 2, "fp16": 2, "fp32": 4}


@dataclass(frozen=True)
class ModelShape:
    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    tied_embeddings: bool

    @classmethod
    def from_config(cls, config: dict) -> Optional["ModelShape"]:
        """The shape from a config.json's contents; None when it lacks a standard decoder's keys."""
        config = config.get("text_config", config)
        try:
            hidden, heads = int(config["hidden_size"]), int(config["num_attention_heads"])
            return cls(
                hidden=hidden, intermediate=int(config["intermediate_size"]), layers=int(config["num_hidden_layers"]),
                heads=heads, kv_heads=int(config.get("num_key_value_heads") or heads),
                head_dim=int(config.get("head_dim") or hidden // heads), vocab=int(config["vocab_size"]),
                # transformers' default: Gemma ties its output head to the embeddings, Llama and most others do not
                tied_embeddings=bool(config.get("tie_word_embeddings", config.get("model_type", "").startswith("gemma"))),
            )
        except (KeyError, TypeError, ValueError):
            return None

    def to_dict(self) -> dict:
        return asdict(self)

    def projections(self) -> dict[str, tuple[int, int]]:
        """(in, out) features of each linear layer of one decoder layer."""
        q, kv = self.heads * self.head_dim, self.kv_heads * self.head_dim
        h, i = self.hidden, self.intermediate
        return {"q_proj": (h, q), "k_proj": (h, kv), "v_proj": (h, kv), "o_proj": (q, h),
                "gate_proj": (h, i), "up_proj": (h, i), "down_proj": (i, h)}

    @property
    def projection_parameters(self) -> int:
        """Weights of the decoder layers' linear layers, all layers."""
        return self.layers * sum(a * b for a, b in self.projections().values())

    @property
    def embedding_parameters(self) -> int:
        """Input embeddings plus the output head (one matrix when they are tied)."""
        return self.vocab * self.hidden * (1 if self.tied_embeddings else 2)

    @property
    def parameters(self) -> int:
        norms = self.layers * 2 * self.hidden + self.hidden
        return self.projection_parameters + self.embedding_parameters + norms

    @property
    def matmul_parameters(self) -> int:
        """Weights that multiply every token: the decoder projections and the output head (the input
        embedding is a lookup). 2 FLOPs per weight per token forward: the N of MFU's 6·N."""
        return self.projection_parameters + self.vocab * self.hidden

    def lora_parameters(self, rank: int, targets: Optional[tuple[str, ...]]) -> int:
        """LoRA A and B weights for these targets (unknown names or all-linear: every projection)."""
        shapes = self.projections()
        chosen = [name for name in (targets or ()) if name in shapes] or list(shapes)
        return self.layers * sum(rank * (shapes[name][0] + shapes[name][1]) for name in chosen)

    def activation_bytes_per_token(self, dtype_bytes: int, lora_dropout: bool) -> int:
        """Activations one decoder layer saves for the backward pass, per token, counted high: the inputs of
        both norms and every projection, q/k/v and the attention output, the MLP's gate, up and product."""
        h, i, kv = self.hidden, self.intermediate, self.kv_heads * self.head_dim
        values = 8 * h + 2 * kv + 4 * i
        if lora_dropout:  # PEFT saves a dropped-out copy of the input of every LoRA layer
            values += 6 * h + i
        return values * dtype_bytes


# Unsloth computes the loss in chunks of the sequence (its fused cross-entropy), as Liger's fused linear
# cross-entropy does, so the logits never exist whole: counted as one 16-bit copy. The transformers path
# materialises them (below, with their fp32 upcast and gradients).
UNSLOTH_LOGITS_BYTES = 2
# Unsloth's LoRA kernels (fused q/k/v, o and MLP with their LoRA terms) save fewer activations than the count
# above: 8B QLoRA at 2 x 2048 without checkpointing measured 20.9 GiB (H100, 2026-11-24), 1B LoRA 6.9 GiB.
UNSLOTH_LORA_ACTIVATION_FACTOR = 0.67
# The state offload (trainers/state_offload.py) steps the state in chunks of this size on the GPU, with up to
# three of them there at once: one coming in, one being updated, one going out.
STATE_OFFLOAD_CHUNK_GIB = 0.5
STATE_OFFLOAD_CHUNKS_IN_FLIGHT = 3
CHECKPOINTING = ("off", "on", "unsloth")


def training_peak_gib(shape: ModelShape, *, method: str, weights_dtype: str, compute_dtype: str, tokens: int,
                      optimizer: str, lora_rank: int, lora_targets: Optional[tuple[str, ...]], lora_dropout: bool,
                      checkpointing: str, backend: str = "unsloth", state_offload: bool = False,
                      reference_model: bool = False, fused_loss: bool = False, accumulation: int = 1) -> dict:
    """Estimated peak memory of a training step, in GiB, by part (`total` is their sum), and the host memory
    the step keeps pinned (`host`: optimizer state offloaded to it, activations Unsloth's checkpointing moves there).

    tokens: tokens in one micro-batch (batch size x sequence length); checkpointing: "off", "on" (each layer's
    input kept on the device) or "unsloth" (each layer's input moved to host memory); state_offload: the optimizer
    state lives in host memory and visits the GPU a chunk at a time; reference_model: a frozen copy of the weights
    (full-weight dpo); fused_loss: the loss is computed with the output layer a chunk at a time (Liger's kernels);
    accumulation: micro-batches per optimizer step (from the second on, the gradients accumulated so far are held
    beside the next micro-batch's activations)."""
    if checkpointing not in CHECKPOINTING:
        raise ValueError(f"checkpointing must be one of {CHECKPOINTING}, not {checkpointing!r}")
    compute_bytes = DTYPE_BYTES[compute_dtype]
    weight_bytes = DTYPE_BYTES[weights_dtype]
    other_weights = shape.parameters - shape.projection_parameters
    peft_kbit = backend == "transformers" and method in QUANTIZED_WEIGHT_BYTES
    if method in QUANTIZED_WEIGHT_BYTES:
        other_bytes = 4 if peft_kbit else compute_bytes
        weights = shape.projection_parameters * QUANTIZED_WEIGHT_BYTES[method] + other_weights * other_bytes
    else:
        weights = shape.parameters * weight_bytes
    if reference_model:
        weights += shape.parameters * weight_bytes

    state_bytes = OPTIMIZER_STATE_BYTES.get(optimizer, DEFAULT_OPTIMIZER_STATE_BYTES)
    optimizer_states: float
    if method == "full":
        gradients = shape.parameters * weight_bytes
        optimizer_states = shape.parameters * state_bytes
    else:  # PEFT keeps adapter weights, and so their gradients, in fp32
        adapter = shape.lora_parameters(lora_rank, lora_targets)
        weights += adapter * 4
        gradients = adapter * 4
        optimizer_states = adapter * max(state_bytes, 2)
    host_states = 0.0
    if state_offload:
        host_states, optimizer_states = optimizer_states, min(optimizer_states,
                                                               STATE_OFFLOAD_CHUNKS_IN_FLIGHT * STATE_OFFLOAD_CHUNK_GIB * GIB)

    per_token_layer = shape.activation_bytes_per_token(compute_bytes, lora_dropout and method != "full")
    layer_inputs = tokens * shape.layers * shape.hidden * compute_bytes
    host_activations = 0.0
    activations: float
    if checkpointing == "on":  # each layer's input is kept; one layer's activations exist at a time, recomputed
        activations = layer_inputs + tokens * per_token_layer
    elif checkpointing == "unsloth":  # the layer inputs wait in host memory
        activations, host_activations = tokens * per_token_layer, layer_inputs
    else:
        activations = tokens * shape.layers * per_token_layer
        if backend == "unsloth" and method != "full":
            activations *= UNSLOTH_LORA_ACTIVATION_FACTOR
    if peft_kbit:
        activations *= PEFT_KBIT_ACTIVATION_FACTOR
    if backend == "unsloth" or fused_loss:
        logits = tokens * shape.vocab * UNSLOTH_LOGITS_BYTES
    else:  # logits, their fp32 upcast, its gradient and the gradient in the logits' own dtype
        logits = tokens * shape.vocab * (compute_bytes + 4 + 4 + compute_bytes)

    # Gradients fill in during the backward pass as the activations are freed: with one micro-batch per step the
    # larger of the two is there; with several, the accumulated gradients wait beside the next one's activations.
    held = activations + gradients if accumulation > 1 else max(activations, gradients)
    parts = {"weights": weights, "optimizer_states": optimizer_states, "activations_and_gradients": held,
             "logits": logits}
    result: dict[str, Any] = {name: round(value / GIB, 2) for name, value in parts.items()}
    result["total"] = round(sum(parts.values()) / GIB, 2)
    result["host"] = {"optimizer_states": round(host_states / GIB, 2), "activations": round(host_activations / GIB, 2),
                      "total": round((host_states + host_activations) / GIB, 2)}
    return result
