"""Where a train step's time goes: each convolution of a network, timed alone.

  python benchmarks/layer_profile.py                 # the default U-Net, ~3 min
  python benchmarks/layer_profile.py --network=seed004 --torch=false
  python benchmarks/layer_profile.py --network=seed004 --strided=space_to_depth

For every convolution of the network (at its real input size and
``--batch_size``) it times, in XLA and in PyTorch, the three parts of its
train-step cost: the forward pass, the input gradient (dx) and the weight
gradient (dW), as milliseconds per call (median of ``--repeats``). The totals
show which part makes one framework slower than the other. The last line is
one JSON object with every figure.
"""

import json
import os
import statistics
import sys
import time
from typing import Callable

from absl import app
from absl import flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# The XLA:CPU settings that training uses (set before JAX starts a backend).
from mixae_jax import xla_cpu  # pylint: disable=g-import-not-at-top,wrong-import-position

xla_cpu.apply()

import jax  # pylint: disable=g-import-not-at-top,wrong-import-position
import jax.numpy as jnp  # pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np  # pylint: disable=g-import-not-at-top,wrong-import-position


FLAGS = flags.FLAGS
flags.DEFINE_enum('network', 'unet', ['unet', 'seed004'], 'Which network.')
flags.DEFINE_list('widths', ['32', '64', '128', '256'], 'U-Net widths.')
flags.DEFINE_integer('batch_size', 128, 'Images per call.')
flags.DEFINE_integer('repeats', 5, 'Timed calls per figure (median).')
flags.DEFINE_bool('torch', True, 'Also time PyTorch.')
flags.DEFINE_enum('strided', 'xla', ['xla', 'space_to_depth'],
                  'How JAX computes the 4x4 stride-2 convolutions: XLA\'s '
                  'strided convolution (what the model uses), or '
                  '`strided_conv_by_space_to_depth` (tried, not kept).')
flags.DEFINE_enum('dw', 'xla', ['xla', 'gemm'],
                  'How JAX computes dW: XLA\'s convolution, or one matrix '
                  'product of the input patches with the gradient.')


def weight_grad_gemm(x: jax.Array, g: jax.Array, k: int) -> jax.Array:
  """dW of a stride-1 'SAME' k x k convolution as patches^T @ gradient."""
  cin, cout = x.shape[-1], g.shape[-1]
  patches = jax.lax.conv_general_dilated_patches(
      x, (k, k), (1, 1), 'SAME', dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
  dw = jnp.einsum('nhwp,nhwo->po', patches, g)  # patches: (c_in, kh, kw)
  return dw.reshape(cin, k, k, cout).transpose(1, 2, 0, 3)


def strided_conv_by_space_to_depth(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """A 4x4 stride-2 convolution with padding 1 (NHWC, HWIO), as a stride-1 one.

  The same function as seed004's encoder convolutions: the padded input is
  folded into 2x2 blocks (space-to-depth, 4x the channels) and convolved
  with a 2x2 kernel, tap ``a = 2q + r`` of the 4x4 kernel reading block
  offset ``q``, sub-pixel ``r``. Its input gradient is faster than XLA's
  strided one for some layers, but the whole seed004 train step was slower
  with it (docs/speed.md), so the model does not use it.
  """
  n, h, w, cin = x.shape
  cout = kernel.shape[-1]
  xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
  hb, wb = h // 2 + 1, w // 2 + 1
  # [n, hb, ry, wb, rx, c] -> [n, hb, wb, (ry, rx, c)]
  blocks = xp.reshape(n, hb, 2, wb, 2, cin).transpose(0, 1, 3, 2, 4, 5)
  blocks = blocks.reshape(n, hb, wb, 4 * cin)
  # [(qy, ry), (qx, rx), c, o] -> [qy, qx, (ry, rx, c), o]
  k = kernel.reshape(2, 2, 2, 2, cin, cout).transpose(0, 2, 1, 3, 4, 5)
  return jax.lax.conv_general_dilated(
      blocks, k.reshape(2, 2, 4 * cin, cout), (1, 1), 'VALID',
      dimension_numbers=('NHWC', 'HWIO', 'NHWC'))


def unet_convs(widths: list[int]) -> list[tuple[str, int, int, int, int, int]]:
  """(name, size, kernel, stride, c_in, c_out) of each U-Net convolution."""
  convs, size, c = [], 32, 3
  for w in widths[:-1]:
    convs += [(f'enc{size}a', size, 3, 1, c, w), (f'enc{size}b', size, 3, 1, w, w)]
    c, size = w, size // 2
  w = widths[-1]
  convs += [(f'mid{size}a', size, 3, 1, c, w), (f'mid{size}b', size, 3, 1, w, w)]
  c = w
  decoder = []
  for w in reversed(widths[:-1]):
    decoder += [(f'up{size}', size, 1, 1, c, 4 * w)]  # sub-pixel UpConv2x
    size *= 2
    decoder += [(f'dec{size}a', size, 3, 1, 2 * w, w), (f'dec{size}b', size, 3, 1, w, w)]
    c = w
  decoder += [('out', 32, 1, 1, c, 3)]
  # Two decoders: every decoder convolution counts twice ('x2').
  return convs + [(name + ' x2', *rest) for name, *rest in decoder]


def seed004_convs() -> list[tuple[str, int, int, int, int, int]]:
  return [('enc32', 32, 4, 2, 3, 64), ('enc16', 16, 4, 2, 64, 128),
          ('enc8', 8, 4, 2, 128, 256),
          # UpConv2x: 'phases' (a 2x2 convolution per output parity, four per
          # layer, in each of the two decoders), then 'window' for 3 features.
          ('dec4 x8', 4, 2, 1, 256, 128), ('dec8 x8', 8, 2, 1, 128, 64),
          ('dec16 x2', 16, 3, 1, 64, 4 * 3)]


def median_ms(fn: Callable[[], object]) -> float:
  fn()  # Compile / warm up.
  times = []
  for _ in range(FLAGS.repeats):
    start = time.perf_counter()
    fn()
    times.append((time.perf_counter() - start) * 1e3)
  return statistics.median(times)


def jax_times(size, k, stride, cin, cout, n) -> dict[str, float]:
  pad = ((k - 1) // 2, k // 2) if stride == 1 else ((1, 1), (1, 1))
  padding = (pad, pad) if stride == 1 else pad
  x = jax.random.normal(jax.random.key(0), (n, size, size, cin))
  w = jax.random.normal(jax.random.key(1), (k, k, cin, cout)) * 0.1

  def conv(x, w):
    if stride == 2 and FLAGS.strided == 'space_to_depth':
      return strided_conv_by_space_to_depth(x, w)
    return jax.lax.conv_general_dilated(
        x, w, (stride, stride), padding,
        dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
  if stride == 2 and FLAGS.strided == 'space_to_depth':
    # The same function as XLA's strided convolution, checked before timing.
    want = jax.lax.conv_general_dilated(x, w, (2, 2), padding,
                                        dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
    np.testing.assert_allclose(conv(x, w), want, rtol=1e-4, atol=1e-4)
  y, vjp = jax.vjp(conv, x, w)
  g = jnp.ones_like(y)
  fwd = jax.jit(conv)
  dx = jax.jit(lambda x, w, g: jax.vjp(lambda x: conv(x, w), x)[1](g)[0])
  if FLAGS.dw == 'gemm' and stride == 1:
    dw = jax.jit(lambda x, w, g: weight_grad_gemm(x, g, k))
  else:
    dw = jax.jit(lambda x, w, g: jax.vjp(lambda w: conv(x, w), w)[1](g)[0])
  del vjp
  run = lambda f: median_ms(lambda: jax.block_until_ready(f(x, w, g)))
  return {'fwd': median_ms(lambda: jax.block_until_ready(fwd(x, w))),
          'dx': run(dx), 'dw': run(dw)}


def torch_times(size, k, stride, cin, cout, n) -> dict[str, float]:
  import torch  # pylint: disable=g-import-not-at-top
  torch.set_num_threads(os.cpu_count() or 1)
  pad = 1 if stride == 2 else (k - 1) // 2
  x = torch.randn(n, cin, size, size).contiguous(memory_format=torch.channels_last)
  w = (torch.randn(cout, cin, k, k) * 0.1)
  y = torch.nn.functional.conv2d(x, w, stride=stride, padding=pad)
  g = torch.ones_like(y)
  with torch.no_grad():
    fwd = lambda: torch.nn.functional.conv2d(x, w, stride=stride, padding=pad)
    dx = lambda: torch.nn.grad.conv2d_input(x.shape, w, g, stride=stride,
                                            padding=pad)
    dw = lambda: torch.nn.grad.conv2d_weight(x, w.shape, g, stride=stride,
                                             padding=pad)
    return {'fwd': median_ms(fwd), 'dx': median_ms(dx), 'dw': median_ms(dw)}


def main(argv: list[str]) -> None:
  del argv
  convs = (unet_convs([int(w) for w in FLAGS.widths]) if FLAGS.network == 'unet'
           else seed004_convs())
  n = FLAGS.batch_size
  print(f'{FLAGS.network}, batch {n}, ms per call (median of {FLAGS.repeats}); '
        f'jax {jax.__version__} on {jax.devices()[0].platform}, dW by '
        f'{FLAGS.dw}; XLA_FLAGS={os.environ.get("XLA_FLAGS", "")!r}')
  header = f'{"layer":12s} {"shape":>22s} | {"jax fwd":>8s} {"dx":>7s} {"dW":>7s}'
  if FLAGS.torch:
    header += f' | {"torch fwd":>9s} {"dx":>7s} {"dW":>7s}'
  print(header)
  totals = {'jax': {'fwd': 0.0, 'dx': 0.0, 'dw': 0.0},
            'torch': {'fwd': 0.0, 'dx': 0.0, 'dw': 0.0}}
  rows = {}
  for name, size, k, stride, cin, cout in convs:
    # 'name xN': the convolution occurs N times in the network.
    times = int(name.rsplit(' x', 1)[1]) if ' x' in name else 1
    j = jax_times(size, k, stride, cin, cout, n)
    # The first layer's input is data: no input gradient is needed.
    first = name == convs[0][0]
    if first:
      j['dx'] = 0.0
    row = {'jax': j}
    line = (f'{name:12s} {f"{size}x{size} {k}x{k}/{stride} {cin}->{cout}":>22s} | '
            f'{j["fwd"]:8.1f} {j["dx"]:7.1f} {j["dw"]:7.1f}')
    if FLAGS.torch:
      t = torch_times(size, k, stride, cin, cout, n)
      if first:
        t['dx'] = 0.0
      row['torch'] = t
      line += f' | {t["fwd"]:9.1f} {t["dx"]:7.1f} {t["dw"]:7.1f}'
    for impl in row:
      for part in totals[impl]:
        totals[impl][part] += times * row[impl][part]
    rows[name] = row
    print(line, flush=True)
  j = totals['jax']
  line = f'{"total":12s} {"":>22s} | {j["fwd"]:8.1f} {j["dx"]:7.1f} {j["dw"]:7.1f}'
  if FLAGS.torch:
    t = totals['torch']
    line += f' | {t["fwd"]:9.1f} {t["dx"]:7.1f} {t["dw"]:7.1f}'
  print(line)
  print(json.dumps({'network': FLAGS.network, 'batch_size': n,
                    'dw': FLAGS.dw, 'layers': rows, 'totals': totals}))


if __name__ == '__main__':
  app.run(main)
