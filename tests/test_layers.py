"""The package's import rules (docs/architecture.md), read from the code with ``ast``.

Every ``import`` in ``tunekit/`` counts, the ones inside functions included:

* layers: nothing imports upward along ``cli -> workflow -> api -> strategies ->
  evaluators -> engine -> builders``, and the side rooms keep to their side
  (report reads results from storages and the record, never from a search);
* no import cycle between modules;
* no import of another package's private module or name;
* an import of tunekit's own modules inside a function says why, and the reason is
  one of the two allowed: keeping ``import tunekit`` and the command line's start-up
  free of TensorFlow, or an optional dependency.
"""

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "tunekit"

# the main chain, top to bottom: a room never imports a room above it
CHAIN = ["cli", "launch", "workflow", "api", "strategies", "evaluators", "engine", "builders"]

# room -> rooms it must never import (besides the chain rule)
NEVER = {
    "strategies": {"report", "cli", "launch", "workflow", "backends", "dashboard", "workers"},
    "evaluators": {"report", "cli", "launch", "workflow", "results", "api", "workers"},
    "engine": {"report", "cli", "launch", "workflow", "strategies", "results", "api"},
    "report": {
        "results", "strategies", "evaluators", "engine", "cli", "launch", "workflow", "api",
        "backends", "estimators", "builders",
    },
    "storage": {
        "report", "results", "strategies", "evaluators", "engine", "cli", "launch", "workflow",
        "api", "estimators", "builders", "record",
    },
    "record": {
        "report", "results", "strategies", "evaluators", "engine", "cli", "launch", "workflow",
        "api", "estimators", "builders",
    },
    "estimators": {"strategies", "report", "workflow", "cli", "launch", "api", "results"},
    "space": {"estimators", "strategies", "report", "engine", "evaluators", "builders"},
    "builders": {"estimators", "strategies", "report", "evaluators", "api", "engine"},
    "results": {"strategies", "evaluators", "engine", "cli", "launch", "workflow", "api"},
    "backends": {"cli", "launch", "workflow", "report"},
    "launch": {"report", "strategies", "evaluators", "engine", "api", "workflow"},
    # api calls it after a search; it reads results by their attributes and shows nothing
    "ensembles": {"report", "results", "api", "cli", "launch", "workflow", "strategies"},
}  # fmt: skip

# leaves: import nothing of tunekit but other leaves
LEAVES = {"tunekit.exceptions", "tunekit.storage.urls", "tunekit._version"}

REASON = re.compile(r"(?i)tensorflow|keras|optional|start-up")


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        parts = list(rel.parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts = parts[:-1]
        yield ".".join(parts), path, is_package


MODULES = {name: (path, is_package) for name, path, is_package in _modules()}


def _known(target: str) -> str | None:
    """The tunekit module an import target names (a module, or a name inside one)."""
    while target and target not in MODULES:
        target = target.rpartition(".")[0]
    return target or None


def _imports(name: str):
    """``(line, target module, imported names, in a function?, source lines)`` of a module."""
    path, is_package = MODULES[name]
    source = path.read_text()
    tree = ast.parse(source)
    lines = source.splitlines()
    package = name if is_package else name.rpartition(".")[0]
    inside = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            inside.update(id(n) for n in ast.walk(node) if n is not node)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "tunekit":
                    yield node.lineno, alias.name, [], id(node) in inside, lines
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if module.split(".")[0] != "tunekit":
                continue
            names = [a.name for a in node.names]
            yield node.lineno, module, names, id(node) in inside, lines


def _room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "tunekit"


def _edges():
    """module -> {imported tunekit module: first line}, submodules named by ``from x import y``."""
    edges = {}
    for name in MODULES:
        out = edges.setdefault(name, {})
        for line, module, names, _, _ in _imports(name):
            targets = [module] + [f"{module}.{n}" for n in names]
            for target in targets:
                known = _known(target)
                if known and known != name and not name.startswith(known + "."):
                    out.setdefault(known, line)
    return edges


EDGES = _edges()


def test_the_package_is_read():
    assert len(MODULES) > 40
    assert "tunekit.api" in MODULES and "tunekit.storage.urls" in MODULES


def test_no_room_imports_upward_or_across_a_forbidden_line():
    broken = []
    for name, targets in EDGES.items():
        room = _room(name)
        for target, line in targets.items():
            other = _room(target)
            if other == room or other == "tunekit":
                continue
            if room in CHAIN and other in CHAIN and CHAIN.index(other) < CHAIN.index(room):
                broken.append(f"{name}:{line} imports {target} (upward: {room} -> {other})")
            if other in NEVER.get(room, ()):
                broken.append(f"{name}:{line} imports {target} ({room} never imports {other})")
    assert not broken, "\n".join(broken)


def test_leaves_import_no_other_tunekit_module():
    broken = [
        f"{leaf}:{line} imports {target}"
        for leaf in LEAVES
        for target, line in EDGES[leaf].items()
        if target not in LEAVES
    ]
    assert not broken, "\n".join(broken)


def test_no_import_cycle_between_modules():
    index, low, stack, on, cycles = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in EDGES[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in EDGES:
        if v not in index:
            visit(v)
    assert not cycles, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in cycles)


def _private_parts(module: str):
    return [i for i, part in enumerate(module.split(".")) if part.startswith("_")]


def test_no_import_of_another_packages_private_module_or_name():
    """``_x`` is private to the package that holds it (and that package's subpackages)."""
    broken = []
    for name in MODULES:
        here = name if MODULES[name][1] else name.rpartition(".")[0]
        for line, module, names, _, _ in _imports(name):
            parts = module.split(".")
            for i in _private_parts(module):
                owner = ".".join(parts[:i])
                if not (here == owner or here.startswith(owner + ".")):
                    broken.append(f"{name}:{line} imports the private module {module}")
            # a name is private to the package of the module that defines it
            owner = module if MODULES.get(module, (None, False))[1] else module.rpartition(".")[0]
            inside = here == owner or here.startswith(owner + ".")
            for imported in names:
                private = imported.startswith("_") and not imported.startswith("__")
                if private and f"{module}.{imported}" not in MODULES and not inside:
                    broken.append(f"{name}:{line} imports the private name {module}.{imported}")
    assert not broken, "\n".join(broken)


def test_imports_inside_functions_say_which_allowed_reason_they_serve():
    unexplained = []
    for name in MODULES:
        for line, module, _, in_function, lines in _imports(name):
            if not in_function:
                continue
            comment = _comment_for(lines, line)
            if not REASON.search(comment):
                unexplained.append(f"{name}:{line} imports {module} inside a function")
    assert not unexplained, (
        "an import of tunekit's own modules inside a function is for keeping `import tunekit` "
        "and the command line free of TensorFlow, or for an optional dependency; say which in "
        "a comment on its line or the line above:\n" + "\n".join(unexplained)
    )


def _comment_for(lines, line: int) -> str:
    """The comment on an import's line and the comment block above its group of imports."""
    said = [lines[line - 1].partition("#")[2]]
    above = line - 2
    while above >= 0:
        text = lines[above].strip()
        if text.startswith("#"):
            said.append(text.lstrip("# "))
        elif text and not text.startswith(("from ", "import ")):
            break
        above -= 1
    return " ".join(said)


@pytest.mark.parametrize("rule", ["chain", "private", "cycle"])
def test_the_rules_catch_a_break(rule, monkeypatch):
    """Each check fails on a module that breaks its rule (checks that cannot fail are no checks)."""
    fake = {
        "chain": ("tunekit.engine.fake", "from tunekit.api import search\n"),
        "private": ("tunekit.api_fake", "from tunekit.report._plots import anything\n"),
        "cycle": ("tunekit.storage.fake", "from tunekit.storage import make_storage\n"),
    }[rule]
    name, source = fake
    path = PACKAGE / "fake_module_for_the_layer_test.py"
    monkeypatch.setitem(MODULES, name, (path, False))
    monkeypatch.setattr(Path, "read_text", _reader(path, source, Path.read_text))
    if rule == "cycle":  # the package imports the fake module, which imports the package
        monkeypatch.setitem(EDGES, name, {"tunekit.storage": 1})
        monkeypatch.setitem(EDGES, "tunekit.storage", {**EDGES["tunekit.storage"], name: 1})
        with pytest.raises(AssertionError, match="import cycles"):
            test_no_import_cycle_between_modules()
    elif rule == "chain":
        monkeypatch.setitem(EDGES, name, {"tunekit.api": 1})
        with pytest.raises(AssertionError, match="upward"):
            test_no_room_imports_upward_or_across_a_forbidden_line()
    else:
        with pytest.raises(AssertionError, match="private module"):
            test_no_import_of_another_packages_private_module_or_name()


def _reader(path, source, real):
    def read_text(self, *args, **kwargs):
        return source if self == path else real(self, *args, **kwargs)

    return read_text
