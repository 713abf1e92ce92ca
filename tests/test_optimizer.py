"""The optimizer: Muon for the hidden kernels, Adam for the rest; schedules."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import tiny_config
from mixae_jax import optimizer
from mixae_jax.train_state import create_train_state


def _is_hidden_kernel(path) -> bool:
  """A hidden convolution kernel, named by its path (what Muon must step)."""
  names = [str(k.key) for k in path]
  edge = (names[:2] == ['ConvBlock_0', 'Conv_0']
          or (len(names) == 3 and names[0].endswith('decoder')
              and names[1] == 'Conv_0'))
  return names[-1] == 'kernel' and not edge


@pytest.mark.parametrize('decoders, hidden', [('twin', 9), ('shared', 6)])
def test_muon_orthogonalises_the_hidden_kernels_and_adam_steps_the_rest(
    data_dir, decoders, hidden):
  config = tiny_config(data_dir, **{'model.widths': (8, 16),
                                    'model.decoders': decoders,
                                    'optimizer.name': 'muon',
                                    'optimizer.schedule': 'constant',
                                    'optimizer.warmup_steps': 0,
                                    'optimizer.learning_rate': 1.0})
  params = create_train_state(config).params
  leaves, treedef = jax.tree.flatten_with_path(params)
  rng = np.random.default_rng(0)

  def ill_conditioned(p):
    # Singular values spread over two decades, as raw gradients can be.
    g = rng.standard_normal(p.shape).reshape(-1, p.shape[-1])
    g = g * np.logspace(-2, 0, p.shape[-1])
    return jnp.asarray(g.reshape(p.shape), jnp.float32)

  grads = jax.tree.unflatten(treedef, [ill_conditioned(p) for _, p in leaves])
  tx = optimizer.make_optimizer(config)
  updates, _ = tx.update(grads, tx.init(params), params)
  orthogonalised = adam = 0
  for (path, p), u in zip(leaves, jax.tree.leaves(updates)):
    name = jax.tree_util.keystr(path)
    u = np.asarray(u)
    if _is_hidden_kernel(path):  # A 3x3 or up-convolution kernel.
      s = np.linalg.svd(u.reshape(-1, p.shape[-1]), compute_uv=False)
      # Muon's step: near-equal singular values (Newton-Schulz leaves them
      # in about [0.7, 1.2]), scaled to Adam's RMS (0.2 sqrt(max(fans))).
      expected = 0.2 * np.sqrt(max(u.size // p.shape[-1], p.shape[-1]))
      assert 0.5 * expected < s.min() <= s.max() < 1.5 * expected, (name, s)
      orthogonalised += 1
    else:  # The input and output convolutions, biases, norms: Adam's step,
      # the same size everywhere.
      np.testing.assert_allclose(np.abs(u), np.abs(u).flat[0], rtol=1e-3,
                                 err_msg=name)
      adam += 1
  # The (8, 16) U-Net: 4 encoder convolutions (the first reads the image),
  # per decoder 2 convolutions and an up-convolution, then its output
  # convolution: 3 + 3 + 3 hidden with twin decoders, 3 + 3 with one.
  assert orthogonalised == hidden and adam > 4, (orthogonalised, adam)


def test_muon_weight_decay_shrinks_its_kernels_only(data_dir):
  config = tiny_config(data_dir, **{'model.widths': (8, 16),
                                    'optimizer.name': 'muon',
                                    'optimizer.schedule': 'constant',
                                    'optimizer.warmup_steps': 0,
                                    'optimizer.learning_rate': 0.5,
                                    'optimizer.weight_decay': 0.1})
  params = create_train_state(config).params
  tx = optimizer.make_optimizer(config)
  zeros = jax.tree.map(jnp.zeros_like, params)
  updates, _ = tx.update(zeros, tx.init(params), params)
  decayed = 0
  for (path, p), u in zip(jax.tree.flatten_with_path(params)[0],
                          jax.tree.leaves(updates)):
    if _is_hidden_kernel(path):  # Muon's: decoupled decay, lr * wd.
      np.testing.assert_allclose(u, -0.05 * p, rtol=1e-5, atol=1e-8,
                                 err_msg=jax.tree_util.keystr(path))
      decayed += 1
    else:  # Adam's part (input, outputs, biases, norms) is not decayed.
      np.testing.assert_array_equal(u, 0, err_msg=jax.tree_util.keystr(path))
  assert decayed == 9


@pytest.mark.parametrize('schedule', ['cosine', 'constant'])
def test_schedules_warm_up_to_the_peak_and_decay_to_the_final_fraction(
    schedule):
  config = tiny_config('', **{'optimizer.schedule': schedule,
                              'optimizer.learning_rate': 1.0,
                              'optimizer.warmup_steps': 10,
                              'optimizer.final_lr_fraction': 0.01,
                              'num_train_steps': 110})
  lr = optimizer.make_schedule(config)
  assert float(lr(0)) == 0.0
  np.testing.assert_allclose(float(lr(5)), 0.5, rtol=1e-6)
  np.testing.assert_allclose(float(lr(10)), 1.0, rtol=1e-6)
  # Halfway through the decay: the mean of the peak and the end.
  halfway = {'cosine': 0.505, 'constant': 1.0}[schedule]
  np.testing.assert_allclose(float(lr(60)), halfway, rtol=1e-5)
  quarter = {'cosine': 0.01 + 0.99 * (1 + np.cos(np.pi / 4)) / 2,
             'constant': 1.0}[schedule]
  np.testing.assert_allclose(float(lr(35)), quarter, rtol=1e-5)
  end = 1.0 if schedule == 'constant' else 0.01
  np.testing.assert_allclose(float(lr(110)), end, rtol=1e-5)
