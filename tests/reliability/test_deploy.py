"""The Space deploy: its plan (files, storage, front matter, variables) offline, what it asks the Hub for, and that the
files it would upload serve the preset on their own."""
import os
import shutil
import subprocess

import pytest
from gradio_client import Client
from huggingface_hub import SpaceCard

from app.core.paths import ROOT
from app.serve import cli, deploy
from app.serve.engine import InputError
from tests.support.serving import app_process

PROMPT = "The history of the"


def dry_run(capsys, *args) -> str:
    """What `python -m app.serve.cli deploy --space alice/memdec --dry-run ARGS` prints (run in this process)."""
    cli.deploy_command(["--space", "alice/memdec", "--dry-run", *args])
    return capsys.readouterr().out


def listed(text: str) -> dict:
    """path -> (storage, size) from the dry run's file lines."""
    rows = [line.split() for line in text.splitlines() if line.startswith(("  regular ", "  large "))]
    return {path: (kind, int(size.replace(",", ""))) for kind, size, path in rows}


@pytest.mark.parametrize("preset", ["embedded", "gpt2-wikitext", "qwen2.5-law"])
def test_dry_run_lists_the_files_and_settings(capsys, preset):
    text = dry_run(capsys, "--preset", preset)
    files = listed(text)
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    assert set(files) <= set(tracked) | {"README.md"}  # only what git tracks: never a cache, a venv or a build
    assert {"app.py", "requirements.txt", "README.md", "app/serve/engine.py", "app/make/distil.py"} <= set(files)
    assert not [p for p in files if p.startswith(("tests/", "tools/", ".ci/", ".cache/")) or "__pycache__" in p]
    for path, (kind, size) in files.items():
        if path != "README.md":
            assert size == (ROOT / path).stat().st_size
        if size > 10 * 2**20:
            assert kind == "large", path  # the Hub refuses regular blobs over 10 MB
        if path.endswith((".safetensors", ".gz", ".png")):
            assert kind == "large", path  # binary: the Hub stores it as LFS/Xet whatever its size
    embedded = preset == "embedded"
    assert ("models/base-large/model.safetensors" in files) == embedded  # 13.8 MB: the file a git push was refused
    assert any(p.startswith("assets/corpora/") for p in files) == embedded
    assert f"  MEMDEC_PRESET={preset}\n" in text and "  MEMDEC_PUBLIC=1\n" in text
    assert "  MEMDEC_TRUSTED_PROXIES=1\n" in text
    assert ("  MEMDEC_PRELOAD=1\n" in text) == (not embedded)
    matter = SpaceCard(text.split("README.md front matter:\n", 1)[1]).data
    assert (matter.sdk, matter.app_file) == ("gradio", "app.py")
    if preset == "gpt2-wikitext":
        assert matter.models == ["openai-community/gpt2", "Clover-Hill/MemoryDecoder-gpt2-small"]
        assert matter.datasets == ["Salesforce/wikitext"] and matter.suggested_hardware == "l4x1"
    if preset == "qwen2.5-law":
        assert matter.preload_from_hub == ["Qwen/Qwen2.5-0.5B", "Clover-Hill/MemoryDecoder-Qwen-law"]
        assert matter.get("datasets") is None  # no public corpus
    if embedded:
        assert matter.get("models") is None and matter.get("suggested_hardware") is None


def test_bad_requests_get_a_sentence(capsys):
    with pytest.raises(InputError, match="give OWNER/NAME"):
        deploy.plan("memdec", ["embedded"])
    with pytest.raises(InputError, match="unknown preset 'gpt5'"):
        deploy.plan("alice/memdec", ["gpt5"])
    with pytest.raises(InputError, match="--hardware 'h100': choose one of cpu-basic, "):
        deploy.plan("alice/memdec", ["embedded"], hardware="h100")
    gated = deploy.plan("alice/memdec", ["llama3-law"])
    assert any("--secret HF_TOKEN" in note for note in gated.notes)
    assert deploy.plan("alice/memdec", ["qwen2.5-law"], hardware="t4-small").variables["MEMDEC_DTYPE"] == "fp16"
    with pytest.raises(SystemExit) as exit:
        cli.deploy_command(["--space", "a/b", "--variable", "X"])
    assert exit.value.code == 2 and "--variable 'X': give KEY=VALUE" in capsys.readouterr().err


class RecordingHub:
    """Stands in for huggingface_hub.HfApi: a Space that an earlier deploy left files and a variable on."""

    def __init__(self):
        self.calls, self.variables = [], {"MEMDEC_PRESETS": "a,b", "OTHER": "kept"}

    def __getattr__(self, name):
        def call(*args, **kwargs):
            self.calls.append((name, args, kwargs))
            if name == "create_repo":
                return f"https://huggingface.co/spaces/{args[0]}"
            if name == "get_space_variables":
                return dict(self.variables)
            if name == "list_repo_files":
                return [".gitattributes", "app.py", "old_module.py"]
        return call

    def named(self, name):
        return [(args, kwargs) for n, args, kwargs in self.calls if n == name]


def test_push_makes_the_space_hold_exactly_the_plan(monkeypatch):
    chosen = deploy.plan("alice/memdec", ["llama3-law"], hardware="l4x1", secrets=["HF_TOKEN"])
    hub = RecordingHub()
    monkeypatch.delenv("HF_TOKEN", raising=False)
    with pytest.raises(InputError, match="--secret HF_TOKEN: set it in this shell's environment first"):
        deploy.push(chosen, api=hub)
    assert not hub.calls  # nothing half-done

    monkeypatch.setenv("HF_TOKEN", "hf_test_value")
    assert deploy.push(chosen, api=hub) == "https://huggingface.co/spaces/alice/memdec"
    (args, kwargs), = hub.named("create_repo")
    assert args == ("alice/memdec",) and kwargs == {"repo_type": "space", "space_sdk": "gradio", "exist_ok": True}
    assert hub.named("request_space_hardware") == [(("alice/memdec", "l4x1"), {})]
    assert {args[1]: args[2] for args, _ in hub.named("add_space_variable")} == chosen.variables
    assert hub.named("delete_space_variable") == [(("alice/memdec", "MEMDEC_PRESETS"), {})]  # not OTHER: not ours
    assert hub.named("add_space_secret") == [(("alice/memdec", "HF_TOKEN", "hf_test_value"), {})]
    (args, kwargs), = hub.named("create_commit")
    operations = args[1]
    added = {op.path_in_repo: op for op in operations if type(op).__name__ == "CommitOperationAdd"}
    deleted = [op.path_in_repo for op in operations if type(op).__name__ == "CommitOperationDelete"]
    assert set(added) == {f.path for f in chosen.files} and deleted == ["old_module.py"]
    assert added["README.md"].path_or_fileobj == chosen.readme.encode()
    assert added["app.py"].path_or_fileobj == str(ROOT / "app.py")
    assert kwargs["repo_type"] == "space"


def test_the_uploaded_files_serve_the_preset_on_their_own(standin_hub, tmp_path):
    """The gpt2-wikitext plan copied into an empty folder, started as the Space starts it (its variables, offline
    hub with the stand-ins): the files left out (models/, corpora, tests/, tools/) were not needed."""
    chosen = deploy.plan("alice/memdec", ["gpt2-wikitext"])
    space = tmp_path / "space"
    for f in chosen.files:
        (space / f.path).parent.mkdir(parents=True, exist_ok=True)
        if f.path == "README.md":
            (space / f.path).write_text(chosen.readme)
        else:
            shutil.copy(ROOT / f.path, space / f.path)
    env = {**os.environ, **chosen.variables, "HF_HUB_CACHE": str(standin_hub), "HF_HUB_OFFLINE": "1",
           "MEMDEC_CACHE": str(tmp_path / "cache"), "MEMDEC_CORPUS_TOKENS": "3000", "PYTHONPATH": ""}
    # MEMDEC_PRELOAD: the models and the store are ready before it answers
    with app_process([], space, env, tmp_path / "app.log") as url:
        out = Client(url, verbose=False).predict(PROMPT, api_name="/compare")
        assert (out["base"], out["domain"], out["knn_unavailable"]) == ("gpt2", "wikitext", None)
