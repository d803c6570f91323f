"""A result's table as CSV, for the page's exports and the CLI's --csv alike: nested values flattened to dotted
columns, and a text cell that a spreadsheet would run as a formula (it begins with =, +, -, @, a tab or a carriage
return: a token such as "=" or "-" is common) written with a leading apostrophe, as OWASP advises against formula
injection. Numbers are left as they are."""
import pandas as pd

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value):
    return f"'{value}" if isinstance(value, str) and value.startswith(FORMULA_STARTS) else value


def to_csv(table: list[dict], path=None) -> str | None:
    """The CSV text of table (one row a dict), or written to path when one is given."""
    frame = pd.json_normalize(table, sep=".")
    return frame.apply(lambda column: column.map(safe_cell)).to_csv(path, index=False)
