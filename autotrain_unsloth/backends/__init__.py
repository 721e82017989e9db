"""Model loading, one backend per file. Each exposes `load_model(params, plan, tokenizer, max_seq_length) -> model`,
returning the model ready to train: LoRA attached when the plan says so, every parameter trainable for full
fine-tuning. A backend follows the plan; it never decides a method or a precision. What both need is here."""

from __future__ import annotations

from autotrain_unsloth.distributed import say


class UnslothLoadError(RuntimeError):
    """Unsloth cannot load this model; the job falls back to transformers in a fresh process."""


def nf4_config(compute_dtype):
    """QLoRA's 4-bit quantization, the same on both backends: NF4 with double quantization (the scales quantized
    too), computing in compute_dtype."""
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                              bnb_4bit_compute_dtype=compute_dtype)


def ready_for_training(model):
    """Settings every backend's model trains with. No KV cache: training never reads one, and with a cache
    transformers stops building the block-diagonal mask of a packed row from position_ids, so the documents of
    a packed row would attend to each other (tests/test_packing.py)."""
    model.config.use_cache = False
    return model


def fit_to_tokenizer(model, tokenizer) -> list[int]:
    """Make the model agree with the tokenizer: embeddings grown for tokens a chat template added, and the EOS and
    pad ids of config.json and generation_config.json set to the tokenizer's (a template's end-of-turn token is its
    EOS, so that generation stops at the end of a turn). Returns the ids of the added tokens."""
    rows = model.get_input_embeddings().weight.shape[0]
    added = []
    if len(tokenizer) > rows:
        model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
        added = list(range(rows, len(tokenizer)))
        _start_at_the_mean(model, rows)
        say(f"Embeddings resized from {rows} to {len(tokenizer)} rows for tokens added by the chat template (each new "
            "row starts at the mean of the others).")
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    model.config.eos_token_id, model.config.pad_token_id = eos, pad
    generation = getattr(model, "generation_config", None)
    if generation is not None:
        # Keep the other stop tokens a model lists (Llama 3 Instruct stops at two), the tokenizer's first.
        others = generation.eos_token_id if isinstance(generation.eos_token_id, list) else [generation.eos_token_id]
        stops = [eos] + [token for token in others if token is not None and token != eos]
        generation.eos_token_id = stops[0] if len(stops) == 1 else stops
        generation.pad_token_id = pad
    return added


def _start_at_the_mean(model, rows: int) -> None:
    """New rows start at the mean of the existing ones (Unsloth's add_new_tokens does the same): a neutral start,
    and the same in every process, where transformers' default draws them at random."""
    import torch

    matrices = [model.get_input_embeddings().weight]
    output = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if output is not None and output.weight is not matrices[0]:
        matrices.append(output.weight)
    with torch.no_grad():
        for weight in matrices:
            weight[rows:] = weight[:rows].float().mean(dim=0).to(weight.dtype)


def added_tokens_as_planned(plan, added: list[int]) -> list[int]:
    """The tokens the tokenizer added, checked against the plan (which read the tokenizer's vocabulary)."""
    if added and plan.new_tokens is None:
        from autotrain_unsloth.verify import PlanMismatch

        raise PlanMismatch(f"the chat template added {len(added)} tokens to the tokenizer, which the plan did not "
                           "expect; they would stay untrained. Delete plan.json and run again.")
    return added


def token_rows_to_train(model, added: list[int]) -> dict | None:
    """PEFT's trainable_token_indices for tokens a chat template added: their rows of the input embedding, and of
    the output layer unless it shares the embedding's weights, so that the model learns to read and to write them
    (an end-of-turn token it cannot predict never stops generation)."""
    if not added:
        return None
    names = {module: name.rsplit(".", 1)[-1] for name, module in model.named_modules()}
    rows = {names[model.get_input_embeddings()]: added}
    output = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if output is not None and output.weight is not model.get_input_embeddings().weight:
        rows[names[output]] = added
    return rows
