"""The rules for what runs: backend, method, precision, LoRA targets, sequence length, saving, devices. Each
rule is a function of the settings, the environment and earlier choices, and returns a Choice (its value,
reasons, warnings and errors); decide.py runs them in order. The speed rules are in speed.py."""

from __future__ import annotations

from autotrain_unsloth.checkpoints import schedule
from autotrain_unsloth.outputs.publish import repo_name
from autotrain_unsloth.params import LLMTrainingParams
from autotrain_unsloth.plan.architectures import UNSLOTH_ARCHITECTURES, architecture
from autotrain_unsloth.plan.types import Backend, Choice, Environment, Method, chose

# dpo and orpo: their loss curves on Unsloth's path match the transformers path's (tests/gpu, docs/plan.md).
UNSLOTH_TRAINERS = ("default", "sft", "dpo", "orpo")
# Why a trainer is not on Unsloth's path here (named in the fallback warning).
NOT_ON_UNSLOTH = {
    "reward": "trainer 'reward' trains a sequence classifier (a score head), which Unsloth's fast path does not load",
}
# AutoTrain caps a tokenizer whose own limit is above this at model_max_length.
AUTOTRAIN_TOKENIZER_CAP = 2048
AUTOTRAIN_AUTO_BLOCK = 1024  # block_size -1: the tokenizer's limit, at most this


def backend(params: LLMTrainingParams, env: Environment) -> Choice:
    if not params.unsloth:
        return chose("transformers", "backend transformers: unsloth not asked (--unsloth to use it)")
    blockers = [why for blocked, why in (
        (env.unsloth_version is None, "unsloth is not installed (pip install 'autotrain-unsloth[unsloth]')"),
        (not env.cuda, "no CUDA GPU was found (Unsloth's kernels need one)"),
        (params.trainer not in UNSLOTH_TRAINERS,
         NOT_ON_UNSLOTH.get(params.trainer, f"trainer {params.trainer!r} is not on Unsloth's fast path")),
        (env.model_type not in UNSLOTH_ARCHITECTURES, f"model_type {env.model_type!r} is not on Unsloth's fast path "
                                                      f"(supported: {', '.join(UNSLOTH_ARCHITECTURES)})"),
        (bool(env.unsloth_load_error), f"Unsloth failed to load the model ({env.unsloth_load_error})")) if blocked]
    if blockers:
        return chose("transformers", "backend transformers: " + "; ".join(blockers),
                     warning="Unsloth was asked for but will not run: " + "; ".join(blockers)
                     + ". Training with transformers + PEFT instead.")
    return chose("unsloth", f"backend unsloth {env.unsloth_version}: asked, installed, CUDA GPU present, trainer "
                            f"{params.trainer!r} and model_type {env.model_type!r} supported")


def method(params: LLMTrainingParams, env: Environment, backend: Backend) -> Choice:
    if params.full_finetuning or not params.peft:
        why = "full_finetuning=True" if params.full_finetuning else "peft=False"
        return chose("full", f"method full: {why}; every parameter is trained"
                     + (" (Unsloth full_finetuning=True)" if backend == "unsloth" else ""))
    if params.quantization is None:
        return chose("lora", "method lora: peft=True, quantization none: 16-bit base weights")
    if not env.cuda:
        return chose("lora", f"method lora: quantization {params.quantization} dropped, no CUDA GPU",
                     warning=f"quantization={params.quantization!r} needs a CUDA GPU (bitsandbytes); none found, so the "
                             "base weights stay unquantized (plain LoRA).")
    if not env.bitsandbytes_installed:
        return chose("lora", error=f"quantization={params.quantization!r} needs bitsandbytes, which is not installed: "
                                   "pip install bitsandbytes, or pass --quantization none for 16-bit LoRA.")
    quantized = "qlora-4bit" if params.quantization == "int4" else "lora-8bit"
    return chose(quantized, f"method {quantized}: peft=True, quantization {params.quantization}, CUDA GPU and "
                            "bitsandbytes present")


def precision(params: LLMTrainingParams, env: Environment, backend: Backend, method: Method) -> Choice:
    """value: (weights dtype, autocast)."""
    asked = params.mixed_precision
    if not env.cuda:
        return chose(("fp32", "no"), "precision fp32: CPU",
                     warning=f"mixed_precision={asked!r} needs a CUDA GPU; training in fp32 on CPU." if asked else None)
    warning = None
    if asked == "bf16" and not env.bf16:
        warning = f"mixed_precision='bf16' is not supported by {env.gpu_name}; using fp16."
        asked = "fp16"
    why = f"mixed_precision={asked}"
    if asked is None and env.unsloth_load_error:
        # The fallback keeps the 16-bit precision that was planned on Unsloth: fp32 would double the memory.
        asked = "bf16" if env.bf16 else "fp16"
        why = f"mixed_precision not set; kept the {asked} the Unsloth plan had"
        warning = (f"mixed_precision not set: after Unsloth failed to load the model, training stays in {asked} as "
                   "Unsloth would have (transformers' default would be fp32, twice the memory); --mixed-precision "
                   "sets it.")
    if asked is None:
        if backend != "unsloth":
            return chose(("fp32", "no"), "precision fp32: mixed_precision not set"
                         + (" (--mixed-precision bf16 is faster on this GPU)" if env.bf16 else ""))
        asked = "bf16" if env.bf16 else "fp16"
        why = f"mixed_precision not set; Unsloth trains in 16-bit and {asked} is the best this GPU supports"
    if asked == "fp16" and method == "full":
        # The gradient scaler cannot step fp16 weights: keep fp32 master weights under fp16 autocast.
        return chose(("fp32", "fp16"), f"precision fp32 weights, fp16 autocast ({why}): full fine-tuning cannot "
                                       "update fp16 weights", warning=warning)
    if asked == "bf16" and method == "full" and backend == "unsloth":
        return chose(("bf16", "no"), f"precision bf16 weights, no autocast ({why}): Unsloth's pure-bf16 full "
                                     "fine-tuning (norm weights kept in fp32)", warning=warning)
    return chose((asked, asked), f"precision {asked}: {why}", warning=warning)


def lora_targets(params: LLMTrainingParams, env: Environment, backend: Backend, method: Method) -> Choice:
    if method == "full":
        return chose(None)
    asked = (params.target_modules or "all-linear").strip()
    if asked != "all-linear":
        return chose(tuple(name.strip() for name in asked.split(",") if name.strip()))
    known = architecture(env.model_type)
    if known:
        return chose(known.all_linear, f"LoRA targets: all-linear for {env.model_type} = {', '.join(known.all_linear)}")
    if backend == "unsloth":
        return chose(None, error=f"target_modules='all-linear' has no known expansion for model_type {env.model_type!r}; "
                                 "list the modules (--target-modules q_proj,v_proj,...)")
    return chose(("all-linear",), f"LoRA targets: all-linear, resolved by PEFT for model_type {env.model_type!r}")


def new_tokens(params: LLMTrainingParams, env: Environment, backend: Backend, method: Method) -> Choice:
    """How the tokens a chat template adds to the tokenizer get trained (they start untrained, and a model that
    cannot write the end-of-turn token never stops)."""
    missing = env.template_tokens_missing
    if missing == ():
        return chose(None)
    which = (f"chat_template {params.chat_template!r} adds {', '.join(missing)}" if missing
             else f"chat_template {params.chat_template!r} may add tokens (the tokenizer has no tokenizer.json to check)")
    if method == "full":
        return chose("full", f"new tokens: {which}; trained with every other weight")
    if backend == "transformers":
        return chose("rows", f"new tokens: {which}; their embedding and output rows are trained beside the LoRA "
                             "adapter (PEFT trainable_token_indices) and saved with it"
                             + ("; sft computes the plain loss (TRL's chunked loss would skip those output rows)"
                                if params.trainer == "sft" else ""))
    return chose("embeddings", f"new tokens: {which}; the embedding and output matrices are trained in full beside "
                               "the LoRA adapter (Unsloth's modules_to_save) and saved with it",
                 warning=f"{which}, which this model has never seen: on the Unsloth path the whole embedding and output "
                         "matrices are trained and saved with the adapter (more memory, a larger adapter). The "
                         "model's own template (--chat-template tokenizer) adds none.")


def sequence_length(params: LLMTrainingParams, env: Environment) -> Choice:
    """Tokens per training sequence, with AutoTrain's rules made explicit: a tokenizer allowing more than 2,048
    tokens is capped at model_max_length; block_size -1 takes that limit, at most 1,024."""
    own = env.tokenizer_max_length
    cap = own if own is not None and own <= AUTOTRAIN_TOKENIZER_CAP else params.model_max_length
    asked = params.block_size_int
    if asked == -1:
        chosen = min(cap, AUTOTRAIN_AUTO_BLOCK)
        return chose(chosen, f"sequence length {chosen}: block_size -1 takes the tokenizer's limit ({cap}), at most "
                             f"{AUTOTRAIN_AUTO_BLOCK}")
    if own is not None and asked > own:
        return chose(own, f"sequence length {own}: the tokenizer's limit",
                     warning=f"block_size={asked} is above the tokenizer's limit of {own} tokens; training at {own}.")
    if asked > cap:
        return chose(asked, f"sequence length {asked}: block_size",
                     warning=f"block_size={asked} is above model_max_length={cap}: training at {asked}, as asked "
                             f"(AutoTrain would cap the tokenizer at {cap}; --block-size {cap} for that).")
    return chose(asked, f"sequence length {asked}: block_size")


def save_policy(params: LLMTrainingParams) -> Choice:
    """value: (eval_strategy, save_strategy). The Trainer's own checkpoints follow evaluation, as in AutoTrain, or
    aitraining's save_strategy "epoch" when given; the scheduled ones (checkpoint_schedule) come on top."""
    evaluate = params.eval_strategy if params.valid_split is not None else "no"
    if params.save_strategy is not None:
        save = "epoch" if params.save_strategy == "epoch" else "no"  # "steps": on the schedule (checkpoint_schedule)
        return chose((evaluate, save), f"evaluation {evaluate if evaluate != 'no' else 'off'}; save_strategy="
                     f"{params.save_strategy!r} (aitraining's): " + {"epoch": "a checkpoint at the end of every epoch",
                                                                   "steps": "checkpoints every save_steps",
                                                                   "no": "no checkpoints but on a stop signal"}[
                                                                       params.save_strategy])
    if params.valid_split is None:
        return chose(("no", "no"), "evaluation off: no valid_split (checkpoints on the schedule below)",
                     warning=("eval_strategy not used: there is no valid_split to evaluate on."
                              if "eval_strategy" in params.model_fields_set else None))
    return chose((evaluate, evaluate), f"evaluation and a checkpoint every {evaluate}: valid_split {params.valid_split!r}")


def resume(params: LLMTrainingParams, env: Environment) -> Choice:
    """value: the checkpoint folder training resumes from, or None. A finished run is never overwritten silently."""
    project = params.project_name
    if env.project_finished and not params.overwrite_project:
        return chose(None, error=f"the project folder {project}/ holds a finished run (run_summary.json); use a new "
                                 "--project-name, or --overwrite-project to replace it")
    if env.project_finished:
        return chose(None, f"resume: none; the finished run in {project}/ is replaced (overwrite_project=True)",
                     warning=f"overwrite_project=True: the finished run in {project}/ is deleted before this one starts.")
    found = env.checkpoint
    if params.resume_from_checkpoint is None:
        return chose(None, "resume: none (resume_from_checkpoint none); training starts at step 0")
    if found is None:
        return chose(None, f"resume: no complete checkpoint in {project}/; training starts at step 0")
    if found.get("missing"):
        return chose(None, error=f"resume_from_checkpoint {found['path']!r} is not a complete checkpoint (no "
                                 "autotrain_unsloth_checkpoint.json in it); give a checkpoint-<step> folder, auto, or none")
    if found.get("damaged"):
        instead = (f"resume from the earlier {found['earlier']} (--resume-from-checkpoint {found['earlier']}), or "
                   if found.get("earlier") else "there is no earlier checkpoint to resume from; ")
        return chose(None, error=f"the checkpoint {found['path']} is damaged: {found['damaged']}; {instead}start over "
                                 "with --resume-from-checkpoint none (nothing was deleted)")
    if found["differing"]:
        return chose(None, error=f"{found['path']} was made for other settings ({', '.join(found['differing'])} "
                                 "differ); run with the settings it was made for, --resume-from-checkpoint none to "
                                 "start over, or a new --project-name")
    return chose(found["path"], f"resume: from {found['path']} (step {found['step']}; made for these settings)")


def publish(params: LLMTrainingParams, env: Environment) -> Choice:
    if not params.push_to_hub:
        return chose(None)
    repo = repo_name(params)
    if not env.hub_token_found:
        return chose(None, error=f"push_to_hub=True: no Hub token (--token, HF_TOKEN, or `hf auth login`) to create "
                                 f"{repo} with")
    return chose(None, f"push_to_hub: after training, {params.project_name}/ is uploaded to {repo} "
                       f"({'private' if params.hub_private else 'public'}; checkpoints, prepared data and the log stay)")


def gguf_export(params: LLMTrainingParams, env: Environment, method: Method) -> Choice:
    from autotrain_unsloth.outputs.gguf_export import LAYOUTS, ROPE_TYPES

    kind = params.export_gguf
    if kind is None:
        return chose(None)
    blockers = [why for blocked, why in (
        (params.trainer == "reward", "the reward trainer's model is a classifier, which GGUF's text models are not"),
        (env.model_type not in LAYOUTS, f"model_type {env.model_type!r} is not one GGUF export knows "
                                        f"({', '.join(LAYOUTS)})"),
        (env.rope_type not in ROPE_TYPES, f"the rotary scaling {env.rope_type!r} is not one GGUF export writes "
                                          f"({', '.join(ROPE_TYPES)}); use llama.cpp's convert_hf_to_gguf.py on "
                                          "the merged model"),
        (bool(env.gguf_tokenizer_refused), env.gguf_tokenizer_refused or ""),
        (not env.gguf_installed, "the gguf package is not installed (pip install 'autotrain-unsloth[gguf]')")) if blocked]
    if blockers:
        return chose(None, error=f"export_gguf={kind!r}: " + "; ".join(blockers))
    source = ("the trained weights" if method == "full" else "the merged model" if params.merge_adapter
              else "the adapter merged into the 16-bit base, kept in merged/")
    pre = f", llama.cpp pre-tokenizer {env.gguf_pre_tokenizer!r}" if env.gguf_pre_tokenizer else ""
    return chose(None, f"GGUF: {params.project_name}/{params.project_basename}-{kind}.gguf from {source}{pre}")


def checkpoint_schedule(params: LLMTrainingParams) -> Choice:
    save_steps, save_minutes = schedule(params)
    every = [f"every {save_steps} steps" if save_steps else "", f"every {save_minutes:g} minutes" if save_minutes else ""]
    shown = " and ".join(part for part in every if part) or "never on a schedule (save_steps 0, save_minutes 0)"
    return chose(None, f"checkpoints: {shown}, and on SIGTERM or Ctrl-C; the newest {params.save_total_limit} kept")


def devices(params: LLMTrainingParams, env: Environment, backend: Backend, method: Method) -> Choice:
    """value: (device, processes)."""
    if not env.cuda:
        notes = [note for given, note in (
            (params.use_flash_attention_2, "use_flash_attention_2 needs a CUDA GPU; using the default attention on CPU."),
            (params.distributed_backend, f"distributed_backend={params.distributed_backend!r} not used: training on one "
                                         "CPU process.")) if given]
        return Choice(("cpu", 0), ("device cpu: no CUDA GPU",), tuple(notes))
    if env.gpu_count == 1:
        return chose(("cuda", 1), "device cuda x1", warning=(
            f"distributed_backend={params.distributed_backend!r} not used: one GPU, one process."
            if params.distributed_backend else None))
    processes = env.gpu_count
    step = (f"global batch {params.batch_size} x {params.gradient_accumulation} x {processes} = "
            f"{params.batch_size * params.gradient_accumulation * processes} sequences a step")
    deepspeed = params.distributed_backend == "deepspeed"
    errors = [why for broken, why in (
        (deepspeed and backend == "unsloth", "distributed_backend='deepspeed' is not supported on the Unsloth path "
                                             "(it trains under DDP); use distributed_backend=ddp, or drop --unsloth"),
        (deepspeed and method in ("qlora-4bit", "lora-8bit"), "quantized LoRA with deepspeed ZeRO-3 is not supported; "
                                                             "use distributed_backend=ddp or --quantization none"),
        (deepspeed and not env.deepspeed_installed, "distributed_backend='deepspeed' needs deepspeed, which is not "
                                                    "installed: pip install deepspeed, or distributed_backend=ddp")) if broken]
    kind = "DeepSpeed ZeRO-3" if deepspeed else "DDP"
    return Choice(("cuda", processes), (f"device cuda x{processes}: {kind}, one process per visible GPU "
                                        f"(CUDA_VISIBLE_DEVICES chooses them); {step}",), (), tuple(errors))


def notices(params: LLMTrainingParams, env: Environment, backend: Backend, method: Method) -> Choice:
    """Settings that are accepted but change nothing here, or cost speed: warnings only."""
    found = []
    if backend == "unsloth" and method != "full" and params.lora_dropout > 0:
        found.append(f"lora_dropout={params.lora_dropout} turns off part of Unsloth's fused LoRA kernels (slower); "
                     "--lora-dropout 0 for full speed.")
    if backend == "unsloth" and params.use_flash_attention_2:
        found.append("use_flash_attention_2 not used on the Unsloth path: Unsloth chooses its own attention kernels.")
    if "padding" in params.model_fields_set and params.padding != "right":
        found.append(f"padding={params.padding!r} sets the saved tokenizer's padding side only: training rows are "
                     "packed, or padded on the right by TRL's collator.")
    return Choice(None, (), tuple(found))
