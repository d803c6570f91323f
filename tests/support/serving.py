"""The app on a free local port, in a background thread or as `python app.py` in a process of its own, for the tests
and the screenshots."""
import contextlib
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_answer(proc, url: str, limit_s: float, log: Path) -> float:
    """Seconds until the server process `proc` answers at url; fails with the end of its output (the file log) when
    it exits first or does not answer within limit_s."""
    start = time.perf_counter()
    while time.perf_counter() - start < limit_s:
        try:
            urllib.request.urlopen(url, timeout=2)
            return time.perf_counter() - start
        except OSError:
            assert proc.poll() is None, log.read_text(errors="replace")[-2000:]
            time.sleep(0.5)
    raise AssertionError(f"the server did not answer at {url} within {limit_s:.0f} s: {log.read_text()[-2000:]}")


@contextlib.contextmanager
def app_process(args: list, cwd: Path, env: dict, log: Path, limit_s: float = 300):
    """`python app.py ARGS` in cwd on a free loopback port; yields its url once it answers (limit_s only stops a hung
    start) and stops it on exit. Its output goes to the file log, never to a pipe: a pipe that nobody reads fills up
    (64 KB of progress bars while a first datastore builds) and the server blocks in the middle of a write."""
    port = free_port()
    env = {**env, "GRADIO_SERVER_PORT": str(port), "GRADIO_SERVER_NAME": "127.0.0.1"}
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "app.py", *args], cwd=cwd, env=env, stdout=out,
                                stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}/"
        wait_for_answer(proc, url, limit_s, log)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def serve_in_background(engine):
    """(url, demo): the real page and API of this engine on 127.0.0.1; call demo.close() when done."""
    from app.serve.ui import launch  # gradio only when a server is wanted

    port = free_port()
    demo = launch(engine, server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    return f"http://127.0.0.1:{port}/", demo


@contextlib.contextmanager
def serving(engine):
    """The whole page on a free port; its distillation jobs are stopped when it closes."""
    from app.serve import memories

    url, demo = serve_in_background(engine)
    try:
        yield url
    finally:
        memories.of(engine).jobs.stop_all()
        demo.close()
