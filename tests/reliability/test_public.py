"""`MEMDEC_PUBLIC=1 python app.py` as a public Space starts it (on the Qwen stand-in, offline): only presets are served,
and no visitor can name a file or a model on the server: not by the file route, not as an upload's path, not as a base
or memory; uploads over max_file_size are refused before they are written."""
import argparse
import json
import os

import httpx
import pytest

from app.core.paths import ROOT
from app.serve import memories
from app.serve.cli import engine_from, engine_options
from app.serve.engine import InputError
from app.serve.ui.common import SERVER_PATH
from tests.support.serving import app_process

PRESET, BASE, DOMAIN = "qwen2.5-law", "Qwen2.5-0.5B", "law"


def environment(standin_hub, cache) -> dict:
    return {**os.environ, "HF_HUB_CACHE": str(standin_hub), "HF_HUB_OFFLINE": "1", "MEMDEC_CACHE": str(cache),
            "MEMDEC_PUBLIC": "1"}


@pytest.fixture(scope="module")
def public_server(standin_hub, tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    with app_process(["--preset", PRESET], ROOT, environment(standin_hub, cache), cache / "app.log") as url:
        yield url


def call(url: str, endpoint: str, data: list) -> tuple[str, object]:
    posted = httpx.post(f"{url}gradio_api/call/{endpoint}", json={"data": data}, timeout=60)
    assert posted.status_code == 200, posted.text
    lines = httpx.get(f"{url}gradio_api/call/{endpoint}/{posted.json()['event_id']}", timeout=120).text.splitlines()
    event = [line[7:] for line in lines if line.startswith("event: ")][-1]
    payload = json.loads([line[6:] for line in lines if line.startswith("data: ")][-1])
    return event, payload if event == "complete" else payload["error"]


def test_public_mode_refuses_models_of_ones_own(monkeypatch, tmp_path):
    """What `MEMDEC_PUBLIC=1 python app.py --model ... --memory ...` parses, refused before anything is loaded."""
    monkeypatch.setenv("MEMDEC_PUBLIC", "1")
    args = engine_options(argparse.ArgumentParser()).parse_args(["--model", f"mine={tmp_path}",
                                                                 "--memory", f"m={tmp_path}"])
    with pytest.raises(InputError, match="a public server serves presets only"):
        engine_from(args)


def test_public_server_answers_its_preset(public_server):
    event, out = call(public_server, "compare", ["The law says", BASE, DOMAIN, None, None, None, 5, None, None, None])
    assert event == "complete" and (out[0]["base"], out[0]["domain"]) == (BASE, DOMAIN)


@pytest.mark.parametrize("name", ["openai-community/gpt2", str(ROOT / "models" / "base-small"), "../models/base-small"])
def test_no_model_can_be_named(public_server, name):
    event, message = call(public_server, "compare",
                          ["The law says", name, DOMAIN, None, None, None, 5, None, None, None])
    assert event == "error" and message.startswith("unknown base model") and BASE in message
    event, message = call(public_server, "compare", ["The law says", BASE, name, None, None, None, 5, None, None, None])
    assert event == "error" and message.startswith("unknown memory") and DOMAIN in message


def test_no_file_on_the_server_can_be_named(public_server):
    secret = ROOT / "app.py"
    served = httpx.get(f"{public_server}gradio_api/file={secret}")
    assert served.status_code in (403, 404) and "Memory Decoder Explorer" not in served.text
    as_upload = {"path": str(secret), "meta": {"_type": "gradio.FileData"}}
    event, message = call(public_server, "memory_build", [as_upload, None, "stolen", BASE, PRESET])
    assert (event, message) == ("error", SERVER_PATH)


def test_uploads_over_the_limit_are_refused_before_they_are_written(public_server):
    big = b"word " * (memories.BUNDLE_BYTES // 5 + 1000)  # the largest upload: a memory's .zip to restore
    answer = httpx.post(f"{public_server}gradio_api/upload", files={"files": ("big.txt", big)}, timeout=60)
    assert answer.status_code == 413
    small = httpx.post(f"{public_server}gradio_api/upload", files={"files": ("small.txt", b"word " * 100)}, timeout=60)
    assert small.status_code == 200


@pytest.mark.parametrize("value, public", [("1", True), ("true", True), ("ON", True), ("0", False), ("false", False),
                                           ("", False)])
def test_public_variable_reads_off_values_as_off(monkeypatch, value, public):
    monkeypatch.setenv("MEMDEC_PUBLIC", value)
    assert engine_options(argparse.ArgumentParser()).parse_args([]).public is public


def test_public_variable_with_an_unclear_value_is_refused(monkeypatch, capsys):
    monkeypatch.setenv("MEMDEC_PUBLIC", "maybe")
    with pytest.raises(SystemExit):
        engine_options(argparse.ArgumentParser()).parse_args([])
    assert "MEMDEC_PUBLIC='maybe': use 1 or 0" in capsys.readouterr().err
