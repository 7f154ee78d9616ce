"""The layer order of DESIGN.md holds: import-linter's contracts in pyproject.toml (layers, the CLI
alone imports cli.output, no cycles between siblings), with no ignored imports; and the project's
own modules are imported at the top of files, where a reader and a type checker see them."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

from importlinter.cli import lint_imports

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "kernel_lifecycle"


def test_the_import_contracts_hold_with_nothing_ignored(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["importlinter"]
    types = {c["type"] for c in config["contracts"]}
    assert {"layers", "forbidden", "acyclic_siblings"} <= types
    assert not any(c.get("ignore_imports") for c in config["contracts"]), "a contract ignores imports"
    monkeypatch.chdir(ROOT)
    assert lint_imports(no_cache=True, no_logo=True) == 0, "lint-imports found a broken contract (run `lint-imports`)"


def _function_level_project_imports(path: Path) -> list[str]:
    found = []
    tree = ast.parse(path.read_text(encoding="utf-8"))
    lines = path.read_text(encoding="utf-8").splitlines()
    for func in ast.walk(tree):
        if not isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for node in ast.walk(func):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            if any(n == "kernel_lifecycle" or n.startswith("kernel_lifecycle.") for n in names):
                line = lines[node.lineno - 1]
                above = lines[node.lineno - 2] if node.lineno > 1 else ""
                if "lazy:" not in line and "lazy:" not in above:  # a kept lazy import says why
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


def test_project_modules_are_imported_at_the_top() -> None:
    """A project import inside a function hides the graph; where one must stay (a module MLflow
    copies and runs standalone, a runtime cycle broken on purpose) it carries a `lazy:` comment.

    The CLI is the exception by design: each command imports what it runs, so `--help` or
    `kernels list` start in ~0.6 s instead of the ~6 s that importing the jobs (torch,
    transformers) costs; lint-imports still sees those imports, and the CLI is the top layer."""
    found = [hit for path in sorted(PACKAGE.rglob("*.py")) if "cli" not in path.relative_to(PACKAGE).parts[:1]
             for hit in _function_level_project_imports(path)]
    assert not found, f"{len(found)} project imports inside functions: {found[:20]}"
