#!/usr/bin/env bash
# The GPU half of the speed comparison, as one short script for a lent GPU.
#
#   bash benchmarks/device_check.sh --fetch   # here, with PyPI: wheels into .whl/
#   bash benchmarks/device_check.sh           # there: throughput at batch 128 and 512
#
# The GPU machines (README, "Speed") hold JAX, flax, optax, orbax, chex and
# PyTorch with CUDA but cannot reach PyPI, and lack two pure-Python packages
# mixae_jax needs: ml_collections and dm-pix. `--fetch` downloads them into
# .whl/ (git ignores it); the run carries .whl and installs them under
# /tmp/site first. It then runs benchmarks/throughput.py (PyTorch on the GPU
# too) at batch 128, as on the CPU, and at 512, where a GPU is less bound by
# Python's dispatch, writing each log to $OUT (or /tmp/device_check).
# Timing: 2 networks x 4 runners x 3 repeats x 5 s = 2 min per batch size,
# plus compiles. Extra arguments go to both runs and win, e.g. --seconds=3.
set -euo pipefail
cd "$(dirname "$0")/.."

WHEELS=(ml_collections==1.1.0 dm_pix==0.4.5)

if [[ "${1:-}" == "--fetch" ]]; then
  # The GPU image's Python is 3.12; both wheels are pure Python.
  python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_17_x86_64 -d .whl "${WHEELS[@]}"
  exit 0
fi

out="${OUT:-/tmp/device_check}"
mkdir -p "$out"
if compgen -G ".whl/*.whl" > /dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
    --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi
# mixae_jax's XLA settings are for XLA:CPU only (mixae_jax/xla_cpu.py).
export MIXAE_XLA_CPU_DEFAULTS=1 PYTHONUNBUFFERED=1
nvidia-smi -L 2>/dev/null || echo "nvidia-smi: none (no NVIDIA GPU here)"
python3 -c 'import jax, flax, optax; print("jax", jax.__version__, jax.devices(), "flax", flax.__version__, "optax", optax.__version__)'
for batch in 128 512; do
  python3 benchmarks/throughput.py --batch_size="$batch" --seconds=5 "${@}" 2>&1 \
    | grep -v -e '^W[0-9]' -e '^I[0-9]' | tee "$out/throughput_b$batch.txt"
done
