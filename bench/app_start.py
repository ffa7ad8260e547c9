"""App launch to first result: `streamlit run app.py` started, then a browser opens `/?q=...` and waits
for the first result card. The index must exist (run `python -m indexer build` first).

    .venv/bin/python bench/app_start.py          # median of 3 launches; needs Debian's chromium
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from servers import free_port, launch_streamlit, stop_streamlit  # noqa: E402

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


def one_launch(browser) -> float:
    port = free_port()
    started = time.perf_counter()
    server = launch_streamlit(port)
    try:
        page = browser.new_page()
        for _ in range(600):  # the server needs a moment before it accepts connections
            try:
                page.goto(f"http://127.0.0.1:{port}/?q=why+does+my+model+overfit", timeout=2000)
                break
            except Exception:
                time.sleep(0.05)
        page.get_by_text("matched on").first.wait_for(timeout=60_000)
        return time.perf_counter() - started
    finally:
        stop_streamlit(server)


def main() -> int:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        runs = [one_launch(browser) for _ in range(3)]
        browser.close()
    print(
        f"app launch to first result: median {statistics.median(runs):.2f} s "
        f"(runs: {', '.join(f'{r:.2f}' for r in runs)})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
