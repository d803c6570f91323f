"""CSV exports are safe to open in a spreadsheet: a text cell that would start a formula gets a leading apostrophe,
numbers (negative ones too) and other text are written as they are, and nested values become dotted columns."""
import csv
import io

from app.serve.tables import to_csv


def test_formula_cells_are_escaped_and_numbers_kept(tmp_path):
    table = [{"token": "=1+2", "p": -0.5, "gain": {"bits": -1.25}}, {"token": "+", "p": 0.25, "gain": {"bits": 2.0}},
             {"token": "-", "p": 1e-9, "gain": {"bits": 0.0}}, {"token": "@SUM(A1)", "p": 0.0, "gain": {"bits": 1.0}},
             {"token": "\tx", "p": 0.1, "gain": {"bits": 0.5}}, {"token": " the", "p": 0.3, "gain": {"bits": -3.0}}]
    rows = list(csv.DictReader(io.StringIO(to_csv(table))))
    assert [r["token"] for r in rows] == ["'=1+2", "'+", "'-", "'@SUM(A1)", "'\tx", " the"]
    assert [float(r["p"]) for r in rows] == [t["p"] for t in table]
    assert [float(r["gain.bits"]) for r in rows] == [t["gain"]["bits"] for t in table]
    to_csv(table, tmp_path / "t.csv")  # the CLI's --csv: the same text, written to the file
    assert (tmp_path / "t.csv").read_text() == to_csv(table)
