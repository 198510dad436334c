"""Every hookspec has a test in which a test plugin implements it and imgcls calls it.

Like datasette's check: adding a hookspec to imgcls/hookspecs.py without naming
its test in HOOK_TESTS fails here, and so does naming a test that does not
implement the hook.
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

from imgcls import hookspecs

TESTS = Path(__file__).resolve().parent

# hook -> the test that registers a plugin implementing it and asserts the call's effect.
HOOK_TESTS = {
    "register_models":
        "test_registry.py::test_fixture_plugin_is_discovered_and_gone_after_unregister",
    "register_augmentations":
        "test_plugin_loading.py::test_a_duplicate_name_is_skipped_and_the_first_registration_wins",
    "register_datasets":
        "test_plugin_loading.py::test_a_duplicate_name_is_skipped_and_the_first_registration_wins",
    "register_engines": "test_engines.py::test_a_plugin_engine_runs_through_imgcls_infer",
    "register_commands": "test_cli.py::test_plugin_command_runs_and_is_listed",
    "on_fit_start": "test_plugin_events.py::test_events_arrive_in_order",
    "on_epoch_end": "test_plugin_events.py::test_events_arrive_in_order",
    "on_fit_end": "test_plugin_events.py::test_events_arrive_in_order",
}


def hookspec_names() -> set[str]:
    return {name for name, function in inspect.getmembers(hookspecs, inspect.isfunction)
            if hasattr(function, "imgcls_spec")}


def _is_hookimpl(decorator: ast.expr) -> bool:
    target = decorator.func if isinstance(decorator, ast.Call) else decorator
    return (isinstance(target, ast.Name) and target.id == "hookimpl") or (
        isinstance(target, ast.Attribute) and target.attr == "hookimpl")


def implemented_hooks(tree: ast.Module) -> set[str]:
    """Names of the ``@hookimpl`` functions anywhere in a module (nested ones included)."""
    return {node.name for node in ast.walk(tree)
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            and any(_is_hookimpl(d) for d in node.decorator_list)}


def test_every_hookspec_names_a_test():
    assert hookspec_names(), "no hookspecs found"
    assert set(HOOK_TESTS) == hookspec_names()


@pytest.mark.parametrize("hook", sorted(HOOK_TESTS))
def test_the_named_test_exists_and_its_module_implements_the_hook(hook):
    path, test_name = HOOK_TESTS[hook].split("::")
    tree = ast.parse((TESTS / path).read_text())
    tests = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
    assert test_name in tests, f"{HOOK_TESTS[hook]} does not exist"
    assert hook in implemented_hooks(tree), f"no @hookimpl {hook} in tests/{path}"


def test_the_check_sees_hookimpls_in_classes_and_nested_functions():
    tree = ast.parse("class P:\n    @hookimpl(tryfirst=True)\n    def on_fit_end(self): ...\n"
                     "def make():\n    @imgcls.hookimpl\n    def register_models(r): ...\n"
                     "def register_datasets(r): ...\n")
    assert implemented_hooks(tree) == {"on_fit_end", "register_models"}
