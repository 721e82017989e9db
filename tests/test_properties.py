"""Property-based: generated settings and generated bad data files either plan (or prepare) or are refused with
one sentence; never a traceback, never a pass for data that cannot train. The runs stop before any weights load
(the dry run; AutoTrain's data preparation), so each case takes milliseconds: EXAMPLES cases per property in CI."""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from autotrain_unsloth import LLMTrainingParams
from autotrain_unsloth.cli import user_error
from autotrain_unsloth.data.checks import is_blank
from autotrain_unsloth.data.prepare.local_data import prepare_local_data
from autotrain_unsloth.demo import write_bundled_data
from autotrain_unsloth.project import AutoTrainProject
from autotrain_unsloth.trainers.arguments import training_arguments

EXAMPLES = int(os.environ.get("PROPERTY_EXAMPLES", "60"))  # more for a deeper search
CASES = settings(max_examples=EXAMPLES, deadline=None, database=None,
                 suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

NUMBERS = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10**30, 10**30), st.integers(-2, 64),
                    st.sampled_from([0, -1, 1, 10**400, "inf", "-inf", "nan", "1e400", "0.5", "abc", "", None, True]))
FLOATS = ("lr", "warmup_ratio", "weight_decay", "max_grad_norm", "lora_dropout", "dpo_beta", "save_minutes")
INTS = ("epochs", "batch_size", "gradient_accumulation", "block_size", "model_max_length", "lora_r", "lora_alpha",
        "max_steps", "save_steps", "logging_steps", "save_total_limit", "max_prompt_length", "seed")
CHOICES = {"trainer": ["default", "sft", "dpo", "orpo", "reward", "ppo"], "peft": [True, False],
           "full_finetuning": [True, False], "mixed_precision": ["fp16", "bf16", None, "fp8"],
           "quantization": ["int4", "int8", None, "int2"], "chat_template": [None, "chatml", "zephyr", "nonsense"],
           "packing": [True, False, None], "response_only_loss": [True, False]}
VALUES = {**{name: NUMBERS for name in FLOATS + INTS}, **{name: st.sampled_from(values) for name, values in CHOICES.items()}}
# A few settings at a time, so that a bad one is often the only one and the rest of the run is reached.
SETTINGS = st.lists(st.sampled_from(sorted(VALUES)), max_size=3, unique=True).flatmap(
    lambda names: st.fixed_dictionaries({name: VALUES[name] for name in names}))


@contextlib.contextmanager
def inside_new_folder():
    with tempfile.TemporaryDirectory() as folder:
        here = os.getcwd()
        os.chdir(folder)
        try:
            yield folder
        finally:
            os.chdir(here)


def one_sentence(message: str) -> bool:
    """One sentence, or a list of them (several contradictions are reported at once, one a line)."""
    lines = [line.strip().removeprefix("- ") for line in message.splitlines() if line.strip()]
    return bool(lines) and "Traceback" not in message and all(len(line) > 10 for line in lines)


@CASES
@given(values=SETTINGS)
def test_generated_settings_plan_or_are_refused_in_one_sentence_each(models, capsys, values):
    from transformers import TrainingArguments, set_seed

    with inside_new_folder():
        write_bundled_data("data")
        try:
            params = LLMTrainingParams(model=models["llama"], data_path="data", project_name="p", **values)
        except ValidationError as exc:
            event("refused by the settings")
            for error in exc.errors():  # each problem one line, naming its setting
                assert one_sentence(error["msg"]), error
            return
        try:
            plan = AutoTrainProject(params=params).plan()
        except Exception as exc:
            event("refused by the plan")
            assert user_error(exc), f"{type(exc).__name__}: {exc}"
            assert one_sentence(str(exc))
            return
        finally:
            capsys.readouterr()
        event("planned")
        for name in FLOATS:  # a setting that planned is a finite number in its range
            assert math.isfinite(getattr(params, name))
        assert plan.sequence_length >= 1 and not os.path.exists("p")  # a dry run writes nothing
        # What the job does first with the settings, before any weights load: the Trainer's arguments and the seed.
        TrainingArguments(**training_arguments(params, plan, rows=40))
        set_seed(params.seed)


WORDS = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=12)
BLANKS = st.sampled_from(["", " ", "\t", "\n", "\u00a0", "   \r\n"])
CELLS = st.one_of(WORDS, WORDS, WORDS, WORDS, st.text(max_size=12), BLANKS,
                  st.integers(-10**30, 10**30), st.floats(allow_nan=True, allow_infinity=True), st.none(), st.booleans(),
                  st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))
FILES = st.fixed_dictionaries({
    "kind": st.sampled_from(["jsonl", "csv"]), "cells": st.lists(CELLS, min_size=0, max_size=6),
    "bom": st.booleans(), "crlf": st.booleans(), "cut_last_line": st.sampled_from([False, False, False, True]),
})


def data_file(kind: str, cells: list, bom: bool, crlf: bool, cut_last_line: bool) -> bytes:
    if kind == "jsonl":
        lines = [json.dumps({"text": cell}) for cell in cells]  # nan and inf become NaN and Infinity, as Python writes them
    else:
        lines = ["text"] + ['"' + str(cell).replace('"', '""') + '"' for cell in cells]
    text = ("\r\n" if crlf else "\n").join(lines)
    if cut_last_line and lines:
        text = text[:-max(1, len(lines[-1]) // 2)]
    return (b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8", "surrogatepass")


@CASES
@given(file=FILES)
def test_generated_data_files_prepare_only_rows_that_can_train_or_are_refused_in_one_sentence(models, capsys, file):
    with inside_new_folder():
        os.makedirs("data")
        with open(f"data/train.{file['kind']}", "wb") as f:
            f.write(data_file(**file))
        params = LLMTrainingParams(model=models["llama"], data_path="data", project_name="p")
        try:
            params, _ = AutoTrainProject(params=params)._first_plan()
            prepared = prepare_local_data(params)
        except Exception as exc:
            event("refused")
            assert user_error(exc), f"{type(exc).__name__}: {exc}"
            assert one_sentence(str(exc)), str(exc)
            return
        finally:
            capsys.readouterr()
        from datasets import load_from_disk

        event("prepared")
        rows = load_from_disk(prepared.data_path)["train"][prepared.text_column]
        assert rows and all(isinstance(row, str) and not is_blank(row) for row in rows), rows
