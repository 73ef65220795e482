"""Command-line argument checking shared by every `minipixel` command (the CLI's and the
cross-check toolkit's): one-line errors with exit status 2, and argparse `type`s that
refuse a bad value before the command starts, saying what was expected and what came."""
import argparse

from .validate import finite_span, is_finite, is_whole, whole_span

__all__ = ["OneLineParser", "integer", "number", "fraction", "POSITIVE", "NON_NEGATIVE", "SEED",
           "MAX_SEED"]

MAX_SEED = 2 ** 63 - 1


class OneLineParser(argparse.ArgumentParser):
    """argparse, with its usage errors on one line (no usage block), exit status 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def flag_type(convert, kind, ok, span, name):
    """An argparse type: text -> convert(text) (else "expected {kind}"), kept if ok(value)
    (else "expected {span}")."""
    def parse(text):
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {kind}, got {text!r}") from None
        if not ok(value):
            raise argparse.ArgumentTypeError(f"expected {span}, got {text}")
        return value
    parse.__name__ = name
    return parse


def integer(low, high=None):
    """An argparse type: an integer in low..high (high None: no upper bound)."""
    return flag_type(int, "an integer", lambda v: is_whole(v, low, high),
                     whole_span(low, high), "integer")


def number(low, *, above=False):
    """An argparse type: a finite float >= low (> low if `above`)."""
    return flag_type(float, "a number", lambda v: is_finite(v, low, above),
                     finite_span(low, above), "number")


def fraction(text):
    """An argparse type: a number in [0, 1]."""
    value = number(0)(text)
    if value > 1:
        raise argparse.ArgumentTypeError(f"expected a fraction in [0, 1], got {text}")
    return value


POSITIVE = integer(1)
NON_NEGATIVE = integer(0)
SEED = integer(0, MAX_SEED)
