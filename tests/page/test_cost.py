"""The cost of the memory per token: crossovers on a hand-made table, the figure, this store measured now, and the
benchmark end to end on the tiny engine (bounded by its budget)."""
import math

import gradio as gr
import numpy as np
import pytest
import torch

from app.core import datastore, paths
from app.core.files import read_json
from app.core.settings import Settings
from app.core.tokens import block_entries
from app.serve import cost, plots
from app.serve.ui import cost_tab
from tools import benchmark_cost

BASE_MS, MEMDEC_MS = 10.0, 15.0  # so 2x base + MemDec is 30 ms per token and 10x is 150 ms


def made_results() -> dict:
    measured = {"exact": [(1e4, 20), (1e5, 60), (1e6, 600)], "ivfpq": [(1e4, 16), (1e5, 17), (1e6, 19)],
                "hnsw": [(1e4, 35), (1e5, 36)]}
    rows = [{"kind": kind, "entries": int(n), "knn_ms": ms, "memdec_ms": MEMDEC_MS, "ratio_knn": ms / BASE_MS,
             "search_ms": ms - 12, "recall_at_k": 1.0, "memory_bytes": int(n) * 1000}
            for kind, points in measured.items() for n, ms in points]
    rows.append({"kind": "hnsw", "entries": 1_000_000, "skipped": "over budget"})
    return {"steps": {"base_ms": BASE_MS, "memdec_ms": MEMDEC_MS}, "rows": rows}


def test_crossovers_interpolate_on_log_axes_and_never_extrapolate():
    found = cost.crossovers(made_results())
    # 20 -> 60 ms over 1e4 -> 1e5 entries is a power law: it reaches 30 ms at 1e4 * 1.5 ** (ln 10 / ln 3)
    assert found["exact"]["2"]["entries"] == round(1e4 * 1.5 ** (math.log(10) / math.log(3))) == 23_392
    assert found["exact"]["2"]["between"] == [10_000, 100_000]
    assert found["exact"]["10"]["entries"] == 250_000  # 60 -> 600 ms is proportional to the entries: 150 ms at 2.5e5
    assert found["ivfpq"]["2"] == {"entries": None, "text": "not reached up to 1,000,000 entries"}
    assert found["hnsw"]["2"]["entries"] is None and "already at the smallest" in found["hnsw"]["2"]["text"]
    assert found["hnsw"]["10"]["text"] == "not reached up to 100,000 entries"  # the skipped 1e6 point is no point


def test_cost_curves_have_each_line_and_log_axes():
    current = {"entries": 5000, "ratio_knn": 2.5, "index": "IndexFlatL2", "search_ms": 3.0}
    fig = plots.cost_curves(made_results(), current)
    names = [trace.name for trace in fig.data]
    assert names == ["base", "base + MemDec (1.50x)", "2x base + MemDec", "10x base + MemDec",
                     "base + kNN-LM, exact search", "base + kNN-LM, IVF-PQ", "base + kNN-LM, HNSW",
                     "this store (measured now)"]
    assert fig.layout.xaxis.type == fig.layout.yaxis.type == "log" and fig.layout.height > 0
    guides = {trace.name: trace.y[0] for trace in fig.data[2:4]}
    assert guides == {"2x base + MemDec": 3.0, "10x base + MemDec": 15.0}
    assert list(fig.data[4].y) == [2.0, 6.0, 60.0]
    assert list(fig.data[1].x) == [5000, 1_000_000]  # the decoder's line spans every point, this store's included
    only_current = plots.cost_curves(None, {**current, "base_ms": 2.0, "memdec_ms": 3.0})
    assert [t.name for t in only_current.data][-1] == "this store (measured now)"


def test_the_committed_results_read_as_a_visitor_needs_them():
    """The benchmark's bookkeeping (its time budget, the version of its synthetic keys) stays in the file; the axes
    label powers of ten (entries) and 1, 2, 5 per decade (the ratio), not every minor tick."""
    results = read_json(paths.ROOT / "assets" / "results" / "cost.json")
    text = cost_tab.summary_text(results)
    assert "budget" not in text and "(v1)" not in text and "spread" not in text
    skipped = [row for row in results["rows"] if "skipped" in row]
    assert text.count("too large to measure here") == len(skipped) > 0
    fig = plots.cost_curves(results)
    assert (fig.layout.xaxis.dtick, fig.layout.yaxis.dtick) == (1, "D2")
    assert "budget" not in fig.to_json() and "(v1)" not in fig.to_json()


def test_every_index_kind_measured_is_drawn_in_a_colour_of_its_own(monkeypatch):
    """A kind added to datastore.KINDS reaches the Cost tab with no other change."""
    monkeypatch.setitem(datastore.KINDS, "flatpq", "flat PQ")
    results = made_results()
    results["rows"].append({**results["rows"][0], "kind": "flatpq"})
    drawn = {t.name: t.line.color for t in plots.cost_curves(results).data if t.name.startswith("base + kNN-LM")}
    assert list(drawn) == [f"base + kNN-LM, {name}" for name in ("exact search", "IVF-PQ", "HNSW", "flat PQ")]
    assert len(set(drawn.values())) == 4


def test_tab_without_results_says_how_to_make_them(monkeypatch, tmp_path):
    monkeypatch.setattr(paths, "RESULTS", tmp_path)
    with gr.Blocks():
        tab = cost_tab.build()
    assert tab.plot.value is None and "python tools/benchmark_cost.py" in tab.summary.value


def test_measure_current_times_the_served_store(engine):
    point = cost.measure_current(engine, engine.resolve(base="tiny-a", domain="bio"), tokens=4, repeats=1)
    store = engine.datastore("tiny-a", "bio")
    assert point["entries"] == len(store) == block_entries(engine.stream("tiny-a", "bio"), Settings.block) > 1000
    assert point["index"] == "IndexFlatL2" and point["key_width"] == 32 and point["k"] == 16
    for name in ("base_ms", "memdec_ms", "knn_rest_ms", "search_ms", "knn_ms"):
        assert point[name] > 0, name
    assert point["knn_ms"] == pytest.approx(point["knn_rest_ms"] + point["search_ms"], abs=1e-3)
    assert point["ratio_knn"] == pytest.approx(point["knn_ms"] / point["base_ms"], rel=1e-2)


def test_benchmark_end_to_end_on_the_tiny_engine(engine, tmp_path):
    out = tmp_path / "cost.json"
    tiny = ["--sizes", "2000,8000", "--queries", "16", "--search-seconds", "0.1", "--tokens", "4", "--repeats", "1"]
    threads = torch.get_num_threads()
    results = benchmark_cost.main(tiny + ["--out", str(out)], engine=engine)
    assert read_json(out) == results and torch.get_num_threads() == threads  # one thread while it ran, not after
    rows = {(r["kind"], r["entries"]): r for r in results["rows"]}
    assert set(rows) == {(kind, n) for kind in ("exact", "ivfpq", "hnsw") for n in (2000, 8000)}
    real = results["settings"]["real_entries"]
    assert 2000 < real < 8000 and rows["exact", 8000]["real_entries"] == real  # the rest are synthetic
    for row in rows.values():
        assert row["build_s"] >= 0 and row["search_ms"] > 0 and 0 < row["recall_at_k"] <= 1
        assert row["knn_ms"] == pytest.approx(row["knn_rest_ms"] + row["search_ms"], abs=1e-3)
        assert row["base_ms"] > 0 and row["memdec_ms"] > 0
        assert row["memory_bytes"] > row["keys_bytes"] == row["entries"] * (32 * 2 + 4)
    assert rows["exact", 8000]["recall_at_k"] == 1.0
    assert set(results["crossovers"]) == {"exact", "ivfpq", "hnsw"}
    keys = np.load(paths.CACHE / "cost" / "keys.npy", mmap_mode="r")
    assert keys.shape == (8000, 32) and keys.dtype == np.float16
    norms = np.linalg.norm(np.asarray(keys, dtype=np.float32), axis=1)
    assert np.median(norms[real:]) == pytest.approx(np.median(norms[:real]), rel=0.25)  # synthetic keys look real

    # no budget left: the first size is measured, the next one skipped with its reason, never guessed
    results = benchmark_cost.main(tiny + ["--out", str(out), "--budget-minutes", "0"], engine=engine)
    exact = [r for r in results["rows"] if r["kind"] == "exact"]
    assert "knn_ms" in exact[0] and "left of the budget" in exact[1]["skipped"] and "knn_ms" not in exact[1]
