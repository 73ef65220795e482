"""minipixel reference | compare | audit: the cross-check toolkit (minipixel.crosscheck).

These subcommands hand their arguments to minipixel.crosscheck, which needs
its extra dependencies: pip install -e ".[crosscheck]".
"""
import importlib

COMMANDS = {
    "reference": ("write reference outputs of this implementation for cross-checking",
                  ("reference_main",), "reference"),
    "compare": ("compare this implementation with an independent one", ("compare_main",),
                "compare"),
    "audit": ("audit a model or checkpoint (causality, receptive fields, numbers)",
              ("audit_main",), "audit"),
}


def add_parsers(sub):
    for name, (help_text, _, _) in COMMANDS.items():
        sub.add_parser(name, help=f"{help_text} (minipixel.crosscheck)", add_help=False)


def entry_point(name):
    """The crosscheck function for a subcommand, or raise ImportError saying why."""
    _, attrs, module = COMMANDS[name]
    pkg = importlib.import_module("..crosscheck", __package__)
    for attr in attrs:
        if hasattr(pkg, attr):
            return getattr(pkg, attr)
    mod = importlib.import_module(f"..crosscheck.{module}", __package__)
    for attr in attrs + ("main",):
        if hasattr(mod, attr):
            return getattr(mod, attr)
    raise ImportError(f"minipixel.crosscheck offers no entry point for {name!r}")


def run(name, argv):
    try:
        fn = entry_point(name)
    except ImportError as e:
        print(f"minipixel {name}: the cross-check toolkit is not available ({e}); "
              f"install it with: pip install -e \".[crosscheck]\"")
        return 2
    rc = fn(argv)
    return 0 if rc is None else int(rc)
