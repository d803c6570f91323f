"""Who a visitor is, as the memories' registry names owners: the token their browser keeps in a cookie (made by
VISITOR_JS on first visit), so that their memories outlive a reload; a client without it (the API) is its Gradio
session. Every lookup of a visitor's own memory passes this owner to the engine, which serves a private memory to its
owner only."""
import re
from http.cookies import CookieError, SimpleCookie

import gradio as gr
from gradio.context import LocalContext

from .. import memories
from .common import CLIENTS

VISITOR_COOKIE = "memdec_visitor"
VISITOR_TOKEN = re.compile(r"[0-9a-f]{32}")
VISITOR_JS = f"""<script>
(() => {{
  const found = document.cookie.split("; ").find(c => c.startsWith("{VISITOR_COOKIE}="));
  const token = found ? found.split("=")[1] : Array.from(crypto.getRandomValues(new Uint8Array(16)),
                                                         b => b.toString(16).padStart(2, "0")).join("");
  document.cookie = `{VISITOR_COOKIE}=${{token}}; path=/; max-age=${{30 * 86400}}; SameSite=Strict`;
}})();
</script>"""


def visitor(request: gr.Request) -> str:
    """Who is asking, as the registry names owners: the browser's token (VISITOR_COOKIE), else the session."""
    try:
        cookie = SimpleCookie(request.headers.get("cookie", ""))
    except CookieError:
        cookie = {}
    token = cookie[VISITOR_COOKIE].value if VISITOR_COOKIE in cookie else ""
    return memories.owner(token if VISITOR_TOKEN.fullmatch(token) else request.session_hash)


def has_token(request: gr.Request) -> bool:
    """Whether the visitor is a browser's token (their memories last) rather than a session (they go with it)."""
    return visitor(request) != memories.owner(request.session_hash)


def current() -> str | None:
    """The visitor of the request being answered (None outside one: the command line, a test calling a handler)."""
    request = LocalContext.request.get(None)
    return visitor(request) if request is not None and request.session_hash else None


def origin(request: gr.Request) -> memories.Origin:
    """Where a visitor's upload comes from, for the registry's quotas per address and its clean-up."""
    return memories.Origin(memories.owner(CLIENTS.address(request)), has_token(request))
