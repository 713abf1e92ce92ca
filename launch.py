"""Train or evaluate a mixae_jax separator.

  python launch.py --config=configs/dual.py --workdir=runs/dual
  python launch.py --mode=eval --workdir=runs/dual
  python launch.py --mode=separate --workdir=pretrained/dual --input=mix.png

All logic lives in the package (`mixae_jax.apps.cli.run`, `mixae_jax.train`).
"""

from mixae_jax.apps import cli

if __name__ == '__main__':
  cli.launch()
