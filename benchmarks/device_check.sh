#!/usr/bin/env bash
# Everything a lent GPU is for, as one call: the GPU speed table and the
# longest configs/dual.py run that fits.
#
#   bash benchmarks/device_check.sh --fetch   # here, with PyPI and ../shared
#   bash benchmarks/device_check.sh [BUDGET_S] [--no_train] [--no_bench] [throughput flags]
#                                             # there, carrying .whl and .device_data
#   bash benchmarks/device_check.sh --rehearse   # here: every step on the CPU,
#                                             # configs/tiny.py, in about 3 minutes
#
# `--fetch` saves what the GPU machine lacks and cannot download:
#   .whl/base/     ml_collections, dm-pix (pure Python) and safetensors
#                  (abi3); the GPU image has JAX, flax, optax, orbax and
#                  PyTorch, maybe not these;
#   .whl/pinned/   flax, optax, orbax-checkpoint and chex at this project's
#                  pinned versions, used only if the image's own fail the smoke
#                  run below;
#   .device_data/  ../shared/data with its CIFAR-10 archive xz-compressed
#                  (55.8 -> 18.2 MB, lossless: the JPEGs' repeated headers go),
#                  so code, wheels and data fit the 64 MiB a call may carry.
# Both folders are git-ignored.
#
# On the GPU machine, within BUDGET_S seconds (default 510: with the
# machine's start, one call of at most 9 minutes) of its start:
#   1. installs the wheels under /tmp/site and writes the data with prepare.py;
#   2. smoke run: 3 steps of a tiny config, checkpoint and eval included; if it
#      fails with the image's flax/optax/orbax, it retries with the pinned ones;
#   3. benchmarks/throughput.py at batch 128, one call per network (JAX
#      float32 and bfloat16 against PyTorch eager, channels_last,
#      torch.compile and max-autotune, with the fraction of the H200's 989
#      TFLOP/s dense bf16 peak), logs to $OUT/throughput_*.txt and all
#      rows to $OUT/gpu_throughput.json (docs/results/ keeps it);
#   4. configs/dual.py, unchanged but for its length where its steps do not
#      fit: num_train_steps is the most whole thousands that fit the time
#      left at the rate of the run's own train step, timed there first
#      (benchmarks/step_time.py: its optimizer, loss and in-step sampling),
#      eval and checkpoint cadence scaled to it, in bfloat16 if the U-Net
#      trains > 10% faster in it there;
#   5. exports the float16 release (launch.py --mode=export) and packs it, the
#      run's metrics, eval outputs and figures into $OUT (or /tmp/device_check).
# --no_train stops after step 3; --no_bench skips steps 2 and 3. Environment:
# STEPS=N fixes step 4's length; TRAIN_CONFIG and TRAIN_ARGS train another
# config or add --config overrides (the release's second run:
# STEPS=25000 TRAIN_CONFIG=configs/release.py:finetune with
# TRAIN_ARGS=--config.init_from=<first run's export>); WORKDIR is the run
# folder (default /tmp/runs/dual). On a machine still warm from a call /tmp
# survives, and a workdir with checkpoints resumes: give each run its own.
# Call: run(command="bash benchmarks/device_check.sh", carry=[".whl",
# ".device_data"], timeout_s=600).
set -uo pipefail
cd "$(dirname "$0")/.."

WHEELS_BASE=(ml_collections==1.1.0 dm_pix==0.4.5 safetensors==0.8.0)
WHEELS_PINNED=(flax==0.12.8 optax==0.2.8 orbax-checkpoint==0.12.8 chex==0.1.92)

if [[ "${1:-}" == "--fetch" ]]; then
  set -e
  # The GPU image's Python is 3.12; every wheel here is pure Python but
  # safetensors', whose abi3 build fits it.
  fetch() {
    python3 -m pip download -q --no-deps --only-binary=:all: \
      --python-version 3.12 --implementation cp \
      --platform manylinux_2_17_x86_64 -d "$@"
  }
  fetch .whl/base "${WHEELS_BASE[@]}"
  fetch .whl/pinned "${WHEELS_PINNED[@]}"
  shared="${SHARED_DATA:-../shared/data}"
  rm -rf .device_data/data && mkdir -p .device_data/data
  cp "$shared/prepare.py" .device_data/data/
  cp -r "$shared/mnist" .device_data/data/
  chmod -R u+w .device_data/data
  if [[ ! -f .device_data/cifar10_jpeg.npz.xz ]]; then
    xz -9 -T2 -c "$shared/cifar10_jpeg.npz" > .device_data/cifar10_jpeg.npz.xz
  fi
  du -sh .whl .device_data
  exit 0
fi

start=$(date +%s)
PY=python3
budget=510
train=1
bench=1
bench_args=()
for arg in "$@"; do
  case "$arg" in
    [0-9]*) budget="$arg" ;;
    --no_train) train=0 ;;
    --no_bench) bench=0 ;;
    --rehearse)  # The whole script on this machine's CPU, at toy sizes.
      [[ -x .venv/bin/python ]] && PY=.venv/bin/python
      # Its length: the sizing below, capped at tiny.py's 6 steps.
      export TRAIN_CONFIG=configs/tiny.py
      export WORKDIR=${WORKDIR:-/tmp/rehearsal/run} OUT=${OUT:-/tmp/rehearsal/out}
      rm -rf /tmp/rehearsal
      bench_args+=(--batch_size=8 --eval_batch_size=8 --seconds=0.2 --repeats=1)
      # PyTorch is an optional extra here (the GPU image has it).
      "$PY" -c 'import torch' 2>/dev/null || bench_args+=(--torch=false)
      ;;
    *) bench_args+=("$arg") ;;
  esac
done
deadline=$((start + budget))
left() { echo $((deadline - $(date +%s))); }

out="${OUT:-/tmp/device_check}"
mkdir -p "$out"
exec > >(tee "$out/log.txt") 2>&1
echo "device_check: budget ${budget}s"

# mixae_jax/tuning.py tunes XLA:CPU only; on the GPU it leaves XLA alone.
export PYTHONUNBUFFERED=1
install_wheels() {  # folder of wheels -> a site dir put first on PYTHONPATH
  local site="/tmp/site_$(basename "$1")"
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
    --upgrade --target "$site" "$1"/*.whl || return 1
  export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
}
versions() {
  "$PY" -c 'import jax, flax, optax, orbax.checkpoint as ocp, chex
print("jax", jax.__version__, jax.devices(), "| flax", flax.__version__,
      "| optax", optax.__version__, "| orbax", ocp.__version__, "| chex", chex.__version__)'
}
[[ -d .whl/base ]] && install_wheels .whl/base
nvidia-smi -L 2>/dev/null || echo "nvidia-smi: none (no NVIDIA GPU here)"
versions

# Data: the layout ../shared/data/prepare.py writes, from the carried copy.
export MIXAE_DATA_DIR=/tmp/mixae_data
if [[ -f .device_data/cifar10_jpeg.npz.xz ]]; then
  # Unpacked outside the repo, so that the carried folder stays small.
  mkdir -p /tmp/shared_data && cp -r .device_data/data/. /tmp/shared_data/
  "$PY" -c 'import lzma, shutil, sys
with lzma.open(sys.argv[1]) as f, open(sys.argv[2], "wb") as g:
    shutil.copyfileobj(f, g, 1 << 24)' \
    .device_data/cifar10_jpeg.npz.xz /tmp/shared_data/cifar10_jpeg.npz
  "$PY" /tmp/shared_data/prepare.py "$MIXAE_DATA_DIR"
elif [[ -f ../shared/data/prepare.py ]]; then
  "$PY" ../shared/data/prepare.py "$MIXAE_DATA_DIR"
fi
echo "[$(($(date +%s) - start))s] set-up done"

smoke() {
  rm -rf /tmp/smoke
  timeout 180 "$PY" launch.py --config=configs/tiny.py --workdir=/tmp/smoke \
    --config.num_train_steps=3 > /tmp/smoke.log 2>&1
}
if (( bench )) && ! smoke; then
  tail -n 15 /tmp/smoke.log
  echo "smoke run failed with the image's packages; trying the pinned ones"
  install_wheels .whl/pinned && versions
  if (( bench )) && ! smoke; then
    tail -n 30 /tmp/smoke.log
    echo "smoke run failed with the pinned packages too; stopping"
    exit 1
  fi
fi
echo "[$(($(date +%s) - start))s] smoke run passed"

if (( bench )); then
# First the U-Net in JAX (float32, bfloat16) against PyTorch eager: quick,
# and its rate sizes the training. Then each network against every PyTorch
# form, one call each, so that compiles which overrun their share lose only
# that row.
bench() {  # seconds file throughput-flags...
  local cap=$1 file=$2; shift 2
  if (( cap < 20 )); then echo "no time left for $file"; return; fi
  timeout "$cap" "$PY" -m benchmarks.throughput --batch_size=128 \
    --seconds=1.5 --repeats=3 --bf16 --peak_tflops=989 "$@" \
    "${bench_args[@]}" 2>&1 | grep -v -e '^W[0-9]' -e '^I[0-9]' \
    | tee "$out/$file"
}
# TRAIN_RESERVE_S (default 330) is what the training step keeps for itself;
# the full-form tables get what is left above it.
bench 90 throughput_unet_eager.txt --networks=unet --torch_forms=eager
for net in unet seed004; do
  cap=$(( $(left) - ${TRAIN_RESERVE_S:-330} ))
  [[ $net == unet ]] && cap=$(( cap / 2 ))
  (( cap < 120 )) || cap=120
  bench "$cap" "throughput_$net.txt" --networks=$net
done
# docs/results/gpu_throughput.json's content: device, versions, date and
# every row (JAX float32 and bfloat16, each PyTorch form, the ratios).
"$PY" - "$out" <<'EOF' || true
import datetime, json, pathlib, sys
out = pathlib.Path(sys.argv[1])
rows = {}
# The U-Net's eager-only table first: its full table, if any, replaces it.
for f in sorted(out.glob('throughput_*.txt'),
                key=lambda f: ('_eager' not in f.name, f.name)):
  lines = f.read_text().strip().splitlines()
  if lines and lines[-1].startswith('{'):
    rows.update(json.loads(lines[-1]))
import jax
versions = {'jax': jax.__version__}
try:
  import torch
  versions['torch'] = torch.__version__
except ImportError:
  pass
record = {'date': datetime.date.today().isoformat(),
          'device': jax.devices()[0].device_kind, 'versions': versions,
          'batch_size': 128, 'peak_tflop_s': 989, 'networks': rows}
(out / 'gpu_throughput.json').write_text(json.dumps(record, indent=1) + '\n')
print('wrote', out / 'gpu_throughput.json')
EOF
echo "[$(($(date +%s) - start))s] throughput done"
fi
[[ $train == 1 ]] || exit 0

# The longest dual.py run that fits: 140 s for start-up, compiles, periodic
# evals and the final 10,000-pair eval, then 30 s for export and packing.
# The precision: bfloat16 where it trains more than 10% faster than float32
# (its quality cost at the quick budget: docs/levers.md), else float32.
# TRAIN_CONFIG (default configs/dual.py) and TRAIN_ARGS (extra --config
# overrides, e.g. an init_from) choose another run of the same length rule.
train_config="${TRAIN_CONFIG:-configs/dual.py}"
dtype=$("$PY" - "$out/throughput_unet_eager.txt" <<'EOF'
import json, sys
try:
  row = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])['unet']
except (OSError, IndexError, KeyError, ValueError):
  row = {}
print('bfloat16' if row.get('jax_bf16_img_s', 0) > 1.1 * row.get('jax_img_s', 1e9)
      else 'float32')
EOF
)
# The run's own step, timed (its optimizer, Muon's Newton-Schulz products
# included, the SSIM term and the in-step sampling), sizes the run; without
# it, the table's bare Adam step x1.5 does.
[[ -z "${STEPS:-}" ]] && (( $(left) > 240 )) && timeout 150 "$PY" -m benchmarks.step_time \
  --config="$train_config" ${TRAIN_ARGS:-} --config.dtype="$dtype" 2>&1 \
  | grep -v -e '^W[0-9]' -e '^I[0-9]' | tee "$out/step_time.txt"
steps=$("$PY" - "$out/throughput_unet_eager.txt" "$out/step_time.txt" \
    "$(left)" "${STEPS:-}" "$train_config" "$dtype" <<'EOF'
import importlib, json, pathlib, sys
table, timed, left, fixed, config, dtype = sys.argv[1:]
if fixed:  # STEPS=N fixes the length instead.
  print(fixed)
  sys.exit()
try:  # The config's own length is the most a run needs.
  path, _, arg = config.partition(':')
  module = importlib.import_module('configs.' + pathlib.Path(path).stem)
  cap = (module.get_config(arg) if arg else module.get_config()).num_train_steps
except Exception:  # pylint: disable=broad-except
  cap = 100_000
def last_json(path):
  try:
    return json.loads(open(path).read().strip().splitlines()[-1])
  except (OSError, IndexError, ValueError):
    return {}
step_s = 1.1 * last_json(timed).get('step_s', 0)  # 10% for logs and syncs.
if not step_s:
  row = last_json(table).get('unet', {})
  rate = row.get('jax_bf16_img_s' if dtype == 'bfloat16' else 'jax_img_s',
                 128 * 100.0)  # No table: assume 100 steps/s.
  step_s = 1.5 * 128 / rate
print(min(cap, max(1000, int((int(left) - 140) / step_s) // 1000 * 1000)))
EOF
)
[[ -n "$steps" ]] || steps=10000
every=$(( steps / 4 / 1000 * 1000 )); (( every >= 1000 )) || every=1000
ckpt=$(( steps / 10 / 1000 * 1000 )); (( ckpt >= 1000 )) || ckpt=1000
echo "[$(($(date +%s) - start))s] training $train_config ${TRAIN_ARGS:-} for $steps steps" \
     "in $dtype (eval every $every, checkpoint every $ckpt)"
work="${WORKDIR:-/tmp/runs/dual}"  # A workdir with checkpoints resumes.
# SIGTERM at the deadline: the trainer saves the step in flight and exits.
timeout $(( $(left) - 30 )) "$PY" launch.py --config="$train_config" ${TRAIN_ARGS:-} \
  --workdir="$work" --config.num_train_steps="$steps" --config.dtype="$dtype" \
  --config.eval.every_steps="$every" --config.checkpoint.every_steps="$ckpt" \
  2>&1 | grep -v -e '^W[0-9]' | tee "$out/train_log.txt"
echo "[$(($(date +%s) - start))s] training ended (exit ${PIPESTATUS[0]})"

rm -rf /tmp/release
if "$PY" launch.py --mode=export --workdir="$work" --output_dir=/tmp/release; then
  tar -C /tmp -czf "$out/release.tgz" release
else  # No export: bring the raw latest checkpoint back in 15 MB parts.
  tar -C "$work" -cz checkpoints | split -b 15M - "$out/checkpoint.tgz."
fi
tar -C "$work" --exclude=checkpoints -czf "$out/run.tgz" .
echo "[$(($(date +%s) - start))s] done"
