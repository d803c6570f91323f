"""The Cost tab in headless Chromium on a real server: the curves of a tiny benchmark run render on log axes, and
"Measure this store" adds the served store as a point."""
import gradio as gr
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from app.core import paths
from app.serve.ui import cost_tab, settings_row
from tests.support.serving import free_port
from tools import benchmark_cost


@pytest.fixture(scope="module")
def cost_page(browser, engine, tmp_path_factory):
    """The Cost tab with the settings row, as the page lays them out, over a results file of a tiny benchmark run."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(paths, "RESULTS", tmp_path_factory.mktemp("results"))
        results = benchmark_cost.main(["--sizes", "2000,8000", "--queries", "8", "--search-seconds", "0.1",
                                       "--tokens", "4", "--repeats", "1"], engine=engine)
        with gr.Blocks() as demo:
            row = settings_row.build(engine)
            with gr.Tabs():
                tab = cost_tab.build()
            cost_tab.wire(engine, row, tab)
        port = free_port()
        demo.queue(default_concurrency_limit=1).launch(server_name="127.0.0.1", server_port=port,
                                                       prevent_thread_lock=True, quiet=True)
        browser.get(f"http://127.0.0.1:{port}/")
        yield browser, results
        demo.close()


def plot_state(driver) -> dict:
    return driver.execute_script("""
        const plot = document.querySelector('#cost-plot .js-plotly-plot');
        return plot && plot._fullLayout ? {traces: plot.querySelectorAll('.scatterlayer .trace').length,
            x: plot._fullLayout.xaxis.type, y: plot._fullLayout.yaxis.type, height: plot.getBoundingClientRect().height}
            : null;""")


def test_cost_curves_render_and_this_store_is_added(cost_page):
    driver, results = cost_page
    kinds = {row["kind"] for row in results["rows"] if "knn_ms" in row}
    WebDriverWait(driver, 60).until(lambda d: plot_state(d))
    state = plot_state(driver)
    assert state == {"traces": 4 + len(kinds), "x": "log", "y": "log",
                     "height": state["height"]} and state["height"] > 300
    assert "not reached up to 8,000 entries" in driver.find_element(By.TAG_NAME, "body").text
    driver.find_element(By.ID, "cost-measure-button").click()
    WebDriverWait(driver, 60).until(lambda d: "This store" in d.find_element(By.TAG_NAME, "body").text)
    WebDriverWait(driver, 10).until(lambda d: plot_state(d)["traces"] == 5 + len(kinds))
    assert "this store (measured now)" in driver.find_element(By.ID, "cost-plot").text
