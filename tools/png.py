"""A Plotly figure written as a PNG through headless Chromium (no kaleido), for the README."""
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.support.browser import chromium  # noqa: E402


def write_png(fig, out: Path, width: int, height: int):
    with tempfile.TemporaryDirectory() as tmp:
        page = Path(tmp) / "figure.html"
        fig.write_html(page, include_plotlyjs=True, full_html=True, config={"displayModeBar": False})
        browser = chromium(width, height)
        try:
            browser.get(page.as_uri())
            time.sleep(2)  # Plotly draws after load
            browser.save_screenshot(str(out))
        finally:
            browser.quit()
    print(f"wrote {out}")
