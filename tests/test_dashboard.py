"""The dashboard at GET /dashboard: served without data, tested in a real headless Chromium against a real
`tiercache serve`.

The browser tests need Debian's `chromium` and `chromium-driver` (and selenium, a test dependency); outside
CI they are skipped when those are missing, on CI that is a failure. The browser is kept on loopback: every
host name but 127.0.0.1 fails to resolve, and its background services are off.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from typing import Any, Dict, Iterator, Optional, Tuple

import pytest

from redis_servers import free_port, in_ci, wait_until

KEY = "dashboard-test-key"


def call(base: str, method: str, path: str, body: Any = None, key: Optional[str] = KEY) -> Tuple[int, Dict[str, str], bytes]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, method=method)
    if key is not None:
        request.add_header("X-API-KEY", key)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, {k.lower(): v for k, v in answer.headers.items()}, answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, {k.lower(): v for k, v in exc.headers.items()}, exc.read()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real `tiercache serve` on a free loopback port over an embedded SQLite L2: its base URL."""
    port = free_port()
    directory = tmp_path_factory.mktemp("serve")
    log = open(directory / "serve.log", "wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "tiercache", "serve", "--host", "127.0.0.1", "--port", str(port), "--api-key", KEY,
         "--l2", f"sqlite:///{directory}/l2.sqlite3", "--env", "test", "--metrics-interval", "1"],
        stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"

    def up() -> bool:
        if process.poll() is not None:
            pytest.fail(f"tiercache serve exited: {(directory / 'serve.log').read_text()}", pytrace=False)
        try:
            return call(base, "GET", "/health", key=None)[0] == 200
        except OSError:
            return False

    try:
        wait_until(up, 30, "tiercache serve to answer")
        yield base
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


# ------------------------------------------------------------------------------------------ without a browser


def test_the_page_and_its_assets_need_no_key_and_hold_no_data(server: str) -> None:
    status, headers, page = call(server, "GET", "/dashboard", key=None)
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in headers["content-security-policy"]
    text = page.decode()
    assert 'data-metric="overallScore"' in text and 'id="api-key"' in text
    assert "users" not in text and "healthy" not in text  # (figures arrive only through the API, with the key)
    for name, kind in (("dashboard.js", "text/javascript"), ("dashboard.css", "text/css")):
        status, headers, body = call(server, "GET", f"/dashboard/{name}", key=None)
        assert status == 200 and headers["content-type"].startswith(kind) and body
    assert call(server, "GET", "/dashboard/secrets.txt", key=None)[0] in (401, 404)
    assert call(server, "GET", "/dashboard/..%2Fapp.py", key=None)[0] in (401, 404)
    assert call(server, "GET", "/cache-health", key=None)[0] == 401  # (the data stays behind the key)
    assert call(server, "HEAD", "/dashboard", key=None)[0] == 200
    status, headers, _ = call(server, "GET", "/dashboard/", key=None)  # (urllib follows the redirect)
    assert status == 200 and headers["content-type"].startswith("text/html")


def test_the_metrics_carry_what_the_dashboard_shows_per_namespace(server: str) -> None:
    traffic(server, hits=5, misses=5)
    _, _, body = call(server, "GET", "/cache-metrics")
    users = json.loads(body)["l1Stats"]["users"]
    for name in ("hitRate", "l2HitRate", "overallHitRate", "opsPerSecond", "evictionsBySize", "evictionsByCount",
                 "expirations", "bytes", "maxBytes", "entries", "maxEntries"):
        assert name in users, name
    assert users["opsPerSecond"] > 0 and 0 <= users["l2HitRate"] <= users["overallHitRate"] <= 1


# ------------------------------------------------------------------------------------------ in Chromium


def _chromium() -> Tuple[Optional[str], Optional[str]]:
    browser = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)
    driver = shutil.which("chromedriver") or next(
        (p for p in ("/usr/lib/chromium/chromedriver", "/usr/bin/chromedriver") if os.path.exists(p)), None)
    return browser, driver


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    path, driver_path = _chromium()
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        path = None
    if path is None or driver_path is None:
        if in_ci():
            pytest.fail("the dashboard tests need chromium, chromium-driver and selenium (CI installs them)")
        pytest.skip("chromium, chromium-driver or selenium not installed")
    options = webdriver.ChromeOptions()
    options.binary_location = path
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-default-apps", "--disable-extensions", "--window-size=1400,1000",
                "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=driver_path))
    try:
        yield driver
    finally:
        driver.quit()


def figure(driver: Any, name: str, root: str = "") -> Any:
    """The raw value (data-value, JSON) of the figure named `name`; None until the page has shown it."""
    raw = driver.execute_script(
        "const el = document.querySelector(arguments[0]); return el ? el.dataset.value : null;",
        f'{root} [data-metric="{name}"]'.strip())
    return None if raw in (None, "") else json.loads(raw)


def shown(driver: Any, selector: str) -> bool:
    return bool(driver.execute_script("const el = document.querySelector(arguments[0]); "
                                      "return !!el && !el.hidden;", selector))


def sign_in(driver: Any, server: str, key: str) -> None:
    from selenium.webdriver.common.by import By

    driver.get(server + "/dashboard?refresh=1")
    driver.execute_script("sessionStorage.clear()")
    driver.get(server + "/dashboard?refresh=1")
    field = driver.find_element(By.ID, "api-key")
    field.send_keys(key)
    driver.find_element(By.CSS_SELECTOR, "#key-form button").click()


def errors(driver: Any) -> list:
    return [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def traffic(server: str, hits: int, misses: int) -> None:
    call(server, "PUT", "/cache/users/hot", {"value": {"id": 1}})
    for _ in range(hits):
        call(server, "GET", "/cache/users/hot")
    for i in range(misses):
        call(server, "GET", f"/cache/users/missing-{os.urandom(4).hex()}-{i}")


@pytest.mark.browser
def test_a_wrong_key_shows_only_the_form_and_the_401(browser: Any, server: str) -> None:
    sign_in(browser, server, "not-the-key")
    wait_until(lambda: shown(browser, "#auth-error"), 10, "the 401 message")
    message = browser.execute_script("return document.querySelector('#auth-error').textContent")
    assert "Unauthorized" in message and "does not match" in message
    assert not shown(browser, "#board") and shown(browser, "#key-form")
    assert figure(browser, "overallScore") is None and figure(browser, "l1HitRate") is None
    assert browser.execute_script("return sessionStorage.getItem('tiercache.apiKey')") is None
    browser.get_log("browser")  # (the refused request's 401 is logged by the browser: expected here)


@pytest.mark.browser
def test_the_page_loads_without_console_errors_and_shows_the_health_score(browser: Any, server: str) -> None:
    traffic(server, hits=30, misses=10)
    browser.get_log("browser")
    sign_in(browser, server, KEY)
    wait_until(lambda: figure(browser, "overallScore") is not None, 15, "the health score on the page")
    assert shown(browser, "#board") and not shown(browser, "#login")
    for name in ("status", "totalRequests", "l1HitRate", "l2HitRate", "overallHitRate", "kind", "circuit.state"):
        assert figure(browser, name) is not None, name
    assert figure(browser, "kind") == "sqlite" and figure(browser, "circuit.state") == "closed"
    assert figure(browser, "hitRate", '[data-namespace="users"]') is not None
    assert browser.execute_script("return document.querySelectorAll('#components tr[data-component]').length") >= 5

    def same_score() -> bool:  # (the page polls every second; the score moves only with traffic)
        _, _, body = call(server, "GET", "/cache-health")
        api = json.loads(body)["assessment"]
        return figure(browser, "overallScore") == api["overallScore"] and figure(browser, "status") == api["status"]

    wait_until(same_score, 15, "the page's health score to equal /cache-health's")
    assert errors(browser) == []


@pytest.mark.browser
def test_the_hit_rate_follows_traffic(browser: Any, server: str) -> None:
    if figure(browser, "overallScore") is None:
        sign_in(browser, server, KEY)
        wait_until(lambda: figure(browser, "l1HitRate") is not None, 15, "the hit rate on the page")
    wait_until(lambda: figure(browser, "l1HitRate") is not None, 15, "the hit rate on the page")
    before = figure(browser, "l1HitRate")
    requests_before = figure(browser, "totalRequests")
    traffic(server, hits=200, misses=0)
    wait_until(lambda: figure(browser, "l1HitRate") != before, 15, "the L1 hit rate on the page to change")
    assert figure(browser, "l1HitRate") > before
    assert figure(browser, "totalRequests") >= requests_before + 200
    assert isinstance(figure(browser, "opsPerSecond", '[data-namespace="users"]'), (int, float))
    assert figure(browser, "environment") == "test" and figure(browser, "version")
    wait_until(lambda: browser.execute_script("return document.querySelectorAll('.chart polyline').length") > 0,
               15, "the trend charts")
    assert errors(browser) == []


def test_serve_refuses_a_bad_metrics_interval() -> None:
    done = subprocess.run([sys.executable, "-m", "tiercache", "serve", "--api-key", KEY, "--metrics-interval", "nan"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "--metrics-interval: must be a positive number of seconds" in done.stderr
