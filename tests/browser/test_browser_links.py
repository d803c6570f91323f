"""Links and examples in headless Chromium: a URL's query opens the page on its settings and tab (a bad value is left
out with a note), the copy-link button writes a link that reproduces the view, an example prompt fills the prompt and
compares; and visiting every tab while the memory and the base change logs no error in the browser's console."""
import urllib.parse

from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from app.serve.examples import EXAMPLES
from tests.support.browser import click, open_page

FULL_COMPARISON = 7 * 12  # bars: 3 predictors and 2 mixtures of 2 parts, on the page's 12 tokens
TABS = ["Compare", "Neighbours", "Imitation", "Teach", "Generate", "Score", "Which memory knows this?", "Batch", "Cost",
        "Your memory"]


def view(driver) -> dict:
    """What the settings row holds and which tab is open."""
    return driver.execute_script("""
        const value = css => document.querySelector(css).value;
        return {prompt: value('#prompt textarea'), base: value('#base input'), memory: value('#domain input'),
                alpha: value('#alpha input[type=number]'), lambda: value('#knn-lambda input[type=number]'),
                k: value('#k input[type=number]'), T: value('#temperature input'),
                lock: document.querySelector('#lock-alpha input').checked,
                tab: document.querySelector('button[role=tab][aria-selected=true]').textContent.trim()};""")


def open_tab(driver, name):
    next(b for b in driver.find_elements(By.CSS_SELECTOR, "button[role=tab]") if b.text.strip() == name).click()
    WebDriverWait(driver, 10).until(lambda d: view(d)["tab"] == name)


def opened(browser, server, until=None, **query) -> dict:
    """The page at a link with this query, once its settings have been read from it (until: a condition that says
    so; by default, the link's base and tab are shown)."""
    open_page(browser, f"{server}?{urllib.parse.urlencode(query)}")
    until = until or (lambda d: view(d)["base"] == query.get("base", view(d)["base"])
                      and view(d)["tab"] == query.get("tab", "Compare"))
    WebDriverWait(browser, 30).until(until)
    return view(browser)


def test_a_link_opens_its_view_and_notes_what_it_left_out(browser, server):
    shown = opened(browser, server, tab="Teach", base="tiny-b", memory="law", prompt="copyright notice", alpha="0.3",
                   lock="1", k="16", T="5", **{"lambda": "lots"})
    assert shown == {"prompt": "copyright notice", "base": "tiny-b", "memory": "law: made-up law word lists",
                     "alpha": "0.3", "lambda": "0.7", "k": "16", "T": "5", "lock": True, "tab": "Teach"}
    # λ is the memory's own for tiny-b (0.7): the link's was left out, and the page says so
    assert "lambda=lots" in browser.find_element(By.ID, "link-note").text
    # a link of nothing but bad values opens the page as usual, with one note for each
    shown = opened(browser, server, lambda d: d.find_element(By.ID, "link-note").text, tab="Nowhere", base="gpt-17",
                   k="0", alpha="0.5.5")
    note = browser.find_element(By.ID, "link-note").text
    assert shown["tab"] == "Compare" and shown["base"] == "tiny-a" and shown["alpha"] == "0.5"
    assert all(f"{key}=" in note for key in ("tab", "base", "k", "alpha"))


def test_the_copied_link_reproduces_the_view(browser, server):
    first = opened(browser, server, tab="Score", base="tiny-b", memory="law", prompt="warranty terms", alpha="0.25",
                   **{"lambda": "0.6"}, k="8", T="2")
    click(browser, "#copy-link")
    box = "#view-link textarea, #view-link input"
    WebDriverWait(browser, 10).until(lambda d: d.find_element(By.CSS_SELECTOR, box).get_attribute("value"))
    link = browser.find_element(By.CSS_SELECTOR, box).get_attribute("value")
    assert urllib.parse.parse_qs(urllib.parse.urlparse(link).query)["tab"] == ["Score"]
    open_page(browser, link)
    WebDriverWait(browser, 30).until(lambda d: view(d)["tab"] == "Score" and view(d)["base"] == "tiny-b")
    assert view(browser) == first and not browser.find_element(By.ID, "link-note").text


def test_an_example_fills_the_prompt_and_compares(browser, server):
    opened(browser, server, lambda d: "law knows" in d.find_element(By.ID, "memory-knows").text, memory="law")
    example = EXAMPLES["law"][1]
    WebDriverWait(browser, 10).until(lambda d: example[:30] in d.find_element(By.ID, "examples").text)
    browser.execute_script("const p = document.querySelector('#dist-plot .js-plotly-plot'); if (p) p.dataset.old = 1")
    next(b for b in browser.find_elements(By.CSS_SELECTOR, "#examples button")
         if b.text.strip()[:30] == example[:30]).click()
    WebDriverWait(browser, 90).until(lambda d: d.execute_script(
        "const p = document.querySelector('#dist-plot .js-plotly-plot'); return p && !p.dataset.old && "
        "p.querySelectorAll('.barlayer .point path').length") == FULL_COMPARISON)
    assert view(browser)["prompt"] == example
    # the examples follow the memory: bio has none here (the served domains' examples are law, finance, biomed)
    opened(browser, server, lambda d: "bio knows" in d.find_element(By.ID, "memory-knows").text, memory="bio")
    assert not [shown for shown in browser.find_elements(By.ID, "examples") if shown.is_displayed()]


def test_every_tab_and_menu_change_without_a_console_error(browser, server):
    open_page(browser, server)
    browser.get_log("browser")  # what came before this page
    assert [b.text.strip() for b in browser.find_elements(By.CSS_SELECTOR, "button[role=tab]")] == TABS  # every tab
    for name in TABS:
        open_tab(browser, name)
    open_tab(browser, "Compare")
    click(browser, "#compare-button")  # every plot of the comparison drawn, most of them in hidden tabs
    WebDriverWait(browser, 90).until(lambda d: d.execute_script(
        "return document.querySelectorAll('#dist-plot .barlayer .point path').length") == FULL_COMPARISON)
    for css in ['[role=option][aria-label="law: made-up law word lists"]', '[role=option][aria-label="tiny-b"]']:
        click(browser, "#domain input" if "law" in css else "#base input")
        click(browser, css)
    WebDriverWait(browser, 30).until(lambda d: "law knows" in d.find_element(By.ID, "memory-knows").text)
    for name in TABS:
        open_tab(browser, name)
    # what Gradio's Plot does after each update, here to every plot the Your memory tab hides and to one whose tab
    # has taken it out of the page: Plotly refuses a plot not displayed (an uncaught "Resize must be passed a displayed
    # plot div element"), unless the page's guard skips it
    hidden = browser.execute_script("""
        const hidden = [...document.querySelectorAll('.js-plotly-plot')].filter(p => !p.offsetParent);
        [...hidden, document.createElement('div')].forEach(p => window.Plotly.Plots.resize(p));
        return hidden.length;""")
    assert hidden >= 2  # the Compare tab's two plots at least
    WebDriverWait(browser, 5).until(lambda d: d.execute_script("return document.readyState") == "complete")
    errors = [entry["message"] for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert errors == []
