"""``--mode=serve``: a local web page to play with a trained separator.

  pip install -e ".[demo]"
  python launch.py --mode=serve --workdir=pretrained/dual --port=8080

Pick or draw a digit, pick or upload an image (or upload a mixture alone),
and the page shows the mixture, both recovered sources, the truths, PSNR and
SSIM per source and an error map. The page is Gradio's (an optional extra);
what it does lives in `mixae_jax.apps.demo_session`. It runs offline: no analytics,
no update check, no fonts or scripts from the network.
"""

import os
import socket
import time

from absl import logging
import gradio as gr
from matplotlib import colormaps
import numpy as np

from mixae_jax import interrupts
from mixae_jax import plots
from mixae_jax.apps.demo_session import (BY_CLASS, BY_INDEX, DIGIT_CLASSES,
                                  DIGIT_SOURCES, DRAW, IMAGE_CLASSES,
                                  IMAGE_SOURCES, UPLOAD, DemoModel, Separation)
from mixae_jax.errors import ConfigError, MixaeError

ZOOM = 8  # Pixels stay visible: 32x32 shows as 256x256, nearest neighbour.
ERROR_SCALE = 0.25  # An absolute error this large or more shows brightest.
_PANELS = ('mixture', 'recovered digit', 'recovered image', 'true digit',
           'true image',
           f'error |recovered - true|: digit, image (black 0, yellow >= '
           f'{ERROR_SCALE})')
# System fonts: nothing to load, from the network or otherwise.
_THEME = gr.themes.Default(font=['ui-sans-serif', 'system-ui', 'sans-serif'],
                           font_mono=['ui-monospace', 'monospace'])


def enlarge(picture: np.ndarray | None) -> np.ndarray | None:
  """float [H, W, C] in [0, 1] -> uint8, each pixel a ZOOM x ZOOM block."""
  if picture is None:
    return None
  picture = plots.to_uint8(picture)
  return picture.repeat(ZOOM, axis=0).repeat(ZOOM, axis=1)


def error_map(result: Separation) -> np.ndarray | None:
  """|recovered - true| per pixel, digit beside image, as a heat map."""
  if result.true_digit is None:
    return None
  gap = np.ones((32, 2))
  error = np.concatenate(
      [np.abs(result.digit - result.true_digit).mean(-1), gap,
       np.abs(result.image - result.true_image).mean(-1)], axis=1)
  heat = colormaps['inferno'](np.clip(error / ERROR_SCALE, 0, 1))[..., :3]
  heat[:, 32:34] = 1.0  # A white gap between the two maps.
  return enlarge(heat)


def scores_table(result: Separation) -> str:
  """The metrics as Markdown (2 decimals of dB, 3 of SSIM)."""
  timing = f'Separated in {1000 * result.seconds:.0f} ms.'
  if result.scores is None:
    return f'No truths for an uploaded mixture, so no scores. {timing}'
  rows = ''.join(f'| {source} | {s["psnr"]:.2f} dB | {s["ssim"]:.3f} |\n'
                 for source, s in result.scores.items())
  return f'| source | PSNR | SSIM |\n|---|---|---|\n{rows}\n{timing}'


def _outputs(result: Separation | None, status: str) -> list:
  if result is None:
    return [None] * len(_PANELS) + ['', status]
  return [enlarge(result.mixture), enlarge(result.digit),
          enlarge(result.image), enlarge(result.true_digit),
          enlarge(result.true_image), error_map(result),
          scores_table(result), status]


def _guarded(work):
  """Runs a request; a bad input (or a bug) becomes a message on the page."""
  try:
    return work()
  except MixaeError as e:
    return _outputs(None, f'**Cannot separate:** {e}')
  except Exception as e:  # pylint: disable=broad-except
    logging.exception('The demo failed on a request.')
    return _outputs(None, f'**Something went wrong** ({type(e).__name__}: '
                    f'{e}); the server log has the details')


def _source_controls(what: str, sources: tuple[str, ...], dataset: str,
                     classes: tuple[str, ...]):
  """The choice of a digit's or image's source, with its index and class."""
  how = gr.Radio(list(sources), value=sources[0], label=what.capitalize(),
                 elem_id=f'{what}-source')
  index = gr.Number(0, precision=0, label=f'{dataset} test index',
                    visible=False, elem_id=f'{what}-index')
  label = gr.Dropdown(list(classes), value=classes[-1], label='class',
                      visible=False, elem_id=f'{what}-class')
  return how, index, label


def build_page(model: DemoModel) -> gr.Blocks:
  """The demo page for `model`."""
  sep = model.separator
  about = (f'Model: `{sep.config.model.name}`, checkpoint step {sep.step:,}. '
           'Mixture = (digit + image) / 2, as in training.')
  if model.test_sets is None:
    about += (f'\n\n**No test data:** {model.data_problem}. Drawing and '
              'uploading still work.')
  with gr.Blocks(title='mixae_jax: separate a mixture',
                 analytics_enabled=False) as page:
    gr.Markdown('# mixae_jax: one mixture in, a digit and an image out\n'
                + about)
    with gr.Row():
      with gr.Column():
        digit_how, digit_index, digit_class = _source_controls(
            'digit', DIGIT_SOURCES, 'MNIST', DIGIT_CLASSES)
        canvas = gr.Sketchpad(
            label='draw a digit', type='numpy', image_mode='RGBA',
            canvas_size=(280, 280), fixed_canvas=True, layers=False,
            transforms=(), visible=False, elem_id='digit-canvas',
            brush=gr.Brush(default_size=18, colors=['#000000'],
                           color_mode='fixed'))
        digit_file = gr.File(label='digit image (scaled and centred as MNIST)',
                             file_types=['image'], type='filepath',
                             visible=False, elem_id='digit-upload')
      with gr.Column():
        image_how, image_index, image_class = _source_controls(
            'image', IMAGE_SOURCES, 'CIFAR-10', IMAGE_CLASSES)
        image_file = gr.File(label='image (resized to 32x32 if it is not)',
                             file_types=['image'], type='filepath',
                             visible=False, elem_id='image-upload')
    mix_button = gr.Button('Mix and separate', variant='primary',
                           elem_id='separate')
    with gr.Accordion('Or separate a mixture alone', open=False):
      with gr.Row():
        mixture_file = gr.File(label='mixture (32x32 RGB)',
                               file_types=['image'], type='filepath',
                               elem_id='mixture-upload')
        resize = gr.Checkbox(False, label='resize to 32x32',
                             elem_id='mixture-resize')
        mixture_button = gr.Button('Separate this mixture',
                                   elem_id='separate-mixture')
    status = gr.Markdown(elem_id='status')
    pictures = [gr.Image(label=name, type='numpy', format='png',
                         interactive=False, elem_id=f'out-{k}',
                         buttons=['download'], render=False)
                for k, name in enumerate(_PANELS)]
    with gr.Row():
      for picture in pictures[:-1]:
        picture.render()
    with gr.Row():
      pictures[-1].render()
      scores = gr.Markdown(elem_id='scores')

    def show_digit_controls(how):
      return [gr.Number(visible=how == BY_INDEX),
              gr.Dropdown(visible=how == BY_CLASS),
              gr.Sketchpad(visible=how == DRAW),
              gr.File(visible=how == UPLOAD)]

    def show_image_controls(how):
      return [gr.Number(visible=how == BY_INDEX),
              gr.Dropdown(visible=how == BY_CLASS),
              gr.File(visible=how == UPLOAD)]

    digit_how.change(show_digit_controls, digit_how,
                     [digit_index, digit_class, canvas, digit_file])
    image_how.change(show_image_controls, image_how,
                     [image_index, image_class, image_file])

    def mix(d_how, d_index, d_class, drawing, d_file, i_how, i_index, i_class,
            i_file):
      def work():
        composite = drawing.get('composite') if drawing else None
        digit, digit_note = model.digit(d_how, d_index, d_class, composite,
                                        d_file)
        image, image_note = model.image(i_how, i_index, i_class, i_file)
        return _outputs(model.mix_and_separate(digit, image),
                        f'Digit: {digit_note}. Image: {image_note}.')
      return _guarded(work)

    def separate(upload, resize_it):
      return _guarded(lambda: _outputs(
          model.separate_upload(upload, resize_it),
          'Mixture: the uploaded file.'))

    outputs = pictures + [scores, status]
    mix_button.click(mix, [digit_how, digit_index, digit_class, canvas,
                           digit_file, image_how, image_index, image_class,
                           image_file], outputs)
    mixture_button.click(separate, [mixture_file, resize], outputs)
  return page


def check_port(host: str, port: int | None) -> int:
  """`port` if it can be served on `host`, or a free one when None.

  Raises:
    ConfigError: the host or port cannot be bound.
  """
  try:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
      probe.bind((host, port or 0))
      return probe.getsockname()[1]
  except OSError as e:
    where = f'port {port} on {host}' if port else f'a port on {host}'
    raise ConfigError(f'cannot serve on {where} ({e.strerror or e}); choose '
                      'another --port (or leave it out for a free one) or '
                      '--host') from None


def serve(workdir: str, host: str = '127.0.0.1',
          port: int | None = None) -> None:
  """Serves the demo page for the model in `workdir` until Ctrl-C or SIGTERM.

  Args:
    workdir: a run folder or a released model (e.g. ``pretrained/dual``).
    host: the address to bind; 127.0.0.1 keeps the page on this machine.
    port: the port; a free one when None. The address is printed.
  """
  port = check_port(host, port)
  # Gradio's telemetry and update check, off for anything this process
  # builds (the page passes analytics_enabled=False as well).
  os.environ['GRADIO_ANALYTICS_ENABLED'] = 'False'
  model = DemoModel.restore(workdir)  # Loads and compiles before serving.
  page = build_page(model)
  page.launch(server_name=host, server_port=port, prevent_thread_lock=True,
              quiet=True, show_error=True, ssr_mode=False, theme=_THEME,
              footer_links=[], inbrowser=False, share=False)
  print(f'serving the demo of {workdir} at http://{host}:{port}/ '
        '(Ctrl-C stops it)', flush=True)
  try:
    while True:
      time.sleep(3600)
  except interrupts.Interrupted as e:
    print(f'{interrupts.signal_name(e.signum)}: stopped serving', flush=True)
  finally:
    page.close()
