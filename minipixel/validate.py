"""The two value checks every part of minipixel uses: a whole number and a finite number.

    is_whole(v, low=0, high=None)       v is an integer (not a bool) in low..high
    whole(name, v, low=0, high=None)    v as an int, or ValueError "name must be an integer
                                        >= low, got v"
    is_finite(v, low=None, above=False) v is a real number (not a bool), finite, >= low
                                        (> low when `above`)
    finite(name, v, low=None, above=False)   v as a float, or ValueError naming it

NumPy integers and floats count as numbers; bools, strings ("nan", "3") and None never do.
The command-line flag types (argtypes.py) parse text and then apply these same rules and
messages, so a flag, a checkpoint field and a function argument are refused alike.
"""
import math
import numbers

__all__ = ["is_whole", "whole", "is_finite", "finite", "whole_span", "finite_span"]


def is_whole(v, low=0, high=None):
    """True when v is an integer (not a bool) with low <= v (<= high when given)."""
    if isinstance(v, bool) or not isinstance(v, numbers.Integral):
        return False
    return (low is None or v >= low) and (high is None or v <= high)


def whole_span(low=0, high=None):
    """'an integer >= 0', 'an integer in 1..3': what is_whole(v, low, high) accepts."""
    if high is None:
        return "an integer" if low is None else f"an integer >= {low}"
    return f"an integer in {low}..{high}"


def whole(name, v, low=0, high=None):
    """v as an int; ValueError 'name must be an integer >= low, got v' otherwise."""
    if not is_whole(v, low, high):
        raise ValueError(f"{name} must be {whole_span(low, high)}, got {v!r}")
    return int(v)


def is_finite(v, low=None, above=False):
    """True when v is a finite real number (not a bool) >= low (> low when `above`)."""
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        return False
    try:
        if not math.isfinite(v):
            return False
    except (TypeError, OverflowError):
        return False
    return low is None or v > low or (v == low and not above)


def finite_span(low=None, above=False):
    """'a finite number', 'a finite number > 0': what is_finite(v, low, above) accepts."""
    if low is None:
        return "a finite number"
    return f"a finite number {'>' if above else '>='} {low:g}"


def finite(name, v, low=None, above=False):
    """v as a float; ValueError 'name must be a finite number >= low, got v' otherwise."""
    if not is_finite(v, low, above):
        raise ValueError(f"{name} must be {finite_span(low, above)}, got {v!r}")
    return float(v)
