"""Platform tuning: CPU layer forms equal flax's; settings apply only where meant."""

import functools
import os
import subprocess
import sys

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from conftest import REPO
from mixae_jax import models, tuning
from mixae_jax.models import layers


def _random_like(variables, seed=2):
  leaves, tree = jax.tree.flatten(variables)
  keys = jax.random.split(jax.random.key(seed), len(leaves))
  return jax.tree.unflatten(
      tree, [jax.random.normal(k, x.shape) for k, x in zip(keys, leaves)])


def _assert_same_function(ours, reference, variables, x, atol=2e-5):
  """Same outputs, and same gradients wrt parameters and input."""
  # One jitted program per form: op by op, a U-Net's gradient takes seconds.
  @functools.partial(jax.jit, static_argnums=0)
  def output_and_grads(f, v, x):
    out, pullback = jax.vjp(f, v, x)
    return out, pullback(jnp.cos(out))  # The gradient of sum(sin(f)).
  out_ours, g_ours = output_and_grads(ours, variables, x)
  out_ref, g_ref = output_and_grads(reference, variables, x)
  np.testing.assert_allclose(out_ours, out_ref, atol=atol, rtol=atol)
  for a, b in zip(jax.tree.leaves(g_ours), jax.tree.leaves(g_ref)):
    np.testing.assert_allclose(a, b, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize('kernel, padding, size, features', [
    (4, ((2, 2), (2, 2)), 4, 6), (4, ((2, 2), (2, 2)), 8, 6),
    (4, ((2, 2), (2, 2)), 4, 16), (4, ((2, 2), (2, 2)), 8, 16),
    (2, 'SAME', 4, 6), (2, 'SAME', 16, 6)])
def test_subpixel_conv_transpose_equals_flax(kernel, padding, size, features):
  args = (features, (kernel, kernel))
  kwargs = dict(strides=(2, 2), padding=padding)
  reference = nn.ConvTranspose(*args, **kwargs)
  ours = layers.SubpixelConvTranspose(*args, **kwargs)
  x = jax.random.normal(jax.random.key(0), (3, size, size, 5))
  variables = reference.init(jax.random.key(1), x)
  mine = ours.init(jax.random.key(1), x)  # Same parameters and initial values.
  for a, b in zip(jax.tree.leaves(mine), jax.tree.leaves(variables)):
    np.testing.assert_array_equal(a, b)
  _assert_same_function(ours.apply, reference.apply, _random_like(variables), x)


def test_subpixel_conv_transpose_refuses_what_it_does_not_compute():
  x = jnp.zeros((1, 4, 4, 3))
  with pytest.raises(ValueError, match='supports kernel'):
    layers.SubpixelConvTranspose(4, (3, 3), strides=(2, 2)).init(
        jax.random.key(0), x)


@pytest.mark.parametrize('name', ['unet', 'seed004', 'digit_ae'])
def test_models_with_the_cpu_forms_keep_parameters_and_function(name):
  config = ml_collections.ConfigDict(dict(
      name=name, widths=(8, 16), digit_channels=1, head='consistent',
      digit_resized_from=28, activation='relu', decoders='twin'))
  plain = models.create_model(config, 'float32')
  tuned = models.create_model(config, 'float32', **tuning.layer_forms('cpu'))
  assert plain != tuned
  x = jax.random.uniform(jax.random.key(0), (2, 32, 32, 3))
  variables = plain.init(jax.random.key(1), x)
  assert (jax.tree.map(jnp.shape, jax.eval_shape(tuned.init,
                                                 jax.random.key(1), x))
          == jax.tree.map(jnp.shape, variables))
  apply = lambda model: lambda v, x: model.apply(v, x)[1]
  _assert_same_function(apply(tuned), apply(plain), variables, x, atol=1e-4)


def test_layer_forms_only_on_the_cpu_and_only_when_on():
  assert tuning.layer_forms('cpu', environ={}) == tuning.CPU_LAYER_FORMS
  assert tuning.layer_forms('gpu', environ={}) == {}
  assert tuning.layer_forms('tpu', environ={}) == {}
  off = {tuning.SWITCH: '0'}
  assert tuning.layer_forms('cpu', environ=off) == {}


def test_xla_flags_are_added_to_the_users_and_never_override_them():
  flag, value = next(iter(tuning.XLA_CPU_FLAGS.items()))
  assert tuning.tuned_xla_flags({}, (0, 10)) == f'{flag}={value}'
  assert (tuning.tuned_xla_flags({'XLA_FLAGS': '--a=1'}, (0, 10))
          == f'--a=1 {flag}={value}')
  assert tuning.tuned_xla_flags({'XLA_FLAGS': f'{flag}=x'}, (0, 10)) is None
  # A jaxlib that may not know the flag would stop the process: none then.
  assert tuning.tuned_xla_flags({}, (0, 9)) is None
  assert tuning.tuned_xla_flags({}, None) is None


def test_the_backend_is_known_before_jax_starts():
  assert tuning.will_run_on_cpu({}, {'jax': '0.10'})
  assert not tuning.will_run_on_cpu({}, {'jax-cuda12-plugin': '0.10'})
  assert not tuning.will_run_on_cpu({}, {'libtpu': '0.0.1'})
  assert tuning.will_run_on_cpu({'JAX_PLATFORMS': 'cpu'},
                                  {'jax-cuda12-plugin': '0.10'})
  assert not tuning.will_run_on_cpu({'JAX_PLATFORMS': 'cuda,cpu'}, {})


def _python(code: str, **env) -> str:
  environ = {k: v for k, v in os.environ.items()
             if k not in ('XLA_FLAGS', tuning.SWITCH)}
  result = subprocess.run([sys.executable, '-c', code], cwd=REPO, text=True,
                          capture_output=True, env={**environ, **env},
                          timeout=300)
  assert result.returncode == 0, result.stderr[-2000:]
  return result.stdout


def test_importing_and_separating_leave_the_environment_alone():
  # JAX sets a few variables of its own on import; mixae_jax sets none.
  out = _python(
      'import os, jax, numpy as np; jax.devices(); before = dict(os.environ)\n'
      'import mixae_jax\n'
      'sep = mixae_jax.Separator.restore("pretrained/dual")\n'
      'sep(np.full((2, 32, 32, 3), 0.5, np.float32))\n'
      'print(dict(os.environ) == before, "optax" in __import__("sys").modules)')
  assert out.split() == ['True', 'False']


def test_the_entry_point_applies_the_process_settings():
  code = ('import os; from mixae_jax import tuning\n'
          'tuning.apply_process_tuning()\n'
          'print(os.environ.get("XLA_FLAGS"))')
  flag = next(iter(tuning.XLA_CPU_FLAGS))
  assert flag in _python(code, JAX_PLATFORMS='cpu')
  # Switched off, or not on the CPU: nothing changes.
  assert _python(code, JAX_PLATFORMS='cpu', **{tuning.SWITCH: '0'}).split() == ['None']


def test_the_release_separates_alike_under_both_forms():
  from mixae_jax import config_io, inference  # pylint: disable=g-import-not-at-top
  release = REPO / 'pretrained' / 'dual'
  config = config_io.load(release)
  plain, _ = inference.restore_state(config, release)
  tuned, _ = inference.restore_state(
      config, release,
      model=models.create_model(config.model, 'float32',
                                **tuning.layer_forms('cpu')))
  x = jax.random.uniform(jax.random.key(0), (8, 32, 32, 3))
  for a, b in zip(inference.separate(plain, x), inference.separate(tuned, x)):
    np.testing.assert_allclose(a, b, atol=2e-5)
