"""Drives the demo page (``--mode=serve``) in a headless Chromium.

Shared by the browser test (tests/test_demo.py) and the latency benchmark
(benchmarks/demo_latency.py). It needs Playwright's Python package and a
Chromium binary already on the machine (Debian's ``chromium`` package);
nothing is downloaded.
"""

import contextlib
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
from typing import Iterator

REPO = pathlib.Path(__file__).resolve().parents[1]
STATUS = '#status'
CHROMIUM_CANDIDATES = ('chromium', 'chromium-browser', 'google-chrome')
# Chromium flags for a closed network and a root user: no sandbox (root), and
# no background calls to Google's services (refused here, and not wanted).
CHROMIUM_ARGS = ('--no-sandbox', '--disable-gpu', '--disable-quic',
                 '--no-first-run', '--disable-background-networking',
                 '--disable-component-update', '--disable-sync',
                 '--disable-default-apps', '--disable-extensions')


def chromium_path() -> str | None:
  """The Chromium binary to drive: $CHROMIUM, else one on the PATH."""
  if os.environ.get('CHROMIUM'):
    return os.environ['CHROMIUM']
  for name in CHROMIUM_CANDIDATES:
    found = shutil.which(name)
    if found:
      return found
  return None


def missing() -> str | None:
  """Why the page cannot be driven here, or None when it can."""
  try:
    import gradio  # pylint: disable=g-import-not-at-top,unused-import
  except ImportError:
    return 'Gradio is not installed (pip install -e ".[demo]")'
  try:
    import playwright  # pylint: disable=g-import-not-at-top,unused-import
  except ImportError:
    return 'Playwright is not installed (pip install -e ".[test]")'
  if chromium_path() is None:
    return ('no Chromium binary (apt-get install chromium, or set $CHROMIUM '
            'to one)')
  return None


@contextlib.contextmanager
def server(workdir: str | pathlib.Path, env: dict[str, str] | None = None,
           timeout_s: float = 300) -> Iterator[str]:
  """Runs ``launch.py --mode=serve`` on a free port; yields the page's URL.

  On leaving, stops the server with SIGTERM and checks that it exited 0.
  """
  log = tempfile.TemporaryFile('w+')
  process = subprocess.Popen(
      [sys.executable, str(REPO / 'launch.py'), '--mode=serve',
       f'--workdir={workdir}'], cwd=REPO, stdout=subprocess.PIPE,
      stderr=log, text=True, env={**os.environ, **(env or {})})
  try:
    deadline = time.monotonic() + timeout_s
    line = ''
    while 'serving the demo' not in line:
      line = process.stdout.readline()
      if not line and process.poll() is not None or time.monotonic() > deadline:
        log.seek(0)
        raise RuntimeError(f'the demo server did not start:\n{log.read()}')
    yield re.search(r'http://\S+/', line).group(0)
  finally:
    process.terminate()  # SIGTERM, as Ctrl-C: the server stops cleanly.
    status = process.wait(timeout=30)
    log.seek(0)
    errors = log.read()
    log.close()
  if status != 0:
    raise RuntimeError(f'the demo server exited with {status} on SIGTERM, '
                       f'not 0:\n{errors}')


@contextlib.contextmanager
def browser_page(url: str) -> Iterator[tuple[object, list[str]]]:
  """A Chromium page open at `url`, and the list of off-machine requests.

  Every request the page makes to a host other than `url`'s is recorded
  (and refused), so a caller can check that the page works offline.
  """
  from playwright.sync_api import sync_playwright  # pylint: disable=g-import-not-at-top

  local_host = urllib.parse.urlparse(url).hostname
  external = []

  def route(request_route):
    host = urllib.parse.urlparse(request_route.request.url).hostname
    if host in (local_host, None) or request_route.request.url.startswith(
        ('data:', 'blob:')):
      request_route.continue_()
    else:
      external.append(request_route.request.url)
      request_route.abort()

  with sync_playwright() as p:
    browser = p.chromium.launch(executable_path=chromium_path(),
                                args=list(CHROMIUM_ARGS))
    try:
      page = browser.new_page(viewport={'width': 1500, 'height': 1100})
      page.route('**/*', route)
      page.goto(url)
      page.locator('#separate').wait_for(timeout=60_000)
      yield page, external
    finally:
      browser.close()


def choose(page, source: str, how: str, index: int | None = None) -> None:
  """Sets the digit or image source (source: 'digit' or 'image')."""
  page.locator(f'#{source}-source').get_by_label(how, exact=True).check()
  if index is not None:
    box = page.locator(f'#{source}-index input')
    box.fill(str(index))
    box.press('Tab')  # Gradio takes a number's value when the field blurs.


def separate(page, expect: str = '', timeout_ms: int = 60_000) -> float:
  """Clicks 'Mix and separate'; waits for a new status; returns seconds.

  The new status must differ from the one before the click (choose
  another pair than the last), Gradio must have finished the request (its
  pending mark gone), and every result picture must have loaded.

  Args:
    page: the page.
    expect: text the new status must contain (e.g. the chosen index).
    timeout_ms: how long to wait.
  """
  before = page.locator(f'{STATUS} [data-testid=markdown]').inner_text()
  start = time.perf_counter()
  page.locator('#separate').click()
  page.wait_for_function(
      '([status, before, expect]) => {'
      '  const s = document.querySelector(status);'
      '  const t = s.querySelector("[data-testid=markdown]").innerText;'
      '  const shown = [...document.querySelectorAll("[id^=out-] img")]'
      '      .every(i => i.complete && i.naturalWidth > 0);'
      '  return s.querySelector(".pending") === null && t !== before'
      '      && t.includes(expect) && shown; }',
      arg=[STATUS, before, expect], timeout=timeout_ms)
  return time.perf_counter() - start


def shown_scores(page) -> dict[str, dict[str, float]]:
  """The PSNR and SSIM the page shows, by the sources' names."""
  text = page.locator('#scores').inner_text()
  scores = {}
  for source, psnr, ssim in re.findall(
      r'(\w+)\s+([-\d.]+) dB\s+([-\d.]+)', text):
    scores[source] = {'psnr': float(psnr), 'ssim': float(ssim)}
  return scores


def draw_stroke(page) -> None:
  """Draws a '1' on the digit canvas (the digit source must be 'draw')."""
  page.locator('#digit-canvas button[aria-label="Brush"]').first.click()
  box = page.locator('#digit-canvas canvas').first.bounding_box()
  x, y = box['x'] + box['width'] / 2, box['y'] + box['height'] / 4
  page.mouse.move(x, y)
  page.mouse.down()
  page.mouse.move(x + 10, y + box['height'] / 2, steps=20)
  page.mouse.up()
