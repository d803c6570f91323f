"""What every tab's handlers share: engine errors shown as Gradio errors, the datastore's progress bar, a GPU for
the calls that run models on ZeroGPU Spaces, and how many model calls may run at once, per visitor and in all."""
import functools

import gradio as gr
from gradio.context import LocalContext

from ..engine import InputError
from ..sessions import SessionLimit

MODEL_SLOTS = 32  # requests inside the engine at once: its scheduler batches and interleaves their model calls
PER_SESSION = SessionLimit(4)  # a page runs at most a few at once (compare, generate, score, cost)

try:  # on Hugging Face Spaces: ZeroGPU lends a GPU to each decorated call (elsewhere the decorator does nothing)
    import spaces

    on_gpu = spaces.GPU(duration=120)
except ImportError:
    def on_gpu(fn):
        return fn


def shown(fn):
    """InputError -> gr.Error, so a bad request gets its message in the page or the API and the app keeps serving."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except InputError as error:
            raise gr.Error(str(error)) from None
    return wrapper


def limited(fn):
    """Counts the call against its visitor's PER_SESSION (refused when over it); calls without a session are not
    limited."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        request = LocalContext.request.get(None)
        if request is None or not request.session_hash:
            return fn(*args, **kwargs)
        with PER_SESSION.slot(request.session_hash):
            return fn(*args, **kwargs)
    return wrapper


def progress_bar(progress: gr.Progress):
    return lambda fraction, desc: progress(fraction, desc=f"building the {desc} (once; cached on disk)")
