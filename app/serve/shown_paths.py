"""What a visitor may see of a path on this server: never where the repository, the cache, the home directory or a
temporary folder lies. shown() names one path (a model's id, a store's folder), scrub() rewrites every such path inside
a sentence (an error's message), scrubbed() every string of an answer. The roots are read at each call, so a test that
moves the cache (app.core.paths.CACHE) is followed."""
import os
import re
import tempfile
from pathlib import Path

from ..core import paths

# the characters that end a path inside a sentence: white space, quotes, brackets and separators of lists
_END = r"\s'\"`<>|;,()\[\]{}"


def _roots() -> list[tuple[str, str | None]]:
    """(absolute folder, what it is shown as) longest first, so the cache inside the repository or a temporary folder
    is found before them; None: only the last part of a path under it is shown."""
    named = [(paths.CACHE, "cache"), (paths.ROOT, "")]
    hidden = [Path.home(), Path(tempfile.gettempdir()), Path("/tmp"), Path("/var/tmp")]
    out = {}
    for folder, name in [*named, *[(h, None) for h in hidden]]:
        for form in (str(folder), os.path.realpath(folder)):
            form = form.rstrip("/")
            if form and os.path.isabs(form):
                out.setdefault(form, name)
    return sorted(out.items(), key=lambda item: -len(item[0]))


def _under(name: str | None, rest: str) -> str:
    rest = rest.strip("/")
    if name is None:
        return Path(rest).name or "…"
    return "/".join(part for part in (name, rest) if part) or "."


def shown(path) -> str:
    """A hub id or a relative path stays; a folder under the repository becomes relative to it (models/base-small),
    one under the cache "cache/..." (cache/datastores/...), any other absolute path its last part."""
    if path is None:
        return ""
    text = str(path)
    if not os.path.isabs(text):
        return text
    for root, name in _roots():
        if text == root or text.startswith(root + "/"):
            return _under(name, text[len(root):])
    return Path(text).name or "…"


def scrub(message: str) -> str:
    """The sentence with every absolute path under the repository, the cache, the home directory or a temporary folder
    written as shown() writes it (a full stop or colon after a path stays the sentence's)."""
    if not isinstance(message, str):
        return message
    for root, name in _roots():
        pattern = re.escape(root) + rf"(?P<rest>/[^{_END}]*?)?(?P<tail>[.:]*)(?![^{_END}])"
        message = re.sub(pattern, lambda m, n=name: _under(n, m["rest"] or "") + m["tail"], message)
    return message


def scrubbed(value):
    """An answer (dicts, lists, strings) with scrub() applied to every string in it."""
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {key: scrubbed(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(scrubbed(item) for item in value)
    return value


def named(engine, folder) -> str:
    """A model as a visitor may see it: the name of the base it is, else shown() (a decoder: models/memdec-law)."""
    return next((name for name, path in list(engine.bases.items()) if str(path) == str(folder)), shown(folder))
