#!/usr/bin/env bash
# Every GPU check of the project in one run: the CUDA tests, the GPU benchmarks, and the simulated
# 32/64/128-worker scaling grid (quick variant) on one GPU. Each part has its own time limit and
# writes its output to OUT_DIR (default gpu-out/), so one slow part never hides the others.
#
#   benchmarks/gpu_checks.sh OUT_DIR [DATA_DIR]
#   GPU_PARTS="tests gtc_profile" benchmarks/gpu_checks.sh OUT_DIR   # only the parts named
#
# Run from the repository root on a machine with a CUDA GPU whose python3 has a CUDA torch.
# Python packages that machine lacks may be carried as wheels in .whl/ (installed into /tmp/site,
# no network needed). DATA_DIR: a data/<tag> of the quick profile (fbank/ and lang_phone/ with their
# .done sentinels, built by `./run.sh --profile quick --stop-stage 2`); without it the study is skipped.
set -uo pipefail
out=${1:-gpu-out}
data=${2:-}
mkdir -p "$out"
if compgen -G ".whl/*.whl" > /dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    > "$out/pip.txt" 2>&1 || echo "wheel install failed (see pip.txt)"
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} ASR_SETUP=none PYTHONUNBUFFERED=1
mkdir -p /tmp/bin  # the console script, without installing the package
printf '#!/bin/sh\nexec python3 -m asr_trainer.bin.main "$@"\n' > /tmp/bin/asr-trainer
command -v python > /dev/null || ln -sf "$(command -v python3)" /tmp/bin/python  # the recipes call python
command -v torchrun > /dev/null || printf '#!/bin/sh\nexec python3 -m torch.distributed.run "$@"\n' > /tmp/bin/torchrun
chmod +x /tmp/bin/asr-trainer /tmp/bin/torchrun 2>/dev/null
export PATH=/tmp/bin:$PATH

part() {  # part NAME SECONDS COMMAND...: run with a time limit, output to OUT/NAME.txt and the terminal
  local name=$1 limit=$2 start=$SECONDS
  shift 2
  [[ -z ${GPU_PARTS:-} || " $GPU_PARTS " == *" $name "* ]] || return 0
  echo "=== $name (limit ${limit}s)"
  timeout "$limit" "$@" > "$out/$name.txt" 2>&1
  local rc=$?
  tail -n 25 "$out/$name.txt"
  echo "=== $name: exit $rc after $((SECONDS - start)) s"
}

study() {  # the quick study at 32/64/128 workers: baseline first, then one recipe per strategy in parallel
  local opts=(--profile quick --device cuda --workers "32 64 128" --group-size 8) s
  recipes/scaling/run.sh "${opts[@]}" --strategies "" --stop-stage 4 || return 1  # data, baseline, plan, decoding
  for s in allreduce gtc bmuf hybrid; do
    recipes/scaling/run.sh "${opts[@]}" --strategies "$s" --stage 3 --stop-stage 4 > "$out/study-$s.log" 2>&1 &
  done
  wait
  recipes/scaling/run.sh "${opts[@]}" --strategies "allreduce gtc bmuf hybrid" --stage 5
}

launch() {  # the recipes' device decision here (auto: cuda, nccl), then a real run from its torchrun line and
            # the time estimate on the GPU, on a tone corpus
  local tmp n
  tmp=$(mktemp -d)
  asr-trainer launch-plan --format text && eval "$(asr-trainer launch-plan --dtype bf16)" || return 1
  [ "$device" = cuda ] && [ "$backend" = nccl ] || { echo "expected cuda and nccl, got $device $backend"; return 1; }
  python3 -c "import sys, pathlib; from asr_trainer.testing.tones import write_tone_corpus as w; \
w(pathlib.Path(sys.argv[1]), {'train': 64, 'dev': 4})" "$tmp" > /dev/null 2>&1 || return 1
  n=${workers%% *}
  local -n torchrun_line=launch_$n
  "${torchrun_line[@]}" asr-trainer train --exp-dir "$tmp/exp" --lang-dir "$tmp/lang" --cuts-dir "$tmp/cuts" \
    --sync allreduce "${device_opts[@]}" num_epochs=2 data.max_duration=10 progress_bar=false || return 1
  grep "epoch 2/2" "$tmp/exp/log/log-train.txt" || return 1
  asr-trainer estimate --lang-dir "$tmp/lang" --cuts-dir "$tmp/cuts" --strategy-workers "$n" \
    "${device_opts[@]}" data.max_duration=10 2> /dev/null
}

part env 20 bash -c 'nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; python3 -c "import torch; \
print(torch.__version__, torch.version.cuda, torch.cuda.get_device_name())"; nproc'
part tests 90 python3 -m pytest -q -ra -p no:cacheprovider tests/test_cuda.py tests/test_gtc_torch.py tests/test_gtc_triton.py
part gtc_codec 30 python3 benchmarks/gtc_codec.py --device cuda --sizes 1e6 1e7 1e8 \
  --densities 0.001 0.01 0.1 --repeats 10 --no-bits
part gtc_profile 120 python3 benchmarks/gtc_gpu_profile.py --numel 1e8 --density 0.01 --repeats 10
part train_throughput 25 python3 benchmarks/train_throughput.py --device cuda --cuts 120
part train_throughput_bf16 25 python3 benchmarks/train_throughput.py --device cuda --bf16 --cuts 120
part step_time 20 python3 benchmarks/step_time.py --device cuda --batch-seconds 2.3 5 10 30 60
export -f launch
part launch 90 bash -c launch
part sim_epoch 70 python3 benchmarks/sim_epoch.py --device cuda --cuts 384 --repeats 1 --workers 1 128
if [ -n "$data" ] && [[ -z ${GPU_PARTS:-} || " $GPU_PARTS " == *" study "* ]]; then
  [ -e data/synth_quick ] || { mkdir -p data && ln -s "$(cd "$data" && pwd)" data/synth_quick; }
  export -f study; export out
  part study 290 bash -c study
  cp exp/synth_quick/scaling_quick/report/report.md "$out/study_report.md" 2>/dev/null
  cp exp/synth_quick/scaling_quick/train-seconds.tsv "$out/study_train_seconds.tsv" 2>/dev/null
fi
