"""Write cupy_names.py: the public names of the installed CuPy, for the stand-in.

    python reference_tests/make_cupy_names.py      # needs CuPy importable; no GPU needed

The stand-in (cupy_standin.py) exposes exactly these names, so code that calls
something CuPy lacks fails on every machine, not only on a user's GPU. CuPy
imports without a GPU, so this runs anywhere `pip install cupy-cuda12x` works.
test_cupy_standin.py checks the committed list against the installed CuPy when
one is importable; rerun this script when that test says the list is stale
(a new CuPy release), and commit the result.
"""
import os
import pprint
import types


def kind(obj):
    import cupy
    if isinstance(obj, cupy.ufunc):
        return "ufunc"
    if isinstance(obj, types.ModuleType):
        return "module"
    if isinstance(obj, type):
        return "type"
    if callable(obj):
        return "function"
    return "value"


def public(obj):
    return sorted(n for n in dir(obj) if not n.startswith("_"))


def names():
    import cupy
    return {"CUPY_VERSION": cupy.__version__,
            "MODULE": {k: [n for n in public(cupy) if kind(getattr(cupy, n)) == k]
                       for k in ("ufunc", "function", "type", "module", "value")},
            "NDARRAY": public(cupy.ndarray),
            "UFUNC": public(cupy.ufunc),
            "CUDA": public(cupy.cuda)}


def render(table):
    lines = ['"""Public names of CuPy, written by make_cupy_names.py; do not edit by hand.',
             "",
             "MODULE: the names of the cupy module by kind; NDARRAY: cupy.ndarray's public",
             'attributes; UFUNC: a cupy ufunc\'s; CUDA: the cupy.cuda module\'s."""', ""]
    for key, value in table.items():
        lines.append(f"{key} = {pprint.pformat(value, width=99 - len(key) - 3, compact=True)}")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cupy_names.py")
    with open(path, "w") as f:
        f.write(render(names()))
    print(f"wrote {path}")
