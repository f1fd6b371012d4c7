"""The layout's promises, checked on the source: arrows point one way, no import circle (imports
inside functions count), product code never imports a test fake, library code never prints."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

PACKAGE = "social_tui_media"
# Lower layers never import higher ones: the tree reads like the pipeline.
LAYERS = {
    f"{PACKAGE}.settings": 0,
    f"{PACKAGE}.ids": 0,
    f"{PACKAGE}.logs": 0,
    f"{PACKAGE}.store": 1,
    f"{PACKAGE}.media": 1,
    f"{PACKAGE}.posts": 2,
    f"{PACKAGE}.jobs": 3,
    f"{PACKAGE}.cli": 4,
}
CLI_MODULES = {f"{PACKAGE}.cli.manage_media", f"{PACKAGE}.cli.manage_data"}
BACK_ENDS = {f"{PACKAGE}.store.{name}" for name in ("postgres", "rest", "sqlite")}
NOT_PRODUCT = ("devtools", "tests", "bench", "demo")
ROOT_FILE_LIMIT = 16


def module_files() -> dict[str, Path]:
    """Every Python module of the checkout by dotted name (root scripts, the package, devtools)."""
    files = {path.stem: path for path in ROOT.glob("*.py")}
    for folder in (PACKAGE, "devtools", "tests", "bench"):
        for path in (ROOT / folder).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            files[name] = path
    return files


def imported_modules(name: str, path: Path, known: set[str]) -> set[str]:
    """The project modules `name` imports anywhere in its body (functions and TYPE_CHECKING too)."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".") if is_package else name.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [base, *(f"{base}.{alias.name}" for alias in node.names)]
        else:
            continue
        found.update(t for t in targets if t in known)
    found.discard(name)
    return found


def _graph_here() -> dict[str, set[str]]:
    files = module_files()
    return {name: imported_modules(name, path, set(files)) for name, path in files.items()}


def _printing_here() -> list[str]:
    printing = []
    for module, path in module_files().items():
        if not module.startswith(PACKAGE) or module.startswith(f"{PACKAGE}.cli"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "print":
                printing.append(f"{module}:{node.lineno}")
    return printing


@cache
def _scan() -> dict:
    """Parse the tree in a fresh interpreter: CPython 3.11's ast.parse can fail with
    "recursion depth mismatch" in a process that earlier hit deep recursion (other tests do)."""
    result = subprocess.run(
        [sys.executable, __file__], cwd=ROOT, capture_output=True, text=True, timeout=120, check=True
    )
    return json.loads(result.stdout)


def import_graph() -> dict[str, set[str]]:
    return {name: set(targets) for name, targets in _scan()["graph"].items()}


def layer(module: str) -> int | None:
    for prefix, rank in LAYERS.items():
        if module == prefix or module.startswith(prefix + "."):
            return rank
    return None


def is_product(module: str) -> bool:
    return not module.startswith(NOT_PRODUCT)


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
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


def test_the_checks_see_the_whole_package_and_its_imports():
    graph = import_graph()
    assert f"{PACKAGE}.store.interface" in graph and f"{PACKAGE}.cli.manage_media" in graph
    assert f"{PACKAGE}.store.interface" in graph[f"{PACKAGE}.store.postgres"]
    assert f"{PACKAGE}.store.postgres" in graph[f"{PACKAGE}.store"]  # imported inside open_store


def test_cycle_finder_reports_a_circle_through_function_level_imports():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_circle_anywhere():
    assert cycles(import_graph()) == []


def test_product_code_never_imports_test_fakes_or_benchmarks():
    wrong = {
        (module, target)
        for module, targets in import_graph().items()
        if is_product(module)
        for target in targets
        if not is_product(target)
    }
    assert wrong == set()


def test_lower_layers_never_import_higher_ones():
    wrong = []
    for module, targets in import_graph().items():
        rank = layer(module)
        if rank is None:
            continue
        wrong += [(module, t) for t in targets if (layer(t) or 0) > rank]
    assert wrong == []


def test_no_cli_imports_another_cli_and_jobs_never_import_a_cli():
    graph = import_graph()
    for cli in CLI_MODULES:
        assert graph[cli] & CLI_MODULES == set(), cli
    jobs = [m for m in graph if m.startswith(f"{PACKAGE}.jobs")]
    assert jobs and all(not any(t.startswith(f"{PACKAGE}.cli") for t in graph[m]) for m in jobs)
    for script in ("manage_media", "manage_data", "backfill_media"):
        assert len(graph[script] & CLI_MODULES) == 1, script


def test_the_store_interface_never_imports_a_back_end():
    graph = import_graph()
    assert graph[f"{PACKAGE}.store.interface"] & BACK_ENDS == set()
    assert all(
        graph[m] & BACK_ENDS == set()
        for m in graph
        if is_product(m) and not m.startswith((f"{PACKAGE}.store", "tests"))
    )


def test_every_back_end_implements_every_store_operation():
    # The back ends inherit the interface, whose declared operations return None: one left
    # out would answer None instead of failing.
    from social_tui_media.store.interface import MediaStore
    from social_tui_media.store.postgres import PostgresStore
    from social_tui_media.store.rest import RestStore
    from social_tui_media.store.sqlite import SQLiteStore

    written_once = {"list_media"}  # the interface's own, over iter_media
    declared = {
        name for name, value in vars(MediaStore).items() if callable(value) and not name.startswith("_")
    }
    assert len(declared) > 20 and written_once <= declared
    for back_end in (SQLiteStore, PostgresStore, RestStore):
        inherited = {name for name in declared if getattr(back_end, name) is getattr(MediaStore, name)}
        assert inherited == written_once, back_end.__name__


def test_library_modules_never_print():
    assert _scan()["printing"] == []


def test_the_root_holds_at_most_sixteen_python_files():
    assert len(list(ROOT.glob("*.py"))) <= ROOT_FILE_LIMIT


if __name__ == "__main__":
    graph = {name: sorted(targets) for name, targets in _graph_here().items()}
    print(json.dumps({"graph": graph, "printing": _printing_here()}))
