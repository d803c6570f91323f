"""Headless Debian Chromium through Selenium, for the browser tests and the screenshots."""
import shutil
import tempfile

from selenium import webdriver
from selenium.common.exceptions import ElementClickInterceptedException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-quic", "--no-first-run", "--disable-sync", "--disable-dev-shm-usage"]


def chromium(width=1400, height=1000) -> webdriver.Chrome:
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for flag in FLAGS + [f"--user-data-dir={tempfile.mkdtemp(prefix='chromium-')}", f"--window-size={width},{height}"]:
        options.add_argument(flag)
    # Debian's chromedriver, so Selenium Manager never tries to download one
    return webdriver.Chrome(service=Service(shutil.which("chromedriver") or "/usr/bin/chromedriver"), options=options)


def open_page(driver: webdriver.Chrome, url: str) -> webdriver.Chrome:
    """The app's page at url, loaded afresh (a new session of its own) and ready to click."""
    driver.get(url)
    WebDriverWait(driver, 60).until(lambda d: d.find_elements(By.ID, "compare-button"))
    return driver


def click(driver: webdriver.Chrome, css: str):
    """Clicks once the page's loading overlay has left the element (menus are refreshed when the page opens)."""
    def clicked(d):
        d.find_element(By.CSS_SELECTOR, css).click()
        return True
    WebDriverWait(driver, 90, ignored_exceptions=[ElementClickInterceptedException]).until(clicked)
