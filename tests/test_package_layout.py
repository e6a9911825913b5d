"""Dependencies point one way: no import cycle between the package's sub-packages, and the named rules hold."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "asr_trainer"


def _unit(module: str) -> str:
    """The sub-package (``sync``, ``train``, ...) or top-level module (``errors``, ``rng``) ``module`` belongs to."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def _imports(path: Path) -> set[str]:
    """Every ``asr_trainer...`` module a file imports, at any depth (function-level imports included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("asr_trainer")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("asr_trainer"):
            found.add(node.module)
            if node.module == "asr_trainer":  # from asr_trainer import checkpoint
                found |= {f"asr_trainer.{a.name}" for a in node.names}
    return found


def dependency_graph() -> dict[str, set[str]]:
    """``{unit: units it imports}`` over the whole package, self-imports left out."""
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        module = ".".join(("asr_trainer",) + path.relative_to(PACKAGE).with_suffix("").parts)
        unit = _unit(module)
        graph.setdefault(unit, set()).update(u for u in map(_unit, _imports(path)) if u not in (unit, "asr_trainer"))
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle of ``graph`` as its nodes in order (first == last), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_find_cycle_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_no_import_cycle_between_sub_packages():
    graph = dependency_graph()
    assert {"sync", "train", "data", "checkpoint", "decode", "report"} <= set(graph)
    assert find_cycle(graph) is None, find_cycle(graph)


def test_the_dependency_rules_of_the_design():
    graph = dependency_graph()
    assert "train" not in graph["sync"]  # strategies know nothing of the trainer
    assert not graph["data"] & {"train", "sync", "decode", "report"}  # data is below the trainer
    assert graph["checkpoint"] <= {"errors"}  # checkpoint I/O is neutral
    assert not graph["decode"] & {"train"} and not graph["report"] & {"train"}
    users = {unit for unit, deps in graph.items() if "testing" in deps}
    assert users <= {"testing"}, users  # test-only code is not used by the package
