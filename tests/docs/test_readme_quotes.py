"""Every figure the README quotes from assets/results/ equals the file's value, so that a retrained model or a new
measurement cannot leave stale text: tables copied between results markers equal their file, every interval in the
pipeline's cell formats appears in a results table, and the figures registered in tests/docs/quoted.py render from
their JSON file to text the README holds. No model is loaded."""
import fnmatch
import json
import re
import string

import pytest

from app.core import paths
from tests.docs.quoted import QUOTES
from tools import readme_results

README = readme_results.README
# app.make.pipeline's ppl_cell ("55.45 ± 0.24 [49.93, 60.99]", "56.94 [50.64, 63.26]") and ratio_cell
# ("-2.6% [-6.2, +1.2]"); the leftmost match wins, so a spread's interval is never read alone
INTERVALS = (re.compile(r"(?<![\d.])\d+\.\d\d(?: ± \d+\.\d\d)? \[\d+\.\d\d, \d+\.\d\d\]"),
             re.compile(r"[+-]\d+\.\d% \[[+-]\d+\.\d, [+-]\d+\.\d\]"))


FUNCTIONS = {"min": min, "max": max, "sum": sum, "minutes": lambda seconds: seconds / 60,
             "thousands": lambda number: round(number, -3), "change": lambda ratio: 100 * (ratio - 1),
             "fall": lambda ratio: 100 * (1 - ratio)}


class FromFile(string.Formatter):
    """Fields are paths into one JSON file, each followed by the functions of FUNCTIONS it goes through (see
    tests/docs/quoted.py)."""

    def __init__(self, data):
        self.data = data

    def get_field(self, field_name, args, kwargs):
        path, *functions = field_name.split("|")
        values = [self.data]
        for key in path.split("."):
            values = [child for value in values for child in children(value, key)]
        if not any(c in path for c in "*?["):
            if len(values) != 1:
                raise KeyError(f"{path}: {len(values)} values")
            values = values[0]
        for name in functions:
            values = FUNCTIONS[name](values)
        return values, field_name


def children(value, key: str) -> list:
    """value[key]: an index of a list (-1 the last, * every item), or the keys of a dict that match the pattern."""
    if isinstance(value, list):
        return value if key == "*" else [value[int(key)]]
    return [value[key]] if key in value else [v for k, v in value.items() if fnmatch.fnmatchcase(k, key)]


def one_line(text: str) -> str:
    return " ".join(text.split())


def test_results_blocks_equal_their_files():
    assert readme_results.stale(README.read_text()) == []


def test_every_interval_in_the_readme_is_in_a_results_table():
    tables = "\n".join(path.read_text() for path in sorted(paths.RESULTS.rglob("*.md")))
    missing = [f"README line {number}: {match}" for number, line in enumerate(README.read_text().splitlines(), 1)
               for pattern in INTERVALS for match in pattern.findall(line) if match not in tables]
    assert missing == [], "intervals in no assets/results/**/*.md file:\n" + "\n".join(missing)


@pytest.mark.parametrize("name", QUOTES)
def test_quoted_figures_equal_their_result_file(name):
    readme = one_line(README.read_text())
    formatter = FromFile(json.loads((paths.RESULTS / name).read_text()))
    missing = [text for text in (one_line(formatter.format(t)) for t in QUOTES[name]) if text not in readme]
    assert missing == [], f"the README does not say what {name} holds:\n" + "\n".join(missing)
