"""Memory Decoder Explorer: base model, Memory Decoder and live kNN-LM side by side (Hugging Face Spaces entry point).

    python app.py          # serves the embedded models on http://127.0.0.1:7860
"""
import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # the app runs without network

from app.serve.engine import Engine  # noqa: E402
from app.serve.ui import CSS, THEME, build  # noqa: E402

demo = build(Engine.embedded())

if __name__ == "__main__":
    demo.launch(theme=THEME, css=CSS)
