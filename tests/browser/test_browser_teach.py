"""The Teach tab in headless Chromium: after a comparison it shows the formulas, the logit mixture and p_kNN at the
comparison's k and T; moving T re-draws p_kNN at once with the numbers compare.reweighted gives, without errors in
the browser's console."""
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from app.serve import compare
from app.serve.plots import label
from tests.support.browser import click

PROMPT = "The protein binds to the receptor and"  # the page's own


def titles(driver, plot_id) -> str:
    return driver.execute_script(f"return [...document.querySelectorAll('#{plot_id} text')]"
                                 ".map(e => e.textContent).join('|')")


def bars(driver, plot_id) -> list:
    """The y values of each trace of the Plotly figure, as the page drew it."""
    return driver.execute_script(f"return document.querySelector('#{plot_id} .js-plotly-plot').data.map(t => t.y)")


def severe(driver) -> list:
    return [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def test_moving_t_reweights_p_knn(page, engine):
    nt = compare.next_token(engine, engine.resolve(), page.find_element(By.CSS_SELECTOR, "#prompt textarea")
                            .get_attribute("value"))
    assert nt.prompt == PROMPT and (nt.k, nt.temperature) == (16, 5.0)
    click(page, "#compare-button")
    WebDriverWait(page, 240).until(lambda d: "the three predictors" in titles(d, "dist-plot"))
    severe(page)  # what came before this tab is not its to answer for
    next(b for b in page.find_elements(By.CSS_SELECTOR, "button[role=tab]") if b.text.strip() == "Teach").click()
    WebDriverWait(page, 120).until(lambda d: "p_kNN at k = 16, T = 5:" in titles(d, "teach-knn-plot"))
    assert "mixing logits" in page.find_element(By.ID, "teach-logit").text
    assert "logit mixture (wrong)" in titles(page, "teach-logit-plot")
    assert "mixed at its own weight λ" in page.find_element(By.ID, "teach-text").text

    box = page.find_element(By.CSS_SELECTOR, "#teach-log-t input[type=number]")
    box.clear()
    box.send_keys("-0.5", Keys.TAB)  # leaving the box releases the slider
    t = 10 ** -0.5
    WebDriverWait(page, 90).until(lambda d: f"T = {t:.4g}:" in titles(d, "teach-knn-plot"))
    shown = compare.reweighting(nt, 16, t, 12)
    expected = compare.reweighted(nt, 16, t)
    top = int(expected.argmax())
    assert f"top {label(nt.tokens[top])} {float(expected[top]):.4f}" in titles(page, "teach-knn-plot")
    compared, chosen, weights_compared, weights = bars(page, "teach-knn-plot")
    assert [round(p, 6) for p in chosen] == [round(float(expected[r["id"]]), 6) for r in shown["rows"]]
    assert [round(p, 6) for p in compared] == [round(float(nt.p_knn[r["id"]]), 6) for r in shown["rows"]]
    assert max(chosen) > max(compared)  # a lower T sharpens p_kNN
    assert weights[0] > weights_compared[0] and sum(weights) > 0.999999
    box = page.find_element(By.CSS_SELECTOR, "#teach-k input[type=number]")
    box.clear()
    box.send_keys("3", Keys.TAB)
    WebDriverWait(page, 90).until(lambda d: f"p_kNN at k = 3, T = {t:.4g}:" in titles(d, "teach-knn-plot"))
    weights = bars(page, "teach-knn-plot")[3]
    assert weights[3:] == [0.0] * 13 and sum(weights) > 0.999999  # only the 3 nearest vote
    assert severe(page) == []
