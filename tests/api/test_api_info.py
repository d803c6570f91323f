"""The API's named endpoints and their parameters as clients see them (GET /gradio_api/info), held against the
contract committed in gradio_api_info.json: a change inside the app must not change what a client sends or gets.
The file was written from the app as it served before the request path was restructured; code snippets name the
server's port and are left out."""
import json
from pathlib import Path

import httpx

CONTRACT = Path(__file__).with_name("gradio_api_info.json")


def test_named_endpoints_and_parameters_are_the_committed_contract(server):
    info = httpx.get(f"{server}gradio_api/info", timeout=30).json()
    for endpoint in info["named_endpoints"].values():
        endpoint.pop("code_snippets", None)
    assert info == json.loads(CONTRACT.read_text())
