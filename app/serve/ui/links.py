"""A link to a view of the page: its tab and settings (family, base, memory, prompt, alpha, lambda, lock, k, T) read
from the URL's query when the page opens, e.g. `?tab=Teach&base=large&memory=law&prompt=...&alpha=0.3&lock=1&k=16&T=5`,
and a button that writes the link of what is on screen (to the clipboard, and to a box since a browser may refuse the
clipboard). A value that does not fit is left out with a short note; the page opens with the rest."""
from dataclasses import dataclass

import gradio as gr

from .. import contract
from ..engine import InputError

FLAGS = {"1": True, "true": True, "yes": True, "on": True, "0": False, "false": False, "no": False, "off": False}
WEIGHTS = {"alpha": "alpha", "lambda": "knn_lambda", "k": "k", "T": "temperature"}  # query key -> the row's field
SHOWN = 40  # characters of a bad value repeated in its note

# The query of what is on screen, built in the browser from the row's values and the open tab; the keys are those
# read(): tab, family, base, memory, prompt, alpha, lambda, lock, k, T.
COPY_JS = """(family, base, memory, prompt, alpha, lambda, lock, k, T) => {
  const tab = document.querySelector("button[role=tab][aria-selected=true]");
  const query = new URLSearchParams();
  const values = {tab: tab ? tab.textContent.trim() : "", family, base, memory, prompt, alpha, lambda,
                  lock: lock ? 1 : 0, k, T};
  for (const [key, value] of Object.entries(values)) {
    if (value !== null && value !== undefined && value !== "") query.set(key, value);
  }
  const url = `${location.origin}${location.pathname}?${query}`;
  if (navigator.clipboard) navigator.clipboard.writeText(url).catch(() => {});
  return url;
}"""


@dataclass
class Links:
    copy: gr.Button
    link: gr.Textbox  # the link written, to copy by hand where the clipboard is refused
    note: gr.Markdown  # what a link held that was left out

    @classmethod
    def build(cls) -> "Links":
        with gr.Row():
            copy = gr.Button("Copy link to this view", size="sm", scale=0, min_width=200, elem_id="copy-link")
            link = gr.Textbox(show_label=False, max_lines=1, scale=4, elem_id="view-link", buttons=["copy"],
                              placeholder="the link to this view appears here")
        return cls(copy, link, gr.Markdown(elem_id="link-note"))


def flag(raw: str) -> bool:
    if raw.lower() not in FLAGS:
        raise InputError("lock must be 1 or 0")
    return FLAGS[raw.lower()]


def number(key: str, limits: str, cast=float):
    """A number of the query (key) within LIMITS[limits]."""
    def check(raw: str):
        try:
            value = float(raw)
        except ValueError:
            raise InputError(f"{key} must be a number") from None
        return contract.check(key, value, cast, contract.LIMITS[limits])
    return check


CHECKS = {"prompt": contract.text, "alpha": number("alpha", "alpha"), "lambda": number("lambda", "knn_lambda"),
          "lock": flag, "k": number("k", "k", int), "T": number("T", "temperature")}


def read(params: dict, choices: dict) -> tuple[dict, list[str]]:
    """The values a query gives, each checked; choices: the names allowed for tab, family, base and memory (the base
    and memory of the family the query names, else of the page's). Returns (values, notes on those left out)."""
    values, notes = {}, []
    params = {("memory" if key == "domain" else key): value for key, value in params.items()}
    for key in ("tab", "family", "base", "memory", *CHECKS):
        raw = params.get(key)
        if raw is None:
            continue
        try:
            values[key] = (contract.choice(key, raw, choices[key]) if key in choices else CHECKS[key](raw))
        except InputError as error:
            notes.append(f"`{key}={raw[:SHOWN]}` ({error})")
        if key == "family" and key in values:
            choices = {**choices, **choices["of_family"](values["family"])}
    return values, notes
