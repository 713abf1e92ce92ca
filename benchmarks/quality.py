"""Separation quality of every design, side by side, on the eval protocol.

  python -m benchmarks.quality                      # the zoo table (~30 min on 2 cores)
  python -m benchmarks.quality --set=compute        # designs at equal time (~30 min)
  python -m benchmarks.quality --set=pairs          # CIFAR+CIFAR losses, equal time
  python -m benchmarks.quality --reuse              # only train rows not yet done
  python -m benchmarks.quality --set=papers         # vs published separators (papers.py)

Each row is trained by ``launch.py`` with the same budget (``--steps`` steps
of ``--batch_size`` mixtures; each design keeps its own optimizer recipe,
with warm-up capped at a tenth of the run) into ``--root/<row>`` and scored
on the 10,000 fixed test pairs (per-image PSNR with data range 1 and dm-pix
SSIM, means per source). The single-pair experiment trains on its one pair
for ``--single_pair_steps`` steps at batch 1, as the assignment describes.

Beside the protocol's scores, each reference design gets the figure of its
own objective (mixture reconstruction, clean-digit reconstruction, the one
training pair), and the single pair's ``2 * reconstruction - other original``
oracle, which uses the answer and is labelled so. The released model
(``pretrained/dual``) is re-evaluated, not retrained.

It prints a Markdown table and, last, one JSON line with every number;
``--root/quality_<set>.md`` and ``.json`` keep them.
"""

import dataclasses
import importlib
import json
import pathlib
import shutil
import subprocess
import sys
import time
from typing import Any

from absl import app
from absl import logging
from absl import flags
import numpy as np

from benchmarks import papers
from benchmarks import step_time
from mixae_jax import config_io, metrics, tuning
from mixae_jax.data import pipeline, preprocessing
from mixae_jax.inference import Separator

ROOT = pathlib.Path(__file__).resolve().parent.parent

FLAGS = flags.FLAGS
flags.DEFINE_enum('set', 'zoo', ['zoo', 'compute', 'pairs', 'papers'],
                  'zoo: the reference designs and the default model; '
                  'compute: designs and recipes at equal training time '
                  '(--seconds); pairs: recipes of the published pairs at '
                  'equal time; papers: two images of one kind on the '
                  'published separators\' protocols (benchmarks/papers.py).')
flags.DEFINE_list('rows', [], 'Only these rows (default: all of the set).')
flags.DEFINE_list('paper_models', [],
                  '--set=papers: protocol=folder of the models to score, e.g. '
                  'mnist+mnist=runs/mnist_mnist (default: the released ones '
                  'in pretrained/ that exist).')
flags.DEFINE_integer('steps', 1000, 'Training steps per row (the budget).')
flags.DEFINE_integer('batch_size', 64, 'Mixtures per step (the budget).')
flags.DEFINE_float('seconds', 300.0,
                   '--set=compute: training seconds per row (the budget); '
                   "each row's steps are this over its measured step time.")
flags.DEFINE_integer('single_pair_steps', 10_000,
                     'Steps of the single-pair experiment (batch 1).')
flags.DEFINE_integer('eval_pairs', None,
                     'Eval pairs per row (default: 10,000 for the zoo, the '
                     'first 2,000 of them at equal time).')
flags.DEFINE_string('root', 'runs/quality', 'Where the rows train.')
flags.DEFINE_string('released', 'pretrained/dual',
                    'Released model to score (zoo set); "" skips it.')
flags.DEFINE_bool('reuse', False,
                  'Keep a row already trained with the same settings.')


@dataclasses.dataclass
class Row:
  name: str
  config: str
  what: str
  overrides: dict[str, Any] = dataclasses.field(default_factory=dict)
  # --set=compute: a row whose step computes the same as this one, but for
  # the seed or the optimizer's arithmetic, takes its step time (and so its
  # steps) rather than a second, noisier measurement.
  timed_as: str | None = None


ZOO = [
    Row('seed004', 'configs/seed004.py',
        'ref 004: encoder + twin bottleneck decoders (8.5 M)'),
    Row('mixture_ae', 'configs/mixture_ae.py',
        'ref 001: autoencoder of the mixture (one decoder)'),
    Row('digit_ae', 'configs/digit_ae.py',
        'ref 003: MNIST autoencoder, 64-d latent; image = 2m - digit'),
    Row('single_pair', 'configs/single_pair.py',
        'ref 002 / assignment: one training mixture, batch 1'),
    Row('dual', 'configs/dual.py', 'default: U-Net, shared encoder, twin decoders'),
]

# Quality per unit of compute: designs and recipes trained for the same
# *seconds* on this machine (--seconds; each row's steps are the budget over
# its own measured step time), so a faster design gets more steps and a
# slower one pays. _QUICK pins configs/quick.py's recipe of 2026-12-05, so
# that a later change of the config leaves the rows as they were. The rows
# of the levers measured before (GroupNorm, EMA, the PSNR loss, patches,
# attention, ...) are in docs/levers.md, with the commit (c59ab19) that
# still has their options.
_QUICK = {'model.widths': (16, 32, 64, 128), 'model.digit_channels': 1,
          'model.head': 'consistent', 'model.activation': 'gelu',
          'model.decoders': 'twin', 'dtype': 'float32', 'batch_size': 64,
          'optimizer.name': 'muon', 'optimizer.learning_rate': 1.6e-2,
          'optimizer.schedule': 'cosine', 'optimizer.warmup_steps': 100,
          'optimizer.weight_decay': 0.05, 'optimizer.grad_clip_norm': 0.0,
          'loss.pixel': 'l1', 'loss.ssim_weight': 0.2}
COMPUTE = [
    Row('quick', 'configs/quick.py', "configs/quick.py's design and recipe "
        '(twin decoders, Muon, GELU, L1 + SSIM)', _QUICK),
    Row('quick_seed1', 'configs/quick.py', 'quick, seed 1 (run-to-run spread)',
        {**_QUICK, 'seed': 1}, timed_as='quick'),
    Row('shared', 'configs/quick.py',
        'quick with one shared decoder for both sources '
        '(model.decoders=shared)', {**_QUICK, 'model.decoders': 'shared'}),
    Row('shared_seed1', 'configs/quick.py', 'shared, seed 1 (the spread)',
        {**_QUICK, 'model.decoders': 'shared', 'seed': 1}, timed_as='shared'),
    # Not at equal time: quick's steps in bfloat16, for what mixed precision
    # costs in quality (its home is a GPU; XLA:CPU is no faster).
    Row('bf16', 'configs/quick.py',
        "quick in bfloat16 (config.dtype), at quick's steps, not its time",
        {**_QUICK, 'dtype': 'bfloat16'}, timed_as='quick'),
    Row('adam', 'configs/quick.py',
        'quick with Adam (AdamW, weight decay 0.05 on kernels) for every '
        'parameter', {**_QUICK, 'optimizer.name': 'adam'}, timed_as='quick'),
]
# The published pairs' recipes at equal time (--set=pairs): the loss's form
# where the answer is ambiguous. Two CIFAR-10 images from their mean have
# many near-equal answers; a squared-error loss is minimised by their mean,
# the PSNR-best estimate, an absolute one by their median, and SSIM asks for
# structure; which wins at the papers' protocol is measured, not assumed.
_CIFAR_LOSS = {'loss.pixel': 'l1', 'loss.ssim_weight': 0.2}
PAIRS = [
    Row('cifar_l1_ssim', 'configs/cifar_cifar.py',
        "configs/cifar_cifar.py as of 2026-12-07: quick's recipe, L1 + 0.2 "
        '(1 - SSIM)', _CIFAR_LOSS),
    Row('cifar_mse_ssim', 'configs/cifar_cifar.py', 'the MSE + 0.2 (1 - SSIM)',
        {**_CIFAR_LOSS, 'loss.pixel': 'mse'}, timed_as='cifar_l1_ssim'),
    Row('cifar_mse', 'configs/cifar_cifar.py', 'the MSE alone',
        {**_CIFAR_LOSS, 'loss.pixel': 'mse', 'loss.ssim_weight': 0.0}),
]
SETS = {'zoo': ZOO, 'compute': COMPUTE, 'pairs': PAIRS}
# Sets trained for equal time (--seconds) rather than equal steps.
_EQUAL_TIME = ('compute', 'pairs')


_STEP_SECONDS: dict[str, float] = {}


def time_rows(rows: list[Row], root: pathlib.Path) -> None:
  """Fills `_STEP_SECONDS` for `rows`, before any row trains.

  All rows are timed first, one after another on an otherwise idle machine
  (training a row meanwhile would slow the timing of the next). With
  --reuse, times kept in ``root/step_seconds.json`` are reused, so rows
  already trained keep their budget.
  """
  path = root / 'step_seconds.json'
  kept = json.loads(path.read_text()) if FLAGS.reuse and path.is_file() else {}
  by_name = {row.name: row for row in SETS[FLAGS.set]}
  for row in rows:
    timed = by_name[row.timed_as or row.name]
    if timed.name not in kept:
      config = with_settings(_load_config(timed.config), timed.overrides)
      kept[timed.name], _ = step_time.step_seconds(config)
      path.write_text(json.dumps(kept, indent=1) + '\n')
    _STEP_SECONDS[row.name] = kept[timed.name]
    steps = max(10, round(FLAGS.seconds / kept[timed.name]))
    print(f'[{row.name}] {kept[timed.name] * 1e3:.0f} ms per step'
          f'{" (as " + timed.name + ")" if row.timed_as else ""}: {steps} '
          f'steps in {FLAGS.seconds:g} s', flush=True)


def _budget(row: Row, config) -> dict[str, Any]:
  """The overrides that give `row` this benchmark's budget and eval."""
  if row.name == 'single_pair':
    steps, batch = FLAGS.single_pair_steps, 1
  elif FLAGS.set in _EQUAL_TIME:
    batch = with_settings(config, row.overrides).batch_size
    steps = max(10, round(FLAGS.seconds / _STEP_SECONDS[row.name]))
  else:
    steps, batch = FLAGS.steps, FLAGS.batch_size
  return {
      'num_train_steps': steps, 'batch_size': batch,
      'optimizer.warmup_steps': min(config.optimizer.warmup_steps, steps // 10),
      'eval.num_pairs': FLAGS.eval_pairs, 'eval.every_steps': 0,
      'checkpoint.every_steps': steps, 'log_every_steps': min(100, steps),
      **{k: v for k, v in row.overrides.items() if k != 'batch_size'},
  }


def _load_config(path: str):
  """The ConfigDict of ``configs/<name>.py``."""
  return importlib.import_module(
      'configs.' + pathlib.Path(path).stem).get_config()


def with_settings(config, settings: dict[str, Any]):
  """A copy of `config` with dotted `settings` set, as ``--config.<key>=``
  would; like that flag, it refuses a key the config lacks (KeyError)."""
  config = config.copy_and_resolve_references()
  for key, value in settings.items():
    node = config
    *parents, last = key.split('.')
    for part in parents:
      node = node.get(part) if hasattr(node, 'get') else None
    if not hasattr(node, 'keys') or last not in node:
      raise KeyError(f'{key} is not a field of the config')
    node[last] = value
  return config


def _get(config, key: str):
  node = config
  for part in key.split('.'):
    node = node[part]
  return node


def _flat(tree: dict[str, Any], prefix: str = '') -> dict[str, Any]:
  out = {}
  for k, v in tree.items():
    if isinstance(v, dict):
      out.update(_flat(v, f'{prefix}{k}.'))
    else:
      out[f'{prefix}{k}'] = list(v) if isinstance(v, tuple) else v
  return out


# Fields that do not change a run's final numbers.
_CADENCE = ('eval.every_steps', 'eval.periodic_num_pairs', 'eval.batch_size',
            'checkpoint.', 'log_every_steps', 'data.')
# Model fields that only the U-Net reads (models.create_model): the reference
# designs' layers are fixed, so a change of these defaults leaves them as they
# were.
_UNET_ONLY = ('model.widths', 'model.digit_channels', 'model.head',
              'model.digit_resized_from', 'model.activation', 'model.decoders',
              'dtype')


def _already_done(workdir: pathlib.Path, config, settings: dict[str, Any],
                  reuse: bool) -> bool:
  """Whether `workdir` holds this row's run: every field that shapes the
  result (model, loss, optimizer, seed, budget, eval pairs) as the row sets it
  now, a field the run predates counting as its upgrade table's value
  (`config_io.load`)."""
  metrics_file = workdir / 'eval' / 'metrics.json'
  if not (reuse and metrics_file.is_file()):
    return False
  want = with_settings(config, settings)
  saved = config_io.load(workdir)
  ignored = _CADENCE + (_UNET_ONLY if want.model.name != 'unet' else ())
  wanted = {k: v for k, v in _flat(want.to_dict()).items()
            if not k.startswith(ignored)}
  def same(key, value):
    have = _get(saved, key)
    return (list(have) if isinstance(have, (tuple, list)) else have) == value
  return all(same(k, v) for k, v in wanted.items()) and (
      json.loads(metrics_file.read_text())['step'] == settings['num_train_steps'])


def train_row(row: Row, root: pathlib.Path) -> dict[str, Any]:
  """Trains and evaluates one row with launch.py; returns its record."""
  config = _load_config(row.config)
  settings = _budget(row, config)
  workdir = root / row.name
  command = [sys.executable, str(ROOT / 'launch.py'), f'--config={ROOT / row.config}',
             f'--workdir={workdir}'] + [f'--config.{k}={v}' for k, v in settings.items()]
  seconds = None
  if _already_done(workdir, config, settings, FLAGS.reuse):
    print(f'[{row.name}] reusing {workdir}', flush=True)
  else:
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    print(f'[{row.name}] {" ".join(command[1:])}', flush=True)
    start = time.perf_counter()
    with open(root / f'{row.name}.log', 'w') as log:
      done = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT,
                            cwd=ROOT, check=False)
    seconds = time.perf_counter() - start
    if done.returncode:
      sys.exit(f'row {row.name} failed; see {root / (row.name + ".log")}')
    (workdir / 'train_seconds.txt').write_text(f'{seconds:.1f}\n')
  if seconds is None and (workdir / 'train_seconds.txt').is_file():
    seconds = float((workdir / 'train_seconds.txt').read_text())
  record = json.loads((workdir / 'eval' / 'metrics.json').read_text())
  return {'row': row.name, 'what': row.what,
          'trained': f'{settings["num_train_steps"]} x {settings["batch_size"]}',
          'seconds': seconds, **_scores(record),
          'extra': own_objective(row.name, workdir)}


def _scores(record: dict[str, Any]) -> dict[str, Any]:
  """An eval record's sources (``labels``, in order), each source's means
  under its label, and the mixture baseline's."""
  labels = metrics.source_labels(record)
  return {'labels': labels, **{label: record[label] for label in labels},
          'baseline': record['baseline']}


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
  """Mean per-image PSNR, as the protocol computes it."""
  return float(np.mean(np.asarray(metrics.per_image(a, b)['psnr'])))


def own_objective(name: str, workdir: pathlib.Path) -> dict[str, float]:
  """The figure each reference design was built to optimise."""
  if name not in ('mixture_ae', 'digit_ae', 'single_pair'):
    return {}
  sep = Separator.restore(workdir)
  data = pipeline.load_datasets(sep.config.data,
                                      with_train=name == 'single_pair')
  if name == 'single_pair':
    pool = pipeline.make_train_pool(data, num_pairs=1,
                                          pairing_seed=sep.config.seed)
    mix = preprocessing.make_mixtures(np.asarray(pool.first),
                                      np.asarray(pool.second))
    recon, _ = sep(np.asarray(mix.mixture))
    digit, image = np.asarray(mix.first), np.asarray(mix.second)
    # 'pair_': scored on the one training pair, not on the protocol; the
    # prefix also keeps them apart from the protocol's digit_psnr in the
    # summary JSON.
    return {
        'pair_mixture_psnr': _psnr(recon, mix.mixture),
        'pair_digit_psnr': _psnr(recon, digit),
        'pair_image_psnr': _psnr(recon, image),
        # ORACLE: uses the other original, i.e. the answer.
        'oracle_digit_psnr': _psnr(np.clip(2 * recon - image, 0, 1), digit),
        'oracle_image_psnr': _psnr(np.clip(2 * recon - digit, 0, 1), image),
    }
  eval_set = pipeline.make_eval_set(data, FLAGS.eval_pairs, 0)
  mix = preprocessing.make_mixtures(eval_set.first, eval_set.second)
  if name == 'mixture_ae':
    recon, _ = sep(np.asarray(mix.mixture))
    return {'mixture_psnr': _psnr(recon, mix.mixture),
            'mixture_mse': float(np.mean((recon - mix.mixture) ** 2))}
  clean = np.asarray(mix.first)
  recon, _ = sep(clean)
  return {'clean_digit_mse': float(np.mean((recon - clean) ** 2)),
          'clean_digit_psnr': _psnr(recon, clean)}


def released_row(root: pathlib.Path) -> dict[str, Any] | None:
  """Re-evaluates the released model into ``root/released``."""
  folder = ROOT / FLAGS.released
  if not FLAGS.released or not (folder / 'config.json').is_file():
    return None
  out = root / 'released'
  # No --config: the release's config.json, as a user's --mode=eval does.
  command = [sys.executable, str(ROOT / 'launch.py'), '--mode=eval',
             f'--workdir={folder}', f'--output_dir={out}']
  print(f'[released] {" ".join(command[1:])}', flush=True)
  with open(root / 'released.log', 'w') as log:
    if subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
                      check=False).returncode:
      sys.exit(f'evaluating {folder} failed; see {root / "released.log"}')
  record = json.loads((out / 'eval' / 'metrics.json').read_text())
  return {'row': 'released', 'what': f'{FLAGS.released} (see README)',
          'trained': f'{record["step"]} steps', 'seconds': None,
          **_scores(record), 'extra': {}}


def _cell(m: dict[str, float]) -> str:
  return f'{m["psnr"]:.2f} | {m["ssim"]:.4f}'


def _extra(extra: dict[str, float]) -> str:
  parts = []
  for k, v in extra.items():
    if k.startswith('oracle'):
      continue
    label = k.replace('_', ' ').replace('psnr', 'PSNR').replace('mse', 'MSE')
    parts.append(f'{label} {v:.4f}' if 'mse' in k else f'{label} {v:.2f} dB')
  if 'oracle_digit_psnr' in extra:
    parts.append('ORACLE, not separation (2 x recon - the other original): '
                 f'digit {extra["oracle_digit_psnr"]:.2f} dB, image '
                 f'{extra["oracle_image_psnr"]:.2f} dB')
  return '; '.join(parts)


# How the table and the summary name the default pair's sources.
_NAMES = {'mnist': ('digit', 'digit'), 'cifar10': ('CIFAR', 'cifar')}


def table(results: list[dict[str, Any]]) -> str:
  """The rows as Markdown, one PSNR and SSIM column per source (the sources
  of the first row: a set's rows separate one pair)."""
  labels = results[0]['labels']
  base = results[0]['baseline']
  heads = ''.join(f'{_NAMES.get(l, (l,))[0]} PSNR | {_NAMES.get(l, (l,))[0]} '
                  'SSIM | ' for l in labels)
  lines = [f'| row | design | trained (steps x batch) | {heads}train+eval '
           'time | own objective |',
           '|---|---|---|' + '---|---|' * len(labels) + '---|---|',
           '| baseline | the mixture itself as both estimates | - | '
           + ''.join(f'{_cell(base[l])} | ' for l in labels) + '- | - |']
  for r in results:
    time_cell = f'{r["seconds"] / 60:.1f} min' if r['seconds'] else '-'
    lines.append(f'| {r["row"]} | {r["what"]} | {r["trained"]} | '
                 + ''.join(f'{_cell(r[l])} | ' for l in r['labels'])
                 + f'{time_cell} | {_extra(r["extra"]) or "-"} |')
  return '\n'.join(lines)


def summary(results: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
  """The last line's JSON: per row, the protocol scores and its own objective.

  Args:
    results: rows as ``train_row`` / ``released_row`` return them.

  Returns:
    ``{row: {'digit_psnr', 'digit_ssim', 'cifar_psnr', 'cifar_ssim', ...}}``
    for the default pair (``{label}_psnr`` ... for others), the protocol's
    four figures plus the row's own-objective figures.

  Raises:
    ValueError: an own-objective figure has the name of a protocol figure;
      merged silently, it would replace the protocol score.
  """
  out = {}
  for r in results:
    scores = {}
    for label in r['labels']:
      name = _NAMES.get(label, (label, label))[1]
      scores.update({f'{name}_psnr': r[label]['psnr'],
                     f'{name}_ssim': r[label]['ssim']})
    clash = scores.keys() & r['extra'].keys()
    if clash:
      raise ValueError(f'row {r["row"]}: own-objective figures {sorted(clash)} '
                       'would overwrite the protocol scores; rename them')
    out[r['row']] = {**scores, **r['extra']}
  return out


def main(argv: list[str]) -> None:
  del argv
  logging.set_verbosity(logging.WARNING)  # Orbax logs every file it reads.
  if FLAGS.set == 'papers':
    models = dict(item.split('=', 1) for item in FLAGS.paper_models) or None
    papers.run(models)
    return
  rows = SETS[FLAGS.set]
  if FLAGS.eval_pairs is None:
    FLAGS.eval_pairs = 10_000 if FLAGS.set == 'zoo' else 2000
  if FLAGS.rows:
    unknown = set(FLAGS.rows) - {r.name for r in rows}
    if unknown:
      sys.exit(f'unknown rows {sorted(unknown)}; this set has '
               f'{[r.name for r in rows]}')
    rows = [r for r in rows if r.name in FLAGS.rows]
  root = (ROOT / FLAGS.root).resolve()
  root.mkdir(parents=True, exist_ok=True)
  if FLAGS.set in _EQUAL_TIME:
    time_rows(rows, root)
  results = [train_row(row, root) for row in rows]
  if FLAGS.set == 'zoo' and not FLAGS.rows:
    released = released_row(root)
    if released:
      results.append(released)
  text = table(results)
  print(text)
  (root / f'quality_{FLAGS.set}.md').write_text(text + '\n')
  (root / f'quality_{FLAGS.set}.json').write_text(json.dumps(results, indent=1))
  print(json.dumps(summary(results)))


if __name__ == '__main__':
  tuning.apply_process_tuning()  # As launch.py: --set=compute times steps.
  app.run(main)
