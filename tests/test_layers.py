"""The import boundaries of src/pushwire: each layer imports only from the layers below it.

The modules are parsed with ``ast``, never imported. Every import statement counts,
wherever it is: at module level, inside a function (a lazy import) or under
``if TYPE_CHECKING:`` (a type checker follows it, and so does a circle).
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping, Set
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parent.parent / "src"

# Bottom first. A module may import its own group and any group of an earlier layer;
# the groups of one layer are peers and must not import each other.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("errors",),
    ("protocol",),
    ("core",),
    ("brokers", "transports"),
    # pushwire/testing.py, public test support (FakeClock), stands beside the assembly:
    # it may use transports and below, and as a peer of server and client none imports it.
    ("server", "client", "testing"),
)
# pushwire/__init__.py, the public facade, may import anything (lazily where costly);
# the command line (pushwire/cli.py, and __main__.py that runs it) and pushwire/asgi.py
# (the ASGI app's public name) assemble server and client. Nothing imports them.
FACADE = "facade"
MAIN = "main"

# Violations in the tree today, each `importer -> imported` pair exactly. They are being
# fixed on another branch; remove a pair once it is gone (a test below says when).
# Any pair not listed here fails the tests.
KNOWN_VIOLATIONS: frozenset[tuple[str, str]] = frozenset()

ImportGraph = dict[str, set[str]]


# The checker.


def import_graph(source: Path, package: str = "pushwire") -> ImportGraph:
    """Every module of ``package`` under ``source``, and the modules of ``package`` it imports.

    ``from a import b`` counts as importing ``a.b`` when that is a module of the
    tree, else as importing ``a``. Relative imports are resolved; a module's import
    of itself is left out.
    """
    files = {_module_name(path, source): path for path in (source / package).rglob("*.py")}
    graph: ImportGraph = {}
    for module, path in files.items():
        is_package = path.name == "__init__.py"
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        targets = {
            target
            for node in ast.walk(tree)
            for target in _targets(node, module, is_package, files.keys())
        }
        graph[module] = {t for t in targets if _within(t, package) and t != module}
    return graph


def group_of(module: str) -> str | None:
    """The layer group of a dotted module name (None if it has none)."""
    parts = module.split(".")
    if parts == ["pushwire"]:
        return FACADE
    if parts in (["pushwire", "__main__"], ["pushwire", "cli"], ["pushwire", "asgi"]):
        return MAIN
    groups = {group for layer in LAYERS for group in layer}
    return parts[1] if len(parts) > 1 and parts[1] in groups else None


def may_import(importer: str, imported: str) -> bool:
    """Whether the group ``importer`` may import the group ``imported``."""
    if importer == FACADE:
        return True
    if importer == MAIN:
        return imported != FACADE
    if imported in (FACADE, MAIN):
        return False
    rank = {group: number for number, layer in enumerate(LAYERS) for group in layer}
    return importer == imported or rank[imported] < rank[importer]


def unclassified(graph: ImportGraph) -> list[str]:
    """Modules, importing or imported, that belong to no layer."""
    modules = set(graph) | {target for targets in graph.values() for target in targets}
    return sorted(module for module in modules if group_of(module) is None)


def layer_violations(graph: ImportGraph) -> set[tuple[str, str]]:
    """Every ``(importer, imported)`` pair that imports a layer it must not."""
    violations = set()
    for module, targets in graph.items():
        importer = group_of(module)
        for target in targets:
            imported = group_of(target)
            if importer and imported and not may_import(importer, imported):
                violations.add((module, target))
    return violations


def cycle_edges(
    graph: ImportGraph, within: str, ignore: Set[tuple[str, str]]
) -> set[tuple[str, str]]:
    """The imports that lie on a cycle among the modules of ``within`` (a package name).

    ``ignore`` edges are taken out of the graph first, so a known cycle is not
    reported, while a new cycle through the same modules still is.
    """
    nodes = {module for module in graph if _within(module, within)}
    edges = {
        module: {t for t in graph[module] if t in nodes and (module, t) not in ignore}
        for module in nodes
    }
    component = _strongly_connected_components(edges)
    return {
        (module, target)
        for module, targets in edges.items()
        for target in targets
        if component[module] == component[target]
    }


def _targets(node: ast.AST, module: str, is_package: bool, modules: Set[str]) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom):
        base = _absolute(node, module, is_package)
        return [
            f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
            for alias in node.names
        ]
    if (
        isinstance(node, ast.Call)
        and _is_import_module(node.func)
        and node.args
        and isinstance(node.args[0], ast.Constant)
        and isinstance(node.args[0].value, str)
    ):
        return [node.args[0].value]  # importlib.import_module("pushwire..."): a registry
    return []


def _absolute(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    if node.level == 0:
        return node.module or ""
    # A package's own name is where its relative imports start; a module's is its parent's.
    parts = module.split(".") if is_package else module.split(".")[:-1]
    base = parts[: len(parts) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def _is_import_module(func: ast.expr) -> bool:
    if isinstance(func, ast.Attribute):
        return func.attr == "import_module"
    return isinstance(func, ast.Name) and func.id == "import_module"


def _module_name(path: Path, source: Path) -> str:
    parts = list(path.relative_to(source).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def _strongly_connected_components(edges: Mapping[str, Set[str]]) -> dict[str, int]:
    """Tarjan's algorithm: each node's component number."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    component: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(edges[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target not in component:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            number = len(set(component.values()))
            while True:
                member = stack.pop()
                component[member] = number
                if member == node:
                    break

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return component


def _listing(pairs: Iterable[tuple[str, str]]) -> str:
    return "\n".join(f"  {importer} -> {imported}" for importer, imported in sorted(pairs))


# The tree.


def test_every_module_belongs_to_a_layer() -> None:
    graph = import_graph(SOURCE)

    missing = unclassified(graph)

    assert not missing, "modules in no layer (add them to LAYERS):\n" + "\n".join(missing)


def test_each_module_imports_only_its_own_layer_or_below() -> None:
    graph = import_graph(SOURCE)

    new = layer_violations(graph) - KNOWN_VIOLATIONS

    assert not new, "imports across the layers (see STYLE.md, section 1):\n" + _listing(new)


def test_the_server_modules_import_each_other_without_cycles() -> None:
    graph = import_graph(SOURCE)

    new = cycle_edges(graph, "pushwire.server", ignore=KNOWN_VIOLATIONS)

    assert not new, "imports on a cycle inside pushwire.server:\n" + _listing(new)


def test_no_module_imports_the_test_support() -> None:
    graph = import_graph(SOURCE)

    importers = sorted(module for module, targets in graph.items() if "pushwire.testing" in targets)

    assert importers == [], "pushwire.testing is for tests only, yet imported by: " + ", ".join(
        importers
    )


def test_every_known_violation_still_occurs() -> None:
    graph = import_graph(SOURCE)
    occurring = layer_violations(graph) | cycle_edges(graph, "pushwire.server", ignore=set())

    fixed = KNOWN_VIOLATIONS - occurring

    assert not fixed, "fixed: remove these from KNOWN_VIOLATIONS:\n" + _listing(fixed)


# The checker itself, on small trees.


def _tree(root: Path, files: Mapping[str, str]) -> Path:
    for name, text in files.items():
        path = root / "pushwire" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


LAYERED = {
    "__init__.py": "from pushwire.server import app\nfrom pushwire import client\n",
    "__main__.py": "from pushwire.server.app import main\n",
    "errors.py": "",
    "protocol/__init__.py": "",
    "protocol/codec.py": "from pushwire import errors\n",
    "core/__init__.py": "",
    "core/hub.py": "from ..protocol.codec import encode\nimport pushwire.errors\n",
    "brokers/__init__.py": "",
    "brokers/memory.py": "from pushwire.core.hub import Hub\n",
    "transports/__init__.py": "",
    "transports/sse.py": "from pushwire.core import hub\n",
    "server/__init__.py": "",
    "server/app.py": "from . import routes\nfrom pushwire.brokers.memory import MemoryBroker\n",
    "server/routes.py": "from pushwire.transports.sse import SSETransport\n",
    "client/__init__.py": "from .session import Session\n",
    "client/session.py": "from pushwire.protocol import codec\n",
}


def test_a_layered_tree_passes(tmp_path: Path) -> None:
    graph = import_graph(_tree(tmp_path, LAYERED))

    assert unclassified(graph) == []
    assert layer_violations(graph) == set()
    assert cycle_edges(graph, "pushwire.server", ignore=set()) == set()
    assert graph["pushwire"] == {"pushwire.server.app", "pushwire.client"}
    assert graph["pushwire.core.hub"] == {"pushwire.protocol.codec", "pushwire.errors"}
    assert graph["pushwire.server.app"] == {"pushwire.server.routes", "pushwire.brokers.memory"}
    assert graph["pushwire.client"] == {"pushwire.client.session"}


@pytest.mark.parametrize(
    ("path", "source", "violation"),
    [
        # Upwards, at module level.
        ("core/hub.py", "from pushwire.brokers.memory import X\n", "pushwire.brokers.memory"),
        # Between peers, inside a function.
        (
            "brokers/memory.py",
            "def f():\n    import pushwire.transports.sse\n",
            "pushwire.transports.sse",
        ),
        # Under TYPE_CHECKING, relative.
        (
            "client/session.py",
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..server import app\n",
            "pushwire.server.app",
        ),
        # The facade, from inside.
        ("protocol/codec.py", "from pushwire import Server\n", "pushwire"),
        # By name, as a registry would.
        (
            "errors.py",
            "import importlib\nimportlib.import_module('pushwire.protocol.codec')\n",
            "pushwire.protocol.codec",
        ),
    ],
)
def test_an_import_across_the_layers_is_found(
    tmp_path: Path, path: str, source: str, violation: str
) -> None:
    graph = import_graph(_tree(tmp_path, {**LAYERED, path: source}))

    found = layer_violations(graph)

    importer = "pushwire." + path.removesuffix(".py").replace("/", ".")
    assert found == {(importer, violation)}


def test_a_cycle_in_the_server_is_found_unless_known(tmp_path: Path) -> None:
    routes = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .app import Server\n"
    graph = import_graph(_tree(tmp_path, {**LAYERED, "server/routes.py": routes}))
    back = ("pushwire.server.routes", "pushwire.server.app")

    assert cycle_edges(graph, "pushwire.server", ignore=set()) == {
        ("pushwire.server.app", "pushwire.server.routes"),
        back,
    }
    assert cycle_edges(graph, "pushwire.server", ignore={back}) == set()


def test_a_module_outside_the_layers_is_reported(tmp_path: Path) -> None:
    graph = import_graph(_tree(tmp_path, {**LAYERED, "extras/pair.py": ""}))

    assert unclassified(graph) == ["pushwire.extras.pair"]
