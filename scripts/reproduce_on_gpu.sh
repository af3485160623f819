#!/usr/bin/env bash
# mnist_attn trained to convergence on one GPU in about 8 minutes, in one call.
#
#   bash scripts/reproduce_on_gpu.sh --prepare        # here, once: wheels and data into the checkout
#   bash scripts/reproduce_on_gpu.sh OUT [MINUTES]    # there (MINUTES of training, default 8)
#   bash scripts/reproduce_on_gpu.sh --smoke OUT      # CI: the same path on the CPU, at smoke size
#
# The GPU machine has jax, flax, optax, orbax-checkpoint, absl-py and imageio
# but no network: --prepare puts ml-collections' and tensorboardX's wheels in
# .whl/ and binarized MNIST in .data/ (both git-ignored; carry both). There the
# project runs from the checkout on that machine's own jax (no install).
#
# The recipe, adapted to a GPU: batches of 512 instead of 128 (a step costs
# about the same there, so 4x the images per second), the peak learning rate
# 2e-3 x sqrt(4) = 4e-3 (Adam's square-root rule for 4x the batch), warm-up
# 500 steps, the halving at epoch 10 (step 975 of 512, not the CPU's step
# 3,900 of 128), the same cosine decay to 1%, over as many epochs as the measured
# speed fits into MINUTES; the moving average's decay 0.998, so that it spans
# as many images as the CPU recipe's 0.9995 at batch 128. Then the evaluation
# (the -ELBO on all valid and test images; the IW bound, K = 100, on 1,000
# strided test images), the parameters in the pretrained/ layout and a sample
# grid.
#
# Into OUT (at most 8 files): benchmark.json (images/s, compile time),
# timing.json (images/s, epoch time, compile time, epochs), eval.json,
# pretrained_mnist_attn.tar.gz (pretrained/mnist_attn/), samples.png, log.txt.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"

if [[ ${1:-} == --prepare ]]; then
  mkdir -p .whl .data/binarized_mnist
  python3 -m pip download --quiet --no-deps --only-binary=:all: \
    --python-version 3.12 --implementation cp --platform manylinux2014_x86_64 \
    -d .whl ml-collections==1.1.0 tensorboardX==2.6.5
  cp "${DRAW_DATA_DIR:-$repo/../shared/data}/binarized_mnist/binarized_mnist.npz" \
    .data/binarized_mnist/
  du -sh .whl .data
  exit 0
fi

smoke=0
if [[ ${1:-} == --smoke ]]; then
  smoke=1
  shift
fi
out=${1:-${OUT:-}}
minutes=${2:-8}
if [[ -z $out ]]; then
  sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
fi
mkdir -p "$out"
out=$(cd "$out" && pwd)
log=$out/log.txt

if ! python3 -c 'import ml_collections, tensorboardX' 2>/dev/null; then
  [[ -d .whl ]] || { echo "error: no .whl/: run --prepare here first" >&2; exit 2; }
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
    --upgrade --target /tmp/draw_site .whl/*.whl
  export PYTHONPATH=/tmp/draw_site
fi
export PYTHONPATH=$repo${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
if [[ -z ${DRAW_DATA_DIR:-} ]]; then
  [[ -d .data ]] || { echo "error: no DRAW_DATA_DIR and no .data/: run --prepare here first" >&2; exit 2; }
  export DRAW_DATA_DIR=$repo/.data
fi

if ((smoke)); then
  config=configs/smoke.py
  recipe="batch=16,lr=1e-3,train.warmup_steps=2,train.lr_schedule='cosine',train.lr_end_fraction=0.01"
  bench=(--steps 2 --warmup 1 --iw_samples 4 --eval_examples 20 --iw_examples 2
         --sample_count 4 --repeats 1 --matmul_repeats 2)
  limit=(--config.data.max_examples=64)
  drops=()
  iw=(--config.eval.iw_samples=4 --config.eval.iw_examples=20)
  max_epochs=2
  steps_per_epoch=4  # 64 examples in batches of 16
  budget=0  # the two epochs whatever the machine's load
else
  config=configs/mnist_attn.py
  recipe="batch=512,lr=4e-3,train.warmup_steps=500,train.ema_decay=0.998"
  bench=(--steps 30 --warmup 5 --eval_examples 1000 --iw_examples 10
         --sample_count 1000)
  limit=()
  drops=("--config.train.lr_drops=((975, 0.5),)")  # epoch 10, as on the CPU
  iw=(--config.eval.iw_samples=100 --config.eval.iw_examples=1000)
  max_epochs=300
  steps_per_epoch=97  # 50,000 in batches of 512
  budget=$(python3 -c "print($minutes * 1.1)")  # a safety net past the fit
fi
workdir=/tmp/draw_gpu_run
rm -rf "$workdir"

echo "== benchmark ($(date -u +%T))" | tee -a "$log"
python3 scripts/benchmark.py --config="$config:$recipe" "${limit[@]}" "${drops[@]}" "${bench[@]}" \
  2>>"$log" | tee -a "$log" | tail -n 1 > "$out/benchmark.json"

epochs=$(python3 - "$out/benchmark.json" "$minutes" "$max_epochs" "$smoke" <<'PY'
import json, sys
result = json.load(open(sys.argv[1]))
minutes, max_epochs, smoke = float(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == '1'
# Evaluations and pictures take about a tenth of the time.
examples = 64 if smoke else 50_000
fit = int(0.9 * minutes * 60 * result['train_images_per_sec'] / examples)
print(max(1, min(max_epochs, fit)))
PY
)
echo "== training $epochs epochs ($(date -u +%T))" | tee -a "$log"
started=$(date +%s)
every=$(( epochs > 10 ? epochs / 10 : 1 ))  # about ten evaluations
python3 -m draw_jax.main --config="$config:$recipe,epochs=$epochs" "${limit[@]}" "${drops[@]}" \
  --config.train.eval_every=$(( every * steps_per_epoch )) \
  --config.train.checkpoint_every=100000 --config.train.checkpoint_every_minutes=0 \
  --config.train.time_budget_minutes=$budget \
  --config.train.eval_test=False "${iw[@]}" \
  --config.sample.outputs=grid --workdir="$workdir" >>"$log" 2>&1
trained=$(( $(date +%s) - started ))

echo "== export and samples ($(date -u +%T))" | tee -a "$log"
step=$(python3 -c "import json,glob; print(max(json.load(open(p))['step'] for p in glob.glob('$workdir/eval_[0-9]*.json')))")
cp "$workdir/eval_$step.json" "$out/eval.json"
python3 scripts/export_pretrained.py --config="$config:$recipe,epochs=$epochs" "${limit[@]}" "${drops[@]}" \
  --workdir="$workdir" --out=/tmp/draw_gpu_pretrained/mnist_attn \
  --commit="$(git rev-parse HEAD 2>/dev/null || echo unknown)" >>"$log" 2>&1
tar -czf "$out/pretrained_mnist_attn.tar.gz" -C /tmp/draw_gpu_pretrained mnist_attn
cp "$workdir/samples/step_$step/samples.png" "$out/samples.png"

python3 - "$out" "$workdir" "$epochs" "$trained" <<'PY'
import json, os, sys
out, workdir, epochs, trained = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
bench = json.load(open(os.path.join(out, 'benchmark.json')))
rows = [json.loads(line) for line in open(os.path.join(workdir, 'metrics.jsonl'))]
speeds = [row['images_per_sec'] for row in rows if 'images_per_sec' in row]
config = json.load(open(os.path.join(workdir, 'config.json')))
train_size = 64 if config['data']['max_examples'] else 50_000
images_per_sec = sorted(speeds)[len(speeds) // 2] if speeds else None
json.dump(dict(
    benchmark_train_images_per_sec=bench['train_images_per_sec'],
    training_images_per_sec_median=images_per_sec,
    epoch_seconds=train_size / images_per_sec if images_per_sec else None,
    compile_sec=bench['compile_sec'], epochs=epochs,
    training_wall_seconds=trained, batch=config['train']['batch_size'],
    learning_rate=config['train']['learning_rate'],
    device_kind=bench['device_kind'], backend=bench['backend']),
    open(os.path.join(out, 'timing.json'), 'w'), indent=2)
PY
echo "== done ($(date -u +%T)): $(ls "$out" | tr '\n' ' ')" | tee -a "$log"
