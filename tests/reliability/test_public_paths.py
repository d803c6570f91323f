"""`MEMDEC_PUBLIC=1 python app.py --preset embedded` shows a visitor no path on the server and nothing of another
visitor's: every event of the page (GET /config lists them, the private ones included: the Models panel's refresh)
and every endpoint of the API is called with the page's own values and with bad ones (a memory that does not exist,
absurd numbers, a base named by a server path), as one visitor who has built a memory and as another; no answer, error
or progress message, nor the page and its config, holds the repository's folder, the cache's, the home directory or a
temporary folder. Files that an answer hands over are exempt: Gradio names them by their path in its own file folder
(GRADIO_TEMP_DIR), which the file route needs."""
import json
import os
import uuid
from pathlib import Path

import httpx
import pytest

from app.core import paths
from app.core.paths import ROOT
from app.serve.engine import PRIVATE
from app.serve.shown_paths import scrub, shown
from tests.support.documents import WORDS, word_documents
from tests.support.serving import app_process

PROMPT = "The court held that the contract"
TEXT = "\n\n".join(word_documents(WORDS["law"], 3, 50))  # a memory of the visitor's own
BAD_TEXT = ["/etc/passwd", str(ROOT / "models" / "base-small"), "no-such-memory", "../models/base-small"]
BAD_NUMBER = 1e12


@pytest.fixture(scope="module")
def public_server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("public-paths")
    cache, files = folder / "cache", folder / "gradio-files"
    env = {**os.environ, "MEMDEC_CACHE": str(cache), "MEMDEC_PUBLIC": "1", "HF_HUB_OFFLINE": "1",
           "GRADIO_TEMP_DIR": str(files)}
    with app_process(["--preset", "embedded"], ROOT, env, folder / "app.log") as url:
        yield url, cache, files


def secrets(cache: Path) -> list[str]:
    """What no answer may hold."""
    found = {str(ROOT), os.path.realpath(ROOT), str(cache), os.path.realpath(cache), str(Path.home()) + "/", "/tmp/"}
    return sorted(found)


class Visitor:
    """One page session: its events sent by fn_index as the page sends them (the queue, or POST /run/predict for an
    event outside it), every answer's raw text kept to be read."""

    def __init__(self, url: str):
        self.url, self.session, self.answers = url, uuid.uuid4().hex[:11], []

    def keep(self, what: str, text: str) -> str:
        self.answers.append((what, text))
        return text

    def event(self, dependency: dict, data: list) -> str:
        body = {"data": data, "fn_index": dependency["id"], "session_hash": self.session, "trigger_id": None,
                "event_data": None}
        what = f"event {dependency['id']} ({dependency.get('api_name')})"
        if not dependency.get("queue", True):
            return self.keep(what, httpx.post(f"{self.url}gradio_api/run/predict", json=body, timeout=120).text)
        joined = httpx.post(f"{self.url}gradio_api/queue/join", json=body, timeout=60)
        if joined.status_code != 200:
            return self.keep(what, joined.text)
        event_id, lines = joined.json()["event_id"], []
        for _ in range(3):  # a stream the server cut short is opened again: the session's messages wait for it
            try:
                if self.read_until_done(event_id, lines):
                    break
            except httpx.RemoteProtocolError:
                continue
        return self.keep(what, "\n".join(lines))

    def read_until_done(self, event_id: str, lines: list) -> bool:
        with httpx.stream("GET", f"{self.url}gradio_api/queue/data", params={"session_hash": self.session},
                          timeout=180) as stream:
            for line in stream.iter_lines():
                lines.append(line)
                message = json.loads(line[5:]) if line.startswith("data:") else {}
                if message.get("msg") == "process_completed" and message.get("event_id") == event_id:
                    return True
        return False

    def call(self, endpoint: str, data: list) -> str:
        """An API endpoint by its name, as a script calls it (a session of its own)."""
        posted = httpx.post(f"{self.url}gradio_api/call/{endpoint}", json={"data": data}, timeout=60)
        if posted.status_code != 200:
            return self.keep(endpoint, posted.text)
        return self.keep(endpoint, httpx.get(f"{self.url}gradio_api/call/{endpoint}/{posted.json()['event_id']}",
                                             timeout=180).text)


def by_elem(config: dict) -> dict:
    """elem_id -> component id."""
    return {c["props"]["elem_id"]: c["id"] for c in config["components"] if c.get("props", {}).get("elem_id")}


def page_values(config: dict, **chosen) -> dict:
    """component id -> the value the page starts with, a prompt written in it, and chosen: {elem_id: value}."""
    values = {c["id"]: c.get("props", {}).get("value") for c in config["components"]}
    ids = by_elem(config)
    values.update({ids[elem]: value for elem, value in {"prompt": PROMPT, **chosen}.items()})
    return values


def completed(stream: str) -> dict | None:
    """The output of the event that a queue stream completed, None when it failed."""
    for line in stream.splitlines():
        message = json.loads(line[5:]) if line.startswith("data:") else {}
        if message.get("msg") == "process_completed":
            return message["output"] if message.get("success") else None
    return None


def bad_values(config: dict, dependency: dict, turn: int) -> list:
    kinds = {c["id"]: c.get("type") for c in config["components"]}
    out = []
    for i, block in enumerate(dependency["inputs"]):
        kind = kinds.get(block)
        if kind in ("textbox", "dropdown", "radio", "markdown", "html"):
            out.append(BAD_TEXT[(turn + i) % len(BAD_TEXT)])
        elif kind in ("number", "slider"):
            out.append(BAD_NUMBER)
        elif kind == "file":
            out.append({"path": "/etc/passwd", "meta": {"_type": "gradio.FileData"}})
        else:
            out.append(None)
    return out


def every_way(config, dependency, turn, maker, other, values, theirs, own):
    other.event(dependency, [values[b] for b in dependency["inputs"]])
    other.event(dependency, bad_values(config, dependency, turn))
    if own & set(dependency["inputs"]):
        maker.event(dependency, [theirs[b] for b in dependency["inputs"]])


def test_no_answer_shows_a_server_path_or_another_visitors_memory(public_server):
    url, cache, files = public_server
    config = httpx.get(f"{url}config", timeout=60).json()
    events = [d for d in config["dependencies"] if d.get("backend_fn")]
    named = httpx.get(f"{url}gradio_api/info", params={"all_endpoints": "true"}, timeout=60).json()["named_endpoints"]
    maker, other = Visitor(url), Visitor(url)
    values = page_values(config)

    # a comparison loads the models; a visitor builds a memory of their own (its store, a model of theirs)
    maker.call("compare", [PROMPT, None, None, None, None, None, 5, None, None, None])
    build = next(d for d in events if d.get("api_name") == "memory_build")
    built = maker.event(build, [None, TEXT, "secret-notes", *[values[b] for b in build["inputs"][3:]]])
    output = completed(built)
    assert output, built[-2000:]
    memory_id = output["data"][1]["value"]
    maker.call("compare", [PROMPT, None, memory_id, None, None, None, 5, None, None, None])  # a script: not theirs
    theirs = page_values(config, **{"memory-mine": memory_id, "domain": memory_id})
    own = {by_elem(config)[e] for e in ("memory-mine", "domain")}

    # every event of the page, with its own values and with bad ones, as another visitor; those that read the memory
    # menus as the maker too, their memory chosen (its store and decoder loaded); its job started, cancelled, deleted
    last = ("memory_distil", "memory_cancel", "memory_delete")
    for turn, dependency in enumerate([d for d in events if d.get("api_name") not in last]):
        every_way(config, dependency, turn, maker, other, values, theirs, own)

    # the Models panel now, to another visitor: no path, nothing of the maker's (their store is loaded)
    refresh = [d for d in events if not d["inputs"] and d["outputs"] == [by_elem(config)["models-panel"]]]
    assert refresh, "the Models panel's refresh is not among the page's events"
    panel = other.event(refresh[0], [])
    assert "models/base-" in panel and PRIVATE not in panel and memory_id not in panel, panel
    for turn, dependency in enumerate([d for name in last for d in events if d.get("api_name") == name]):
        every_way(config, dependency, turn, maker, other, values, theirs, own)
    # and every named endpoint of the API, with plausible and bad inputs
    for name, info in named.items():
        endpoint = name.lstrip("/")
        plausible = [p.get("parameter_default") if p.get("parameter_has_default") else PROMPT
                     for p in info["parameters"]]
        bad = [BAD_NUMBER if "float" in str(p.get("python_type")) or "int" in str(p.get("python_type"))
               else BAD_TEXT[i % len(BAD_TEXT)] for i, p in enumerate(info["parameters"])]
        other.call(endpoint, plausible)
        other.call(endpoint, bad)

    pages = [("/", httpx.get(url, timeout=60).text), ("/config", httpx.get(f"{url}config", timeout=60).text),
             ("/gradio_api/info", httpx.get(f"{url}gradio_api/info", params={"all_endpoints": "true"},
                                            timeout=60).text)]
    leaks = []
    for what, text in pages + maker.answers + other.answers:
        text = text.replace(str(files), "<gradio files>").replace(os.path.realpath(files), "<gradio files>")
        leaks += [(what, secret, text[max(0, text.find(secret) - 200):text.find(secret) + 200])
                  for secret in secrets(cache) if secret in text]
    assert not leaks, "\n\n".join(f"{what}: {secret!r} in …{around}…" for what, secret, around in leaks[:10])
    assert len(maker.answers) + len(other.answers) > 2 * len(events)



def test_a_path_as_a_visitor_sees_it(monkeypatch, tmp_path):
    monkeypatch.setattr(paths, "CACHE", tmp_path / "cache")
    assert shown("Qwen/Qwen2.5-0.5B") == "Qwen/Qwen2.5-0.5B" and shown("models/base-small") == "models/base-small"
    assert shown(ROOT / "models" / "base-small") == "models/base-small"
    assert shown(tmp_path / "cache" / "datastores" / "base-small__law") == "cache/datastores/base-small__law"
    assert shown("/etc/passwd") == "passwd" and shown(Path.home() / ".cache" / "hub") == "hub"
    message = (f"no model at {ROOT}/models/base-x: see '{tmp_path}/cache/datastores/a__law'. Nor at "
               f"{Path.home()}/.cache/huggingface/hub/models--x, nor /tmp/abc/notes.txt. /etc/hosts stays.")
    assert scrub(message) == ("no model at models/base-x: see 'cache/datastores/a__law'. Nor at models--x, nor "
                              "notes.txt. /etc/hosts stays.")
