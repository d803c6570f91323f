"""A damaged output is moved aside, not deleted, so that it can be examined; it is then rebuilt. Only the latest
KEPT copies of each are kept, so that damage that repeats (a failing disk, a hostile loop) cannot fill the disk."""
import logging
import shutil
from datetime import datetime
from pathlib import Path

KEPT = 2
log = logging.getLogger(__name__)


def move_aside(path: Path, reason: str) -> Path:
    """Renames the file or folder to `<name>.damaged-<time>`, logs why, and drops the oldest copies beyond KEPT.
    Call it holding the output's lock (app.core.locks)."""
    path = Path(path)
    aside = path.with_name(f"{path.name}.damaged-{datetime.now():%Y%m%dT%H%M%S.%f}")
    path.rename(aside)
    log.warning("%s is damaged (%s): moved aside to %s, rebuilding", path, reason, aside.name)
    for old in sorted(path.parent.glob(f"{path.name}.damaged-*"))[:-KEPT]:
        shutil.rmtree(old) if old.is_dir() else old.unlink()
    return aside
