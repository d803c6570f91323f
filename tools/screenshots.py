"""Screenshots of the real page in headless Chromium, for the README: one per tab, after a real run.

    python tools/screenshots.py            # serves what `python app.py` serves, writes assets/screenshots/*.png
"""
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from app.core.documents import read_documents  # noqa: E402
from app.core.paths import corpus_path  # noqa: E402
from app.serve.engine import Engine  # noqa: E402
from app.serve.presets import default_presets  # noqa: E402
from tests.support.browser import chromium  # noqa: E402
from tests.support.serving import serve_in_background  # noqa: E402

PROMPTS = {"biomed": "The enzyme catalyses the", "law": "Permission is hereby granted, free of charge, to any",
           "finance": "The Treasury reported that the public debt"}


def fill(driver, elem_id, text):
    box = driver.find_element(By.CSS_SELECTOR, f"#{elem_id} textarea")
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys(Keys.DELETE)
    box.send_keys(text)


def tab(driver, name):
    next(b for b in driver.find_elements(By.CSS_SELECTOR, "button[role=tab]") if b.text.strip() == name).click()
    time.sleep(1)


def shoot(driver, path: Path, height: int, at_tabs: bool = True):
    """at_tabs: the tab bar at the top of the shot (the settings above it are in compare.png)."""
    driver.set_window_size(1400, height)
    time.sleep(1.5)
    if at_tabs:
        driver.execute_script("document.querySelector('button[role=tab]').scrollIntoView()")
        time.sleep(0.5)
    driver.save_screenshot(str(path))
    print("wrote", path)


def take(url: str, out: Path, prompt: str, passage: str):
    out.mkdir(parents=True, exist_ok=True)
    driver = chromium()
    try:
        driver.get(url)
        wait = WebDriverWait(driver, 600)
        wait.until(lambda d: d.find_elements(By.ID, "compare-button"))
        fill(driver, "prompt", prompt)
        driver.find_element(By.ID, "compare-button").click()
        wait.until(lambda d: d.execute_script("return document.querySelectorAll("
                                              "'#latency-plot .barlayer .point').length") > 0)
        shoot(driver, out / "compare.png", 1900, at_tabs=False)
        for name, file, height in (("Neighbours", "neighbours.png", 1400), ("Imitation", "imitation.png", 1000),
                                   ("Teach", "teach.png", 1250)):
            tab(driver, name)
            shoot(driver, out / file, height)
        tab(driver, "Generate")
        driver.find_element(By.ID, "generate-button").click()
        wait.until(lambda d: d.execute_script("return document.querySelectorAll('.barlayer .point').length") > 0
                   and "ms" in d.find_element(By.TAG_NAME, "body").text)
        time.sleep(2)
        shoot(driver, out / "generate.png", 1400)
        tab(driver, "Score")
        fill(driver, "passage", passage)
        driver.find_element(By.ID, "score-button").click()
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, ".gain .tok"))
        time.sleep(2)
        shoot(driver, out / "score.png", 1950)
        tab(driver, "Which memory knows this?")
        driver.find_element(By.ID, "survey-button").click()
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#survey-plot .heatmaplayer, #survey-plot .hm"))
        time.sleep(2)
        shoot(driver, out / "which_memory.png", 1300)
        tab(driver, "Cost")
        wait.until(lambda d: d.execute_script("return document.querySelectorAll("
                                              "'.js-plotly-plot .scatterlayer .trace').length") > 0)
        time.sleep(2)
        shoot(driver, out / "cost.png", 1300)
    finally:
        driver.quit()


def main():
    engine = Engine.from_presets(default_presets())  # what `python app.py` serves
    base, memory = engine.default_base, engine.default_domain
    engine.datastore(base, memory, here=True)  # the first view shows all three predictors
    domain = memory.split("/")[-1]  # "smollm2/biomed" when several families are served
    url, demo = serve_in_background(engine)
    passage = read_documents(corpus_path(domain, "test"))[0][:400]
    take(url, ROOT / "assets" / "screenshots", PROMPTS.get(domain, "The"), passage)
    demo.close()


if __name__ == "__main__":
    main()
