"""The package's layers point one way. Each module belongs to one layer; it may import from its
own layer and the layers below, never from one above, and no set of modules imports itself in a
circle. The order is written here once (and in the README's layout section, which a test below
keeps in step with it)."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).parent.parent / "src" / "etcd_elector"
README = Path(__file__).parent.parent / "README.md"

FOUNDATION = """_proto _errors _reasons _broadcast _bounded _repeats _seconds _environ _clock
_backoff _log _logfmt _secret _identity _keys _tasks _metrics _orphans _stop_signals _portal _tls
_config _lazy"""

# Lowest first. A module is in the layer of the longest prefix that names it ("" is the
# package itself).
LAYERS: list[tuple[str, list[str]]] = [
    ("foundation", FOUNDATION.split()),
    ("etcd", ["etcd"]),
    ("election", ["_election"]),
    ("facade", ["_client", "_health", "_systemd"]),
    ("blocking", ["_sync"]),
    ("shards", ["shards"]),
    ("public", [""]),
    ("extensions", ["integrations", "testing"]),
    ("cli", ["cli", "__main__"]),
]


def module_names() -> dict[str, Path]:
    names: dict[str, Path] = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = path
    return names


MODULES = module_names()


def layer_of(module: str) -> int:
    best, rank = -1, -1
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            named = module == prefix or (prefix != "" and module.startswith(prefix + "."))
            if named and len(prefix) > best:
                best, rank = len(prefix), index
    assert rank >= 0, f"{module!r} is in no layer: add it to LAYERS"
    return rank


def type_only(tree: ast.Module) -> set[ast.AST]:
    """Import statements under ``if TYPE_CHECKING:``: annotations only, never run."""
    found: set[ast.AST] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            found.update(n for s in node.body for n in ast.walk(s))
    return found


def imported(module: str, path: Path, *, at_run_time: bool) -> Iterator[str]:
    """The package's modules that ``module`` imports (relative and absolute)."""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    package = [p for p in package if p]
    tree = ast.parse(path.read_text(), str(path))
    skipped = type_only(tree) if at_run_time else set()
    for node in ast.walk(tree):
        if node in skipped:
            continue
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = ".".join([*base, *([node.module] if node.module else [])])
            elif node.module and node.module.split(".")[0] == "etcd_elector":
                target = node.module.removeprefix("etcd_elector").lstrip(".")
            else:
                continue
            for alias in node.names:
                child = f"{target}.{alias.name}".lstrip(".")
                yield child if child in MODULES else target
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "etcd_elector":
                    yield alias.name.removeprefix("etcd_elector").lstrip(".")


def imports(*, at_run_time: bool = False) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for module, path in MODULES.items():
        found = set()
        for target in imported(module, path, at_run_time=at_run_time):
            while target not in MODULES and "." in target:
                target = target.rsplit(".", 1)[0]
            assert target in MODULES, f"{module} imports {target!r}, which is not a module"
            if target != module:
                found.add(target)
        graph[module] = found
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_module_imports_from_a_higher_layer() -> None:
    upward = [
        f"{module or 'etcd_elector'} ({LAYERS[layer_of(module)][0]}) imports "
        f"{target or 'etcd_elector'} ({LAYERS[layer_of(target)][0]})"
        for module, targets in imports().items()
        for target in sorted(targets)
        if layer_of(target) > layer_of(module)
    ]
    assert upward == []


def test_no_import_circles() -> None:
    # A type annotation may name a class of a module that imports this one (a blocking
    # session's client): such imports never run, so they cannot make a circle.
    assert circles(imports(at_run_time=True)) == []


def test_the_checks_see_an_upward_import_and_a_circle() -> None:
    # The checks above can fail: an election module importing the facade, and a circle.
    assert layer_of("_election._session") < layer_of("_client")
    assert layer_of("etcd._watch") < layer_of("_election._keywait")
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert circles(graph) == [["a", "b", "c"]]
    assert circles({"a": {"b"}, "b": set()}) == []


def test_every_module_is_in_a_layer() -> None:
    for module in MODULES:
        layer_of(module)


def test_the_readme_names_the_layers_in_order() -> None:
    text = README.read_text()
    section = text.split("## Layout", 1)[1].split("\n## ", 1)[0]
    named = re.findall(r"^\d+\. \*\*(\w+)\*\*", section, flags=re.M)
    assert named == [name for name, _ in LAYERS]
    # Every folder of the package is named in the layout section.
    for folder in sorted(p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()):
        if folder != "_proto":
            assert f"`{folder}/`" in section, folder


def test_no_library_module_is_over_about_450_lines() -> None:
    # The command line and the test kit are tools around the library, and _proto is generated.
    library = {
        name: path
        for name, path in MODULES.items()
        if not name.startswith(("_proto", "cli", "testing"))
    }
    long = {
        name: n for name, path in library.items() if (n := len(path.read_text().splitlines())) > 460
    }
    assert long == {}
