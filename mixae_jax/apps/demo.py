"""``--mode=serve``: a local web page to play with a trained separator.

  pip install -e ".[demo]"
  python launch.py --mode=serve --workdir=pretrained/dual --port=8080

Pick or draw a digit, pick or upload an image (or upload a mixture alone),
and the page shows the mixture, both recovered sources, the truths, PSNR and
SSIM per source and an error map. A model of other sources (MNIST twice,
CIFAR-10 twice, a user's folders) gets the same page for its own two: test
images at random, by index or by class where the source has classes, digits
drawn where it is MNIST, uploads. The page is Gradio's (an optional extra);
what it does lives in `mixae_jax.apps.demo_session`. It runs offline: no
analytics, no update check, no fonts or scripts from the network.
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
from mixae_jax.apps.demo_session import (BY_CLASS, BY_INDEX, DRAW, UPLOAD,
                                         DemoModel, Separation, SourceSlot)
from mixae_jax.errors import ConfigError, MixaeError

ZOOM = 8  # Pixels stay visible: 32x32 shows as 256x256, nearest neighbour.
ERROR_SCALE = 0.25  # An absolute error this large or more shows brightest.
# System fonts: nothing to load, from the network or otherwise.
_THEME = gr.themes.Default(font=['ui-sans-serif', 'system-ui', 'sans-serif'],
                           font_mono=['ui-monospace', 'monospace'])


def panel_names(roles: tuple[str, str]) -> tuple[str, ...]:
  """The page's pictures, for sources named `roles` (`sources.Pair.roles`)."""
  first, second = roles
  return ('mixture', f'recovered {first}', f'recovered {second}',
          f'true {first}', f'true {second}',
          f'error |recovered - true|: {first}, {second} (black 0, yellow >= '
          f'{ERROR_SCALE})')


def enlarge(picture: np.ndarray | None) -> np.ndarray | None:
  """float [H, W, C] in [0, 1] -> uint8 RGB, each pixel a ZOOM x ZOOM block."""
  if picture is None:
    return None
  picture = plots.to_uint8(picture)
  if picture.shape[-1] == 1:  # Grey sources show as grey RGB.
    picture = picture.repeat(3, axis=-1)
  return picture.repeat(ZOOM, axis=0).repeat(ZOOM, axis=1)


def error_map(result: Separation) -> np.ndarray | None:
  """|recovered - true| per pixel, first source beside second, as a heat map."""
  if result.true_digit is None:
    return None
  size = result.digit.shape[0]
  gap = np.ones((size, 2))
  error = np.concatenate(
      [np.abs(result.digit - result.true_digit).mean(-1), gap,
       np.abs(result.image - result.true_image).mean(-1)], axis=1)
  heat = colormaps['inferno'](np.clip(error / ERROR_SCALE, 0, 1))[..., :3]
  heat[:, size:size + 2] = 1.0  # A white gap between the two maps.
  return enlarge(heat)


def scores_table(result: Separation, roles: tuple[str, str]) -> str:
  """The metrics as Markdown (2 decimals of dB, 3 of SSIM), per source."""
  timing = f'Separated in {1000 * result.seconds:.0f} ms.'
  if result.scores is None:
    return f'No truths for an uploaded mixture, so no scores. {timing}'
  rows = ''.join(f'| {role} | {s["psnr"]:.2f} dB | {s["ssim"]:.3f} |\n'
                 for role, s in zip(roles, result.scores.values()))
  return f'| source | PSNR | SSIM |\n|---|---|---|\n{rows}\n{timing}'


def _outputs(result: Separation | None, status: str,
             roles: tuple[str, str]) -> list:
  if result is None:
    return [None] * len(panel_names(roles)) + ['', status]
  return [enlarge(result.mixture), enlarge(result.digit),
          enlarge(result.image), enlarge(result.true_digit),
          enlarge(result.true_image), error_map(result),
          scores_table(result, roles), status]


def _guarded(work, roles: tuple[str, str]):
  """Runs a request; a bad input (or a bug) becomes a message on the page."""
  try:
    return work()
  except MixaeError as e:
    return _outputs(None, f'**Cannot separate:** {e}', roles)
  except Exception as e:  # pylint: disable=broad-except
    logging.exception('The demo failed on a request.')
    return _outputs(None, f'**Something went wrong** ({type(e).__name__}: '
                    f'{e}); the server log has the details', roles)


class _SourceControls:
  """The widgets that choose one source (`SourceSlot`), ids by its kind."""

  def __init__(self, slot: SourceSlot):
    self.slot = slot
    kind, ways = slot.kind, slot.ways
    self.how = gr.Radio(list(ways), value=ways[0],
                        label=slot.heading, elem_id=f'{kind}-source')
    self.index = gr.Number(0, precision=0, label=f'{slot.dataset.title} test index',
                           visible=False, elem_id=f'{kind}-index')
    classes = slot.dataset.classes or ('',)
    self.label = gr.Dropdown(list(classes), value=classes[-1], label='class',
                             visible=False, elem_id=f'{kind}-class')
    self.canvas = gr.Sketchpad(
        label=f'draw a {slot.noun}', type='numpy', image_mode='RGBA',
        canvas_size=(280, 280), fixed_canvas=True, layers=False,
        transforms=(), visible=False, elem_id=f'{kind}-canvas',
        brush=gr.Brush(default_size=18, colors=['#000000'],
                       color_mode='fixed'))
    size = slot.dataset.size
    self.upload = gr.File(
        label=(f'{slot.role} image (scaled and centred as MNIST)' if slot.mnist
               else f'{slot.role} image (resized to {size}x{size} if it is '
               'not)'),
        file_types=['image'], type='filepath', visible=False,
        elem_id=f'{kind}-upload')
    self.how.change(self.show, self.how,
                    [self.index, self.label, self.canvas, self.upload])

  @staticmethod
  def show(how: str) -> list:
    return [gr.Number(visible=how == BY_INDEX),
            gr.Dropdown(visible=how == BY_CLASS),
            gr.Sketchpad(visible=how == DRAW),
            gr.File(visible=how == UPLOAD)]

  @property
  def inputs(self) -> list:
    return [self.how, self.index, self.label, self.canvas, self.upload]

  def choose(self, model: DemoModel, how, index, label, drawing, upload):
    """The source the widgets' values name (`DemoModel.source`)."""
    composite = drawing.get('composite') if drawing else None
    return model.source(self.slot.kind, how, index, label, composite, upload)


def _title(roles: tuple[str, str]) -> str:
  if roles == ('digit', 'image'):
    return 'a digit and an image'
  return f'{roles[0]} and {roles[1]}'


def build_page(model: DemoModel) -> gr.Blocks:
  """The demo page for `model`, with controls for its two sources."""
  sep, roles = model.separator, model.pair.roles
  about = (f'Model: `{sep.config.model.name}`, checkpoint step {sep.step:,}. '
           f'Mixture = ({roles[0]} + {roles[1]}) / 2, as in training.')
  if model.pair.permutation_invariant:
    about += (' Both sources come from one dataset, so they have no order: '
              'the estimates are shown in the order that matches the truths '
              'best, as they are scored.')
  if model.test_sets is None:
    about += (f'\n\n**No test data:** {model.data_problem}. Uploading (and '
              'drawing digits) still works.')
  layout = model.pair.layout
  side = f'{layout.size}x{layout.size}'
  with gr.Blocks(title='mixae_jax: separate a mixture',
                 analytics_enabled=False) as page:
    gr.Markdown(f'# mixae_jax: one mixture in, {_title(roles)} out\n'
                + about)
    with gr.Row():
      controls = []
      for slot in model.slots:
        with gr.Column():
          controls.append(_SourceControls(slot))
    mix_button = gr.Button('Mix and separate', variant='primary',
                           elem_id='separate')
    with gr.Accordion('Or separate a mixture alone', open=False):
      with gr.Row():
        mixture_file = gr.File(
            label=f'mixture ({side} {"RGB" if layout.channels == 3 else "grey"})',
            file_types=['image'], type='filepath', elem_id='mixture-upload')
        resize = gr.Checkbox(False, label=f'resize to {side}',
                             elem_id='mixture-resize')
        mixture_button = gr.Button('Separate this mixture',
                                   elem_id='separate-mixture')
    status = gr.Markdown(elem_id='status')
    pictures = [gr.Image(label=name, type='numpy', format='png',
                         interactive=False, elem_id=f'out-{k}',
                         buttons=['download'], render=False)
                for k, name in enumerate(panel_names(roles))]
    with gr.Row():
      for picture in pictures[:-1]:
        picture.render()
    with gr.Row():
      pictures[-1].render()
      scores = gr.Markdown(elem_id='scores')

    first, second = controls
    def mix(*values):
      def work():
        a, a_note = first.choose(model, *values[:5])
        b, b_note = second.choose(model, *values[5:])
        return _outputs(model.mix_and_separate(a, b),
                        f'{first.slot.heading}: {a_note}. '
                        f'{second.slot.heading}: {b_note}.', roles)
      return _guarded(work, roles)

    def separate(upload, resize_it):
      return _guarded(lambda: _outputs(
          model.separate_upload(upload, resize_it),
          'Mixture: the uploaded file.', roles), roles)

    outputs = pictures + [scores, status]
    mix_button.click(mix, first.inputs + second.inputs, outputs)
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
