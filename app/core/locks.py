"""One builder at a time per output, across threads and processes: a file lock next to the output (filelock's
flock on POSIX, released by the system if its holder dies)."""
from pathlib import Path

from filelock import FileLock


def held(path: Path) -> FileLock:
    """The lock of the output at path (a file or a folder), `<path>.lock`, to use as `with locks.held(path):`.
    Reentrant within a thread (one instance per path), exclusive between threads and processes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(path.with_name(path.name + ".lock"), is_singleton=True)
