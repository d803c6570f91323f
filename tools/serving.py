"""The app on a free local port in a background thread, for the tests and the screenshots."""
import socket
import time
import urllib.request


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_answer(proc, url: str, limit_s: float) -> float:
    """Seconds until the server process `proc` answers at url; fails with its last error output when it exits first
    or does not answer within limit_s."""
    start = time.perf_counter()
    while time.perf_counter() - start < limit_s:
        try:
            urllib.request.urlopen(url, timeout=2)
            return time.perf_counter() - start
        except OSError:
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            time.sleep(0.5)
    raise AssertionError(f"the server did not answer at {url} within {limit_s:.0f} s")


def serve_in_background(engine):
    """(url, demo): the real page and API of this engine on 127.0.0.1; call demo.close() when done."""
    from app.serve.ui import launch  # gradio only when a server is wanted

    port = free_port()
    demo = launch(engine, server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    return f"http://127.0.0.1:{port}/", demo
