"""How fast the demo page answers: start-up, and time per separation.

  python -m benchmarks.demo_latency --workdir=pretrained/dual \
      --screenshot=docs/demo.png

Starts ``launch.py --mode=serve`` (which loads and compiles the model once),
drives the page in headless Chromium (Debian's ``chromium``; see
`benchmarks.demo_page`), and separates `--requests` test pairs chosen by
index, one after another. For each it reads two times:

  * server: mixing, separating and scoring, as the page prints it;
  * browser: from the click to the new results on the page (the server's
    time plus Gradio's queue, the transfer of six PNGs and their drawing).

Needs the demo extra and the test data (MIXAE_DATA_DIR or ``make data``).
"""

import json
import re
import statistics
import time

from absl import app
from absl import flags

from benchmarks import demo_page

_WORKDIR = flags.DEFINE_string('workdir', 'pretrained/dual',
                               'The model to serve.')
_REQUESTS = flags.DEFINE_integer('requests', 20, 'Separations to time.')
_SCREENSHOT = flags.DEFINE_string('screenshot', None,
                                  'Where to save a screenshot of the page '
                                  'after the last separation (PNG).')


def main(argv):
  del argv
  problem = demo_page.missing()
  if problem:
    raise app.UsageError(f'cannot drive the page: {problem}')
  start = time.perf_counter()
  with demo_page.server(_WORKDIR.value) as url:
    startup_s = time.perf_counter() - start
    with demo_page.browser_page(url) as (page, external):
      demo_page.choose(page, 'digit', 'by index')
      demo_page.choose(page, 'image', 'by index')
      server_ms, browser_ms = [], []
      for k in range(_REQUESTS.value + 1):  # The first is not counted.
        demo_page.choose(page, 'digit', 'by index', k)
        demo_page.choose(page, 'image', 'by index', k)
        seconds = demo_page.separate(page, expect=f'digit #{k} ')
        shown = re.search(r'Separated in (\d+) ms',
                          page.locator('#scores').inner_text())
        if k:
          server_ms.append(int(shown.group(1)))
          browser_ms.append(1000 * seconds)
      if _SCREENSHOT.value:
        page.screenshot(path=_SCREENSHOT.value)
  print(json.dumps({
      'workdir': _WORKDIR.value, 'requests': _REQUESTS.value,
      'startup_s (load, compile, serve)': round(startup_s, 1),
      'server_ms median': statistics.median(server_ms),
      'server_ms max': max(server_ms),
      'browser_ms median': round(statistics.median(browser_ms)),
      'browser_ms max': round(max(browser_ms)),
      'requests off the machine': len(external),
  }, indent=1))


if __name__ == '__main__':
  app.run(main)
