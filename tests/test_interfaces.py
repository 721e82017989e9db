"""Backends and trainers are modules that satisfy the interfaces the skeleton calls (interfaces.py), with the
parameters the Protocols declare, and the one table names every one of them."""

from __future__ import annotations

import inspect
import os

import pytest

from autotrain_unsloth.interfaces import BACKENDS, RECIPES, Backend, Recipe, backend_module, recipe_module
from tests.conftest import REPO


def parameters(function) -> list[str]:
    return [name for name in inspect.signature(function).parameters if name != "self"]


@pytest.mark.parametrize("name", sorted(BACKENDS))
def test_each_backend_is_a_backend(name):
    module = backend_module(name)
    assert isinstance(module, Backend)
    for method in ("load_model", "install_packed_attention"):
        assert parameters(getattr(module, method)) == parameters(getattr(Backend, method)), (name, method)


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_each_trainer_is_a_recipe(name):
    module = recipe_module(name)
    assert isinstance(module, Recipe)
    for method in ("datasets", "build"):
        assert parameters(getattr(module, method)) == parameters(getattr(Recipe, method)), (name, method)


def test_the_tables_name_every_backend_and_trainer_module():
    folder = os.path.join(REPO, "autotrain_unsloth")
    backends = {name[:-3] for name in os.listdir(os.path.join(folder, "backends")) if not name.startswith("_")}
    assert backends == set(BACKENDS)
    from autotrain_unsloth.params import LLMTrainingParams

    assert set(RECIPES) == set(LLMTrainingParams.model_fields["trainer"].annotation.__args__)
