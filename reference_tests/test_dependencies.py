"""What minipixel needs at run time: NumPy alone (CuPy, PyTorch and mpi4py are extras;
SciPy is for the tests' oracles only)."""
import ast
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def imported_modules(folder):
    """(file, top-level module) of every import statement under `folder`."""
    for base, _, names in os.walk(folder):
        for name in names:
            if name.endswith(".py"):
                path = os.path.join(base, name)
                with open(path, encoding="utf-8") as f:
                    tree = ast.parse(f.read(), path)
                for node in ast.walk(tree):
                    if isinstance(node, ast.Import):
                        yield from ((path, a.name.split(".")[0]) for a in node.names)
                    elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                        yield path, node.module.split(".")[0]


def test_the_package_never_imports_scipy():
    users = sorted({path for path, module in imported_modules(os.path.join(ROOT, "minipixel"))
                    if module == "scipy"})
    assert users == []


def test_scipy_is_a_test_dependency_only():
    tomllib = pytest.importorskip("tomllib")            # Python 3.11+
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        project = tomllib.load(f)["project"]
    assert [d for d in project["dependencies"] if d.startswith("scipy")] == []
    tests_use_it = any(module == "scipy" for _, module in
                       imported_modules(os.path.join(ROOT, "reference_tests")))
    assert tests_use_it == any(d.startswith("scipy")
                               for d in project["optional-dependencies"]["test"])
