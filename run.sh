#!/usr/bin/env bash
# asr_trainer: the end-to-end recipe (Kaldi / icefall style).
#
#   ./run.sh                          # the default profile on the synthetic corpus
#   ./run.sh --profile quick          # ~10 min of training audio: minutes end to end (tests, CI)
#   ./run.sh --profile study          # >= 10 h of training audio for the scaling study (default's dev/test)
#   ./run.sh --stage 2 --stop-stage 2 # just one stage
#   ./run.sh --device cpu --workers "2 4" # no GPU; strategy runs at 2 and at 4 workers
#   ./run.sh --dry-run true           # the plan, its time estimate and the torchrun command lines only
#   ./run.sh --help
#
# Trains on the GPUs when torch sees one (--device auto): one worker per GPU, nccl; else on the CPU, gloo.
#
# Every stage skips work already done (a sentinel per stage) and logs to exp/<tag>/log/.
set -euo pipefail
cd "$(dirname "$0")"

stage=0
stop_stage=100
profile=default        # quick | default | study
corpus=synth           # synth | librispeech | mini_librispeech | kaldi
corpus_dir=            # source directory of a non-synthetic corpus
units=phone            # phone | bpe<N>, e.g. bpe500
nj=$(nproc)            # parallel jobs for data preparation and features
tag=                   # data/<tag>, exp/<tag>; default: <corpus>_<profile>
data_root=data         # where data/<tag> lives
exp_root=exp           # where exp/<tag> lives
epochs=                # training epochs (default: the profile's)
workers=               # worker counts of the strategy runs, e.g. "4" or "4 8" (torchrun processes over all nodes);
                       # default: one per GPU of every node on cuda, 4 a node on cpu
strategies="allreduce gtc bmuf hybrid"   # trained at each worker count after the baseline (allreduce: the dense reference)
device=auto            # auto | cpu | cuda: auto is cuda when torch sees a GPU
gpus=                  # GPUs a node uses, one worker each (default: every visible GPU; 0: none, the CPU)
dtype=fp32             # fp32 | bf16 (bfloat16 autocast, cuda only)
nnodes=1               # nodes of the strategy runs: stage 5 on every node with the same options
node_rank=0            # this node's rank, 0..nnodes-1
rdzv_endpoint=         # HOST:PORT of the rendezvous (a node every other node reaches) when --nnodes > 1
dry_run=false          # true: print the plan, the time estimate and the stage-5 command lines; run nothing

help_message="Usage: $0 [options]
Options:
  --stage N             first stage to run (default $stage)
  --stop-stage M        last stage to run (default $stop_stage)
  --profile P           quick | default | study (default $profile); the synthetic corpus is
                        conf/data/synth-P.yaml
  --corpus NAME         synth | librispeech | mini_librispeech | kaldi (default $corpus)
  --corpus-dir DIR      source directory of librispeech, mini_librispeech or kaldi
                        (kaldi: DIR/{train,dev,test} are Kaldi data directories)
  --units U             phone | bpe<N> (default $units)
  --nj N                parallel jobs (default: number of cores)
  --tag T               name of data/T and exp/T (default <corpus>_<profile>)
  --data-root DIR       parent of the data directory (default $data_root)
  --exp-root DIR        parent of the experiment directory (default $exp_root)
  --epochs N            training epochs of every run (default: the profile's)
  --workers \"N...\"      worker counts of the strategy runs, e.g. \"4\" or \"4 8\", over all nodes (default: one
                        per GPU of every node on cuda, 4 a node on cpu)
  --device D            auto | cpu | cuda (default $device: cuda when torch sees a GPU); choose GPUs with
                        CUDA_VISIBLE_DEVICES
  --gpus N              GPUs a node uses, one worker each (default: every visible GPU; 0: the CPU)
  --dtype T             fp32 | bf16: bfloat16 autocast on cuda (default $dtype)
  --nnodes N            nodes of the strategy runs (default $nnodes); run stages 0-4 and 6-7 once on one node,
                        stage 5 on every node (--stage 5 --stop-stage 5, the same options, a shared file system)
  --node-rank K         this node's rank, 0..N-1 (default $node_rank)
  --rdzv-endpoint H:P   rendezvous of the nodes (torchrun's c10d), the same on every node
  --dry-run B           true: print the plan, the time estimate and the stage-5 commands; run nothing
                        (default $dry_run)
  --strategies \"S...\"  strategies trained at each worker count (default \"$strategies\"),
                        each with the settings of conf/sync/<S>.yaml (the hybrid's group_size auto: groups of 2 at 4 workers)
Stages:
  0 data       corpus -> lhotse manifests (synth: TTS synthesis with noise and reverb)
  1 features   80-dim fbank with lhotse, lilcom storage
  2 lang       lexicon / BPE, 3-gram Kneser-Ney LM, L, G, HLG
  3 train      the 1-worker baseline (exp/<tag>/baseline)
  4 decode     greedy CTC and HLG decoding of the baseline; prints its WERs
  5 train-sync each strategy at each worker count N as torchrun processes, nccl on cuda and gloo on cpu
               (exp/<tag>/<strategy>-w<N>)
  6 decode-sync  HLG and greedy decoding of each strategy; prints WERs beside the baseline's
  7 report     exp/<tag>/report: relative WER increase with CIs, bytes, modelled speed-up
"

. local/parse_options.sh
# Per-profile training and decoding settings (overrides of conf/train.yaml, conf/decode.yaml). The quick
# profile's decoding search starts on coarser grids (one for every row) and tunes on a quarter of its
# 61 dev utterances (16; the default's floor of 100 would be all of them): decoding was most of the test
# suite's end-to-end time. On the quick baseline both subsets chose the same setting.
case "$profile" in
  quick) train_opts=(num_epochs=40 data.max_duration=40 optim.warmup_steps=50 optim.lr=0.003)
         decode_opts=("acoustic_scales=[0.7,1.0,2.0,5.0]" "blank_penalties=[0.0,2.0]" tune_min_utterances=0) ;;
  default|study) train_opts=(num_epochs=15); decode_opts=() ;;
  *) echo "$0: --profile must be quick, default or study" >&2; exit 1 ;;
esac

. local/setup_env.sh
asr_setup_env "$PWD" "$corpus"   # the TTS Debian packages for --corpus synth only

[ -n "$epochs" ] && train_opts+=("num_epochs=$epochs")
tag=${tag:-${corpus}_${profile}}
data=$data_root/$tag
exp=$exp_root/$tag
log_dir=$exp/log
manifests=$data/manifests
fbank=$data/fbank
lang=$data/lang_$units
common=(--lang-dir "$lang" --cuts-dir "$fbank")
data_opts=("data.corpus=$corpus")
. local/stages.sh

# Where and how the runs train (asr_trainer/train/launch_plan.py): sets device (cpu | cuda), backend, gpus,
# workers, the trainer's settings device_opts (device=..., bf16=...) and one torchrun command line launch_<N>
# per worker count N. ASR_FAKE_GPUS=N stands in for the visible GPUs (tests).
plan=$(asr-trainer launch-plan --device "$device" --gpus "$gpus" --workers "$workers" --nnodes "$nnodes" \
  --node-rank "$node_rank" --rdzv-endpoint "$rdzv_endpoint" --dtype "$dtype") || exit 1
eval "$plan"
if [ "$nnodes" -gt 1 ] && { [ "$stage" -ne 5 ] || [ "$stop_stage" -ne 5 ]; }; then
  echo "$0: with --nnodes $nnodes every node runs stage 5 only (--stage 5 --stop-stage 5); run the other" \
    "stages once, on one node with --nnodes 1" >&2
  exit 1
fi

# sync_cmd S N: the stage-5 command line of strategy S at N workers, into the array cmd. Every strategy runs
# with the settings of conf/sync/<S>.yaml, the ones measured best with Adam.
sync_cmd() {
  local -n launch=launch_$2
  cmd=("${launch[@]}" asr-trainer train --config conf/train.yaml --exp-dir "$exp/$1-w$2" "${common[@]}" --resume
       --sync "$1" "${data_opts[@]}" "${train_opts[@]}" "${device_opts[@]}" num_threads=1 progress_bar=false)
}

# estimate: the time of the selected training and decoding not done yet (asr-trainer estimate: a few training
# steps timed on this data with the baseline's settings); nothing when no training is left.
estimate() {
  local s n baseline=0 runs=() decodes=0
  if stage_selected 3 && [ ! -f "$exp/baseline/.done" ]; then baseline=1; fi
  if stage_selected 4 && [ ! -f "$exp/baseline/.decoded" ]; then decodes=1; fi
  for s in $strategies; do
    for n in $workers; do
      if stage_selected 5 && [ ! -f "$exp/$s-w$n/.done" ]; then runs+=("$n"); fi
      if stage_selected 6 && [ ! -f "$exp/$s-w$n/.decoded" ]; then decodes=$((decodes + 1)); fi
    done
  done
  [ "$baseline" = 1 ] || [ ${#runs[@]} -gt 0 ] || return 0
  asr-trainer estimate --config conf/train.yaml "${common[@]}" --baseline-runs "$baseline" \
    --strategy-workers "${runs[*]}" --decodes "$decodes" "${data_opts[@]}" "${train_opts[@]}" "${device_opts[@]}"
}

if [ "$dry_run" = true ]; then
  echo "plan: $launch_plan"
  for s in $strategies; do
    for n in $workers; do sync_cmd "$s" "$n"; echo "stage 5 ($s, $n workers): ${cmd[*]}"; done
  done
  if [ -f "$fbank/.done" ] && [ -f "$lang/.done" ]; then estimate 2>/dev/null || echo "no estimate: it failed"
  else echo "estimate: once the features and the lang dir exist (stage 2)"; fi
  exit 0
elif [ "$dry_run" != false ]; then
  echo "$0: --dry-run must be true or false" >&2; exit 1
fi

mkdir -p "$data" "$log_dir"
log "recipe: corpus=$corpus profile=$profile units=$units stages $stage..$stop_stage"
log "plan: $launch_plan"

if run_stage 0 data "$manifests/.done"; then
  t0=$(date +%s)
  extra=()
  if [ "$corpus" = synth ]; then extra=(--config "conf/data/synth-$profile.yaml")
  else extra=(--corpus-dir "$corpus_dir"); fi
  logged 0 data asr-trainer prepare --corpus "$corpus" --output-dir "$manifests" \
    --num-jobs "$nj" "${extra[@]}"
  finish_stage 0 data "$manifests/.done" "$t0"
fi

if run_stage 1 features "$fbank/.done"; then
  t0=$(date +%s)
  logged 1 features asr-trainer features --corpus "$corpus" --manifest-dir "$manifests" \
    --output-dir "$fbank" --config conf/features.yaml "num_jobs=$nj"
  finish_stage 1 features "$fbank/.done" "$t0"
fi

if run_stage 2 lang "$lang/.done"; then
  t0=$(date +%s)
  logged 2 lang asr-trainer lang --transcripts-from "$manifests/${corpus}_supervisions_train.jsonl.gz" \
    --lm-text "$manifests/${corpus}_lm_text.txt" --units "$units" --out-dir "$lang"
  finish_stage 2 lang "$lang/.done" "$t0"
fi

if stage_selected 3 || stage_selected 5; then  # before the long stages: how long they will take
  if lines=$(estimate 2>>"$log_dir/estimate.log"); then
    while IFS= read -r line; do [ -z "$line" ] || log "$line"; done <<< "$lines"
  else log "no time estimate (see $log_dir/estimate.log)"; fi
fi

if run_stage 3 train "$exp/baseline/.done"; then
  t0=$(date +%s)
  logged 3 train asr-trainer train --config conf/train.yaml --exp-dir "$exp/baseline" "${common[@]}" \
    "${data_opts[@]}" "${train_opts[@]}" "${device_opts[@]}" progress_bar=false
  finish_stage 3 train "$exp/baseline/.done" "$t0"
fi

# decode_exp STAGE NAME EXP_DIR: greedy and HLG decoding of one experiment, then its WERs.
decode_exp() {
  local n=$1 name=$2 dir=$3 method
  for method in greedy hlg; do
    logged "$n" "$name" asr-trainer decode --exp-dir "$dir" --method "$method" "${common[@]}" "corpus=$corpus" \
      "device=$device" "${decode_opts[@]}"
  done
  grep -h . "$dir"/wer-summary-test-*.txt | tee -a "$log_dir/stage$n-$name.log"
}

if run_stage 4 decode "$exp/baseline/.decoded"; then
  t0=$(date +%s)
  decode_exp 4 decode "$exp/baseline"
  finish_stage 4 decode "$exp/baseline/.decoded" "$t0"
fi

for s in $strategies; do
  for n in $workers; do
    dir=$exp/$s-w$n
    if run_stage 5 train-sync "$dir/.done"; then
      t0=$(date +%s)
      sync_cmd "$s" "$n"
      logged 5 train-sync "${cmd[@]}"
      finish_stage 5 train-sync "$dir/.done" "$t0"
    fi
  done
done

for s in $strategies; do
  for n in $workers; do
    dir=$exp/$s-w$n
    if run_stage 6 decode-sync "$dir/.decoded"; then
      t0=$(date +%s)
      decode_exp 6 decode-sync "$dir"
      finish_stage 6 decode-sync "$dir/.decoded" "$t0"
    fi
  done
done

report_stage 7 "$exp"

log "recipe finished stages $stage..$stop_stage"
