"""The package's module graph: no import cycles, also through imports inside functions, no module over 500 lines,
and the layers below the stages (settings, the run log, the crop layer, decision weights) load neither TensorFlow
nor Keras."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import REPO

pytestmark = pytest.mark.unit  # no TensorFlow: see conftest.py

PACKAGE = REPO / "maskdetect"
# Every module of the package by its dotted name below maskdetect ("face.detector"); a subpackage's __init__ is
# the subpackage's name ("face").
MODULES = {".".join(path.relative_to(PACKAGE).with_suffix("").parts[:-1] if path.stem == "__init__"
                    else path.relative_to(PACKAGE).with_suffix("").parts)
           for path in PACKAGE.rglob("*.py")} - {""}
# The layers below the stages: what a CLI, the sweep driver or the report may import without TensorFlow.
LIGHT = ("maskdetect.settings", "maskdetect.runlog", "maskdetect.facecrops", "maskdetect.decisions")
MAX_LINES = 500


def _module(dotted: str) -> str | None:
    """The package's module a dotted name below maskdetect names: the longest prefix that is a module."""
    parts = dotted.split(".")
    for end in range(len(parts), 0, -1):
        name = ".".join(parts[:end])
        if name in MODULES:
            return name
    return None


def imported_modules(path: Path) -> set[str]:
    """The package's modules that ``path`` imports anywhere: at the top, in functions, under ``if``."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "maskdetect" and len(parts) > 1:
                    found.add(_module(".".join(parts[1:])))
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # a relative import: from . import X, from .X import Y
                base = (node.module or "").split(".")[0]
                found.update([base] if base else [alias.name for alias in node.names])
                continue
            parts = (node.module or "").split(".")
            if parts[0] != "maskdetect":
                continue
            below = ".".join(parts[1:])
            # from maskdetect[.sub] import X: X is a module of the package, or a name of the (sub)package
            for alias in node.names:
                name = f"{below}.{alias.name}" if below else alias.name
                found.add(name if name in MODULES else _module(below) if below else alias.name)
    return {name for name in found if name} & MODULES


def module_path(name: str) -> Path:
    path = PACKAGE.joinpath(*name.split("."))
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def module_graph() -> dict[str, set[str]]:
    return {name: imported_modules(module_path(name)) - {name} for name in sorted(MODULES)}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a path that ends where it starts, or None."""
    state: dict[str, str] = {}  # "open" while on the path being searched, "done" after
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == "open":
                return [*path[path.index(target):], target]
            if target not in state:
                cycle = visit(target)
                if cycle:
                    return cycle
        path.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def test_the_graph_reader_sees_imports_at_any_depth(tmp_path):
    source = tmp_path / "sample.py"
    source.write_text(
        "import maskdetect.records\n"
        "from maskdetect import __version__, images\n"
        "from maskdetect.runtime import run_cli\n"
        "def later():\n"
        "    from maskdetect import train\n"
        "    if True:\n"
        "        import maskdetect.sweep as planner\n"
        "class Inside:\n"
        "    def method(self):\n"
        "        from maskdetect.faces import CropSettings\n")
    assert imported_modules(source) == {"records", "images", "runtime", "train", "sweep", "faces"}
    source.write_text(
        "from maskdetect.face import FaceDetector, groups\n"
        "import maskdetect.face.sources.ssd\n"
        "from maskdetect.face.boxes import iou\n")
    assert imported_modules(source) == {"face", "face.groups", "face.sources.ssd", "face.boxes"}
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_the_module_graph_has_no_cycle():
    graph = module_graph()
    assert {"settings", "runlog", "facecrops", "artifact", "trials", "face", "face.detector", "face.sources.ssd"} \
        <= set(graph)
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_shared_facts_sit_below_the_stages():
    graph = module_graph()
    # The layers import no stage; the readers of shared facts import the layer, not the stage that writes it.
    assert graph["settings"] == set()
    assert graph["runlog"] <= {"records", "settings"}
    assert graph["facecrops"] <= {"records", "images"}
    assert graph["decisions"] <= {"classes"}
    # models: the layers a saved classifier uses (Mirror) must be registered before it loads
    assert graph["artifact"] <= {"decisions", "facecrops", "runtime", "models"}
    assert graph["models"] <= {"settings"}
    for reader in ("review", "data", "annotations"):
        assert "faces" not in graph[reader], f"{reader} imports the face stage"
    assert not graph["models"] & {"train", "sweep"}
    assert not graph["detect"] & {"sweep", "trials", "train"}
    for name in (name for name in graph if name == "inference" or name.startswith("inference.")):
        assert not graph[name] & {"sweep", "trials", "train"}, name
    for reader in ("report", "report_inputs"):
        assert not graph[reader] & {"sweep", "trials", "train", "review", "faces", "face", "inference"}, reader
    assert not graph["data"] & {"faces", "train"}
    assert not graph["trials"] & {"sweep"}
    # the face stage depends on no stage that uses it: inference and the cropping stage import it, not the reverse
    face_stage = {name for name in graph if name == "face" or name.startswith("face.")}
    for name in face_stage:
        assert not graph[name] & {"faces", "detect", "inference", "train", "sweep", "trials", "review", "report"}, name
        assert not any(target.startswith("inference.") for target in graph[name]), name
    # the keep/veto decision and the fusion load no model, so benchmarks replay them without networks
    assert graph["face.decision"] <= {"face.boxes", "face.settings", "face.proposals"}
    assert graph["face.fusion"] <= {"face.proposals"}


def test_no_module_is_over_500_lines():
    long = {name: lines for name in MODULES
            if (lines := len(module_path(name).read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: {long}"


def test_the_layers_below_the_stages_load_no_tensorflow():
    code = ("import importlib, json, sys\n"
            f"for name in {list(LIGHT)!r}:\n"
            "    importlib.import_module(name)\n"
            "loaded = [name for name in sys.modules if name.split('.')[0] in ('tensorflow', 'keras')]\n"
            "print(json.dumps(sorted(loaded)))\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []
