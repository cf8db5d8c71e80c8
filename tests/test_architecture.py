"""The layout's rules: arrows point one way, the runtime stands alone, the code stays simple.

Every ``import`` of the package is read from the source (those inside functions too) and
resolved to a module; the graph must have no cycle, and ``runtime`` may import nothing of
the package but itself and ``errors``.
"""

import ast
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import ROOT

PACKAGE = ROOT / "clothes_extractor"
# numpy, Pillow, onnxruntime; optional plugins of the last two (TensorRT for RTX, nvImageCodec, pillow-heif)
RUNTIME_THIRD_PARTY = {"numpy", "PIL", "onnxruntime", "onnxruntime_ep_nv_tensorrt_rtx", "nvidia", "pillow_heif"}
MAX_LINES = 400


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in PACKAGE.rglob("*.py")}


def imports_of(path: Path, known: dict[str, Path]) -> tuple[set[str], set[str]]:
    """(package modules, top-level outside names) that ``path`` imports, anywhere in it."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    inside, outside = set(), set()
    for node in ast.walk(ast.parse(path.read_text())):
        targets = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{base}.{node.module}" if node.module else base
            else:
                base = node.module
            # "from .x import y": y may be a module of x, or a name in x
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        for target in targets:
            if target.split(".")[0] == "clothes_extractor":
                while target not in known and "." in target:
                    target = target.rpartition(".")[0]
                inside.add(target)
            else:
                outside.add(target.split(".")[0])
    inside.discard(name)
    return inside, outside


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports_of(path, known)[0] for name, path in known.items()}


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle():
    cycle = find_cycle(graph())
    assert cycle is None, " -> ".join(cycle)


def test_the_runtime_imports_only_itself_errors_and_its_three_libraries():
    known = modules()
    for name, path in known.items():
        if not name.startswith("clothes_extractor.runtime"):
            continue
        inside, outside = imports_of(path, known)
        foreign = {
            m for m in inside if not m.startswith("clothes_extractor.runtime") and m != "clothes_extractor.errors"
        }
        assert not foreign, f"{name} imports {sorted(foreign)}"
        import sys

        third = {m for m in outside if m not in sys.stdlib_module_names}
        assert third <= RUNTIME_THIRD_PARTY, f"{name} imports {sorted(third - RUNTIME_THIRD_PARTY)}"


def test_models_are_data_and_torch_stays_in_train_export_and_bench():
    known = modules()
    models, _ = imports_of(known["clothes_extractor.models"], known)
    assert not {m for m in models if m.startswith("clothes_extractor.runtime")}
    for name, path in known.items():
        if name.split(".")[1:2] in (["train"], ["export"], ["bench"]):
            continue
        _, outside = imports_of(path, known)
        assert not outside & {"torch", "onnx"}, f"{name} imports torch or onnx"


def test_modules_stay_small_enough_to_read():
    for name, path in modules().items():
        text = path.read_text()
        lines = text.count("\n")
        docstring = ast.get_docstring(ast.parse(text)) or ""
        assert lines <= MAX_LINES or "long because" in docstring, f"{name}: {lines} lines and no reason given"


@pytest.mark.skipif(
    shutil.which("ruff") is None and not (Path(ROOT) / ".venv" / "bin" / "ruff").exists(),
    reason="ruff is not installed",
)
def test_ruff_passes_with_complexity_checks():
    ruff = shutil.which("ruff") or str(Path(ROOT) / ".venv" / "bin" / "ruff")
    done = subprocess.run(
        [ruff, "check", "clothes_extractor", "tests", "benchmarks"], cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout[-3000:]
    assert "C90" in (ROOT / "pyproject.toml").read_text()
