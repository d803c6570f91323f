"""The first click on a fresh cache: base and Memory Decoder answer at once, the kNN-LM's part shows a progress bar
that stays on the page, and the kNN-LM fills in by itself when its store is ready; no error anywhere, and the API
answers alike with a field saying what is pending. The store's build is held until the partial answers are seen, so
"at once" is an order of events, not a time."""
import pytest
from gradio_client import Client
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from app.serve.engine import Engine
from tests.support.browser import open_page
from tests.support.builds import LIMIT_S, held_builds
from tests.support.serving import serving


def bars(driver, plot_id="dist-plot") -> int:
    return driver.execute_script(
        f"return document.querySelectorAll('#{plot_id} .js-plotly-plot .barlayer .point path').length")


def legend(driver) -> str:
    return driver.execute_script(
        "return [...document.querySelectorAll('#dist-plot .legendtext')].map(e => e.textContent).join('|')")


@pytest.fixture(scope="module")
def held_build(tiny_models, tmp_path_factory):
    """(url, release): a fresh cache whose stores are built in the background only once release is set."""
    with pytest.MonkeyPatch.context() as patch:
        release = held_builds(patch, tmp_path_factory.mktemp("fresh-cache"))
        engine = Engine(tiny_models["bases"], tiny_models["memories"])
        engine.prepare_in_background()
        try:
            with serving(engine) as url:
                yield url, release
        finally:
            release.set()


def test_first_click_answers_now_and_the_knn_lm_fills_in(browser, held_build):
    url, release = held_build
    page = open_page(browser, url)
    page.get_log("browser")  # what loading logged is another test's concern
    page.find_element(By.ID, "compare-button").click()
    WebDriverWait(page, LIMIT_S).until(lambda d: bars(d) > 0)
    assert not release.is_set()  # answered while the store was still held back
    assert "p kNN-LM" not in legend(page) and "p Memory Decoder" in legend(page)
    assert bars(page) == 4 * 12  # base, MemDec and base + MemDec's two parts, 12 tokens
    pending = page.find_element(By.ID, "compare-pending")
    assert "kNN-LM coming" in pending.text and "being built in the background" in pending.text
    assert pending.find_elements(By.TAG_NAME, "progress")
    assert not page.find_elements(By.CSS_SELECTOR, ".toast-body.error")
    release.set()
    WebDriverWait(page, LIMIT_S).until(lambda d: bars(d) == 7 * 12)  # filled in by itself, no click
    assert "p kNN-LM" in legend(page) and not page.find_element(By.ID, "compare-pending").text.strip()
    assert not page.find_elements(By.CSS_SELECTOR, ".toast-body.error")
    assert [e for e in page.get_log("browser") if e["level"] == "SEVERE"] == []


def test_the_api_answers_a_partial_with_what_is_pending(tiny_models, tmp_path, monkeypatch):
    """/compare, /score and /generate while a store is held: base and MemDec, and pending.knn saying how far."""
    release = held_builds(monkeypatch, tmp_path)
    engine = Engine(tiny_models["bases"], tiny_models["memories"])
    engine.prepare_in_background()
    try:
        with serving(engine) as url:
            client = Client(url, verbose=False)
            compared = client.predict("cell protein", api_name="/compare")
            scored = client.predict("cell protein gene membrane", api_name="/score")
            generated = client.predict("cell protein", max_new_tokens=4, api_name="/generate")
            assert not release.is_set()
            for answer in (compared, scored, generated):
                assert answer["knn_building"] and answer["pending"]["knn"]["builds_ahead"] >= 0
                assert "being built" in answer["pending"]["knn"]["reason"] == answer["knn_unavailable"]
            assert set(compared["top"]) == {"base", "memdec", "mix_memdec"}
            assert set(scored["perplexity"]) == {"base", "memdec", "mix_memdec"} and scored["knn_coverage"] is None
            assert set(generated["continuations"]) == {"base", "mix_memdec"}
            release.set()
            for _ in range(LIMIT_S * 5):
                compared = client.predict("cell protein", api_name="/compare")
                if not compared["knn_building"]:
                    break
            assert compared["pending"] is None and compared["knn_unavailable"] is None and "knn" in compared["top"]
    finally:
        release.set()
