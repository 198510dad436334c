"""The package keeps DESIGN.md's shape: stage folders, small modules and functions, layers.

Layers, each importing only from its own layer and those before it. Every import
counts: at module level and inside functions or methods, ``import x`` as well as
``from . import y``. Imports under ``if TYPE_CHECKING:`` never run and are left out
(the hookspecs name train's types that way).

    core        errors, specs, hookspecs, manifest, schema, images, colour, system, lazy,
                io, outputs, weights, version, multilabel, options (option values typed
                as text, did-you-mean, model options against the builder): what
                everything else stands on; none of them builds a model or reads data
    registry    registry, plugins: discovery, never imports a plugin; checkpoint and
                modelinfo (they rebuild a registered model); metrics and report,
                the results and pages every stage shares
    data        loaders, splits, decoded cache, augmentation
    stages      train | export | infer | explain | evaluate, evaluate_multilabel: fit
                loop; onnx + int8; runners, engine, writers; CAMs and feature maps;
                evaluation. explain sits here, not with the applications, because
                every run's report.html shows Grad-CAM overlays of its mistakes
                (train -> explain.gallery)
    apps        tune | audit: applications that train models (K of them for the audit)
    api         cli: thin, parse, call, print; __main__; and the package root, the
                public API (hookimpl, __version__, fit, Classifier, explain ...)
    outside     default_plugins (and plugins/): register through hooks, may import anything

Inside a layer, packages depend on each other one way only: the graph of packages
(and top-level modules) has no cycle, nor has the graph of modules. A package's
``__init__`` importing its own submodules to re-export them is not an edge.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "imgcls"
STAGES = ("data", "train", "tune", "explain", "export", "infer", "audit", "cli",
          "default_plugins")
ASSETS = ("templates",)  # package data (page templates), not code
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 50
OUTSIDE = "outside"
LAYERS: tuple[tuple[str, frozenset[str]], ...] = (
    ("core", frozenset({"errors", "specs", "hookspecs", "manifest", "schema", "images",
                        "colour", "system", "lazy", "io", "outputs", "weights", "version",
                        "multilabel", "options"})),
    ("registry", frozenset({"registry", "plugins", "checkpoint", "modelinfo", "metrics",
                            "report"})),
    ("data", frozenset({"data"})),
    ("stages", frozenset({"train", "export", "infer", "explain", "evaluate",
                          "evaluate_multilabel"})),
    ("apps", frozenset({"tune", "audit"})),
    ("api", frozenset({"cli", "__main__", ""})),
    (OUTSIDE, frozenset({"default_plugins"})),
)


def modules(package: Path = PACKAGE) -> dict[str, Path]:
    """Every module of ``package`` by dotted name (a package by its ``__init__``)."""
    found = {}
    for path in sorted(package.rglob("*.py")):
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _is_type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and (
        (isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING")
        or (isinstance(node.test, ast.Attribute) and node.test.attr == "TYPE_CHECKING"))


def _import_nodes(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Every import that can run: at any depth, skipping ``if TYPE_CHECKING:`` bodies."""
    found: list[ast.Import | ast.ImportFrom] = []
    pending = [tree]
    while pending:
        node = pending.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append(node)
        elif _is_type_checking(node):
            pending.extend(node.orelse)
        else:
            pending.extend(ast.iter_child_nodes(node))
    return found


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The modules of ``known`` that module ``name`` imports, wherever the import is."""
    base = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    targets: set[str] = set()
    for node in _import_nodes(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
            continue
        module = node.module or ""
        if node.level:
            module = ".".join(base[: len(base) - node.level + 1] + ([module] if module else []))
        # `from p import m` imports submodule p.m; `from p import name` needs p itself.
        submodules = {f"{module}.{alias.name}" for alias in node.names} & known
        targets |= submodules or {module}
        if len(submodules) < len(node.names):
            targets.add(module)
    return {t for t in targets if t in known and t != name}


def import_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    """Module -> modules it imports; a package's re-exports of its own submodules left out."""
    found = modules(package)
    return {name: {t for t in imports(name, path, set(found))
                   if not (path.name == "__init__.py" and t.startswith(name + ".")
                           and unit(t) == unit(name))}
            for name, path in found.items()}


def unit(module: str) -> str:
    """The package (or top-level module) a module belongs to: ``imgcls.data.cache`` -> data."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def layer_of(module: str) -> int:
    for index, (_, units) in enumerate(LAYERS):
        if unit(module) in units:
            return index
    raise AssertionError(f"{module} is in no layer: add {unit(module)!r} to LAYERS in "
                         "tests/test_architecture.py (and to the prose above it)")


def layer_violations(graph: dict[str, set[str]]) -> list[str]:
    """Edges that point to a later layer; anything may import from the outside layer."""
    outside = len(LAYERS) - 1
    return sorted(f"{source} ({LAYERS[layer_of(source)][0]}) -> {target} "
                  f"({LAYERS[layer_of(target)][0]})"
                  for source, targets in graph.items() for target in targets
                  if layer_of(source) != outside and layer_of(target) > layer_of(source))


def unit_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    units: dict[str, set[str]] = {unit(m): set() for m in graph}
    for source, targets in graph.items():
        units[unit(source)] |= {unit(t) for t in targets} - {unit(source)}
    return units


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt):], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_import_cycle_between_modules():
    cycle = find_cycle(import_graph())
    assert cycle is None, " -> ".join(cycle or [])


def test_no_two_packages_depend_on_each_other():
    graph = {u: t for u, t in unit_graph(import_graph()).items() if u != "default_plugins"}
    cycle = find_cycle(graph)
    assert cycle is None, " -> ".join(u or "imgcls" for u in cycle or [])


def test_every_module_imports_only_from_its_layer_or_those_before():
    assert layer_violations(import_graph()) == []


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def _plant(root: Path, files: dict[str, str]) -> Path:
    package = root / "imgcls"
    for name, text in files.items():
        path = package / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return package


def test_a_cycle_through_an_import_inside_a_function_is_found(tmp_path: Path):
    package = _plant(tmp_path, {
        "__init__.py": "",
        "registry.py": "from .plugins import pm\n",
        "plugins.py": "pm = None\n\ndef load():\n    from . import registry\n    return registry\n",
        "data/__init__.py": "",
        "data/cache.py": "class C:\n    def m(self):\n        import imgcls.data.lazy as lazy\n",
        "data/lazy.py": "def f():\n    from ..data import cache\n",
        "errors.py": ("from typing import TYPE_CHECKING\n"
                      "if TYPE_CHECKING:\n    from . import specs\n"),
        "specs.py": "def f():\n    from .errors import X\n",
    })
    graph = import_graph(package)
    assert graph["imgcls.plugins"] == {"imgcls.registry"}
    assert graph["imgcls.data.cache"] == {"imgcls.data.lazy"}
    assert graph["imgcls.data.lazy"] == {"imgcls.data.cache"}
    assert graph["imgcls.errors"] == set()  # typing only: it never runs
    assert find_cycle(graph) == ["imgcls.data.cache", "imgcls.data.lazy", "imgcls.data.cache"]
    del graph["imgcls.data.lazy"]
    assert find_cycle(graph) == ["imgcls.plugins", "imgcls.registry", "imgcls.plugins"]


def test_an_import_against_the_layers_is_found(tmp_path: Path):
    package = _plant(tmp_path, {
        "__init__.py": "", "data/__init__.py": "", "train/__init__.py": "",
        "train/config.py": "def parse():\n    pass\n",
        "data/augment.py": "def f():\n    from ..train.config import parse\n",
        "train/loop.py": "from imgcls.data import augment\n",
        "default_plugins/__init__.py": "from imgcls.cli import app\n",
        "cli/__init__.py": "app = None\n",
    })
    graph = import_graph(package)
    assert layer_violations(graph) == ["imgcls.data.augment (data) -> imgcls.train.config (stages)"]
    assert find_cycle(unit_graph(graph)) == ["data", "train", "data"]
    with pytest.raises(AssertionError, match="'newstage' to LAYERS"):
        layer_of("imgcls.newstage.thing")


def test_only_stage_folders_and_shared_modules_at_the_top():
    folders = {p.name for p in PACKAGE.iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert folders <= {*STAGES, *ASSETS}, folders - {*STAGES, *ASSETS}
    for stage in ("data", "train", "export", "infer", "audit", "cli"):
        assert (PACKAGE / stage / "__init__.py").is_file()


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: p.name)
def test_modules_and_functions_stay_small(path: Path):
    text = path.read_text()
    assert text.count("\n") <= MAX_MODULE_LINES, f"{path} has over {MAX_MODULE_LINES} lines"
    long = [f"{node.name} ({node.end_lineno - node.lineno + 1} lines)"
            for node in ast.walk(ast.parse(text))
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES]
    assert not long, f"{path}: {', '.join(long)}"


def test_documented_imports_work():
    from imgcls import Classifier, ImgclsError, fit, hookimpl, load_checkpoint
    from imgcls.export import export_onnx
    from imgcls.infer import Classifier as InferClassifier
    from imgcls.train import RunFolder, TrainConfig
    from imgcls.train import fit as train_fit

    assert Classifier is InferClassifier and fit is train_fit
    assert all(callable(x) for x in (export_onnx, load_checkpoint, hookimpl, TrainConfig))
    assert issubclass(ImgclsError, Exception) and RunFolder.__name__ == "RunFolder"
