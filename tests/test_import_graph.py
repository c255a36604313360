"""prereg's modules import each other one way: no cycles, and no import points up a layer.

Layers, bottom to top (DESIGN section 9): ``core`` (run records, run dirs, atomic I/O, signals,
errors, registrations, the Experiment table) <- ``training`` (checkpoints, JAX cache, non-finite
checks, TensorBoard) <- the studies (``exp9``, ``ppo``) <- the Hydra integration (``sweep``) and
the command line (``__main__``).  ``reports`` (compare, status, verdict recompute) read the core
only.  The graph is built from the source text (every ``import``/``from`` at any depth, function
bodies included), so a lazy import counts like any other.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "prereg"

#: sub-package -> its layer; a module may import its own sub-package or any lower layer
LAYERS = {"": 0, "core": 0, "conf": 0, "training": 1, "exp9": 2, "ppo": 2, "sweep": 3}
LAYERS |= {"exp9_estimator": 2}
LAYERS |= {"__main__": 4}
#: sub-packages that may import only these (besides themselves), and who may import them
READS_ONLY = {"reports": {"", "core"}}
READ_BY = {"reports": {"sweep", "__main__"}}  # the status table at a sweep's end; the CLI
#: studies never import each other, except a study built on another's maths (one way)
STUDIES = {"exp9", "ppo", "exp9_estimator"}
BUILDS_ON = {"exp9_estimator": {"exp9"}}


def module_name(path: Path) -> str:
    rel = path.relative_to(SRC).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> set[str]:
    """The prereg modules ``path`` imports (``from a import b``: a.b where that is a module)."""
    tree = ast.parse(path.read_text())
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.split(".")[0] == "prereg"}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] != "prereg":
                continue
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                out.add(full if full in MODULES else node.module)
    return out


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}
GRAPH = {name: imports_of(path) & set(MODULES) for name, path in MODULES.items()}


def subpackage(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a list of nodes (first == last), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_graph_covers_the_package():
    assert {"prereg.core.experiment", "prereg.exp9.runner", "prereg.sweep.app"} <= set(GRAPH)
    assert "prereg.core.atomic" in GRAPH["prereg.exp9.runner"]


def test_no_import_cycle_between_modules():
    assert find_cycle(GRAPH) is None, " -> ".join(find_cycle(GRAPH) or [])


def test_no_import_cycle_between_subpackages():
    sub: dict[str, set[str]] = {}
    for mod, deps in GRAPH.items():
        sub.setdefault(subpackage(mod), set()).update(
            subpackage(d) for d in deps if subpackage(d) != subpackage(mod)
        )
    assert find_cycle(sub) is None, " -> ".join(find_cycle(sub) or [])


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_imports_point_down_the_layers(module: str):
    src = subpackage(module)
    for dep in sorted(GRAPH[module]):
        dst = subpackage(dep)
        if dst == src:
            continue
        if src in READS_ONLY:
            assert dst in READS_ONLY[src], f"{module} imports {dep}: {src} reads the core only"
        elif dst in READ_BY:
            assert src in READ_BY[dst], f"{module} imports {dep}: only {READ_BY[dst]} may"
        elif src in STUDIES and dst in STUDIES and dst not in BUILDS_ON.get(src, ()):
            raise AssertionError(f"{module} imports {dep}: studies are independent")
        else:
            assert LAYERS[dst] <= LAYERS[src], f"{module} imports {dep}: up a layer"


def test_a_cycle_and_an_upward_import_are_detected():
    """The checks can fail: a made-up cycle is found."""
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
