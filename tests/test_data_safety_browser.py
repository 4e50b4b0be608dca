"""The data-safety page in a real browser: headless Chromium (Debian's chromium and chromium-driver)
driven by Selenium against a live server on loopback.

It logs in as staff, checks that the charts rendered with as many SVG elements as the data has,
presses "verify" and reads the verdict, checks both admin themes and that a non-staff user is
refused, and saves a screenshot (``OPS_SCREENSHOT_DIR``, when set, also gets a copy: that is how the
README's image is made).
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from ops.health.runner import configured_checks
from ops.models import SizeSample
from tests.commands import run_command

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not (CHROMIUM and CHROMEDRIVER) and not os.environ.get("CI"),
        reason="needs Debian's chromium and chromium-driver: apt-get install chromium chromium-driver",
    ),
]


@pytest.fixture
def browser() -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM or "/usr/bin/chromium"
    # As root in a container, with no network beyond loopback: no sandbox, no background traffic.
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1280,1800",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER or "/usr/bin/chromedriver"), options=options)
    driver.implicitly_wait(5)
    try:
        yield driver
    finally:
        driver.quit()


def log_in(browser: Any, base_url: str, username: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    browser.delete_all_cookies()
    browser.get(f"{base_url}/admin/login/?next=/admin/data-safety/")
    browser.find_element(By.NAME, "username").send_keys(username)
    browser.find_element(By.NAME, "password").send_keys("correct horse battery")
    submit = browser.find_element(By.CSS_SELECTOR, "input[type=submit]")
    submit.click()
    # The next page, not the login form still on screen: a refused login renders the same form
    # again, so what it says may only be read once the submitted page is gone.
    WebDriverWait(browser, 10).until(expected_conditions.staleness_of(submit))


def test_browser__staff_see_charts_verify_a_backup_and_others_are_refused(
    browser: Any, live_server: Any, settings: Any, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    settings.OPS = {
        **settings.OPS,
        "BACKUP_REPOSITORY": "local",
        "BACKUP_DIR": str(tmp_path / "backups"),
        "DB_SIZE_LIMIT": 200 * 1024**2,
    }
    User.objects.create_superuser("boss", "boss@example.org", "correct horse battery")
    User.objects.create_user("parent", "p@example.org", "correct horse battery")
    run_command("backup", reason="daily", verbosity=0)
    run_command("backup", reason="manual", verbosity=0)
    now = timezone.now()
    for day in range(14, 0, -1):
        SizeSample.objects.create(
            taken_at=now - dt.timedelta(days=day), size_bytes=20_000_000 + (14 - day) * 900_000
        )

    log_in(browser, live_server.url, "boss")
    assert browser.find_element(By.TAG_NAME, "h1").text == "Data safety"
    charts = browser.find_elements(By.CSS_SELECTOR, "svg.ops-chart")
    assert len(charts) == 3
    for chart in charts:
        assert chart.size["width"] > 100  # laid out, not collapsed
        assert chart.find_element(By.TAG_NAME, "title").get_attribute("textContent")
    bars = browser.find_elements(By.CSS_SELECTOR, "svg.ops-bars rect.bar")
    table_rows = browser.find_elements(By.CSS_SELECTOR, "table.ops-tables-table tbody tr")
    assert 1 <= len(bars) == len(table_rows) <= 10
    assert len(browser.find_elements(By.CSS_SELECTOR, "svg.ops-line circle.sample")) == 14
    assert len(browser.find_elements(By.CSS_SELECTOR, "#ops-backup-table tbody tr")) == 2
    assert browser.find_elements(By.CSS_SELECTOR, "tr.ops-newest-full")

    # Light and dark admin themes: the chart text follows the admin's --body-fg.
    def text_fill() -> str:
        return str(
            browser.execute_script(
                "return getComputedStyle(document.querySelector('svg.ops-gauge text')).fill"
            )
        )

    light = text_fill()
    browser.execute_cdp_cmd(
        "Emulation.setEmulatedMedia", {"features": [{"name": "prefers-color-scheme", "value": "dark"}]}
    )
    browser.refresh()
    dark = text_fill()
    assert light != dark
    browser.execute_cdp_cmd(
        "Emulation.setEmulatedMedia", {"features": [{"name": "prefers-color-scheme", "value": "light"}]}
    )
    browser.refresh()

    browser.find_elements(By.CSS_SELECTOR, "input.ops-verify")[0].click()
    verdict = browser.find_element(By.ID, "ops-verdict")
    assert "is intact" in verdict.text
    assert "every checksum matches" in verdict.text

    browser.find_element(By.ID, "ops-run-checks").click()
    assert len(browser.find_elements(By.CSS_SELECTOR, "#ops-health tbody tr")) == len(configured_checks())

    screenshot = tmp_path / "data-safety.png"
    browser.save_screenshot(str(screenshot))
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    if os.environ.get("OPS_SCREENSHOT_DIR"):
        shutil.copy(screenshot, Path(os.environ["OPS_SCREENSHOT_DIR"]) / "data-safety.png")

    # A user who is not staff never sees it: the admin refuses the login and keeps them out.
    log_in(browser, live_server.url, "parent")
    assert (
        "correct username and password for a staff account" in browser.find_element(By.TAG_NAME, "body").text
    )
    browser.get(f"{live_server.url}/admin/data-safety/")
    assert browser.current_url.startswith(f"{live_server.url}/admin/login/")
    assert not browser.find_elements(By.CSS_SELECTOR, "svg.ops-chart")
