"""The layout's promises, read from the code: tasks/ ordered by domain, no import cycles, Prefect only
in each domain's `stages` module, in `tasks.runtime` and in flows/, and a config that validates
without loading TensorFlow."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from tasks.storage import cache_keys

REPO_ROOT = cache_keys.PACKAGE_DIR.parent
TOP_LEVEL_MODULES = {"__init__.py", "config.py", "errors.py"}
DOMAINS = {"data", "training", "registry", "scoring", "reporting", "storage", "runtime"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules(folder: str) -> dict[str, Path]:
    return {_module_name(path): path for path in sorted((REPO_ROOT / folder).rglob("*.py"))}


def _import_graph(folder: str) -> dict[str, set[str]]:
    """Every module under `folder` and the modules of this repo it imports (anywhere in the file)."""
    modules = _modules(folder)
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
            return [*visiting[visiting.index(node) :], node]
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


def _may_import_prefect(name: str) -> bool:
    """A domain's Prefect wrappers (`tasks.<domain>.stages`) and the runtime's plumbing."""
    return name.endswith(".stages") or name.startswith("tasks.runtime")


def _imports_prefect(path: Path) -> bool:
    for node in ast.walk(ast.parse(path.read_text())):
        modules = (
            [alias.name for alias in node.names]
            if isinstance(node, ast.Import)
            else [node.module or ""]
            if isinstance(node, ast.ImportFrom)
            else []
        )
        if any(module.split(".")[0] == "prefect" for module in modules):
            return True
    return False


def test_tasks_holds_config_errors_and_one_documented_folder_per_domain():
    tasks_dir = REPO_ROOT / "tasks"
    assert {path.name for path in tasks_dir.glob("*.py")} <= TOP_LEVEL_MODULES
    folders = {path.name for path in tasks_dir.iterdir() if path.is_dir() and path.name != "__pycache__"}
    assert folders == DOMAINS
    for domain in DOMAINS:
        assert ast.get_docstring(ast.parse((tasks_dir / domain / "__init__.py").read_text())), domain


def test_prefect_is_imported_only_by_stages_and_the_runtime():
    for folder in ("tasks", "tools"):
        for name, path in _modules(folder).items():
            assert _may_import_prefect(name) or not _imports_prefect(path), name


def test_plain_modules_never_reach_prefect_through_another_module():
    graph = _import_graph("tasks")
    prefect_aware = {name for name, path in _modules("tasks").items() if _imports_prefect(path)}
    for name in graph:
        if _may_import_prefect(name):
            continue
        reached, pending = set(), [name]
        while pending:
            for other in graph[pending.pop()] - reached:
                reached.add(other)
                pending.append(other)
        assert not reached & prefect_aware, f"{name} reaches {sorted(reached & prefect_aware)}"


def test_the_config_validates_without_loading_tensorflow():
    probe = (
        "import sys; from tasks.config import PipelineConfig; "
        "PipelineConfig.model_validate({'model': {'variants': ['embedding']}}); "
        "print(sorted(name for name in ('keras', 'tensorflow', 'prefect') if name in sys.modules))"
    )
    completed = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=REPO_ROOT)
    assert completed.stdout.strip() == "[]"


def test_the_pipelines_process_loads_no_heavy_library_before_its_server_starts():
    """TensorFlow loads only in training processes, Prefect's server package only in the server's
    process; scikit-learn, SciPy and matplotlib load while the server starts (or when a stage needs them)."""
    heavy = ("keras", "tensorflow", "sklearn", "scipy", "matplotlib", "prefect.server.api.server")
    probe = f"import sys, flows.imdb_pipeline; print(sorted(name for name in {heavy!r} if name in sys.modules))"
    completed = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=REPO_ROOT)
    assert completed.stdout.strip() == "[]"
