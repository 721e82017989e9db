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


INTERFACES = [(backend_module, name, Backend, ("load_model", "install_packed_attention")) for name in sorted(BACKENDS)]
INTERFACES += [(recipe_module, name, Recipe, ("datasets", "build")) for name in sorted(RECIPES)]


@pytest.mark.parametrize("load, name, interface, methods", INTERFACES, ids=[row[1] for row in INTERFACES])
def test_each_backend_and_trainer_satisfies_its_interface(load, name, interface, methods):
    module = load(name)
    assert isinstance(module, interface)
    for method in methods:
        assert parameters(getattr(module, method)) == parameters(getattr(interface, method)), (name, method)


def test_the_tables_name_every_backend_and_trainer_module():
    folder = os.path.join(REPO, "autotrain_unsloth")
    backends = {name[:-3] for name in os.listdir(os.path.join(folder, "backends")) if not name.startswith("_")}
    assert backends == set(BACKENDS)
    from autotrain_unsloth.params import LLMTrainingParams

    assert set(RECIPES) == set(LLMTrainingParams.model_fields["trainer"].annotation.__args__)
