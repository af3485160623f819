#!/usr/bin/env bash
# Starts, or resumes, a long training run in the background, from a fixed copy
# of the code, at the lowest CPU priority. The same command resumes it.
#
#   bash scripts/long_run.sh COMMIT WORKDIR CONFIG[:ARGS] [--milestone=DIR] [--config.x=y ...]
#   bash scripts/long_run.sh 1a2b3c4 ~/draw_runs/mnist_noattn configs/mnist_noattn.py \
#       --milestone=pretrained/mnist_noattn
#
# COMMIT's code is checked out once as a git worktree in WORKDIR/../code_COMMIT
# so that edits to the checkout never change the running program. With
# --milestone, a WORKDIR without checkpoints starts from the parameters in DIR
# (a pretrained/ folder of this checkout) at their step: a lost machine's run
# goes on from its last milestone; once the run has checkpoints of its own,
# they win. Prefix the command with `taskset -c N` to pin it to a core. Output
# goes to WORKDIR/train.log.
set -euo pipefail
if (($# < 3)); then
  sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
fi
commit=$1 workdir=$2 config=$3
shift 3
milestone=
if (($#)) && [[ $1 == --milestone=* ]]; then
  milestone=${1#--milestone=}
  shift
fi
repo=$(cd "$(dirname "$0")/.." && pwd)
full=$(git -C "$repo" rev-parse --verify --quiet "$commit^{commit}") || {
  echo "error: $commit is not a commit of $repo" >&2; exit 2; }
[[ -f $repo/${config%%:*} ]] || {
  echo "error: no config file ${config%%:*} in $repo" >&2; exit 2; }
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
init=()
if [[ -n $milestone && ! -d $workdir/checkpoints ]]; then
  [[ -d $repo/$milestone/checkpoints ]] || {
    echo "error: --milestone=$milestone holds no checkpoints in $repo" >&2; exit 2; }
  init=(--config.train.init_from="$repo/$milestone"
        --config.train.init_continue=True)
fi
cd "$code"
echo "$(date -u +%FT%TZ) start: $short $config ${init[*]} $*" >> "$workdir/train.log"
GLIBC_TUNABLES=glibc.malloc.hugetlb=1 DRAW_DATA_DIR=${DRAW_DATA_DIR:-$repo/../shared/data} \
  nohup nice -n 19 python -m draw_jax.main --config="$config" \
  --workdir="$workdir" "${init[@]}" "$@" >> "$workdir/train.log" 2>&1 &
echo "started pid $! from $code; log: $workdir/train.log"
