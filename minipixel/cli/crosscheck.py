"""minipixel reference | compare | audit: the cross-check toolkit (minipixel.crosscheck).

These subcommands hand their arguments to minipixel.crosscheck, which needs
its extra dependencies: pip install -e ".[crosscheck]". The size flags of
`reference` are checked here first (one-line error, exit 2); `compare` and
`audit` check their own flags (crosscheck/argtypes.py).
"""
import importlib

COMMANDS = {
    "reference": ("write reference outputs of this implementation for cross-checking",
                  ("reference_main",), "reference"),
    "compare": ("compare this implementation with an independent one", ("compare_main",),
                "compare"),
    "audit": ("audit any images -> logits function, torch module or checkpoint: leaks and "
              "their sizes, batch coupling, coverage, the paper's fields",
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


REFERENCE_SIZES = {"--h": 1, "--layers": 1, "--batch": 1, "--height": 1, "--width": 1,
                   "--out-hidden": 1, "--levels": 2}


def check_reference_flags(argv):
    """One-line error text for a `reference` size flag out of range, or None."""
    from ..argtypes import OneLineParser, integer
    ap = OneLineParser(prog="minipixel reference", add_help=False)
    for flag, low in REFERENCE_SIZES.items():
        ap.add_argument(flag, type=integer(low))
    ap.parse_known_args(argv)                  # exits 2 with a one-line error


def run(name, argv):
    if name == "reference":
        try:
            check_reference_flags(argv)
        except SystemExit as e:
            return int(e.code or 0)
    try:
        fn = entry_point(name)
    except ImportError as e:
        print(f"minipixel {name}: the cross-check toolkit is not available ({e}); "
              f"install it with: pip install -e \".[crosscheck]\"")
        return 2
    rc = fn(argv)
    return 0 if rc is None else int(rc)
