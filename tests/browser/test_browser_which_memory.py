"""The "Which memory knows this?" tab of the whole page in headless Chromium: the table ranks every memory, the
heatmap has one row per memory and the passage's tokens as its x tick labels, and the browser logs no error."""
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from app.serve import which_memory
from app.serve.plots import label

PASSAGE = "licence software copyright warranty party"


def open_tab(driver, name):
    """A tab's content is in the page only once it has been opened."""
    next(b for b in driver.find_elements(By.CSS_SELECTOR, "button[role=tab]") if b.text.strip() == name).click()
    WebDriverWait(driver, 30).until(lambda d: any(e.is_displayed() for e in d.find_elements(By.ID, "survey-button")))


def plot_state(driver) -> dict:
    return driver.execute_script("""
        const plot = document.querySelector('#survey-plot .js-plotly-plot');
        if (!plot || !plot.data) return {};
        return {rows: plot.data[0].y, ticks: [...plot.querySelectorAll('.xtick text')].map(t => t.textContent)};""")


def table(driver) -> list[list[str]]:
    """The body rows' cells as the page shows them (Gradio's table draws its rows as role=row divs)."""
    return driver.execute_script("""return [...document.querySelectorAll('#survey-table .virtual-row')]
        .map(r => [...r.querySelectorAll('[role=gridcell]')].map(c => c.textContent.trim()));""")


def test_every_memory_ranked_with_the_tokens_on_the_axis(page, engine):
    page.get_log("browser")  # what loading the page logged is not this test's
    open_tab(page, "Which memory knows this?")
    box = page.find_element(By.CSS_SELECTOR, "#survey-passage textarea")
    box.clear()
    box.send_keys(PASSAGE)  # send_keys fires the input events that clear() does not
    page.find_element(By.ID, "survey-button").click()
    WebDriverWait(page, 120).until(lambda d: plot_state(d).get("ticks"))
    expected = which_memory.survey(engine, PASSAGE)
    names = [m["memory"] for m in expected["memories"]]
    assert plot_state(page)["rows"] == names
    assert plot_state(page)["ticks"] == [label(t) for t in expected["tokens"]]
    WebDriverWait(page, 30).until(lambda d: len(table(d)) == len(names))
    cells = table(page)
    assert [row[0] for row in cells] == names
    perplexities = [float(row[2]) for row in cells]  # base + MemDec, best first
    assert perplexities == sorted(perplexities)
    assert perplexities == [round(m["perplexity"]["mix_memdec"], 3) for m in expected["memories"]]
    severe = [entry for entry in page.get_log("browser") if entry["level"] == "SEVERE"]
    assert not severe, severe
