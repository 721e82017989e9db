"""Packed rows keep documents apart: with TRL's padding-free collator, every token of a packed row gets the
same loss as when its document runs alone (no attention across documents), for every attention the CPU runs:
transformers' sdpa and eager (the block-diagonal mask built from position_ids) and our `torch_varlen`
(its sdpa fallback on CPU; tests/gpu checks the varlen kernel itself)."""

from __future__ import annotations

import pytest
import torch

from autotrain_unsloth.attention import varlen
from autotrain_unsloth.backends import ready_for_training
from autotrain_unsloth.plan import PACKING_ARCHITECTURES
from autotrain_unsloth.tiny_models import model_config

DOCUMENT_LENGTHS = (5, 23, 11, 40)


def per_token_losses(model, input_ids, position_ids=None) -> torch.Tensor:
    logits = model(input_ids=input_ids, position_ids=position_ids).logits.float()
    return torch.nn.functional.cross_entropy(logits[0, :-1], input_ids[0, 1:], reduction="none")


@pytest.mark.parametrize("attention", ["sdpa", "eager", varlen.ATTENTION_NAME])
@pytest.mark.parametrize("architecture", PACKING_ARCHITECTURES)
def test_packed_row_gives_each_document_the_loss_it_has_alone(architecture, attention):
    from transformers import AutoModelForCausalLM
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    varlen.register()
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(model_config(architecture, vocab_size=96), attn_implementation=attention)
    ready_for_training(model).eval()  # configured as the trainers run it; eval only turns dropout off
    documents = [torch.randint(4, 96, (n,)).tolist() for n in DOCUMENT_LENGTHS]
    batch = DataCollatorForLanguageModeling(pad_token_id=0, padding_free=True)([{"input_ids": d} for d in documents])
    assert batch["input_ids"].shape == (1, sum(DOCUMENT_LENGTHS)) and "attention_mask" not in batch

    with torch.no_grad():
        packed = per_token_losses(model, batch["input_ids"], batch["position_ids"])
        start = 0
        for document in documents:
            alone = per_token_losses(model, torch.tensor([document]))
            # Position start + i predicts token i + 1 of the document; the boundary position predicts the next
            # document's first token, which the collator labels -100.
            inside = packed[start:start + len(document) - 1]
            assert torch.allclose(inside, alone, rtol=1e-4, atol=1e-6), (architecture, attention, inside - alone)
            start += len(document)
        # Every label the collator kept belongs to a position inside a document.
        kept = (batch["labels"][0, 1:] != -100).sum().item()
        assert kept == sum(n - 1 for n in DOCUMENT_LENGTHS)


def test_varlen_boundaries_follow_transformers_rule():
    position_ids = torch.tensor([[0, 1, 2, 0, 1, 0, 1, 2, 3, 0]])
    cu_seqlens, max_seqlen = varlen._Boundaries.of(position_ids)
    assert cu_seqlens.tolist() == [0, 3, 5, 9, 10] and max_seqlen == 4


def test_a_kv_cache_in_training_would_let_packed_documents_see_each_other():
    """Why ready_for_training turns the cache off: with it, transformers builds no packed-row mask."""
    from transformers import AutoModelForCausalLM
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(model_config("llama", vocab_size=96)).eval()
    assert model.config.use_cache
    documents = [torch.randint(4, 96, (n,)).tolist() for n in DOCUMENT_LENGTHS]
    batch = DataCollatorForLanguageModeling(pad_token_id=0, padding_free=True)([{"input_ids": d} for d in documents])
    with torch.no_grad():
        cached = per_token_losses(model, batch["input_ids"], batch["position_ids"])
        uncached = per_token_losses(ready_for_training(model), batch["input_ids"], batch["position_ids"])
    second = slice(DOCUMENT_LENGTHS[0], DOCUMENT_LENGTHS[0] + DOCUMENT_LENGTHS[1] - 1)
    assert not torch.allclose(cached[second], uncached[second], rtol=1e-3)


def first_step_begun(model_dir: str, project_dir: str, packed_attention: str):
    """The first-step check of an sft plan that says `packed_attention`, its first step begun; and the end of it."""
    import dataclasses

    from transformers import TrainerState

    from autotrain_unsloth.params import LLMTrainingParams
    from autotrain_unsloth.plan import decide
    from autotrain_unsloth.verify import first_step_check
    from tests.test_plan import CPU

    plan = dataclasses.replace(decide(LLMTrainingParams(model=model_dir, trainer="sft", packing=True), CPU),
                               packed_attention=packed_attention)
    check, state = first_step_check(plan, project_dir), TrainerState()
    check.on_step_begin(None, state, None)

    def end():
        state.global_step = 1
        check.on_step_end(None, state, None)

    return end


def recorded_calls(project_dir) -> dict:
    from autotrain_unsloth.plan import Plan

    return Plan.load(str(project_dir / "plan.json")).verified["packed_attention_calls"]


def test_the_first_step_check_says_when_a_varlen_plan_ran_sdpa(models, tmp_path, capsys):
    """On a CPU every call of the torch_varlen attention goes to its sdpa fallback: a plan that says varlen_attn
    then gets a warning at the first step, with the counts recorded."""
    from transformers import AutoModelForCausalLM

    varlen.register()
    model = AutoModelForCausalLM.from_pretrained(models["llama"], attn_implementation=varlen.ATTENTION_NAME)
    end_first_step = first_step_begun(models["llama"], str(tmp_path), "torch-varlen")
    before = dict(varlen.CALLS)
    model(input_ids=torch.tensor([[5, 6, 7, 8, 9, 10]]), position_ids=torch.tensor([[0, 1, 2, 0, 1, 2]]))
    assert varlen.CALLS["sdpa"] == before["sdpa"] + model.config.num_hidden_layers
    end_first_step()
    assert "Warning: packed attention planned torch-varlen, but every attention call" in capsys.readouterr().out
    recorded = recorded_calls(tmp_path)
    assert recorded == {"varlen_attn": 0, "sdpa": model.config.num_hidden_layers}


def test_the_first_step_check_counts_the_rows_unsloths_dispatch_sent_to_varlen(models, tmp_path, capsys):
    """Under Unsloth's dispatch only the calls it sends to varlen_attn are seen (rows of one document length stay on
    its per-document SDPA): the check records that count and warns of nothing."""
    from autotrain_unsloth.attention.unsloth_dispatch import varlen_attn_with_gqa_flag

    end_first_step = first_step_begun(models["llama"], str(tmp_path), "torch-varlen-in-unsloth")
    q = torch.randn(6, 2, 8, dtype=torch.bfloat16)
    cu = torch.tensor([0, 3, 6], dtype=torch.int32)
    for _ in range(2):  # the dispatch's calls; the kernel itself needs CUDA, so on a CPU it may refuse
        try:
            varlen_attn_with_gqa_flag(q, q, q, cu, cu, 3, 3, window_size=(-1, 0), enable_gqa=False)
        except RuntimeError:
            pass
    end_first_step()
    out = capsys.readouterr().out
    assert "2 calls of torch's varlen_attn through Unsloth's dispatch" in out and "Warning" not in out
    assert recorded_calls(tmp_path) == {"varlen_attn": 2}


def test_the_varlen_attention_runs_eagerly_inside_a_compiled_model(models):
    """Unsloth compiles each decoder layer for full fine-tuning: the registered attention stays out of the graph, so
    every call is counted and the packed row still gives the eager result."""
    from transformers import AutoModelForCausalLM

    varlen.register()
    model = AutoModelForCausalLM.from_pretrained(models["llama"], attn_implementation=varlen.ATTENTION_NAME).eval()
    input_ids, position_ids = torch.tensor([[5, 6, 7, 8, 9, 10, 11]]), torch.tensor([[0, 1, 2, 0, 1, 2, 3]])
    with torch.no_grad():
        eager = model(input_ids=input_ids, position_ids=position_ids).logits
        before = sum(varlen.CALLS.values())
        compiled = torch.compile(model, backend="eager")(input_ids=input_ids, position_ids=position_ids).logits
        assert sum(varlen.CALLS.values()) - before == model.config.num_hidden_layers
        torch.testing.assert_close(compiled, eager)
        # Each layer's attention call is where the traced graph stops and the function runs eagerly.
        torch._dynamo.reset()
        explained = torch._dynamo.explain(model)(input_ids=input_ids, position_ids=position_ids)
    assert explained.graph_break_count >= model.config.num_hidden_layers, explained.break_reasons
