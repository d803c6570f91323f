"""The app on a free local port in a background thread, for the tests and the screenshots."""
import socket


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_in_background(engine):
    """(url, demo): the real page and API of this engine on 127.0.0.1; call demo.close() when done."""
    from app.serve.ui import launch  # gradio only when a server is wanted

    port = free_port()
    demo = launch(engine, server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    return f"http://127.0.0.1:{port}/", demo
