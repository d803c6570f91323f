"""What every tab's handlers share: engine errors shown as Gradio errors, the datastore's progress bar, and a GPU
for the calls that run models on ZeroGPU Spaces."""
import functools

import gradio as gr

from ..engine import InputError

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


def progress_bar(progress: gr.Progress):
    return lambda fraction, desc: progress(fraction, desc=f"building the {desc} (once; cached on disk)")
