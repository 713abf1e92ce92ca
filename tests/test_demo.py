"""The demo page (``--mode=serve``): its logic directly, then in a real browser."""

import pathlib
import socket
import subprocess
import sys

import numpy as np
from PIL import Image
import pytest

from benchmarks import demo_page
from mixae_jax.apps import drawn_digits
from mixae_jax import metrics
from mixae_jax.data import local_files
from mixae_jax.data import preprocessing
from mixae_jax.apps.demo_session import (BY_CLASS, BY_INDEX, DRAW, RANDOM, UPLOAD,
                                  DemoModel)
from mixae_jax.errors import ConfigError, InputError
from mixae_jax.inference import Separator

REPO = pathlib.Path(__file__).resolve().parents[1]


def canvas_with_stroke(top: int, left: int, height: int,
                       width: int) -> np.ndarray:
  """A 280x280 transparent RGBA canvas with one black rectangle drawn."""
  canvas = np.zeros((280, 280, 4), np.uint8)
  canvas[top:top + height, left:left + width] = (0, 0, 0, 255)
  return canvas


def centre_of_mass(digit: np.ndarray) -> tuple[float, float]:
  ink = digit.astype(np.float64)
  rows, cols = np.indices(ink.shape) + 0.5  # Pixel centres.
  return (ink * rows).sum() / ink.sum(), (ink * cols).sum() / ink.sum()


def test_a_drawing_is_scaled_and_centred_as_mnist_digits_are():
  # A tall stroke far off-centre, in the canvas's top-left corner.
  digit, notes = drawn_digits.digit_from_picture(
      canvas_with_stroke(10, 20, 150, 30), keep_mnist=False)
  assert digit.shape == (28, 28) and digit.dtype == np.uint8
  rows = np.flatnonzero(digit.max(axis=1) > 0)
  cols = np.flatnonzero(digit.max(axis=0) > 0)
  assert rows[-1] - rows[0] + 1 == 20  # The longer side fills 20 pixels.
  assert cols[-1] - cols[0] + 1 == 4   # 150:30 kept as 20:4.
  np.testing.assert_allclose(centre_of_mass(digit), (14, 14), atol=0.5)
  assert digit.max() == 255 and digit[0].max() == 0  # Bright ink on black.
  assert 'centred' in notes[-1]


def test_an_mnist_digit_is_kept_and_a_dark_on_light_photo_inverted():
  mnist_like = np.zeros((28, 28), np.uint8)
  mnist_like[5:20, 12:15] = 200
  kept, notes = drawn_digits.digit_from_picture(mnist_like)
  np.testing.assert_array_equal(kept, mnist_like)
  assert not notes
  photo = np.full((60, 40, 3), 230, np.uint8)  # Dark pen on light paper.
  photo[10:50, 18:24] = 20
  digit, notes = drawn_digits.digit_from_picture(photo)
  assert digit.shape == (28, 28) and digit[14, 14] > 150 and digit[0, 0] == 0
  assert 'dark ink on light' in notes[0]


def test_an_empty_canvas_is_refused_with_a_message():
  with pytest.raises(InputError, match='canvas is empty: draw a digit'):
    drawn_digits.digit_from_picture(np.zeros((280, 280, 4), np.uint8),
                                    keep_mnist=False)


@pytest.fixture(scope='module')
def demo_model(trained_run):
  """The demo's model on the tiny run and its synthetic test data."""
  _, workdir, _ = trained_run
  return DemoModel.restore(workdir)


def test_a_chosen_pair_scores_as_the_separator_api_does(demo_model,
                                                        trained_run):
  config, workdir, _ = trained_run
  digit, about_digit = demo_model.source('digit', BY_INDEX, index=7)
  image, about_image = demo_model.source('image', BY_INDEX, index='3')
  digits = local_files.read_mnist(config.data.dir, 'test')
  images = local_files.read_cifar10(config.data.dir, 'test')
  np.testing.assert_array_equal(digit, digits.images[7])
  np.testing.assert_array_equal(image, images.images[3])
  assert about_digit.startswith('MNIST test digit #7 (')
  result = demo_model.mix_and_separate(digit, image)
  separated = Separator.restore(workdir).mix_and_separate(
      digits.images[7:8], images.images[3:4])
  mixture, pred_digit = separated.mixture, separated.digit
  np.testing.assert_allclose(result.mixture, mixture[0])
  np.testing.assert_allclose(result.digit, pred_digit[0], atol=1e-6)
  truth = preprocessing.make_mixtures(digits.images[7:8], images.images[3:4])
  want = metrics.per_image(pred_digit, truth.first)
  np.testing.assert_allclose(result.scores['digit']['psnr'],
                             float(want['psnr'][0]), rtol=1e-5)
  assert result.seconds > 0


def test_choices_by_class_and_at_random_come_from_the_test_split(demo_model):
  for _ in range(3):
    digit, about = demo_model.source('digit', BY_CLASS, label='3')
    assert about.endswith('(3)')
    image, about = demo_model.source('image', RANDOM)
    assert image.shape == (32, 32, 3) and about.startswith('CIFAR-10 test')


@pytest.mark.parametrize('call, message', [
    (lambda m: m.source('digit', BY_INDEX, index=100), r'digit index 100 is out of '
     r'range: the MNIST test split has 100 \(0 to 99\)'),
    (lambda m: m.source('image', BY_INDEX, index=2.5), 'must be a whole number'),
    (lambda m: m.source('digit', BY_CLASS, label=None), 'choose a digit class'),
    (lambda m: m.source('digit', DRAW, drawing=None), 'canvas is empty'),
    (lambda m: m.source('digit', UPLOAD, upload=None), 'no digit uploaded'),
])
def test_bad_choices_get_a_message(demo_model, call, message):
  with pytest.raises(InputError, match=message):
    call(demo_model)


def test_uploads_are_read_checked_and_resized_as_the_page_says(demo_model,
                                                               tmp_path):
  not_an_image = tmp_path / 'notes.png'
  not_an_image.write_text('hello')
  with pytest.raises(InputError, match=r'uploaded image \(notes.png\) is not '
                     'an image file; upload a PNG or JPEG'):
    demo_model.source('image', UPLOAD, upload=str(not_an_image))
  big = tmp_path / 'big.png'
  Image.fromarray(np.full((64, 48, 3), 90, np.uint8)).save(big)
  image, about = demo_model.source('image', UPLOAD, upload=str(big))
  assert image.shape == (32, 32, 3) and 'resized from 48x64 to 32x32' in about
  with pytest.raises(InputError, match=r"mixture must be 32x32: resize it "
                     r".* or tick 'resize to 32x32'"):
    demo_model.separate_upload(str(big))
  result = demo_model.separate_upload(str(big), resize=True)
  assert result.digit.shape == (32, 32, 3) and result.scores is None


def test_without_test_data_the_choices_say_how_to_get_it(trained_run):
  _, workdir, _ = trained_run
  model = DemoModel(Separator.restore(workdir), None,
                    'data folder /nowhere does not exist; set MIXAE_DATA_DIR')
  with pytest.raises(InputError, match='no test data, so no test digit to '
                     'choose: data folder /nowhere does not exist; set '
                     'MIXAE_DATA_DIR.*drawing and uploading work'):
    model.source('digit', RANDOM)
  digit, _ = model.source('digit', DRAW, drawing=canvas_with_stroke(50, 50, 100, 20))
  image = np.zeros((32, 32, 3), np.uint8)
  assert model.mix_and_separate(digit, image).scores['digit']['psnr'] > 0


def test_serve_without_gradio_says_how_to_install_it(trained_run):
  _, workdir, _ = trained_run
  code = ('import sys; sys.modules["gradio"] = None; '
          'from mixae_jax.apps import cli; cli.launch()')
  result = subprocess.run(
      [sys.executable, '-c', code, '--mode=serve', f'--workdir={workdir}'],
      cwd=REPO, capture_output=True, text=True, timeout=120)
  assert result.returncode == 2
  assert result.stderr.strip().splitlines() == [
      'error: --mode=serve needs Gradio, an optional extra: pip install -e '
      '".[demo]" (or `make demo`)']


@pytest.mark.skipif(demo_page.missing() is not None,
                    reason=f'needs the demo extra: {demo_page.missing()}')
def test_a_port_in_use_is_refused_with_a_message():
  from mixae_jax.apps import demo  # pylint: disable=g-import-not-at-top
  with socket.socket() as taken:
    taken.bind(('127.0.0.1', 0))
    taken.listen()
    port = taken.getsockname()[1]
    with pytest.raises(ConfigError, match=(
        f'^cannot serve on port {port} on 127.0.0.1 \\(Address already in '
        r'use\); choose another --port \(or leave it out for a free one\) '
        'or --host$')):
      demo.check_port('127.0.0.1', port)
  assert demo.check_port('127.0.0.1', None) > 0  # A free one.


@pytest.mark.skipif(demo_page.missing() is not None,
                    reason=f'no browser test: {demo_page.missing()}')
def test_the_page_in_a_real_browser(trained_run, tmp_path):
  """Chromium chooses a pair, draws, uploads junk; the server stays up."""
  config, workdir, _ = trained_run
  digits = local_files.read_mnist(config.data.dir, 'test')
  images = local_files.read_cifar10(config.data.dir, 'test')
  separated = Separator.restore(workdir).mix_and_separate(
      digits.images[7:8], images.images[3:4])
  pred_digit, pred_image = separated.digit, separated.image
  truth = preprocessing.make_mixtures(digits.images[7:8], images.images[3:4])
  want = {'digit': metrics.per_image(pred_digit, truth.first),
          'image': metrics.per_image(pred_image, truth.second)}
  junk = tmp_path / 'junk.png'
  junk.write_text('not a picture')

  with demo_page.server(workdir) as url, \
      demo_page.browser_page(url) as (page, external):
    demo_page.choose(page, 'digit', BY_INDEX, 7)
    demo_page.choose(page, 'image', BY_INDEX, 3)
    demo_page.separate(page, expect='#7')
    status = page.locator('#status').inner_text()
    assert 'MNIST test digit #7' in status and 'CIFAR-10 test image #3' in status
    shown = demo_page.shown_scores(page)
    for source in ('digit', 'image'):  # Equal to the shown precision.
      assert abs(shown[source]['psnr'] - float(want[source]['psnr'][0])) <= 0.005
      assert abs(shown[source]['ssim'] - float(want[source]['ssim'][0])) <= 5e-4
    page.screenshot(path=str(tmp_path / 'demo.png'), full_page=True)

    demo_page.choose(page, 'digit', DRAW)
    demo_page.separate(page, expect='canvas is empty')
    demo_page.draw_stroke(page)
    demo_page.separate(page, expect='your drawing')
    assert set(demo_page.shown_scores(page)) == {'digit', 'image'}

    demo_page.choose(page, 'digit', UPLOAD)
    page.locator('#digit-upload input[type=file]').set_input_files(str(junk))
    demo_page.separate(page, expect='is not an image file')
    demo_page.choose(page, 'digit', BY_INDEX, 8)  # The server is still up.
    demo_page.separate(page, expect='MNIST test digit #8')
  assert (tmp_path / 'demo.png').stat().st_size > 10_000
  assert not external, f'the page reached off the machine: {external}'
  print(f'screenshot: {tmp_path / "demo.png"}', file=sys.stderr)
