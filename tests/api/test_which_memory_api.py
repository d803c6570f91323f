"""/which_memory and /batch on the real app through gradio_client: the same numbers as the engine's functions, clear
errors for bad input; and the page's exports of the two views and of the Neighbours tab, as JSON and CSV."""
import csv
import json

import pytest
from gradio_client import Client, handle_file

from app.serve import batch, which_memory

PASSAGE = "licence software copyright warranty"
PROMPTS = ["cell protein gene", "licence software"]


@pytest.fixture(scope="module")
def client(server):
    return Client(server, verbose=False)


def exported(files) -> tuple[dict, list[dict]]:
    paths = [f if isinstance(f, str) else f.get("path", f.get("name")) for f in files]
    data = json.loads(open(next(p for p in paths if p.endswith(".json"))).read())
    return data, list(csv.DictReader(open(next(p for p in paths if p.endswith(".csv")))))


def test_which_memory_endpoint_equals_the_engine(client, engine):
    out = client.predict(PASSAGE, base="tiny-b", api_name="/which_memory")
    direct = which_memory.survey(engine, PASSAGE, base="tiny-b")
    assert out["tokens"] == direct["tokens"]
    assert [m["memory"] for m in out["memories"]] == [m["memory"] for m in direct["memories"]]
    for got, want in zip(out["memories"], direct["memories"]):
        assert got["perplexity"] == pytest.approx(want["perplexity"], rel=1e-5)
        assert got["token_gain_bits"] == pytest.approx(want["token_gain_bits"], abs=1e-5)
        assert got["change_percent"] == pytest.approx(want["change_percent"], rel=1e-5)


def test_batch_endpoint_takes_a_list_or_lines(client, engine):
    direct = batch.batch(engine, PROMPTS, top_n=3)
    for sent in (PROMPTS, "\n".join(PROMPTS)):
        out = client.predict(sent, top_n=3, api_name="/batch")
        assert out["prompts"] == PROMPTS
        assert [(r["prompt"], r["memory"]) for r in out["results"]] == [(r["prompt"], r["memory"])
                                                                       for r in direct["results"]]
        for got, want in zip(out["results"], direct["results"]):
            for name in batch.PREDICTORS:
                assert [t["id"] for t in got["top"][name]] == [t["id"] for t in want["top"][name]], name
                assert [t["p"] for t in got["top"][name]] == pytest.approx([t["p"] for t in want["top"][name]],
                                                                           abs=1e-6)


@pytest.mark.parametrize("endpoint, kwargs, message", [
    ("/which_memory", dict(text=" "), "empty"),
    ("/which_memory", dict(text=PASSAGE, base="nope"), "unknown base"),
    ("/which_memory", dict(text="cell " * 400), "at most"),
    ("/batch", dict(prompts=[f"p {i}" for i in range(51)]), "at most 50"),
    ("/batch", dict(prompts="\n\n"), "no prompt"),
    ("/batch", dict(prompts=PROMPTS, top_n=0), "top_n"),
])
def test_bad_input_gets_a_clear_error(client, endpoint, kwargs, message):
    with pytest.raises(Exception, match=message):
        client.predict(api_name=endpoint, **kwargs)


def test_which_memory_view_exports(client, engine):
    with pytest.raises(Exception, match="ask every memory first"):
        client.predict(api_name="/which_memory_export")
    client.predict(PASSAGE, None, "tiny-b", api_name="/which_memory_view")  # passage, family, base
    data, rows = exported(client.predict(api_name="/which_memory_export"))
    assert data["base"] == "tiny-b" and data["text"] == PASSAGE
    assert [r["memory"] for r in rows] == [m["memory"] for m in data["memories"]]
    assert [float(r["perplexity base + MemDec"]) for r in rows] == pytest.approx(
        [m["perplexity"]["mix_memdec"] for m in data["memories"]], rel=1e-9)


def test_batch_view_exports_a_file_of_prompts(client, engine, tmp_path):
    prompts = tmp_path / "prompts.csv"
    prompts.write_text("prompt,source\ncell protein gene,a\nlicence software,b\n")
    client.predict("ignored when a file is given", handle_file(str(prompts)), None, "tiny-a", 3,
                   api_name="/batch_view")  # prompts, file, family, base, tokens shown
    data, rows = exported(client.predict(api_name="/batch_export"))
    assert data["prompts"] == PROMPTS and data["base"] == "tiny-a"
    assert len(rows) == len(PROMPTS) * len(engine.memories) * 3
    first = data["results"][0]
    assert [r["memdec"] for r in rows[:3]] == [t["token"] for t in first["top"]["memdec"]]
    assert [float(r["p mix_knn"]) for r in rows[:3]] == pytest.approx([t["p"] for t in first["top"]["mix_knn"]])


def test_neighbours_export_reads_the_comparison(client, engine):
    client.predict("cell protein gene membrane", engine.default_base, engine.default_domain, 0.5, 0.25, False, 8,
                   5.0, 6, False, api_name="/compare_view")  # alpha, lambda, lock, k, T, tokens shown, precise
    data, rows = exported(client.predict(api_name="/neighbours_export"))
    assert data["k"] == 8 and len(data["neighbours"]) == len(rows) == 8
    assert [int(r["entry"]) for r in rows] == [n["entry"] for n in data["neighbours"]]
    assert [float(r["distance"]) for r in rows] == sorted(float(r["distance"]) for r in rows)
    assert sum(t["p_knn"] for t in data["knn_by_token"]) == pytest.approx(1.0, abs=1e-5)
