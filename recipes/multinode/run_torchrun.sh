#!/usr/bin/env bash
# Launch `asr-trainer train` under torchrun: one node, or one node of several.
#
#   recipes/multinode/run_torchrun.sh --nproc-per-node 4 -- --exp-dir exp/gtc4 --lang-dir data/lang \
#       --cuts-dir data/fbank --sync gtc sync.tau=0.002
#   # node k of 2 (run on each node, same endpoint):
#   recipes/multinode/run_torchrun.sh --nnodes 2 --node-rank k --rdzv-endpoint host0:29400 \
#       --nproc-per-node 8 -- --exp-dir exp/hyb --lang-dir ... --cuts-dir ... --sync hybrid sync.group_size=8 device=cuda
#
# Everything after `--` goes to `asr-trainer train` unchanged. Rank 0 writes checkpoints,
# TensorBoard and sync_stats.json into --exp-dir on its node; every rank writes strategy-<epoch>-rank<r>.pt.
set -euo pipefail

nnodes=1
nproc_per_node=1
node_rank=0
rdzv_endpoint=127.0.0.1:29400
rdzv_id=asr-trainer
python=${PYTHON:-python}

usage() { sed -n '2,13p' "$0"; exit "${1:-0}"; }
while [ $# -gt 0 ]; do
  case "$1" in
    --nnodes) nnodes=$2; shift 2 ;;
    --nproc-per-node) nproc_per_node=$2; shift 2 ;;
    --node-rank) node_rank=$2; shift 2 ;;
    --rdzv-endpoint) rdzv_endpoint=$2; shift 2 ;;
    --rdzv-id) rdzv_id=$2; shift 2 ;;
    --python) python=$2; shift 2 ;;
    -h|--help) usage 0 ;;
    --) shift; break ;;
    *) echo "$0: unknown option $1 (train arguments go after --)" >&2; usage 2 ;;
  esac
done

if [ "$nnodes" -eq 1 ]; then
  rdzv=(--standalone)
else
  rdzv=(--nnodes "$nnodes" --node-rank "$node_rank" --rdzv-backend c10d --rdzv-endpoint "$rdzv_endpoint"
        --rdzv-id "$rdzv_id")
fi
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
exec "$python" -m torch.distributed.run "${rdzv[@]}" --nproc-per-node "$nproc_per_node" \
  -m asr_trainer.bin.main train "$@"
