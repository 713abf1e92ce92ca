"""Train-step throughput of mixae_jax (XLA) against the same network in PyTorch.

  python -m benchmarks.throughput                       # both networks, ~4 min on 2 cores
  python -m benchmarks.throughput --networks=unet --seconds=5 --repeats=2
  python -m benchmarks.throughput --torch=false --layer_forms=both   # CPU forms vs flax
  MIXAE_PLATFORM_TUNING=0 python -m benchmarks.throughput            # no tuning at all

For each network (``seed004`` and the default ``unet`` of configs/dual.py) it
times an Adam train step at ``--batch_size`` on a fixed batch of mixtures, in
JAX and in PyTorch (benchmarks/torch_models.py; ``pip install torch``),
alternating the two in one process so machine noise hits both alike. It prints
img/s (min / median / max over ``--repeats`` runs of ``--seconds`` each), the
JAX/PyTorch ratio of medians, model FLOPs per image from XLA's cost analysis
(of the HLO before compilation, so that CPU and GPU count alike)
and the GFLOP/s achieved, plus inference (eval / Separator) throughput.
The last line is one JSON object for scripts:
``{"seed004": {"jax_img_s", "torch_img_s", "ratio", ...}, "unet": {...}}``.

It runs as ``launch.py`` trains: the platform tuning of
`mixae_jax.tuning` (process settings, then the backend's layer forms) is
applied first, unless ``MIXAE_PLATFORM_TUNING=0``. ``--layer_forms=both``
times the models with flax's layers and with the CPU forms side by side
(rows ``jax_flax`` and ``jax_cpu_forms``).

On a machine with a GPU both frameworks run there (``--torch_device``; JAX
takes its default device); benchmarks/device_check.sh is the one-call GPU run.
"""

import functools
import json
import os
import platform as host
import statistics
import time

from absl import app
from absl import flags
import jax
import numpy as np

from configs import dual
from mixae_jax import inference, losses, models, steps, train_state, tuning
from mixae_jax.data import preprocessing

FLAGS = flags.FLAGS
TORCH_FORMS_HELP = 'eager, channels_last, compile, max_autotune'
flags.DEFINE_list('networks', ['seed004', 'unet'], 'Networks to time.')
flags.DEFINE_integer('batch_size', 128, 'Mixtures per train step.')
flags.DEFINE_integer('eval_batch_size', 500, 'Mixtures per inference call.')
flags.DEFINE_float('seconds', 8.0, 'Length of each timed run.')
flags.DEFINE_integer('repeats', 3, 'Timed runs per implementation.')
flags.DEFINE_bool('torch', True, 'Also time PyTorch (needs torch installed).')
flags.DEFINE_enum('torch_device', 'auto', ['auto', 'cpu', 'cuda'],
                  "PyTorch's device; 'auto' takes the GPU when PyTorch sees one.")
flags.DEFINE_list('torch_forms', ['auto'],
                  f'PyTorch forms to time, of {TORCH_FORMS_HELP}; "auto": '
                  'all but max_autotune on a CPU, all on a GPU.')
flags.DEFINE_bool('bf16', False,
                  'Also time the JAX U-Net with config.dtype=bfloat16 '
                  '(row jax_bf16).')
flags.DEFINE_float('peak_tflops', 0.0,
                   "The device's dense peak in TFLOP/s (H200: 989 bf16, 494 "
                   'TF32); > 0 adds the fraction of it each JAX step reaches.')
flags.DEFINE_enum('layer_forms', 'auto', ['auto', 'flax', 'cpu', 'both'],
                  "JAX models' layers: 'auto' as the trainer picks them "
                  "(tuning.layer_forms), 'flax', the CPU forms, or 'both' "
                  'side by side.')


def layer_forms(kind: str) -> dict:
  """The layer constructors for ``--layer_forms`` (one kind, not 'both')."""
  return {'auto': tuning.layer_forms(), 'flax': {},
          'cpu': dict(tuning.CPU_LAYER_FORMS)}[kind]


def network_config(name: str):
  config = dual.get_config()
  config.model.name = name
  config.optimizer.schedule = 'constant'
  config.optimizer.warmup_steps = 0
  # The PyTorch twins step with Adam; so does the JAX step timed here.
  config.optimizer.name = 'adam'
  # The PyTorch twins train on MSE alone; so does the JAX step timed here.
  config.loss.ssim_weight = 0.0
  return config


def fixed_batch(batch_size: int, seed: int = 0) -> preprocessing.Mixtures:
  rng = np.random.default_rng(seed)
  digits = rng.integers(0, 256, (batch_size, 28, 28), np.uint8)
  images = rng.integers(0, 256, (batch_size, 32, 32, 3), np.uint8)
  return preprocessing.make_mixtures(digits, images)


def timed(step, seconds: float) -> float:
  """Runs `step()` for about `seconds`; returns steps per second."""
  count, start = 0, time.perf_counter()
  while True:
    step(); count += 1
    if count % 2 == 0 and time.perf_counter() - start > seconds:
      break
  step(sync=True)
  return (count + 1) / (time.perf_counter() - start)


def interleaved(forms: dict, rounds: int, seconds: float, batch_size: int
                ) -> dict[str, list[float]]:
  """Times each of ``forms`` (name -> step) in turns, `rounds` times.

  Returns:
    img/s of every run, per form: machine noise hits all forms alike.
  """
  rates = {form: [] for form in forms}
  for _ in range(rounds):
    for form, step in forms.items():
      rates[form].append(timed(step, seconds) * batch_size)
  return rates


class JaxTrain:
  """The project's train step, jitted once with the state donated."""

  def __init__(self, name: str, batch_size: int, forms: str = 'auto',
               dtype: str = 'float32'):
    config = network_config(name)
    model = models.create_model(config.model, dtype, **layer_forms(forms))
    self.state = train_state.create_train_state(config, model)
    self.batch = fixed_batch(batch_size)
    self.key = jax.random.key(0)
    self.step_fn = jax.jit(functools.partial(
        steps.train_step, settings=losses.LossSettings.from_config(config)),
        donate_argnums=0)
    lowered = self.step_fn.lower(self.state, self.batch, self.key)
    # The model's FLOPs, from the HLO before the backend rewrites it: once
    # compiled for a GPU, the convolutions become cuDNN calls that XLA's cost
    # analysis does not count (it reported 0.046 of seed004's 0.496 GFLOP per
    # image on an H200). On the CPU the two counts agree within 0.3%.
    cost = lowered.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    self.flops_per_image = float(cost.get('flops', 0.0)) / batch_size
    self.params = sum(x.size for x in jax.tree.leaves(self.state.params))
    self(sync=True)

  def __call__(self, sync: bool = False):
    self.state, metrics = self.step_fn(self.state, self.batch, self.key)
    if sync:
      jax.block_until_ready(metrics)


class JaxInfer:
  def __init__(self, name: str, batch_size: int, forms: str = 'auto'):
    config = network_config(name)
    model = models.create_model(config.model, 'float32', **layer_forms(forms))
    state = train_state.create_train_state(config, model)
    self.state = inference.InferenceState(state.apply_fn, state.params,
                                          state.batch_stats)
    self.x = fixed_batch(batch_size).mixture
    self.fn = jax.jit(inference.separate)
    self(sync=True)

  def __call__(self, sync: bool = False):
    out = self.fn(self.state, self.x)
    if sync:
      jax.block_until_ready(out)


# How a PyTorch user of 2026 would run the twin: eager (NCHW), eager with
# channels_last memory, torch.compile (inductor) on channels_last, and on a
# GPU torch.compile's max-autotune mode (autotuned kernels, CUDA graphs).
TORCH_FORMS = ('eager', 'channels_last', 'compile', 'max_autotune')


class TorchTrain:
  """An Adam step of the PyTorch twin in one of `TORCH_FORMS`.

  Attributes:
    compile_seconds: the first two steps' time (compilation, autotuning);
      reported apart, never counted in the throughput.
  """

  def __init__(self, name: str, batch_size: int, form: str = 'eager'):
    import torch  # pylint: disable=g-import-not-at-top
    from benchmarks import torch_models  # pylint: disable=g-import-not-at-top
    self.torch = torch
    torch.manual_seed(0)
    self.device = torch_device(torch)
    model = dual.get_config().model
    self.model = (torch_models.Seed004() if name == 'seed004' else
                  torch_models.UNet(tuple(model.widths), model.digit_channels,
                                    model.head, model.digit_resized_from))
    self.model.to(self.device).train()
    self.opt = torch.optim.Adam(self.model.parameters(), lr=1e-3)
    b = fixed_batch(batch_size)
    # np.array copies: a JAX array's host view is read-only, which torch warns of.
    nchw = lambda a: torch.from_numpy(np.array(a)).permute(0, 3, 1, 2).contiguous().to(self.device)
    self.x, self.digit, self.image = nchw(b.mixture), nchw(b.first), nchw(b.second)
    self.params = sum(p.numel() for p in self.model.parameters())
    if form != 'eager':
      memory = torch.channels_last
      self.model.to(memory_format=memory)
      self.x = self.x.contiguous(memory_format=memory)
      self.digit = self.digit.contiguous(memory_format=memory)
      self.image = self.image.contiguous(memory_format=memory)
    self.forward = self.model
    if form in ('compile', 'max_autotune'):
      self.forward = torch.compile(
          self.model, mode='max-autotune' if form == 'max_autotune' else None)
    start = time.perf_counter()
    self(sync=True)
    self(sync=True)
    self.compile_seconds = time.perf_counter() - start

  def __call__(self, sync: bool = False):
    self.opt.zero_grad(set_to_none=True)
    d, i = self.forward(self.x)
    loss = ((d - self.digit) ** 2).mean() + ((i - self.image) ** 2).mean()
    loss.backward()
    self.opt.step()
    if sync:
      self.sync()

  def sync(self):
    # PyTorch on CPU is synchronous; on a GPU its kernels queue as JAX's do.
    if self.device.type == 'cuda':
      self.torch.cuda.synchronize()


class TorchInfer(TorchTrain):
  def __init__(self, name: str, batch_size: int):
    super().__init__(name, batch_size)
    self.model.eval()

  def __call__(self, sync: bool = False):
    with self.torch.no_grad():
      self.forward(self.x)
    if sync:
      self.sync()


def torch_device(torch):
  """The device PyTorch trains on, set up for a like-for-like GPU comparison.

  On a GPU, XLA autotunes its convolutions and, at JAX's default precision,
  runs float32 matrix products and convolutions in TF32; PyTorch is asked for
  the same (``cudnn.benchmark``, TF32 products).
  """
  name = FLAGS.torch_device
  if name == 'auto':
    name = 'cuda' if torch.cuda.is_available() else 'cpu'
  if name == 'cuda':
    if not torch.cuda.is_available():
      raise SystemExit('--torch_device=cuda, but PyTorch sees no GPU; use '
                       '--torch_device=cpu or auto')
    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
  return torch.device(name)


def torch_forms(device) -> list[str]:
  """The PyTorch forms ``--torch_forms`` asks for on `device`."""
  forms = list(FLAGS.torch_forms)
  if forms == ['auto']:
    forms = [f for f in TORCH_FORMS
             if f != 'max_autotune' or device.type == 'cuda']
  unknown = set(forms) - set(TORCH_FORMS)
  if unknown:
    raise SystemExit(f'--torch_forms: unknown {sorted(unknown)}; use some of '
                     f'{TORCH_FORMS}')
  if 'eager' not in forms:
    forms.insert(0, 'eager')  # The parameter check and the eager ratio need it.
  return forms


def device_name(device) -> str:
  """'cpu', or e.g. 'gpu (NVIDIA H100 80GB HBM3)'."""
  kind = device.device_kind
  return device.platform + (f' ({kind})' if kind != device.platform else '')


def summary(rates: list[float]) -> dict[str, float]:
  return {'min': min(rates), 'median': statistics.median(rates), 'max': max(rates)}


def main(argv):
  del argv
  print(f'machine: {host.processor() or host.machine()}, '
        f'{os.cpu_count()} cores, jax {jax.__version__} on {device_name(jax.devices()[0])}'
        f' ({jax.device_count()} device(s)), batch {FLAGS.batch_size}, '
        f'XLA_FLAGS={os.environ.get("XLA_FLAGS", "")!r}, '
        f'GLIBC_TUNABLES={os.environ.get("GLIBC_TUNABLES", "")!r}, '
        f'layer forms {FLAGS.layer_forms}')
  results = {}
  for name in FLAGS.networks:
    runners = {'jax': JaxTrain(name, FLAGS.batch_size,
                               'cpu' if FLAGS.layer_forms == 'both'
                               else FLAGS.layer_forms),
               'jax_infer': JaxInfer(name, FLAGS.eval_batch_size,
                                     'cpu' if FLAGS.layer_forms == 'both'
                                     else FLAGS.layer_forms)}
    if FLAGS.bf16 and name == 'unet':  # The reference designs are float32.
      runners['jax_bf16'] = JaxTrain(name, FLAGS.batch_size, FLAGS.layer_forms
                                     if FLAGS.layer_forms != 'both' else 'cpu',
                                     dtype='bfloat16')
    if FLAGS.layer_forms == 'both':  # 'jax' holds the CPU forms then.
      runners['jax_flax'] = JaxTrain(name, FLAGS.batch_size, 'flax')
      runners['jax_flax_infer'] = JaxInfer(name, FLAGS.eval_batch_size, 'flax')
    if FLAGS.torch:
      import torch  # pylint: disable=g-import-not-at-top
      device = torch_device(torch)
      print(f'torch {torch.__version__} on {device.type}'
            + (f' ({torch.cuda.get_device_name()})' if device.type == 'cuda'
               else f', {torch.get_num_threads()} threads'))
      for form in torch_forms(device):
        runners[f'torch_{form}'] = TorchTrain(name, FLAGS.batch_size, form)
      runners['torch_infer'] = TorchInfer(name, FLAGS.eval_batch_size)
      if runners['torch_eager'].params != runners['jax'].params:
        raise SystemExit(f'{name}: the PyTorch twin has '
                         f'{runners["torch_eager"].params} parameters, JAX '
                         f'{runners["jax"].params}; they must be the same '
                         'network')
    rates = {k: [] for k in runners}
    for _ in range(FLAGS.repeats):  # Interleaved: jax, torch, jax, torch, ...
      for key, runner in runners.items():
        batch = FLAGS.eval_batch_size if key.endswith('infer') else FLAGS.batch_size
        rates[key].append(batch * timed(runner, FLAGS.seconds))
    jax_train = runners['jax']
    row = {'params': int(jax_train.params),
           'flops_per_image': jax_train.flops_per_image,
           'jax_img_s': summary(rates['jax'])['median'],
           'jax_img_s_range': summary(rates['jax']),
           'jax_gflop_s': jax_train.flops_per_image * summary(rates['jax'])['median'] / 1e9,
           'jax_infer_img_s': summary(rates['jax_infer'])['median']}
    if 'jax_bf16' in rates:
      row.update(jax_bf16_img_s=summary(rates['jax_bf16'])['median'],
                 bf16_gain=summary(rates['jax_bf16'])['median'] / row['jax_img_s'])
    if FLAGS.peak_tflops > 0:
      for key in ('jax', 'jax_bf16'):
        if key in rates:
          tflops = (jax_train.flops_per_image
                    * summary(rates[key])['median'] / 1e12)
          row[f'{key}_tflop_s'] = tflops
          row[f'{key}_peak_fraction'] = tflops / FLAGS.peak_tflops
    if FLAGS.layer_forms == 'both':
      row.update(
          flax_img_s=summary(rates['jax_flax'])['median'],
          flax_infer_img_s=summary(rates['jax_flax_infer'])['median'],
          cpu_forms_gain=row['jax_img_s'] / summary(rates['jax_flax'])['median'],
          cpu_forms_infer_gain=row['jax_infer_img_s']
          / summary(rates['jax_flax_infer'])['median'])
    if FLAGS.torch:
      forms = {k[len('torch_'):]: summary(rates[k])['median'] for k in rates
               if k.startswith('torch_') and k != 'torch_infer'}
      best = max(forms, key=forms.get)
      row.update(torch_img_s=forms,
                 torch_compile_seconds={
                     k[len('torch_'):]: r.compile_seconds
                     for k, r in runners.items()
                     if k.startswith('torch_') and k != 'torch_infer'},
                 torch_best_form=best,
                 torch_infer_img_s=summary(rates['torch_infer'])['median'],
                 ratio=row['jax_img_s'] / forms[best],
                 ratio_eager=row['jax_img_s'] / forms['eager'],
                 infer_ratio=row['jax_infer_img_s'] / summary(rates['torch_infer'])['median'])
    results[name] = row
    print(f'\n{name}: {row["params"] / 1e6:.2f} M params, '
          f'{row["flops_per_image"] / 1e9:.3f} GFLOP per image per train step (XLA)')
    for key in rates:
      s = summary(rates[key])
      print(f'  {key:20s} img/s  min {s["min"]:8.1f}  median {s["median"]:8.1f}  '
            f'max {s["max"]:8.1f}')
    print(f'  JAX train: {row["jax_gflop_s"]:.1f} GFLOP/s achieved')
    if 'bf16_gain' in row:
      print(f'  JAX bfloat16 / float32: train {row["bf16_gain"]:.2f}')
    for key in ('jax', 'jax_bf16'):
      if f'{key}_peak_fraction' in row:
        print(f'  {key}: {row[f"{key}_tflop_s"]:.1f} TFLOP/s, '
              f'{100 * row[f"{key}_peak_fraction"]:.1f}% of the '
              f'{FLAGS.peak_tflops:g} TFLOP/s peak')
    if FLAGS.layer_forms == 'both':
      print(f'  CPU layer forms / flax layers: train {row["cpu_forms_gain"]:.3f}, '
            f'inference {row["cpu_forms_infer_gain"]:.3f}')
    if FLAGS.torch:
      print('  PyTorch compile time (first two steps, not in the rates): '
            + ', '.join(f'{k} {v:.1f} s'
                        for k, v in row['torch_compile_seconds'].items()))
      print(f'  ratio JAX / best PyTorch form ({row["torch_best_form"]}): '
            f'train {row["ratio"]:.2f} (against eager {row["ratio_eager"]:.2f}),'
            f' inference (eager) {row["infer_ratio"]:.2f}')
  print(json.dumps(results))


if __name__ == '__main__':
  tuning.apply_process_tuning()  # As launch.py: before JAX starts.
  app.run(main)
