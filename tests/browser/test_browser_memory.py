"""The Your memory tab of the whole page in headless Chromium: a file uploaded becomes a memory whose live kNN-LM the
Compare tab uses at once; distilling draws its curve, and the same menu entry gains the decoder and compares; the
memory outlasts a reload of the page, still one entry."""
import re
import urllib.request

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from app.serve.engine import Engine
from tests.support.browser import open_page
from tests.support.documents import corpus_file
from tests.support.serving import serving

FULL_COMPARISON = 7 * 12  # bars: 3 predictors and 2 mixtures of 2 parts, on the page's 12 tokens


@pytest.fixture(scope="module")
def page(browser, tiny_models, one_thread_jobs):
    """A server and engine of this module's own: the memory it uploads must not reach the other modules' page."""
    with serving(Engine(tiny_models["bases"], tiny_models["memories"])) as url:
        yield open_page(browser, url)
    browser.delete_all_cookies()  # the visitor's token: the modules after this one are other visitors


def open_tab(driver, name):
    """A tab's content is in the page only once it has been opened."""
    next(b for b in driver.find_elements(By.CSS_SELECTOR, "button[role=tab]") if b.text.strip() == name).click()
    WebDriverWait(driver, 30).until(lambda d: d.find_elements(By.ID,
                                                              {"Compare": "dist-plot"}.get(name, "memory-build")))


def text(driver, elem_id) -> str:
    return driver.find_element(By.ID, elem_id).text


def chosen_memory(driver) -> str:
    return driver.execute_script("return document.querySelector('#domain input').value")


def memory_entries(driver, name) -> list[str]:
    """The memory menu's entries for a memory of this name (the menu opened, read and closed)."""
    WebDriverWait(driver, 30).until(lambda d: d.find_element(By.CSS_SELECTOR, "#domain input").is_enabled())
    driver.find_element(By.CSS_SELECTOR, "#domain input").click()
    WebDriverWait(driver, 10).until(lambda d: d.find_elements(By.CSS_SELECTOR, "[role=option]"))
    labels = [o.get_attribute("aria-label") for o in driver.find_elements(By.CSS_SELECTOR, "[role=option]")]
    driver.find_element(By.ID, "memory-knows").click()
    return [label for label in labels if label.startswith(name)]


def compare_renders(driver):
    open_tab(driver, "Compare")
    driver.execute_script("const p = document.querySelector('#dist-plot .js-plotly-plot'); if (p) p.dataset.old = 1")
    driver.find_element(By.ID, "compare-button").click()
    WebDriverWait(driver, 90).until(lambda d: d.execute_script(
        "const p = document.querySelector('#dist-plot .js-plotly-plot'); return p && !p.dataset.old && "
        "p.querySelectorAll('.barlayer .point path').length") == FULL_COMPARISON)


def test_upload_knn_lm_distil_and_the_new_memory(page, tmp_path):
    open_tab(page, "Your memory")
    page.find_element(By.CSS_SELECTOR, "#memory-file input[type=file]").send_keys(corpus_file(tmp_path, "my-notes.txt"))
    WebDriverWait(page, 30).until(lambda d: "my-notes" in text(d, "memory-file"))  # uploaded: its name is shown
    page.find_element(By.ID, "memory-build").click()
    WebDriverWait(page, 90).until(lambda d: "documents to train on" in text(d, "memory-about"))
    assert "my-notes: kNN-LM only" in chosen_memory(page)
    about = text(page, "memory-knows")  # of this memory only: no internal id, nothing of the served decoders
    assert "my-notes" in about and not re.search(r"my-notes-[0-9a-f]{12}", about) and "finance" not in about
    compare_renders(page)  # the kNN-LM of the upload is live: all five distributions are drawn

    open_tab(page, "Your memory")
    page.execute_script("""
        const r = document.querySelector('#memory-steps input[type=range]');
        const set = Object.getOwnPropertyDescriptor(HTMLInputElement.prototype, 'value').set;
        set.call(r, '6'); r.dispatchEvent(new Event('input', {bubbles: true}));
        r.dispatchEvent(new Event('change', {bubbles: true}));
        r.dispatchEvent(new PointerEvent('pointerup', {bubbles: true}));""")
    WebDriverWait(page, 30).until(lambda d: "for 6 steps" in text(d, "memory-about"))
    page.find_element(By.ID, "memory-distil").click()
    WebDriverWait(page, 300).until(lambda d: "Distilled" in text(d, "memory-job"))  # only against a hung job
    traces = page.execute_script("return document.querySelectorAll('#memory-curve .scatterlayer .trace').length")
    assert traces == 4  # KL and CE, on train and on validation
    WebDriverWait(page, 30).until(lambda d: "my-notes: kNN-LM and Memory Decoder" in chosen_memory(d))
    assert memory_entries(page, "my-notes") == ["my-notes: kNN-LM and Memory Decoder (your upload)"]
    compare_renders(page)

    open_page(page, page.current_url)  # a reload: the browser's token brings the memory back
    WebDriverWait(page, 30).until(lambda d: memory_entries(d, "my-notes"))
    assert memory_entries(page, "my-notes") == ["my-notes: kNN-LM and Memory Decoder (your upload)"]

    # downloaded, deleted, then restored from its .zip: the same memory, decoder and all, one entry again
    open_tab(page, "Your memory")
    page.find_element(By.CSS_SELECTOR, "#memory-mine input").click()  # the tab lists it: chosen, it is described
    WebDriverWait(page, 10).until(lambda d: d.find_elements(By.CSS_SELECTOR, '[role=option][aria-label="my-notes"]'))
    page.find_element(By.CSS_SELECTOR, '[role=option][aria-label="my-notes"]').click()
    WebDriverWait(page, 30).until(lambda d: "documents to train on" in text(d, "memory-about"))
    page.find_element(By.ID, "memory-download").click()
    WebDriverWait(page, 60).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#memory-zip a[href]"))
    href = page.find_element(By.CSS_SELECTOR, "#memory-zip a[href]").get_attribute("href")
    saved = tmp_path / "my-notes.zip"
    saved.write_bytes(urllib.request.urlopen(href).read())
    page.find_element(By.ID, "memory-delete").click()
    WebDriverWait(page, 60).until(lambda d: not memory_entries(d, "my-notes"))
    page.find_element(By.CSS_SELECTOR, "#memory-bundle input[type=file]").send_keys(str(saved))
    WebDriverWait(page, 30).until(lambda d: "my-notes" in text(d, "memory-bundle"))
    page.find_element(By.ID, "memory-restore").click()
    WebDriverWait(page, 90).until(lambda d: "Distilled" in text(d, "memory-job"))
    assert memory_entries(page, "my-notes") == ["my-notes: kNN-LM and Memory Decoder (your upload)"]
    compare_renders(page)
