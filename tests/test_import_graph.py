"""The package's import graph has no cycle: every import that runs counts, those inside functions too (a cycle that
only loads because one of its imports waits inside a function is still a cycle). Imports under `if TYPE_CHECKING:`
never run: they name types for the type checker (a view's argument typed with the model it shows)."""

from __future__ import annotations

import ast
import os

from tests.conftest import REPO

PACKAGE = "autotrain_unsloth"


def modules() -> dict[str, str]:
    """Dotted module name -> file, for every module of the package."""
    found = {}
    for folder, _, files in os.walk(os.path.join(REPO, PACKAGE)):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                dotted = os.path.relpath(path, REPO)[:-3].replace(os.sep, ".")
                found[dotted.removesuffix(".__init__")] = path
    return found


def _type_checking_only(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and (
        (isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING")
        or (isinstance(node.test, ast.Attribute) and node.test.attr == "TYPE_CHECKING"))


def _running(tree: ast.AST) -> list[ast.AST]:
    """Every node of the module but those under `if TYPE_CHECKING:` (its else branch runs, and is kept)."""
    found, stack = [], [tree]
    while stack:
        node = stack.pop()
        found.append(node)
        if _type_checking_only(node):
            stack.extend(node.orelse)
        else:
            stack.extend(ast.iter_child_nodes(node))
    return found


def import_graph() -> dict[str, set[str]]:
    """Module -> the package's modules it imports (`from package import submodule` names the submodule)."""
    known = modules()
    graph = {module: set() for module in known}
    for module, path in known.items():
        here = module if path.endswith("__init__.py") else module.rsplit(".", 1)[0]
        with open(path) as f:
            tree = ast.parse(f.read())
        for node in _running(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = here.split(".")[:len(here.split(".")) - node.level + 1]
                    base = ".".join(parts + ([base] if base else []))
                submodules = [f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in known]
                names = submodules if len(submodules) == len(node.names) else [base, *submodules]
            else:
                continue
            graph[module].update(name for name in names if name in known and name != module)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_package_has_no_import_cycle():
    graph = import_graph()
    assert len(graph) > 40 and graph["autotrain_unsloth.plan.decide"]  # the graph was read
    assert cycles(graph) == []


def test_the_jobs_data_code_imports_nothing_of_the_parents():
    """data/job/ runs in the training job, data/prepare/ before it in the process that launches it: the job follows
    what was prepared and never prepares again."""
    graph = import_graph()
    job = {module for module in graph if module.startswith("autotrain_unsloth.data.job.")}
    assert len(job) >= 5
    assert {(module, target) for module in job for target in graph[module]
            if target.startswith("autotrain_unsloth.data.prepare")} == set()


def test_imports_for_the_type_checker_only_are_not_edges():
    tree = ast.parse("from typing import TYPE_CHECKING\nimport a\nif TYPE_CHECKING:\n    import b\nelse:\n    import c\n"
                     "def f():\n    import d\n")
    imported = {alias.name for node in _running(tree) if isinstance(node, ast.Import) for alias in node.names}
    assert imported == {"a", "c", "d"}


def test_a_cycle_is_found():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
