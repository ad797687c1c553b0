"""The layout's promises, read from the code: no import cycles in tasks/, Prefect only in the
orchestration layer and flows/, and a config that validates without loading TensorFlow."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from tasks import caching

REPO_ROOT = caching.PACKAGE_DIR.parent
ORCHESTRATION = "tasks.orchestration"


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _import_graph(folder: str) -> dict[str, set[str]]:
    """Every module under `folder` and the modules of this repo it imports (anywhere in the file)."""
    modules = {_module_name(path): path for path in sorted((REPO_ROOT / folder).rglob("*.py"))}
    graph = {}
    for name, path in modules.items():
        imported = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module)
                imported.update(f"{node.module}.{alias.name}" for alias in node.names)
        graph[name] = {other for other in imported if other in modules and other != name}
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    visiting, done = [], set()

    def visit(node: str) -> list[str] | None:
        if node in visiting:
            return [*visiting[visiting.index(node):], node]
        if node in done:
            return None
        visiting.append(node)
        for other in sorted(graph[node]):
            found = visit(other)
            if found:
                return found
        visiting.pop()
        done.add(node)
        return None

    return next((found for node in graph if (found := visit(node))), None)


def test_the_cycle_finder_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle_in_tasks():
    assert _cycle(_import_graph("tasks")) is None


def test_only_the_orchestration_layer_and_flows_import_prefect():
    for folder in ("tasks", "tools"):
        for path in sorted((REPO_ROOT / folder).rglob("*.py")):
            name = _module_name(path)
            if name.startswith(ORCHESTRATION):
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                modules = ([alias.name for alias in node.names] if isinstance(node, ast.Import)
                           else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
                assert not any(module.split(".")[0] == "prefect" for module in modules), name


def test_plain_modules_never_import_the_orchestration_layer():
    for name, imported in _import_graph("tasks").items():
        if not name.startswith(ORCHESTRATION):
            assert not any(other.startswith(ORCHESTRATION) for other in imported), name


def test_the_config_validates_without_loading_tensorflow():
    probe = ("import sys; from tasks.config import PipelineConfig; "
             "PipelineConfig.model_validate({'model': {'variants': ['embedding']}}); "
             "print(sorted(name for name in ('keras', 'tensorflow', 'prefect') if name in sys.modules))")
    completed = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                               cwd=REPO_ROOT)
    assert completed.stdout.strip() == "[]"


def test_the_pipelines_process_loads_no_heavy_library_before_its_server_starts():
    """TensorFlow loads only in training processes, Prefect's server package only in the server's
    process; scikit-learn, SciPy and matplotlib load while the server starts (or when a stage needs them)."""
    heavy = ("keras", "tensorflow", "sklearn", "scipy", "matplotlib", "prefect.server.api.server")
    probe = f"import sys, flows.imdb_pipeline; print(sorted(name for name in {heavy!r} if name in sys.modules))"
    completed = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                               cwd=REPO_ROOT)
    assert completed.stdout.strip() == "[]"
