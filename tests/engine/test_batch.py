"""Batch mode: every row is compare.to_dict's top for its prompt and memory at the memory's own weights; prompts come
pasted, as a list, or from a .txt or .csv file, within clear limits."""
import pytest

from app.serve import batch, compare
from app.serve.engine import InputError

PROMPTS = ["cell protein gene", "licence software copyright"]


@pytest.fixture(scope="module")
def result(engine):
    return batch.batch(engine, "\n".join(PROMPTS) + "\n\n", base="tiny-a", top_n=4)


def test_rows_equal_compare_top_per_prompt_and_memory(engine, result):
    assert result["prompts"] == PROMPTS
    assert [(r["prompt"], r["memory"]) for r in result["results"]] == [(p, m) for p in PROMPTS for m in engine.memories]
    rows = batch.rows(result)
    assert len(rows) == len(PROMPTS) * len(engine.memories) * 4
    for r in result["results"]:
        resolved = engine.resolve(base="tiny-a", domain=r["memory"])
        direct = compare.to_dict(compare.next_token(engine, resolved, r["prompt"]), resolved.weights, 4)
        assert (r["alpha"], r["knn_lambda"]) == (direct["alpha"], direct["knn_lambda"]) == (0.5, 0.35)
        assert set(r["top"]) == set(batch.PREDICTORS)
        mine = [row for row in rows if (row["prompt"], row["memory"]) == (r["prompt"], r["memory"])]
        assert [row["rank"] for row in mine] == [1, 2, 3, 4]
        for name in batch.PREDICTORS:
            assert [row[name] for row in mine] == [t["token"] for t in direct["top"][name]], name
            assert [row[f"p {name}"] for row in mine] == pytest.approx([t["p"] for t in direct["top"][name]],
                                                                     abs=1e-6), name


def test_prompts_as_list_and_files(engine, tmp_path):
    assert batch.prompts_from(["a b", " ", "c"]) == ["a b", "c"]
    txt = tmp_path / "p.txt"
    txt.write_text("first prompt\n\nsecond prompt\n")
    assert batch.prompts_from(path=txt) == ["first prompt", "second prompt"]
    named = tmp_path / "named.csv"
    named.write_text('id,Prompt\n1,"cell, protein"\n2,licence\n')
    assert batch.prompts_from(path=named) == ["cell, protein", "licence"]
    first = tmp_path / "first.csv"
    first.write_text("gene membrane,x\nwarranty,y\n")
    assert batch.prompts_from(path=first) == ["gene membrane", "warranty"]
    out = batch.batch(engine, None, top_n=2, path=first)
    assert out["prompts"] == ["gene membrane", "warranty"] and len(batch.rows(out)) == 2 * len(engine.memories) * 2


def test_limits_and_bad_input(engine, tmp_path):
    with pytest.raises(InputError, match="at most 50"):
        batch.prompts_from([f"prompt {i}" for i in range(51)])
    with pytest.raises(InputError, match="no prompt"):
        batch.prompts_from("\n \n")
    with pytest.raises(InputError, match="prompt 2 has 4001 characters"):
        batch.prompts_from(["fine", "x" * 4001])
    with pytest.raises(InputError, match="prompt 1 must be a string"):
        batch.prompts_from([3])
    doc = tmp_path / "p.docx"
    doc.write_bytes(b"x")
    with pytest.raises(InputError, match=r"\.txt file"):
        batch.prompts_from(path=doc)
    latin = tmp_path / "latin.txt"
    latin.write_bytes("café".encode("latin-1"))
    with pytest.raises(InputError, match="not UTF-8"):
        batch.prompts_from(path=latin)
    with pytest.raises(InputError, match="top_n must be"):
        batch.batch(engine, "cell", top_n=0)
    with pytest.raises(InputError, match="unknown base"):
        batch.batch(engine, "cell", base="nope")
