"""Bring your own memory, through gradio_client on a real server: an upload becomes a live kNN-LM at once, then a
distilled Memory Decoder (a separate process) with its curve and tuned alpha; uploads stay in their session unless the
server shares them; every bad file is refused with its message and changes nothing; cancel, then resume from the
checkpoint; and the same from the command line."""
import gzip
import json
import os
import re
import subprocess
import sys
import time
import zipfile

import pandas as pd
import pytest
from gradio_client import Client, handle_file

from app.core import paths
from app.core.settings import Settings
from app.serve import compare, memories
from app.serve import engine as engine_module
from app.serve.engine import Engine
from app.serve.ui import models_panel
from tests.support.documents import WORDS, corpus_file, word_documents
from tests.support.serving import serving
from tests.support.visitors import behind_a_proxy, visitor

PROMPT = "cell protein gene"
pytestmark = pytest.mark.usefixtures("one_thread_jobs")


def build(client: Client, path=None, text="", name="", base="tiny-a") -> dict:
    """/memory_build; returns the memory's details (what the API returns for it)."""
    out = client.predict(handle_file(path) if path else None, text, name, base, None, api_name="/memory_build")
    return out[-2]


def wait_for_job(client: Client, memory_id: str, until, timeout=300) -> tuple:
    """The /memory_status answer once until(job) holds; timeout only stops a hung job (a distillation of the tiny
    models takes some 10 s on two busy cores)."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        out = client.predict(memory_id, None, memory_id, "tiny-a", api_name="/memory_status")
        if until(out[-3]["distillation"]):
            return out
        time.sleep(0.2)
    raise AssertionError(f"the job did not get there in {timeout} s: {out[-3]['distillation']}")


def loss_log(details: dict) -> pd.DataFrame:
    return pd.read_csv(memories.root() / details["id"] / details["distillation"]["log"])


@pytest.fixture(scope="module")
def served(tiny_models):
    """Each client of this module a visitor at an address of its own (tests.support.visitors)."""
    engine = Engine(tiny_models["bases"], tiny_models["memories"])
    with behind_a_proxy(), serving(engine) as url:
        yield url, engine


@pytest.fixture(scope="module")
def built(served, tmp_path_factory):
    """One visitor's upload, built into a memory."""
    client = visitor(served[0])
    return client, build(client, corpus_file(tmp_path_factory.mktemp("upload")))


def test_upload_becomes_a_live_knn_lm_then_a_decoder(served, built):
    engine = served[1]
    client, details = built
    assert details["name"] == "notes" and details["base"] == "tiny-a"
    assert details["documents"] == {"train": 45, "validation": 5}  # every tenth document held out
    assert details["tokens"]["validation"] > Settings.block and details["decoder_memory"] is None
    # the kNN-LM is usable at once; with no decoder yet, the base stands in for it
    before = client.predict(PROMPT, domain=details["knn_memory"], api_name="/compare")
    assert before["top"]["knn"] and before["top"]["memdec"] == before["top"]["base"]
    entries = (details["tokens"]["train"] - 1) // Settings.block * Settings.block  # one per position of its blocks
    assert len(engine.datastore("tiny-a", details["knn_memory"])) == entries

    client.predict(details["id"], 6, api_name="/memory_distil")
    out = wait_for_job(client, details["id"], lambda job: not job["running"])
    done, menu = out[-3], out[-1]
    # one memory: its name serves the kNN-LM from the start and the Memory Decoder once distilled
    assert done["distillation"]["phase"] == "done" and done["decoder_memory"] == details["id"]
    assert menu["value"] == details["id"]  # still chosen, one entry in the menu, named for both predictors
    assert [label for label, value in menu["choices"] if value == details["id"]] == [
        "notes: kNN-LM and Memory Decoder (your upload)"]
    assert not [value for _, value in menu["choices"] if value.startswith(details["id"]) and value != details["id"]]
    assert out[1] == done["distillation"]["alpha"]  # the row's alpha: the one tuned for it, as the menu did not change
    curve = loss_log(done)
    assert curve["step"].tolist() == list(range(1, 7)) and curve[["val_kl", "val_ce"]].notna().all().all()

    tuned = done["distillation"]["alpha"]
    assert tuned in Settings.alphas
    after = client.predict(PROMPT, domain=done["decoder_memory"], api_name="/compare")
    assert after["alpha"] == tuned and after["top"]["memdec"] != after["top"]["base"] and after["top"]["knn"]
    folder = memories.root() / details["id"]
    committed = json.loads((paths.ROOT / "models" / "memdec-law" / "memdec.json").read_text())
    card = json.loads((folder / "decoder" / "memdec.json").read_text())  # the pipeline's fields, less the label
    assert list(card) == [field for field in committed if field != "label"] and not list(memories.root().glob("*.tmp"))


def test_download_then_restore_brings_the_memory_back(served, built):
    """The memory distilled above, as a .zip (its decoder, card and text), restored by another visitor: the same text,
    the same decoder served at once with its tuned weights, and a datastore of its own."""
    url, engine = served
    client, details = built
    assert wait_for_job(client, details["id"], lambda job: not job["running"])[-3]["decoder_memory"]
    bundle = client.predict(details["id"], api_name="/memory_download")
    with zipfile.ZipFile(bundle) as saved:
        names = set(saved.namelist())
    assert {"memory.json", "train.txt.gz", "validation.txt.gz", "status.json", "decoder/model.safetensors",
            "decoder/memdec.json"} <= names
    other = visitor(url)
    restored = other.predict(handle_file(bundle), "", None, api_name="/memory_restore")[-2]
    assert restored["name"] == "notes" and restored["id"] != details["id"] and restored["decoder_memory"]
    assert (restored["documents"], restored["tokens"]) == (details["documents"], details["tokens"])
    folder = memories.root() / restored["id"]
    assert (folder / "decoder" / "model.safetensors").read_bytes() == (
        memories.root() / details["id"] / "decoder" / "model.safetensors").read_bytes()
    ours = client.predict(PROMPT, domain=details["id"], api_name="/compare")
    theirs = other.predict(PROMPT, domain=restored["id"], api_name="/compare")
    assert theirs["alpha"] == ours["alpha"] and theirs["top"] == ours["top"]
    with pytest.raises(Exception, match="there is a memory named 'notes' already"):
        other.predict(handle_file(bundle), "", None, api_name="/memory_restore")
    other.predict(restored["id"], None, None, api_name="/memory_delete")


def test_a_zip_that_is_not_a_saved_memory_is_refused(served, tmp_path):
    client = visitor(served[0])
    before = on_disk()
    for name, files, message in [("empty.zip", {}, "lacks its text"),
                                 ("odd.zip", {"memory.json": "{}", "../escape.txt": "x"}, "it holds ../escape.txt"),
                                 ("text.zip", None, "not a readable .zip")]:
        path = tmp_path / name
        if files is None:
            path.write_text("not a zip")
        else:
            with zipfile.ZipFile(path, "w") as bundle:
                for member, data in files.items():
                    bundle.writestr(member, data)
        with pytest.raises(Exception, match=re.escape(message)):
            client.predict(handle_file(str(path)), "", None, api_name="/memory_restore")
    assert on_disk() == before


def test_another_session_cannot_see_an_upload(served, built, tiny_models, tmp_path):
    url, engine = served
    owner_client, details = built
    other = visitor(url)
    listed = other.predict(api_name="/memory_list")[1]
    assert details["id"] not in json.dumps(listed)
    with pytest.raises(Exception, match="no memory"):
        other.predict(details["id"], api_name="/memory_show")
    assert details["id"] in json.dumps(owner_client.predict(api_name="/memory_list")[1])
    assert details["id"] not in json.dumps(memories.of(engine).choices(None)) + models_panel.panel_text(engine)
    # a server started with --share-memories lists uploads to everyone
    shared = Engine(tiny_models["bases"], tiny_models["memories"], share_memories=True)
    with serving(shared) as shared_url:
        made = build(visitor(shared_url), corpus_file(tmp_path, "shared.txt", seed=7), name="together")
        someone = visitor(shared_url)
        assert made["id"] in json.dumps(someone.predict(api_name="/memory_list")[1]) and made["id"] in shared.memories
        with pytest.raises(Exception, match="only whoever made it"):  # seen and used by all, changed by its maker
            someone.predict(made["id"], None, None, api_name="/memory_delete")


@pytest.mark.parametrize("name, encode", [
    ("notes.txt.gz", lambda docs: gzip.compress("\n\n".join(docs).encode())),
    ("notes.jsonl", lambda docs: "\n".join(json.dumps({"text": d, "id": i}) for i, d in enumerate(docs)).encode()),
])
def test_gzip_and_jsonl_uploads_are_read(served, tmp_path, name, encode):
    client = visitor(served[0])
    (tmp_path / name).write_bytes(encode(word_documents(WORDS["law"], 11, 40)))
    made = build(client, str(tmp_path / name))
    assert made["name"] == "notes" and made["documents"] == {"train": 36, "validation": 4}
    client.predict(made["id"], None, None, api_name="/memory_delete")


def on_disk() -> list:
    return sorted(p.name for p in memories.root().glob("*"))


def write(folder, name, data: bytes) -> str:
    (folder / name).write_bytes(data)
    return str(folder / name)


BAD_FILES = [
    ("binary.txt", b"\x7fELF\x02\x01\x01\x00\x00\x00" * 50, "binary"),
    ("empty.txt", b"", "empty"),
    ("blank.txt", b"  \n\n \n", "empty"),
    ("latin1.txt", "Café crème, déjà vu.\n\nNaïve façade.".encode("latin-1"), "not UTF-8"),
    ("huge.txt", b"cell protein gene. " * 60_000, "over the 1 MB limit"),
    ("bomb.txt.gz", gzip.compress(b"cell protein gene. " * 60_000), "more than 1 MB"),
    ("broken.txt.gz", b"\x1f\x8b\x08 not really gzip", "not a readable gzip"),
    ("short.txt", b"cell protein.\n\nkinase tissue.", "too short to split"),
    ("one.txt", b"cell protein gene membrane enzyme " * 20, "too short to split"),
    ("notes.jsonl", b'{"text": "cell protein"}\n{"body": "no text field"}\n', 'line 2, has no "text"'),
    ("notes2.jsonl", b'{"text": "cell protein"}\nnot json\n', "line 2, is not JSON"),
    ("paper.pdf", b"%PDF-1.4 cell protein", "Invalid file type"),  # the page's file box refuses it first
    ("data.csv.gz", gzip.compress(b"cell,protein\n"), "only .txt, .txt.gz and .jsonl"),
]


@pytest.mark.parametrize("name, data, message", BAD_FILES, ids=[b[0] for b in BAD_FILES])
def test_bad_files_are_refused_with_their_message(served, tmp_path, name, data, message):
    client = visitor(served[0])
    before = on_disk()
    with pytest.raises(Exception, match=message):
        build(client, write(tmp_path, name, data))
    assert on_disk() == before  # nothing written, nothing left half-made
    assert client.predict(PROMPT, top_n=3, api_name="/compare")["top"]["knn"]  # and the app keeps serving


@pytest.mark.parametrize("kwargs, message", [
    (dict(), "upload a file or paste"),
    (dict(text="cell protein", path="x"), "upload a file or paste"),
    (dict(text="\n".join(word_documents(WORDS["law"], 1, 30)), name="bad name!"), "not a usable name"),
    (dict(text="\n\n".join(word_documents(WORDS["law"], 1, 30)), base="gpt-17"), "gpt-17 is not in the list"),
])
def test_bad_requests_are_refused(served, tmp_path, kwargs, message):
    if kwargs.get("path"):
        kwargs["path"] = corpus_file(tmp_path)
    with pytest.raises(Exception, match=message):
        build(visitor(served[0]), **kwargs)


def test_cancel_then_resume_from_the_checkpoint(served, tmp_path):
    # a checkpoint every 6 steps; the cancel comes right after the first, and the 114 steps left (about 8 s on an
    # idle machine) keep it from arriving after the end even when the machine stalls the request
    STEPS = 120
    client = visitor(served[0])
    pasted = "\n\n".join(word_documents(WORDS["law"], 3, 40))
    details = build(client, text=pasted, name="pasted-law", base="tiny-b")
    with pytest.raises(Exception, match="no distillation is running"):
        client.predict(details["id"], api_name="/memory_cancel")
    client.predict(details["id"], STEPS, api_name="/memory_distil")
    with pytest.raises(Exception, match="running on this server already"):  # one job at a time: each takes the CPU
        client.predict(details["id"], STEPS, api_name="/memory_distil")
    wait_for_job(client, details["id"], lambda job: job.get("log")
                 and (memories.root() / details["id"] / job["log"]).exists())
    out = client.predict(details["id"], api_name="/memory_cancel")
    cancelled = out[-2]["distillation"]
    assert cancelled["phase"] == "cancelled" and not cancelled["running"]
    kept = loss_log(out[-2])
    assert 0 < kept["step"].iloc[-1] < STEPS and "Stopped" in out[2]

    client.predict(details["id"], STEPS, api_name="/memory_distil")  # resume
    done = wait_for_job(client, details["id"], lambda job: not job["running"])[-3]
    assert done["distillation"]["phase"] == "done"
    curve = loss_log(done)
    assert curve["step"].tolist() == list(range(1, STEPS + 1))
    # the kept steps were not run again: their losses are the ones logged before the stop (seconds are wall-clock)
    same = [c for c in kept.columns if c != "seconds"]
    # steps come back as floats
    pd.testing.assert_frame_equal(curve.iloc[: len(kept)][same], kept[same], check_dtype=False)
    log = (memories.root() / details["id"] / "making" / "job.log").read_text()
    assert f" {kept['step'].iloc[-1]}/{STEPS} [00:00<?" in log  # resumed: the second run's bar starts there


def test_quotas_per_visitor_and_in_all(served, tmp_path, monkeypatch):
    client = visitor(served[0])
    made = build(client, corpus_file(tmp_path, "first.txt"))
    monkeypatch.setattr(memories, "SESSION_MEMORIES", 1)
    with pytest.raises(Exception, match="1 memories are kept for you, the most one visitor may keep"):
        build(client, corpus_file(tmp_path, "second.txt"))
    monkeypatch.setattr(memories, "SESSION_MEMORIES", 3)
    monkeypatch.setattr(memories, "SESSION_BYTES", memories.folder_bytes(memories.root() / made["id"]) + 1000)
    with pytest.raises(Exception, match="over the 0 MB one visitor may use"):
        build(client, corpus_file(tmp_path, "second.txt"))
    monkeypatch.setattr(memories, "SESSION_BYTES", 2**30)
    monkeypatch.setattr(memories, "TOTAL_BYTES", memories.folder_bytes(memories.root()) + 1000)
    with pytest.raises(Exception, match="the space for uploaded memories is full"):
        build(visitor(served[0]), corpus_file(tmp_path, "other.txt"))  # another visitor, same server
    monkeypatch.setattr(memories, "TOTAL_BYTES", 2**30)
    monkeypatch.setattr(memories, "SESSION_MEMORIES", 1)
    client.predict(made["id"], None, None, api_name="/memory_delete")  # deleting makes room again
    assert not (memories.root() / made["id"]).exists() and made["id"] not in memories.of(served[1]).private
    assert build(client, corpus_file(tmp_path, "second.txt"))["name"] == "second"


def test_uploads_go_when_their_session_ends_or_after_a_day_unused(served, tmp_path):
    url, engine = served
    registry, path = memories.of(engine), corpus_file(tmp_path)
    closed = registry.build(memories.owner("a closed page"), "closed", "tiny-a", upload=path)
    registry.forget(memories.owner("a closed page"))  # what an API session's State does when the session ends
    assert not closed.folder.exists() and closed.id not in registry.private
    idle = registry.build(memories.owner("an idle page"), "idle", "tiny-a", upload=path)
    day_ago = time.time() - memories.UNUSED_TTL_S - 60
    os.utime(idle.folder / "memory.json", (day_ago, day_ago))
    registry.sweep()
    assert not idle.folder.exists() and idle.id not in registry.private


def test_command_line_builds_and_distils(tiny_models, tmp_path):
    memory = tiny_models["memories"]["bio"]
    models = ["--model", f"a={tiny_models['bases']['tiny-a']}", "--memory", f"bio={memory.decoder},{memory.corpus}"]

    def cli(*args):  # the timeout only stops a hung command: distil takes some 20 s on two busy cores
        return subprocess.run([sys.executable, "-m", "app.serve.cli", "memory", *args, *models], capture_output=True,
                              text=True, env=os.environ, timeout=600)

    made = cli("build", corpus_file(tmp_path, "cli.txt", seed=9), "--name", "from-cli")
    assert made.returncode == 0, made.stderr[-2000:]
    assert json.loads(made.stdout)["knn_memory"] == "from-cli"
    distilled = cli("distil", "from-cli", "--steps", "4")
    assert distilled.returncode == 0, distilled.stderr[-2000:]
    assert json.loads(distilled.stdout)["decoder_memory"] == "from-cli"
    again = cli("build", corpus_file(tmp_path, "cli.txt", seed=9), "--name", "from-cli")
    assert again.returncode != 0 and "named 'from-cli' already" in again.stderr
    assert cli("delete", "from-cli").returncode == 0 and not (memories.root() / "from-cli").exists()


def refusals(client, memory_id: str) -> dict:
    """Every endpoint that takes a memory's name, asked with memory_id: {endpoint: its error message} (an answer
    instead of an error fails the test)."""
    calls = {
        "/compare": (PROMPT, "tiny-a", memory_id), "/score": (PROMPT, "tiny-a", memory_id),
        "/generate": (PROMPT, "tiny-a", memory_id, 2),
        "/compare_view": (PROMPT, "tiny-a", memory_id, 0.5, 0.5, False, 8, 1.0, 5, False),
        "/score_view": (PROMPT, "tiny-a", memory_id, 0.5, 0.5, False, 8, 1.0),
        "/generate_view": (PROMPT, "tiny-a", memory_id, 0.5, 0.5, False, 8, 1.0, 2, False, 0),
        "/cost_view": ("tiny-a", memory_id), "/memory_show": (memory_id,), "/memory_download": (memory_id,),
        "/memory_distil": (memory_id, 6), "/memory_cancel": (memory_id,), "/memory_delete": (memory_id, None, None),
        "/memory_status": (memory_id, None, memory_id, "tiny-a"),
    }
    out = {}
    for endpoint, args in calls.items():
        with pytest.raises(Exception) as refused:
            client.predict(*args, api_name=endpoint)
        out[endpoint] = str(refused.value).replace(memory_id, "ID")
    return out


def test_another_visitors_memory_is_refused_everywhere_as_if_it_did_not_exist(served, built):
    """Its id, sent to every endpoint by someone else, gets the refusal a made-up id of the same shape gets: whether
    it exists is not told."""
    url, _ = served
    owner, details = built
    someone = visitor(url)
    made_up = f"notes-{'0' * 12}"
    theirs, nobodys = refusals(someone, details["id"]), refusals(someone, made_up)
    assert theirs == nobodys
    assert all("ID" in message or "no memory" in message or "unknown memory" in message
               for message in theirs.values()), theirs
    assert owner.predict(PROMPT, "tiny-a", details["id"], api_name="/compare")["domain"] == details["id"]
    assert (memories.root() / details["id"]).exists()  # the owner's memory untouched by all that


def test_one_build_at_a_time_per_address_and_quotas_per_address(served, tmp_path, monkeypatch):
    url, engine = served
    registry = memories.of(engine)
    here, elsewhere = memories.Origin("address-a"), memories.Origin("address-b")
    with registry.one_build(here):  # a build of this address under way
        with pytest.raises(memories.InputError, match="being built already; one is built at a time per address"):
            registry.build(memories.owner("second tab"), "second", "tiny-a", upload=corpus_file(tmp_path), origin=here)
        made = registry.build(memories.owner("neighbour"), "theirs", "tiny-a", upload=corpus_file(tmp_path),
                              origin=elsewhere)  # another address's is not held back
    registry.delete(made)
    # two visitors of one address (two sessions, two browsers) share its quota
    monkeypatch.setattr(memories, "ADDRESS_MEMORIES", 2)
    shared_address = "10.3.0.1"
    first, second, third = (visitor(url, shared_address) for _ in range(3))
    made = [build(first, corpus_file(tmp_path, "one.txt")), build(second, corpus_file(tmp_path, "two.txt"))]
    with pytest.raises(Exception, match="the most the visitors of one address together may keep"):
        build(third, corpus_file(tmp_path, "three.txt"))
    build(visitor(url), corpus_file(tmp_path, "four.txt"))  # a visitor of another address builds
    for client, details in zip((first, second), made):
        client.predict(details["id"], None, None, api_name="/memory_delete")


def test_an_api_sessions_memory_expires_within_the_hour_on_a_timer(tiny_models, tmp_path, monkeypatch):
    """An API client's upload (no browser token: its session never comes back) goes after SESSION_TTL_S unused, a
    browser's after a day; the sweep runs on its own every SWEEP_EVERY_S, without anyone building."""
    monkeypatch.setattr(memories, "SWEEP_EVERY_S", 0.2)
    engine = Engine(tiny_models["bases"], tiny_models["memories"])
    registry = memories.Memories(engine)
    api = registry.build(memories.owner("an api session"), "api", "tiny-a", upload=corpus_file(tmp_path),
                         origin=memories.Origin("a", lasting=False))
    page = registry.build(memories.owner("a browser"), "page", "tiny-a", upload=corpus_file(tmp_path),
                          origin=memories.Origin("a", lasting=True))
    assert (api.ttl_s, page.ttl_s) == (memories.SESSION_TTL_S, memories.UNUSED_TTL_S)
    hours_ago = time.time() - 2 * memories.SESSION_TTL_S
    for memory in (api, page):
        os.utime(memory.folder / "memory.json", (hours_ago, hours_ago))
    deadline = time.monotonic() + 60
    while api.folder.exists():
        assert time.monotonic() < deadline, "the timer did not sweep the expired memory"
        time.sleep(0.1)
    assert api.id not in registry.private and page.folder.exists()
    # using a memory keeps it: its owner's lookups count as use
    engine.resolve(base="tiny-a", domain=page.id, owner=page.owner)
    assert time.time() - (page.folder / "memory.json").stat().st_mtime < 60
    registry.delete(page)


def test_only_the_most_recently_used_visitor_stores_stay_in_memory(tiny_models, tmp_path, monkeypatch):
    monkeypatch.setattr(engine_module, "PRIVATE_STORES", 2)
    engine = Engine(tiny_models["bases"], tiny_models["memories"])
    registry = memories.Memories(engine)
    made = [registry.build(memories.owner(f"visitor {i}"), f"m{i}", "tiny-a", upload=corpus_file(tmp_path, seed=i),
                           origin=memories.Origin(f"address {i}")) for i in range(3)]
    in_memory = {domain for _, domain in engine._stores if domain not in engine.memories}
    assert in_memory == {made[1].id, made[2].id}
    first = made[0]
    resolved = engine.resolve(base="tiny-a", domain=first.id, owner=first.owner)
    again = compare.next_token(engine, resolved, PROMPT)  # its store loaded from disk again, the oldest let go
    assert again.p_knn is not None
    assert {domain for _, domain in engine._stores if domain not in engine.memories} == {made[2].id, first.id}
    for memory in made:
        registry.delete(memory)
