"""What both halves share is written once and still makes the committed outputs: the sectioning of a document, the
decoder's card (memdec.json), and the tables the pipeline draws from its LOSSES."""
import json
import random
from pathlib import Path

import pytest

from app.core import paths
from app.core.cards import CARD, decoder_card, read_card, write_card
from app.core.documents import sections
from app.make import pipeline
from app.serve.presets import Memory

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "assets" / "results"


def test_sections_hold_every_character_in_order_within_max_chars():
    rng = random.Random(0)
    for _ in range(200):
        words = ["".join(rng.choices("abc", k=rng.choice([1, 3, 8, 40]))) for _ in range(rng.randint(0, 80))]
        doc = "".join(w + rng.choice([" ", " ", "\n", "\n\n"]) for w in words)
        max_chars = rng.randint(10, 60)
        pieces = sections(doc, max_chars)
        assert all(0 < len(p) <= max_chars and p.strip() for p in pieces)
        assert "".join("".join(pieces).split()) == "".join(doc.split())


def test_the_committed_cards_are_decoder_cards_byte_for_byte():
    cards = sorted((ROOT / "models").rglob(CARD))
    assert len(cards) >= 6
    for path in cards:
        card = json.loads(path.read_text())
        tuned = {base: {"alpha": alpha, **card["knn_by_base"][base]} for base, alpha in card["alpha_by_base"].items()}
        made = decoder_card(card["domain"], card["alpha"], tuned, card["knn_temperature"], card["knn_k"], card["block"],
                            card["beta"], paths.ROOT / card["key_model"], label=card["label"])
        assert json.dumps(made, indent=1) == path.read_text(), path


def test_an_uploads_card_is_the_pipelines_less_its_label_and_the_app_reads_it(tmp_path):
    """app.make.distil writes no label: the app names a visitor's memory itself."""
    tuned = {"tiny-a": {"alpha": 0.4, "lambda": 0.3, "temperature": 5.0}}
    write_card(tmp_path, decoder_card("notes", 0.4, tuned, 5.0, 64, 128, 0.5, tmp_path / "base"))
    committed = json.loads((ROOT / "models" / "memdec-law" / CARD).read_text())
    assert list(read_card(tmp_path)) == [field for field in committed if field != "label"]
    memory = Memory.from_folder(tmp_path, None, "your upload notes")
    assert memory.knows == "your upload notes" and memory.block == 128
    assert memory.defaults("tiny-a").alpha == 0.4 and memory.defaults("tiny-a").knn_lambda == 0.3
    assert read_card(tmp_path / "none") is None


@pytest.mark.parametrize("table", ["evaluation", "ablation", "general", "budgets", "smollm2/evaluation",
                                   "smollm2/general"])
def test_the_committed_tables_come_back_from_their_rows(table):
    rows = json.loads((RESULTS / f"{table}.json").read_text())
    draw = getattr(pipeline, f"{table.rsplit('/', 1)[-1].removesuffix('s')}_table")
    assert draw(rows) == (RESULTS / f"{table}.md").read_text()


def test_a_control_added_to_losses_is_a_column_of_the_evaluation_table(monkeypatch):
    monkeypatch.setitem(pipeline.LOSSES, "half", pipeline.Loss(0.25, "quarter KL", control="quarter-KL"))
    rows = json.loads((RESULTS / "evaluation.json").read_text())
    for row in rows:
        row["half"], row["memdec_vs_half"] = row["ce"], row["memdec_vs_ce"]
    head, rule, first = pipeline.evaluation_table(rows).splitlines()[:3]
    assert "| + CE-only decoder | + distilled decoder | + quarter-KL decoder | + Memory Decoder" in head
    assert "| MemDec vs CE-only | MemDec vs distilled | MemDec vs quarter-KL |" in head
    assert head.count("|") == rule.count("|") == first.count("|")
