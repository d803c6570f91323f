"""Drives the real page in headless Chromium: a comparison renders its Plotly plots, alpha re-mixes, a bad prompt
shows a clear error and the page keeps working."""
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from tests.support.browser import open_page


def bars(driver, plot_id):
    return driver.execute_script(
        f"return document.querySelectorAll('#{plot_id} .js-plotly-plot .barlayer .point path').length")


def set_prompt(driver, text):
    box = driver.find_element(By.CSS_SELECTOR, "#prompt textarea")
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys(Keys.DELETE)  # as a user would: clear() fires no input event, so the page would keep the old text
    box.send_keys(text)


def test_comparison_renders_plots(page):
    set_prompt(page, "cell protein gene")
    page.find_element(By.ID, "compare-button").click()
    WebDriverWait(page, 90).until(lambda d: bars(d, "dist-plot") > 0 and bars(d, "latency-plot") == 4)
    assert page.find_elements(By.CSS_SELECTOR, "#dist-plot svg.main-svg")
    # 3 predictors + 2 mixtures of 2 stacked parts, 12 tokens each (the page's default)
    assert bars(page, "dist-plot") == 7 * 12
    assert "latency per component" in page.find_element(By.ID, "latency-plot").text
    # every column of the probability table fits in its box (seven columns once cut the last one off)
    edges = page.execute_script("""const box = document.querySelector('#axis-table').getBoundingClientRect();
        return [...document.querySelectorAll('#axis-table th')]
            .map(th => th.getBoundingClientRect().right - box.right);""")
    assert len(edges) == 7 and max(edges) <= 1, edges
    next(b for b in page.find_elements(By.CSS_SELECTOR, "button[role=tab]") if b.text.strip() == "Neighbours").click()
    WebDriverWait(page, 10).until(lambda d: "p kNN (summed weight)" in d.find_element(By.TAG_NAME, "body").text)
    assert page.execute_script("return document.querySelectorAll('table tbody tr').length") > 0
    next(b for b in page.find_elements(By.CSS_SELECTOR, "button[role=tab]") if b.text.strip() == "Compare").click()


def test_alpha_release_remixes(page):
    title = lambda d: d.execute_script(  # noqa: E731
        "return [...document.querySelectorAll('#dist-plot .annotation-text')].map(e => e.textContent).join('|')")
    assert "alpha = 0.50" in title(page)
    page.execute_script("""
        const r = document.querySelector('#alpha input[type=range]');
        const set = Object.getOwnPropertyDescriptor(HTMLInputElement.prototype, 'value').set;
        set.call(r, '0.9'); r.dispatchEvent(new Event('input', {bubbles: true}));
        r.dispatchEvent(new Event('change', {bubbles: true}));
        r.dispatchEvent(new PointerEvent('pointerup', {bubbles: true}));""")
    WebDriverWait(page, 30).until(lambda d: "alpha = 0.90" in title(d))


def test_empty_prompt_shows_error_and_page_keeps_working(page):
    set_prompt(page, "")
    page.find_element(By.ID, "compare-button").click()
    WebDriverWait(page, 30).until(lambda d: "the text is empty" in d.find_element(By.TAG_NAME, "body").text)
    set_prompt(page, "licence software")
    page.find_element(By.ID, "compare-button").click()
    WebDriverWait(page, 60).until(lambda d: bars(d, "dist-plot") > 0
                                  and "the text is empty" not in d.find_element(By.ID, "dist-plot").text)


@pytest.fixture(scope="module")
def hub_page(browser, standin_hub):
    """The page on a published family: gpt2-wikitext's stand-ins (real GPT-2 tokenizer, WikiText sample)."""
    import huggingface_hub.constants as hub

    from app.serve.engine import Engine
    from tests.support.serving import serve_in_background

    saved = hub.HF_HUB_CACHE, hub.HF_HUB_OFFLINE
    hub.HF_HUB_CACHE, hub.HF_HUB_OFFLINE = str(standin_hub), True
    url, demo = serve_in_background(Engine.from_presets(["gpt2-wikitext"], corpus_tokens=3000))
    yield open_page(browser, url)
    demo.close()
    hub.HF_HUB_CACHE, hub.HF_HUB_OFFLINE = saved


def test_hub_preset_page_renders_and_names_its_models(hub_page):
    set_prompt(hub_page, "The history of the city")
    hub_page.find_element(By.ID, "compare-button").click()
    WebDriverWait(hub_page, 120).until(lambda d: bars(d, "dist-plot") == 7 * 12 and bars(d, "latency-plot") == 4)
    # the alpha slider moved to the paper's value for GPT-2 small
    assert hub_page.execute_script("return document.querySelector('#alpha input[type=number]').value") == "0.8"
    hub_page.find_element(By.XPATH, "//*[normalize-space(text())='Models']").click()  # open the accordion
    WebDriverWait(hub_page, 30).until(lambda d: "Clover-Hill/MemoryDecoder-gpt2-small"
                                      in d.find_element(By.ID, "models-panel").text)
    panel = hub_page.find_element(By.ID, "models-panel").text
    assert "openai-community/gpt2" in panel and "entries" in panel and "GiB resident" in panel
