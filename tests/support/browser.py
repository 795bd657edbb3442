"""Headless Chromium (Debian's /usr/bin/chromium) driven by Playwright, for the journey tests.

Where no Chromium exists the tests skip with a message saying how to enable them; with CI=true they
fail instead. Screenshots of each main page go to artifacts/screenshots/ for people to look at.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

from django.db import connections

from tests.conftest import require

SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-dev-shm-usage"]


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@contextlib.contextmanager
def chromium_page(base_url: str):
    """A page of a fresh browser context whose relative URLs resolve against `base_url`."""
    path = chromium_path()
    require(path is not None, "Chromium (install Debian's chromium: apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; the test's own ORM calls are plain
    # blocking calls, and the site runs in the live server's thread.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "1"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        context = browser.new_context(base_url=base_url, viewport={"width": 1280, "height": 900})
        page = context.new_page()
        page.set_default_timeout(20_000)
        try:
            yield page
        finally:
            page.goto("about:blank")  # stop a page's polling before the site goes away
            context.close()
            browser.close()
            # The sync API runs the test in a greenlet whose ORM connection is its own: close it, or
            # PostgreSQL cannot drop the test database at the end.
            connections.close_all()
            if previous is None:
                os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)


def screenshot(page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    target = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(target), full_page=True)
    return target


def log_in(page, username: str, password: str) -> None:
    page.goto("/account/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("main button[type=submit]")
    page.wait_for_url(lambda url: "/account/login/" not in url)
