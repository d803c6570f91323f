"""The input contract, fuzzed against the real app on a real port: through the raw HTTP API (POST
/gradio_api/call/<endpoint>, then its event stream) and through gradio_client. Every answer must be a correct result or
a refusal sentence; a blank error ("The upstream Gradio app has raised an exception", or an error without a message)
fails. For the three documented endpoints the test also knows which values the contract accepts, and checks that
exactly those are answered, with the value echoed back. `-m slow` runs the larger version (every named endpoint,
many more generated cases)."""
import json
import math
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from gradio_client import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.serve.contract import LIMITS, MAX_CHARS
from app.serve.ui.common import UNEXPECTED
from tests.support.visitors import behind_a_proxy, new_address


@pytest.fixture(autouse=True)
def proxied():
    """Every raw call a visitor at an address of its own (tests.support.visitors): thousands of bad requests from one
    address would be refused for its rate, which is not what this module tests."""
    with behind_a_proxy():
        yield


BLANK = "upstream Gradio app has raised an exception"
RAW_1E400 = "__1e400__"  # sent as the JSON number 1e400, which Python reads as infinity
INF, NAN = float("inf"), float("nan")
VALUES = [None, True, False, 0, 1, -1, 3, 3.0, 2.5, 1e-9, 0.5, 2048, 2049, 10**30, RAW_1E400, INF, -INF, NAN, "3", "",
          "no", "true", [], [1], {}, {"a": 1}, "\ud800", "a\udfffb", "x" * (MAX_CHARS + 1), "/etc/passwd",
          "../models", "openai-community/gpt2", "\x00\x1b[31m", "tiny-b", "law", "cell protein gene"]
CI_VALUES = [None, True, 2.5, RAW_1E400, NAN, "3", [1], {"a": 1}, "\ud800", "tiny-b", "law"]
VALID = {"text": "cell protein gene", "base": "tiny-a", "domain": "bio", "alpha": None, "k": None, "temperature": None,
         "top_n": 3, "max_new_tokens": 3, "sample": False, "seed": 0, "precise": False, "knn_lambda": None,
         "lock_alpha": False}
PARAMETERS = {"compare": ["text", "base", "domain", "alpha", "k", "temperature", "top_n", "knn_lambda", "lock_alpha",
                          "precise"],
              "generate": ["text", "base", "domain", "max_new_tokens", "sample", "seed", "alpha", "k", "temperature",
                           "knn_lambda", "lock_alpha"],
              "score": ["text", "base", "domain", "alpha", "k", "temperature", "knn_lambda", "lock_alpha"]}
WHOLE = {"k", "top_n", "max_new_tokens", "seed"}
COUNTS = {"cases": 0, "results": 0, "refusals": 0, "blank": 0, "unexpected": 0}


def number(value):
    return math.inf if value == RAW_1E400 else value


def accepted(parameter: str, value):
    """Whether the contract takes this value (None: it depends on more than the value, e.g. a passage's tokens)."""
    value = number(value)
    if parameter == "text":
        if not isinstance(value, str) or any(0xD800 <= ord(c) <= 0xDFFF for c in value) or len(value) > MAX_CHARS:
            return False
        clean = "".join(c for c in value if c in "\t\n\r" or not (ord(c) < 32 or 0x7F <= ord(c) <= 0x9F))
        return bool(clean.strip())
    if parameter in ("base", "domain"):
        return value in (None, "") or value in (("tiny-a", "tiny-b") if parameter == "base" else ("bio", "law"))
    if parameter in ("sample", "precise", "lock_alpha"):
        return value is None or isinstance(value, bool)
    if value is None:
        return True  # the default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return False
    low, high = LIMITS[parameter]
    return (parameter not in WHOLE or float(value).is_integer()) and low <= value <= high


def body(data: list) -> str:
    return json.dumps({"data": data}).replace(f'"{RAW_1E400}"', "1e400")


def call(server: str, endpoint: str, data: list) -> tuple[str, object]:
    """("complete", output list) or ("error", message or None) from the raw HTTP API."""
    posted = httpx.post(f"{server}gradio_api/call/{endpoint}", content=body(data), timeout=60,
                        headers={"content-type": "application/json", "X-Forwarded-For": new_address()})
    assert posted.status_code == 200, posted.text
    stream = httpx.get(f"{server}gradio_api/call/{endpoint}/{posted.json()['event_id']}", timeout=120).text
    event = [line[len("event: "):] for line in stream.splitlines() if line.startswith("event: ")][-1]
    payload = json.loads([line[len("data: "):] for line in stream.splitlines() if line.startswith("data: ")][-1])
    return event, payload if event == "complete" else (payload or {}).get("error")


def record(event: str, payload) -> str:
    """Counts the answer; returns the refusal message ("" for a result)."""
    COUNTS["cases"] += 1
    if event == "complete":
        COUNTS["results"] += 1
        return ""
    message = payload if isinstance(payload, str) else None
    if not message or BLANK in message:
        COUNTS["blank"] += 1
    elif message == UNEXPECTED:
        COUNTS["unexpected"] += 1
    else:
        COUNTS["refusals"] += 1
    return message or ""


def check_answer(endpoint, parameter, value, event, payload):
    message = record(event, payload)
    assert event in ("complete", "error") and (event == "complete" or message), (endpoint, parameter, value, payload)
    assert BLANK not in message and message != UNEXPECTED, (endpoint, parameter, value, message)
    expected = accepted(parameter, value)
    if expected is not None:
        assert (event == "complete") == expected, (endpoint, parameter, value, message)
    if event == "complete":
        out = payload[0]
        assert {"compare": "top", "generate": "continuations", "score": "perplexity"}[endpoint] in out
        echoed = out.get("k" if parameter == "k" else parameter)
        if parameter in ("alpha", "knn_lambda", "k", "temperature", "seed", "sample",
                         "lock_alpha") and value is not None:
            assert echoed == value, (endpoint, parameter, value, echoed)
        if parameter == "top_n" and value is not None:
            assert len(out["top"]["base"]) == value
    else:  # a refusal says what is allowed
        assert any(word in message for word in ("must be", "choose one of", "at most", "empty", "surrogate", "passage",
                                                "takes")), message


def cases(endpoints=PARAMETERS, values=VALUES):
    for endpoint, parameters in endpoints.items():
        for parameter in parameters:
            for value in values:
                data = [value if p == parameter else VALID[p] for p in parameters]
                yield endpoint, parameter, value, data


def fuzz_table(server, values) -> int:
    """Every documented parameter of /compare, /generate and /score, each value in turn (the others valid), sent as
    raw JSON by four clients at once; returns the number of cases."""
    table = list(cases(values=values))
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda case: call(server, case[0], case[3]), table))
    for (endpoint, parameter, value, _), (event, payload) in zip(table, answers):
        check_answer(endpoint, parameter, value, event, payload)
    return len(table)


def test_raw_http_fuzz_table(server):
    assert fuzz_table(server, CI_VALUES) == 29 * len(CI_VALUES)


@pytest.fixture(scope="module")
def client(server):
    return Client(server, verbose=False)


ANY = st.one_of(st.none(), st.booleans(), st.integers(-10**40, 10**40), st.floats(allow_nan=True, allow_infinity=True),
                st.text(st.characters(codec=None, exclude_categories=()), max_size=30), st.sampled_from(VALUES),
                st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))


def fuzz_client(client, examples: int):
    @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    @given(endpoint=st.sampled_from(list(PARAMETERS)), data=st.data())
    def one(endpoint, data):
        parameters = PARAMETERS[endpoint]
        chosen = data.draw(st.sets(st.sampled_from(parameters), min_size=1, max_size=2))
        kwargs = {p: (number(data.draw(ANY)) if p in chosen else VALID[p]) for p in parameters}
        try:
            out = client.predict(api_name=f"/{endpoint}", **kwargs)
            event, payload = "complete", [out]
        except Exception as error:  # gradio_client raises AppError with the server's message
            event, payload = "error", str(error)
        message = record(event, payload)
        assert BLANK not in message and message != UNEXPECTED, (endpoint, kwargs, message)
        expected = [accepted(p, kwargs[p]) for p in chosen]  # locked, a lambda sent is still checked
        if None not in expected:
            assert (event == "complete") == all(expected), (endpoint, kwargs, message)
    one()


def test_gradio_client_fuzz(client):
    """Generated values (hypothesis: any JSON type, huge and non-finite numbers, any code point) for one or two
    parameters at a time, through gradio_client."""
    fuzz_client(client, 80)


def fuzz_page(server, values):
    """The page's own endpoints (undocumented, but callable) with each value in every input: whatever Gradio's
    components or the handlers make of it, the answer is a result or a sentence."""
    info = httpx.get(f"{server}gradio_api/info", params={"all_endpoints": "true"}).json()["named_endpoints"]
    page = {name.strip("/"): len(spec["parameters"]) for name, spec in info.items()
            if name.strip("/") not in PARAMETERS and name.strip("/") not in ("cost_view",)}  # cost_view measures: slow
    assert {"compare_view", "generate_view", "score_view", "memory_build", "memory_distil"} <= set(page)
    table = [(endpoint, position, value) for endpoint, count in page.items() for position in range(count)
             for value in values]
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda case: call(server, case[0], [case[2] if i == case[1] else None
                                                                     for i in range(page[case[0]])]), table))
    for (endpoint, position, value), (event, payload) in zip(table, answers):
        message = record(event, payload)
        assert BLANK not in message and message != UNEXPECTED, (endpoint, position, value, message)
        assert event == "complete" or message, (endpoint, position, value)


def test_page_endpoints_answer_bad_values_with_a_sentence(server):
    fuzz_page(server, [True, RAW_1E400, [1], {"a": 1}, "\ud800"])


def test_missing_values_get_a_sentence(server):
    event, message = call(server, "compare", ["cell"])
    assert event == "error" and "takes 10 values" in message


def test_cli_refuses_damaged_text(tiny_models, tmp_path):
    """The command line goes through the same contract: bytes that are not UTF-8 reach Python as lone surrogates."""
    memory = tiny_models["memories"]["bio"]
    args = [sys.executable, "-m", "app.serve.cli", "compare", os.fsdecode(b"cell \xff"), "--model",
            f"a={tiny_models['bases']['tiny-a']}", "--memory", f"bio={memory.decoder},{memory.corpus}"]
    done = subprocess.run(args, capture_output=True, text=True, env={**os.environ, "MEMDEC_CACHE": str(tmp_path)})
    assert done.returncode != 0 and "lone surrogate" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.slow
def test_fuzz_at_length(server, client):
    """The larger run (pytest -m slow tests/api/test_contract.py): every value of VALUES in the table and in the page's
    endpoints, and 2000 generated cases."""
    fuzz_table(server, VALUES)
    fuzz_page(server, VALUES)
    fuzz_client(client, 2000)


def test_zz_report_counts():
    """Runs last in this file: the totals the README quotes."""
    print(f"\nfuzz: {COUNTS['cases']} cases ({COUNTS['results']} results, {COUNTS['refusals']} refusals), "
          f"blank errors: {COUNTS['blank']}, unexpected: {COUNTS['unexpected']}")
    assert COUNTS["blank"] == COUNTS["unexpected"] == 0
