"""What every browser test needs, written once: the skip where Debian's Chromium is missing, one headless Chromium
for the whole folder (starting one takes seconds on a busy machine), and the page of the session's server in it."""
import shutil

import pytest

from tests.support.browser import chromium, open_page


@pytest.fixture(scope="session", autouse=True)
def chromium_installed():
    """Skips, not fails, the folder on a machine without Chromium; session-scoped, so it comes before any server
    starts (a module-level skip in this file would break `pytest tests/browser`, which loads it before collecting)."""
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        pytest.skip("Debian chromium and chromium-driver are not installed (tests/run.sh installs them)")


@pytest.fixture(scope="package")
def browser():
    driver = chromium()
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def page(browser, server):
    """The session server's page, loaded afresh for each module: what one module clicks never reaches another."""
    return open_page(browser, server)
