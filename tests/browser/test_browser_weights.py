"""The settings row in headless Chromium: the line under the memory menu says what the chosen memory knows and follows
the menu; each mixture is drawn at its own weight until the lock puts both at alpha; the Score chart marks both
tuned points."""
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests.support.browser import click


def text(driver, elem_id) -> str:
    return driver.find_element(By.ID, elem_id).text


def titles(driver, plot_id) -> str:
    return driver.execute_script(f"return [...document.querySelectorAll('#{plot_id} text')]"
                                 ".map(e => e.textContent).join('|')")


def test_memory_line_weights_and_lock(page):
    assert "bio knows made-up bio word lists" in text(page, "memory-knows")
    assert "far less on other legal or financial text" in text(page, "memory-knows")
    click(page, "#domain input")
    click(page, '[role=option][aria-label="law: made-up law word lists"]')  # the menu names what each memory knows
    WebDriverWait(page, 90).until(lambda d: "law knows made-up law word lists" in text(d, "memory-knows"))

    click(page, "#compare-button")
    WebDriverWait(page, 240).until(lambda d: "kNN-LM at lambda = 0.35" in titles(d, "dist-plot"))
    assert "MemDec at alpha = 0.50" in titles(page, "dist-plot")
    click(page, "#lock-alpha input[type=checkbox]")
    WebDriverWait(page, 90).until(lambda d: "alpha = 0.50 for both" in titles(d, "dist-plot"))
    assert page.find_element(By.CSS_SELECTOR, "#knn-lambda input[type=range]").get_attribute("disabled")
    click(page, "#lock-alpha input[type=checkbox]")  # as the other tests expect it


def test_score_chart_marks_both_tuned_points(page):
    next(b for b in page.find_elements(By.CSS_SELECTOR, "button[role=tab]") if b.text.strip() == "Score").click()
    WebDriverWait(page, 10).until(lambda d: d.find_elements(By.ID, "score-button"))
    click(page, "#score-button")
    WebDriverWait(page, 240).until(lambda d: "tuned λ = 0.35" in d.find_element(By.TAG_NAME, "body").text)
    body = page.find_element(By.TAG_NAME, "body").text
    assert "tuned α = 0.5" in body and "made-up law word lists" in body
