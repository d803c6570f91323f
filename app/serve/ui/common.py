"""What every tab's handlers share: engine errors shown as Gradio errors, and the datastore's progress bar."""
import functools

import gradio as gr

from ..engine import InputError


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
