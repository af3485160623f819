#!/usr/bin/env bash
# Starts, or resumes, a long training run in the background, from a fixed copy
# of the code, at the lowest CPU priority. The same command resumes it.
#
#   bash scripts/long_run.sh COMMIT WORKDIR [CONFIG_ARG] [--config.x=y ...]
#   bash scripts/long_run.sh 1a2b3c4 ~/draw_runs/mnist_attn_paper
#
# COMMIT's code is checked out once as a git worktree in WORKDIR/../code_COMMIT
# so that edits to the checkout never change the running program. If WORKDIR
# has no checkpoints yet and the checkout ships pretrained/<config name>/, the
# run starts from those parameters at their step (a lost machine's campaign
# goes on from its last milestone); once the run has checkpoints of its own,
# they win. Output goes to WORKDIR/train.log.
set -euo pipefail
if (($# < 2)); then
  sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
fi
commit=$1 workdir=$2
shift 2
config_arg=configs/mnist_attn.py
if (($#)) && [[ $1 != --* ]]; then
  config_arg=configs/mnist_attn.py:$1
  shift
fi
repo=$(cd "$(dirname "$0")/.." && pwd)
full=$(git -C "$repo" rev-parse --verify --quiet "$commit^{commit}") || {
  echo "error: $commit is not a commit of $repo" >&2; exit 2; }
short=${full:0:7}
mkdir -p "$workdir"
workdir=$(cd "$workdir" && pwd)
code=$(dirname "$workdir")/code_$short
if [[ ! -f $code/draw_jax/main.py ]]; then
  git -C "$repo" worktree prune
  git -C "$repo" worktree add --detach "$code" "$full" >/dev/null 2>&1
fi
if [[ -f $workdir/COMMIT && $(cat "$workdir/COMMIT") != "$full" ]]; then
  echo "error: $workdir was trained by $(cat "$workdir/COMMIT"), not $full;" \
       "resume it with that commit (or delete $workdir/COMMIT to switch on purpose)" >&2
  exit 2
fi
echo "$full" > "$workdir/COMMIT"
if pgrep -f -- "--workdir=$workdir( |$)" >/dev/null; then
  echo "error: a run on $workdir is already going (pgrep -af -- --workdir=$workdir)" >&2
  exit 2
fi
name=$(basename "${config_arg%%:*}" .py)
init=()
if [[ ! -d $workdir/checkpoints && -d $repo/pretrained/$name/checkpoints ]]; then
  init=(--config.train.init_from="$repo/pretrained/$name"
        --config.train.init_continue=True)
fi
cd "$code"
echo "$(date -u +%FT%TZ) start: $short ${init[*]} $*" >> "$workdir/train.log"
GLIBC_TUNABLES=glibc.malloc.hugetlb=1 DRAW_DATA_DIR=${DRAW_DATA_DIR:-$repo/../shared/data} \
  nohup nice -n 19 python -m draw_jax.main --config="$config_arg" \
  --workdir="$workdir" "${init[@]}" "$@" >> "$workdir/train.log" 2>&1 &
echo "started pid $! from $code; log: $workdir/train.log"
