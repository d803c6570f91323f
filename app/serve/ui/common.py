"""What every tab's handlers share: every failure answered with a sentence (a Gradio error), the datastore's progress
bar, a GPU for the calls that run models on ZeroGPU Spaces, and each client address's limits (app.serve.clients) on
model calls running and model time spent (those on requests sent and queued: app.serve.ui.admission)."""
import functools
import logging

import gradio as gr
from gradio.context import LocalContext
from gradio.exceptions import ComponentProcessingError, InvalidPathError
from pydantic import ValidationError

from ..clients import Clients
from ..engine import InputError
from ..shown_paths import scrub
from .launch_settings import SETTINGS

MODEL_SLOTS = SETTINGS.model_slots  # the concurrency_limit of every event with concurrency_id="models"
CLIENTS = Clients(SETTINGS.policy)

log = logging.getLogger("memdec")
UNEXPECTED = ("Something went wrong on the server while answering this request; it has been logged. Try again, or "
              "change the request: the app keeps serving.")
WRONG_FIELD = ("A value sent does not fit its field: text for a text box, a number for a slider or number box, true "
               "or false for a check box, one of the listed names for a menu, an uploaded file for a file field.")
SERVER_PATH = ("A file must be uploaded first (POST /gradio_api/upload) and sent by the path that returns; files on "
               "the server cannot be named.")

try:  # on Hugging Face Spaces: ZeroGPU lends a GPU to each decorated call (elsewhere the decorator does nothing)
    import spaces

    on_gpu = spaces.GPU(duration=120)
except ImportError:
    def on_gpu(fn):
        return fn


def as_message(error: Exception) -> gr.Error:
    """The sentence a failure is answered with: an InputError's own; any other failure's traceback goes to the log."""
    if isinstance(error, gr.Error):
        error.message = scrub(error.message)  # Gradio's own (a menu value refused) may quote a path sent
        return error
    if isinstance(error, InputError):
        return gr.Error(scrub(str(error)))  # no server path in what a visitor reads
    if isinstance(error, InvalidPathError):
        return gr.Error(SERVER_PATH)
    if isinstance(error, (ComponentProcessingError, ValidationError)):
        return gr.Error(WRONG_FIELD)
    log.error("a request failed", exc_info=error)
    return gr.Error(UNEXPECTED)


def shown(fn):
    """Any failure -> gr.Error with its sentence (as_message), so a request always gets one in the page or the API
    and the app keeps serving."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as error:
            raise as_message(error) from None
    return wrapper


class Page(gr.Blocks):
    """gr.Blocks whose every event, handler or not, fails with a sentence: what goes wrong before or after a handler
    (a value that does not fit its field, a file named by its path on the server) becomes a gr.Error too."""

    async def process_api(self, block_fn, inputs, *args, **kwargs):
        fn = self.fns[block_fn] if isinstance(block_fn, int) else block_fn
        if not fn.batch and isinstance(inputs, list) and len(inputs) < len(fn.inputs):
            raise gr.Error(f"{fn.api_name or 'this event'} takes {len(fn.inputs)} values, in the order GET "
                           f"/gradio_api/info lists them; this request sent {len(inputs)} (gradio_client fills in "
                           "the defaults)")
        try:
            return await super().process_api(block_fn, inputs, *args, **kwargs)
        except Exception as error:
            raise as_message(error) from None
        finally:
            self.forget_if_untouched(kwargs.get("session_hash"), kwargs.get("state"))

    def forget_if_untouched(self, session_hash, state):
        """Drops a session's state that still is the page's defaults (no value kept, no component changed): Gradio
        keeps one per session, a copy of the whole page's config (~0.3 MB here), and every raw HTTP call is a new
        session; one made again when next asked for is the same."""
        default = self.default_config
        if state is None or state.state_data or len(state.blocks_config.fns) != len(default.fns) or any(
                state.blocks_config.blocks.get(key) is not block for key, block in default.blocks.items()):
            return
        holder = self.state_holder
        with holder.lock:
            if holder.session_data.get(session_hash) is state:
                del holder.session_data[session_hash]
                holder.time_last_used.pop(session_hash, None)


def limited(fn):
    """Runs the call as its client address's (CLIENTS.admitted: refused when the address has its most requests
    running or has spent its model time; the scheduler charges the calls' time to it); calls from outside a request
    (the command line, a test) are not limited."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        request = LocalContext.request.get(None)
        if request is None:
            return fn(*args, **kwargs)
        with CLIENTS.admitted(CLIENTS.address(request)):
            return fn(*args, **kwargs)
    return wrapper


def progress_bar(progress: gr.Progress):
    return lambda fraction, desc: progress(fraction, desc=f"building the {desc} (once; cached on disk)")
