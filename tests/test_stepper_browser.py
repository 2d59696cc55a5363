"""The step-through page (microbp/stepper.py) in a real browser: headless
Chromium driven by Selenium steps through the forward and backward passes and
reads the numbers the page shows.

Needs Debian's `chromium` and `chromium-driver` and the `selenium` package.
Outside CI (CI is not "true") the tests skip when they are missing; in CI a
missing browser is a failure. With MICROBP_UPDATE_DOCS=1 the screenshots also
go to docs/stepper.png and docs/graph-inline.png (the README shows them).
"""
import os
import pathlib
import shutil

import pytest

from microbp import Value, draw
from microbp.explain import explain
from microbp import svg as own

DOCS = pathlib.Path(__file__).resolve().parent.parent / "docs"
IN_CI = os.environ.get("CI") == "true"


def _browser():
    """(chromium, chromedriver) paths, or a skip (a failure in CI)."""
    chromium = next((p for p in map(shutil.which, ("chromium", "chromium-browser",
                                                    "google-chrome")) if p), None)
    driver = shutil.which("chromedriver")
    why = None
    if chromium is None or driver is None:
        why = "no chromium and chromedriver (apt-get install chromium chromium-driver)"
    else:
        try:
            import selenium  # noqa: F401
        except ImportError:
            why = "selenium is not installed (pip install selenium)"
    if why:
        if IN_CI:
            pytest.fail(f"CI runs the browser tests: {why}")
        pytest.skip(why)
    return chromium, driver


@pytest.fixture(scope="module")
def browser():
    chromium, driver_path = _browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1100,1400", "--force-device-scale-factor=1"):
        opts.add_argument(arg)
    # the browser is not this process: under `make sanitize` it must not inherit
    # the AddressSanitizer runtime preloaded for the C core
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "ASAN_OPTIONS")}
    driver = webdriver.Chrome(service=Service(driver_path, env=env), options=opts)
    try:
        yield driver
    finally:
        driver.quit()


def simple():
    """A graph whose engine gradients are exactly local x upstream, summed."""
    x, w, b = Value(0.8, label="x"), Value(-1.3, label="w"), Value(0.25, label="b")
    h = (x * w + b).tanh()
    h.label = "h"
    y = h * h - x
    y.label = "y"
    y.backward()
    return y


def lecture():
    """The lecture's 2-2-1 sigmoid network, labelled as examples/lecture.py does."""
    w = {k: Value(v, label=k) for k, v in
         (("w_AC", 0.1), ("w_BC", 0.4), ("w_AD", 0.5), ("w_BD", 0.3), ("w_CE", 0.2),
          ("w_DE", 0.6))}
    x = {"x_A": Value(0.23, label="x_A"), "x_B": Value(0.82, label="x_B")}

    def named(v, label):
        v.label = label
        return v

    y = {}
    for h, (wa, wb) in (("C", ("w_AC", "w_BC")), ("D", ("w_AD", "w_BD"))):
        z = named(named(w[wa] * x["x_A"], f"{wa}*x_A") + named(w[wb] * x["x_B"], f"{wb}*x_B"),
                  f"z_{h}")
        y[h] = named(z.sigmoid(), f"y_{h}")
    z_e = named(named(w["w_CE"] * y["C"], "w_CE*y_C") + named(w["w_DE"] * y["D"], "w_DE*y_D"),
                "z_E")
    yhat = named(z_e.sigmoid(), "yhat")
    err = named(Value(1.0, label="y") - yhat, "y-yhat")
    loss = named(0.5 * named(err ** 2, "(y-yhat)^2"), "L")
    loss.backward()
    return loss


def labelled(root):
    out, stack, seen = {}, [root], set()
    while stack:
        v = stack.pop()
        if v in seen:
            continue
        seen.add(v)
        if v.label:
            out[v.label] = v
        stack.extend(v.inputs)
    return out


def boxes(driver):
    """{name: (shown data, shown grad, text of the grad line)} from the DOM."""
    from selenium.webdriver.common.by import By
    got = {}
    for g in driver.find_elements(By.CSS_SELECTOR, "#graph g.val"):
        grad = g.find_elements(By.CSS_SELECTOR, "text.grad")
        got[g.get_attribute("data-name")] = (g.get_attribute("data-shown-data"),
                                             g.get_attribute("data-shown-grad"),
                                             grad[0].text if grad else None)
    return got


def step_to_the_end(driver):
    """Half the steps with the right arrow key, the rest with the Next button;
    returns the number of steps."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    body = driver.find_element(By.TAG_NAME, "body")
    n = int(body.get_attribute("data-steps"))
    assert body.get_attribute("data-step") == "0"
    for i in range(1, n):
        if i < n // 2:
            body.send_keys(Keys.ARROW_RIGHT)
        else:
            driver.find_element(By.ID, "next").click()
        assert body.get_attribute("data-step") == str(i)
    assert not driver.find_element(By.ID, "next").is_enabled()
    return n


def test_stepping_shows_the_engines_gradients_exactly(browser, tmp_path):
    from selenium.webdriver.common.by import By
    y = simple()
    path = draw(y, tmp_path / "backprop.html")
    browser.get(pathlib.Path(path).as_uri())
    named = labelled(y)
    start = boxes(browser)
    # at the start only the leaves are known; no gradient is shown
    assert start["x"][0] == repr(0.8) and start["h"][0] is None
    assert all(g is None and t == "grad ?" for _, g, t in start.values() if t)
    n = step_to_the_end(browser)
    assert n == 1 + 5 + 1 + 5 + 1          # start, 5 forward, start backward, 5 ops, end
    end = boxes(browser)
    for name, v in named.items():
        data, grad, text = end[name]
        assert float(data) == v.data
        assert float(grad) == v.grad, name                     # exactly the engine's
        assert text == f"grad {v.grad:.6g}"
    # Back and the left arrow step back: the last gradient added is taken away
    browser.find_element(By.ID, "back").click()
    from selenium.webdriver.common.keys import Keys
    body = browser.find_element(By.TAG_NAME, "body")
    body.send_keys(Keys.ARROW_LEFT)
    assert body.get_attribute("data-step") == str(n - 3)
    # before the last op (x * w): x shows only the product from its use in y = h*h - x
    back = boxes(browser)
    assert back["x"][1] == repr(-1.0) != repr(end["x"][1]) and back["w"][1] is None
    body.send_keys(Keys.END)
    assert boxes(browser) == end
    body.send_keys(Keys.HOME)
    assert boxes(browser) == start


def test_the_lecture_page_steps_to_the_engines_gradients(browser, tmp_path):
    from selenium.webdriver.common.by import By
    loss = lecture()
    ex = explain(loss)
    path = ex.save(tmp_path / "lecture.html")
    browser.get(pathlib.Path(path).as_uri())
    body = browser.find_element(By.TAG_NAME, "body")
    n = int(body.get_attribute("data-steps"))
    seen_product = False
    from selenium.webdriver.common.keys import Keys
    for i in range(1, n):
        body.send_keys(Keys.ARROW_RIGHT)
        lines = browser.find_element(By.ID, "lines").text
        if body.get_attribute("data-phase") == "backward" and "\u00d7" in lines:
            seen_product = True
            assert "local d(" in lines and " = " in lines
        if i == 22 and os.environ.get("MICROBP_UPDATE_DOCS") == "1":
            _screenshot(browser, DOCS / "stepper.png")
    assert seen_product
    assert not browser.find_element(By.ID, "next").is_enabled()
    end = boxes(browser)
    values = [v for v in ex.order if v.op != "const"]
    assert len(values) == 24 and len(end) == 26            # and two constants
    for v in values:
        data, grad, text = end[ex.names[v]]
        assert float(data) == v.data
        assert float(grad) == pytest.approx(v.grad, rel=1e-12, abs=1e-300), ex.names[v]
        assert text == f"grad {v.grad:.6g}"
    _screenshot(browser, tmp_path / "stepper.png")
    assert (tmp_path / "stepper.png").stat().st_size > 10_000


def _screenshot(driver, path):
    """A screenshot of the whole page (the window grown to its height)."""
    height, chrome = driver.execute_script(
        "return [document.body.getBoundingClientRect().height,"
        " window.outerHeight - window.innerHeight]")
    driver.set_window_size(1100, int(min(max(height, 600), 2000) + chrome))
    driver.save_screenshot(str(path))
    driver.set_window_size(1100, 1400)


def test_the_notebook_picture_renders_at_its_size(browser, tmp_path):
    from selenium.webdriver.common.by import By
    loss = lecture()
    picture = own.to_svg(loss)
    page = tmp_path / "inline.html"
    page.write_text("<!DOCTYPE html><html><body style='margin:0;background:#fff'>"
                    + picture + "</body></html>", encoding="utf-8")
    browser.get(page.as_uri())
    svg_el = browser.find_element(By.CSS_SELECTOR, "svg")
    size = svg_el.size
    assert 0 < size["width"] <= own.MAX_WIDTH and 0 < size["height"] <= own.MAX_HEIGHT
    # every box's text fits inside its box (the layout's width estimate holds)
    fits = browser.execute_script("""
        var bad = [];
        document.querySelectorAll('g.val').forEach(function(g){
          var r = g.querySelector('rect').getBBox();
          g.querySelectorAll('text').forEach(function(t){
            var b = t.getBBox();
            if (b.x < r.x || b.x + b.width > r.x + r.width) bad.push(t.textContent);
          });
        });
        return bad;""")
    assert fits == []
    out = DOCS / "graph-inline.png" if os.environ.get("MICROBP_UPDATE_DOCS") == "1" \
        else tmp_path / "graph-inline.png"
    svg_el.screenshot(str(out))
    assert out.stat().st_size > 10_000


def test_the_step_in_focus_is_scrolled_into_view(browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    path = explain(lecture()).save(tmp_path / "lecture.html")
    browser.set_window_size(1100, 700)              # the graph is taller than the window
    try:
        browser.get(pathlib.Path(path).as_uri())
        body = browser.find_element(By.TAG_NAME, "body")
        n = int(body.get_attribute("data-steps"))
        assert browser.execute_script("return document.body.scrollHeight") > 900
        for _ in range(n - 1):
            body.send_keys(Keys.ARROW_RIGHT)
            top, bottom, height = browser.execute_script("""
                var f = document.querySelector('#graph g.op.focus') ||
                        document.querySelector('#graph g.val.focus');
                if (!f) return [null, null, null];
                var r = f.getBoundingClientRect();
                var p = document.getElementById('panel').getBoundingClientRect().bottom;
                return [r.top - p, window.innerHeight - r.bottom, window.innerHeight];""")
            if top is not None:
                assert top >= 0 and bottom >= 0, body.get_attribute("data-step")
    finally:
        browser.set_window_size(1100, 1400)
