"""Load a script of demos/ as a module, for the tests that use its models."""
import importlib.util
import os

DEMOS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "demos")


def load_demo(name):
    """demos/<name>.py as a fresh module (e.g. load_demo("outside_models"))."""
    spec = importlib.util.spec_from_file_location(name, os.path.join(DEMOS, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
