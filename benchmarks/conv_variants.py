"""Equivalent ways to compute a convolution in XLA, timed against XLA's own.

  python benchmarks/conv_variants.py            # ~1 min on 2 cores
  MIXAE_XLA_CPU_DEFAULTS=1 python benchmarks/conv_variants.py   # XLA's defaults

The levers behind the "tried and not kept" list of docs/speed.md. For U-Net-sized
layers at batch ``--batch_size`` it times forward, input gradient (dx) and
weight gradient (dW), in ms (median of ``--repeats``), of:

* ``xla``: ``lax.conv_general_dilated`` (what the models use);
* ``im2col``: the nine shifted inputs concatenated, then one matrix product;
* ``shifted``: nine shifted inputs, each times its tap's matrix, summed;
* ``bf16``: ``xla`` on bfloat16 inputs;
* ``dw_layout``: dW as a convolution over explicitly transposed arrays;
* ``dw_blocked``: dW as im2col and one matrix product per block of
  ``--dw_block`` images, accumulated in a ``lax.scan`` so that each block's
  columns stay in cache (how oneDNN blocks its weight gradient);
* ``dot1x1``: for the 1x1 layers, an einsum instead of a convolution.

Every variant is checked against ``xla`` first (max relative error printed).
The last line is one JSON object with every figure.
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
import mixae_jax  # pylint: disable=g-import-not-at-top,wrong-import-position,unused-import

import jax  # pylint: disable=g-import-not-at-top,wrong-import-position
import jax.numpy as jnp  # pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np  # pylint: disable=g-import-not-at-top,wrong-import-position

FLAGS = flags.FLAGS
flags.DEFINE_integer('batch_size', 128, 'Images per call.')
flags.DEFINE_integer('repeats', 5, 'Timed calls per figure (median).')
flags.DEFINE_integer('dw_block', 2, 'Images per block for dw_blocked.')

# (size, kernel, c_in, c_out): 3x3 layers of the default U-Net and its 1x1s.
LAYERS = [(32, 3, 3, 32), (32, 3, 32, 32), (32, 3, 64, 32), (16, 3, 64, 64),
          (8, 3, 128, 128), (4, 3, 256, 256),
          (4, 1, 256, 512), (16, 1, 64, 128), (32, 1, 32, 3)]


def conv_xla(x, w):
  return jax.lax.conv_general_dilated(
      x, w, (1, 1), 'SAME', dimension_numbers=('NHWC', 'HWIO', 'NHWC'))


def _shifted(x, k):
  """The k*k shifted views of x ('SAME' padding) in (dy, dx) order."""
  p = k // 2
  xp = jnp.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
  h, w = x.shape[1:3]
  return [xp[:, i:i + h, j:j + w, :] for i in range(k) for j in range(k)]


def conv_im2col(x, w):
  k, _, cin, cout = w.shape
  cols = jnp.concatenate(_shifted(x, k), axis=-1)
  return jnp.dot(cols.reshape(-1, k * k * cin),
                 w.reshape(k * k * cin, cout)).reshape(*x.shape[:3], cout)


def conv_shifted(x, w):
  k = w.shape[0]
  taps = w.reshape(k * k, *w.shape[2:])
  return sum(jnp.einsum('nhwc,co->nhwo', s, t)
             for s, t in zip(_shifted(x, k), taps))


def conv_dot1x1(x, w):
  return jnp.einsum('nhwc,co->nhwo', x, w[0, 0])


def dw_layout(x, g, k):
  """dW with the channels as the batch and the images as the contraction."""
  p = k // 2
  xt = jnp.pad(x, ((0, 0), (p, p), (p, p), (0, 0))).transpose(3, 1, 2, 0)
  y = jax.lax.conv_general_dilated(
      xt, g.transpose(1, 2, 0, 3), (1, 1), 'VALID',
      dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
  return y.transpose(1, 2, 0, 3)


def dw_blocked(x, g, k, block):
  """dW summed over blocks of images, each as im2col and one matrix product."""
  n, cin, cout = x.shape[0], x.shape[-1], g.shape[-1]
  xs = x.reshape(n // block, block, *x.shape[1:])
  gs = g.reshape(n // block, block, *g.shape[1:])

  def add_block(acc, xg):
    cols = jnp.concatenate(_shifted(xg[0], k), axis=-1).reshape(-1, k * k * cin)
    return acc + jnp.dot(cols.T, xg[1].reshape(-1, cout)), None

  acc = jnp.zeros((k * k * cin, cout), x.dtype)
  return jax.lax.scan(add_block, acc, (xs, gs))[0].reshape(k, k, cin, cout)


def median_ms(fn: Callable[[], object]) -> float:
  jax.block_until_ready(fn())  # Compile / warm up.
  times = []
  for _ in range(FLAGS.repeats):
    start = time.perf_counter()
    jax.block_until_ready(fn())
    times.append((time.perf_counter() - start) * 1e3)
  return statistics.median(times)


def time_conv(f, x, w, g) -> dict[str, float]:
  fwd = jax.jit(f)
  dx = jax.jit(lambda x, w, g: jax.vjp(lambda x: f(x, w), x)[1](g)[0])
  dw = jax.jit(lambda x, w, g: jax.vjp(lambda w: f(x, w), w)[1](g)[0])
  return {'fwd': median_ms(lambda: fwd(x, w)),
          'dx': median_ms(lambda: dx(x, w, g)),
          'dw': median_ms(lambda: dw(x, w, g))}


def rel_err(a, b) -> float:
  a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
  return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-12))


def main(argv):
  del argv
  n = FLAGS.batch_size
  print(f'batch {n}, ms per call (median of {FLAGS.repeats}); jax '
        f'{jax.__version__} on {jax.devices()[0].platform}; '
        f'XLA_FLAGS={os.environ.get("XLA_FLAGS", "")!r}')
  rng = np.random.default_rng(0)
  results = []
  for size, k, cin, cout in LAYERS:
    x = jnp.asarray(rng.normal(size=(n, size, size, cin)), jnp.float32)
    w = jnp.asarray(rng.normal(size=(k, k, cin, cout)) * 0.1, jnp.float32)
    g = jnp.asarray(rng.normal(size=(n, size, size, cout)), jnp.float32)
    ref = jax.jit(conv_xla)(x, w)
    variants = ({'xla': conv_xla, 'im2col': conv_im2col,
                 'shifted': conv_shifted, 'bf16': conv_xla} if k == 3 else
                {'xla': conv_xla, 'dot1x1': conv_dot1x1})
    row = {'layer': f'{size}x{size} {k}x{k} {cin}->{cout}'}
    for name, f in variants.items():
      args = ((x.astype(jnp.bfloat16), w.astype(jnp.bfloat16),
               g.astype(jnp.bfloat16)) if name == 'bf16' else (x, w, g))
      row[name] = time_conv(f, *args)
      row[name]['err'] = rel_err(jax.jit(f)(*args[:2]), ref)
    if k == 3:
      ref_dw = jax.jit(lambda x, g: jax.vjp(lambda w: conv_xla(x, w), w)[1](g)[0])(x, g)
      f = jax.jit(lambda x, g: dw_layout(x, g, k))
      row['dw_layout'] = {'dw': median_ms(lambda: f(x, g)),
                          'err': rel_err(f(x, g), ref_dw)}
      f = jax.jit(lambda x, g: dw_blocked(x, g, k, FLAGS.dw_block))
      row['dw_blocked'] = {'dw': median_ms(lambda: f(x, g)),
                           'err': rel_err(f(x, g), ref_dw)}
    results.append(row)
    parts = []
    for name, t in row.items():
      if name == 'layer':
        continue
      times = ' '.join(f'{p} {t[p]:6.1f}' for p in ('fwd', 'dx', 'dw') if p in t)
      parts.append(f'{name}: {times} (err {t["err"]:.0e})')
    print(f'{row["layer"]:22s} ' + ' | '.join(parts), flush=True)
  # Totals over the layers each variant ran on, relative to XLA's there.
  totals = {}
  for row in results:
    for name, t in row.items():
      if name in ('layer', 'dw_layout', 'dw_blocked', 'xla'):
        continue
      tot = totals.setdefault(name, [0.0, 0.0])
      tot[0] += sum(t[p] for p in ('fwd', 'dx', 'dw'))
      tot[1] += sum(row['xla'][p] for p in ('fwd', 'dx', 'dw'))
  xla_dw = sum(r['xla']['dw'] for r in results if 'dw_layout' in r)
  for name in ('dw_layout', 'dw_blocked'):
    totals[name] = [sum(r[name]['dw'] for r in results if name in r), xla_dw]
  for name, (t, ref) in totals.items():
    print(f'total {name:10s} {t:8.1f} ms vs xla {ref:8.1f} ms ({t / ref:.2f}x)')
  print(json.dumps({'batch_size': n, 'layers': results,
                    'totals': {k: {'ms': t, 'xla_ms': r}
                               for k, (t, r) in totals.items()}}))


if __name__ == '__main__':
  app.run(main)
