"""Hub caches for the engine tests: an empty one to fill per test, and the session's stand-ins, both offline."""
import huggingface_hub.constants as hub
import pytest


@pytest.fixture()
def hub_cache(tmp_path, monkeypatch):
    """An empty offline hub cache; hub_cache.add(repo, save) lays a snapshot out as huggingface_hub does after a
    download, where save(folder) writes the model files."""
    monkeypatch.setattr(hub, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", True)

    class Cache:
        root = tmp_path / "hub"

        def add(self, repo: str, save, commit: str = "0123456789abcdef0123456789abcdef01234567"):
            entry = self.root / ("models--" + repo.replace("/", "--"))
            save(entry / "snapshots" / commit)
            (entry / "refs").mkdir(parents=True, exist_ok=True)
            (entry / "refs" / "main").write_text(commit)
            return entry / "snapshots" / commit

    return Cache()


@pytest.fixture()
def offline_hub(standin_hub, monkeypatch):
    """huggingface_hub pointed at the stand-ins, offline."""
    monkeypatch.setattr(hub, "HF_HUB_CACHE", str(standin_hub))
    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", True)
    return standin_hub
