"""The input contract of every public entry point (the page, the API and the CLI): what each argument may be, checked
in this one place, and every refusal an InputError whose sentence says what is allowed.

- Text is a str of valid Unicode. A lone UTF-16 surrogate (JSON can carry "\\ud800"; no UTF-8 text can) is refused,
  not replaced, so the caller learns that its text was damaged. Control characters other than tab, newline and
  carriage return are removed: no model was trained on them and some tokenizers stop at NUL.
- Numbers are int or float, finite and inside LIMITS; booleans are not numbers, and strings are not converted.
  A whole number may come as 3 or 3.0, never 3.5.
- Flags are True or False (None: the default); names are one of the offered choices.
"""
import math
import numbers
import re

MAX_CHARS = 4000  # longer text is refused: the embedded models read 256 tokens, and the CPU is shared
LIMITS = {"alpha": (0.0, 1.0), "knn_lambda": (0.0, 1.0), "k": (1, 2048), "temperature": (0.01, 10000.0),
          "top_n": (1, 50), "max_new_tokens": (1, 64), "seed": (0, 2**31 - 1)}
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
SURROGATE = re.compile(r"[\ud800-\udfff]")


class InputError(ValueError):
    """A problem with what the user asked for; its message is shown as is."""


def kind(value) -> str:
    """How a refusal names what it got: the value when short, else its type."""
    try:
        shown = repr(value)
    except ValueError:  # an int of more than 4300 digits
        return f"a {type(value).__name__} too long to show"
    return shown if len(shown) <= 40 else (f"a {type(value).__name__} of "
                                           f"{len(value) if hasattr(value, '__len__') else '?'} items")


def text(value, what: str = "the text", limit: int | None = MAX_CHARS,
         empty: str | None = "type a prompt or a passage") -> str:
    """value as clean text (control characters removed), or an InputError: not a string, damaged, too long, or empty
    (empty: what to do about that; None when empty text is allowed). None is empty text."""
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise InputError(f"{what} must be a string of text, not {kind(value)}")
    bad = SURROGATE.search(value)
    if bad:
        raise InputError(f"{what} holds a lone surrogate (U+{ord(bad.group()):04X} at character {bad.start()}), "
                         "which is not valid Unicode: send UTF-8 text")
    if limit is not None and len(value) > limit:
        raise InputError(f"{what} has {len(value)} characters; the app takes at most {limit}")
    value = CONTROL.sub("", value)
    if empty is not None and not value.strip():
        raise InputError(f"{what} is empty: {empty}")
    return value


def check(name: str, value, cast=float, limits: tuple | None = None, default=None):
    """value (default when None and there is one) as a number inside limits (default: LIMITS[name]), an int when cast
    is int; or an InputError that says what is allowed."""
    low, high = limits or LIMITS[name]
    value = default if value is None and default is not None else value
    allowed = f"{name} must be a {'whole number' if cast is int else 'number'} from {low} to {high}"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InputError(f"{allowed}, not {kind(value)}")
    if not isinstance(value, numbers.Integral):  # a huge int stays exact; a float may be infinite or NaN
        value = float(value)
        if not math.isfinite(value):
            raise InputError(f"{allowed}, not {value}")
        if cast is int and not value.is_integer():
            raise InputError(f"{allowed}, not {value}")
    if not low <= value <= high:
        raise InputError(f"{allowed}, not {value if abs(value) < 1e15 else 'a number that large'}")
    return int(value) if cast is int else float(value)


def flag(name: str, value, default: bool = False) -> bool:
    if value is None:
        return default
    if not isinstance(value, bool):
        raise InputError(f"{name} must be true or false, not {kind(value)}")
    return value


def choice(what: str, value, choices, listed=None) -> str:
    """value when it is one of choices (None or "": the first); listed: the names a refusal offers (default:
    choices)."""
    if value is None or value == "":
        return next(iter(choices))
    if not isinstance(value, str) or value not in choices:
        raise InputError(f"unknown {what} {kind(value)}; choose one of "
                         f"{', '.join(listed if listed is not None else choices)}")
    return value
