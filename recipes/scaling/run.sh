#!/usr/bin/env bash
# The paper-scale scaling study on a SIMULATED cluster (DESIGN.md section 1): the 1-worker baseline, then
# dense all-reduce (the reference), GTC, BMUF and the GTC+BMUF hybrid at 32, 64 and 128 workers, the same
# epochs, HLG decoding, and the trade-off report (relative WER increase with CIs, bytes, modelled speed-up).
#
#   recipes/scaling/run.sh                      # study profile, workers "32 64 128"
#   recipes/scaling/run.sh --profile quick      # tiny version (quick corpus, workers "4 8", 2 epochs): minutes
#   recipes/scaling/run.sh --workers "16 32" --strategies "allreduce gtc hybrid" --group-size 4
#   recipes/scaling/run.sh --help
#
# Reuses data/<tag> (and exp/<tag>/baseline) of the main recipe (./run.sh), building them when missing.
# Results: exp/<tag>/<study>/{baseline,<strategy>-w<N>,report}. Every stage skips finished work.
set -euo pipefail
cd "$(dirname "$0")/../.."

stage=0
stop_stage=100
profile=study          # quick | default | study: the main recipe's profile whose data/<tag> is reused;
                       # study (10.6 h of training audio): >= 500 updates per run at 128 workers; quick: the
                       # tiny version (workers "4 8", 2 epochs, a tiny model, cheap decoding; the tests run it)
corpus=synth           # the main recipe's --corpus (with --corpus-dir for a non-synthetic one)
corpus_dir=
units=phone
tag=                   # data/<tag>, exp/<tag>; default <corpus>_<profile>
data_root=data         # where data/<tag> lives (as ./run.sh --data-root)
exp_root=exp           # where exp/<tag> lives (as ./run.sh --exp-root): a study outside the work tree
study=                 # exp/<tag>/<study>; default scaling (scaling_quick with --profile quick)
workers=               # simulated worker counts; default "32 64 128" ("4 8" with --profile quick)
nj=$(nproc)            # parallel jobs of ./run.sh's data stages when data/<tag> is built
strategies="allreduce gtc bmuf hybrid"   # allreduce: the dense reference at the same N (a row counts against it)
group_size=            # hybrid: GTC inside groups of this many workers (8 GPUs a node), BMUF across groups
min_batches=8          # each worker gets at least this many batches per epoch (caps its max_duration)
min_updates=           # each run makes at least this many optimizer steps (caps its max_duration; 0: no cap);
                       # default 500 (0 with --profile quick)
epochs=                # epochs of every run, the baseline's too; default: the fewest giving --min-updates at
                       # the largest N (2 with --profile quick)
seeds="42 43 44"       # the baseline and dense all-reduce at --seed-workers train once per seed (the spread
                       # between training runs); every other run trains with the first seed
seed_workers=          # the N whose dense all-reduce runs take every seed (default: the largest --workers)
bmuf_block=0           # BMUF / hybrid block size; 0: automatic, about --bmuf-syncs block syncs per epoch
bmuf_syncs=4
scale_warmup=true      # scale the baseline's warm-up steps by the ratio of steps per epoch
lr_scaling=sqrt        # none | sqrt | linear: the learning rate scaled for the batch of one optimizer step
                       # against the baseline's (optim.lr_scaling; docs/DESIGN.md, "Learning rate for large
                       # batches"). sqrt: dense all-reduce at 128 one-utterance workers, dev WER 52.05% against
                       # 55.01% with none
gtc_lr_scaling=linear  # the rule of the gtc runs: each worker's own Adam normalises its own, N-times noisier
                       # gradient, so the mean of the sent updates needs the larger rate (one seed each, test
                       # WER against sqrt: +16.5% against +34.8% at 32 workers, +19.6/+20.4% at 64, +28.3/+37.2%
                       # at 128; RESULTS.md). The hybrid's GTC tier keeps --lr-scaling
norm=instance          # the model's conv-block normalisation: instance (each utterance by its own statistics),
                       # layer (LayerNorm) or batch (BatchNorm). With one-utterance worker batches BatchNorm trains
                       # on per-utterance statistics but tests with running averages (dense all-reduce at 128
                       # workers: dev loss 1.03 with them, 0.61 with per-utterance ones; the baseline 0.64), and
                       # LayerNorm trained dense all-reduce at 128 workers far slower (test WER 85.5% against 55%)
train_opts=""          # extra key=value settings of every training run (e.g. "num_threads=2")
# Every strategy run has the settings of conf/sync/<strategy>.yaml (measured best with Adam: classic BMUF
# restarts, local state reset, block momentum 1 - 1/sqrt(K), GTC tau 0.003 adapted towards 1% density), the
# plan's BMUF block and --group-size; these two change them:
bmuf_opts=""           # extra BMUF settings (conf/sync/bmuf.yaml keys) of the bmuf runs and the hybrid's BMUF tier
gtc_opts=""            # extra GTC settings (conf/sync/gtc.yaml keys) of the gtc runs and the hybrid's GTC tier
decode_opts=""         # extra key=value settings of conf/decode.yaml (e.g. "beam=10")
device=auto            # auto | cpu | cuda: where every training and decoding run computes (auto: cuda when torch
                       # sees a GPU); a simulated cluster runs in one process, on one GPU
gpus=                  # GPUs used: 0 (the CPU) or 1 (default: 1 when torch sees a GPU)
dtype=fp32             # fp32 | bf16 (bfloat16 autocast, cuda only)
probe=true             # true: before the long stages, probe each kind of run's speed and print the estimate
probe_steps=3          # steps timed by each probe (after one untimed step)
parallel_runs=1        # training runs at once (stages 2-3), each with nproc/parallel_runs torch threads: 2 on 2
                       # cores trains two one-utterance simulations faster than one run with 2 threads
keep_state=false       # keep strategy-*.pt (resume-only state: N replicas / residuals, GBs at 128) after a run

help_message="Usage: $0 [options]
Options:
  --stage N / --stop-stage M  stages to run (default $stage..$stop_stage)
  --profile P           quick | default | study: whose data/<tag> is reused (default $profile); quick: the tiny
                        version (workers \"4 8\", group size 2, 2 epochs, tiny model, cheap decoding)
  --corpus NAME, --corpus-dir DIR, --units U   as in ./run.sh, for building data/<tag> when missing
  --tag T               data/T and exp/T (default <corpus>_<profile>)
  --data-root DIR       parent of data/<tag> (default $data_root), passed on to ./run.sh
  --exp-root DIR        parent of exp/<tag> (default $exp_root), passed on to ./run.sh
  --study NAME          results in exp/<tag>/NAME (default scaling; scaling_quick with --profile quick)
  --workers \"N...\"      simulated worker counts (default \"32 64 128\"; \"4 8\" with --profile quick)
  --nj N                parallel jobs of ./run.sh's data stages when data/<tag> is built (default: cores)
  --strategies \"S...\"   gtc bmuf hybrid allreduce (default \"$strategies\")
  --group-size G        hybrid group size; must divide every worker count (default 8; 2 with --profile quick)
  --min-batches M       per-worker max_duration <= train audio / (N * M) (default $min_batches)
  --min-updates U       per-worker max_duration <= train audio * epochs / (N * U), so every run makes >= U
                        updates unless the longest cut binds (then plan.py warns) (default 500; 0 with --profile quick)
  --epochs E            epochs of every run, the baseline's too (default: the fewest that give --min-updates
                        updates at the largest N, one-utterance batches where needed; 2 with --profile quick)
  --seeds \"S...\"        seeds of the baseline and of dense all-reduce at --seed-workers (default \"$seeds\")
  --seed-workers N      the worker count whose dense run takes every seed (default: the largest --workers)
  --bmuf-block K        BMUF / hybrid block size (default 0: ceil(steps per epoch / --bmuf-syncs), <= 50)
  --bmuf-syncs B        block syncs per epoch of the automatic block size (default $bmuf_syncs)
  --bmuf-opts "k=v..."  BMUF settings (conf/sync/bmuf.yaml keys, e.g. \"block_momentum=linear nesterov=true\")
                        of the bmuf runs and the hybrid's BMUF tier, over the shipped ones (default none)
  --gtc-opts "k=v..."   GTC settings (conf/sync/gtc.yaml keys, e.g. \"tau=0.001 target_density=null\") of the
                        gtc runs and the hybrid's GTC tier, over the shipped ones (default none)
  --scale-warmup B      true | false (default $scale_warmup)
  --lr-scaling R        none | sqrt | linear: lr times (step batch / baseline batch)^(0, 1/2, 1) (default $lr_scaling)
  --gtc-lr-scaling R    the same rule for the gtc runs alone (default $gtc_lr_scaling)
  --norm N              instance | layer | batch: the conv blocks' normalisation of the study's model (default
                        $norm; BatchNorm's test-time statistics do not match one-utterance training batches)
  --train-opts \"k=v...\" extra settings of every training run; --decode-opts \"k=v...\" of every decoding
  --device D            auto | cpu | cuda: train and decode every run there (default $device: cuda when torch
                        sees a GPU; choose the GPU with CUDA_VISIBLE_DEVICES)
  --gpus N              0 (the CPU) or 1: a simulated cluster runs in one process on one GPU (default: 1 when
                        torch sees a GPU); ./run.sh runs real multi-GPU workers
  --dtype T             fp32 | bf16: bfloat16 autocast on cuda (default $dtype)
  --probe B             true: before training, time --probe-steps steps of each kind of run (asr-trainer train
                        --probe-steps) and print the estimated training time of the study (default $probe)
  --probe-steps K       steps timed by each probe (default $probe_steps)
  --parallel-runs J     train J runs at once (stages 2-3), each with cores/J torch threads (default $parallel_runs)
  --keep-state B        keep the resume-only strategy-*.pt files of finished runs (default $keep_state)
Stages:
  0 data       data/<tag> features and lang (./run.sh --stop-stage 2 when missing)
  1 plan       the epochs; per N: per-worker batch, steps per epoch, scaled warm-up, BMUF block (plan.tsv)
  2 baseline   the study's own 1-worker baseline (exp/<tag>/<study>/baseline), the plan's epochs, one run
               per --seeds value (baseline-seed<S> after the first)
  3 train      every strategy x N, simulated (--simulate-workers N), the baseline's settings and epochs,
               dense all-reduce at --seed-workers once per seed; prints the time per run and the estimate
  4 decode     HLG decoding of the baseline and every run
  5 report     exp/<tag>/<study>/report: asr-trainer report (report.md, results.csv, plots)
"

. local/parse_options.sh

quick_train=()         # the quick profile's training settings (below)
if [ "$profile" = quick ]; then
  workers=${workers:-"4 8"}
  group_size=${group_size:-2}
  study=${study:-scaling_quick}
  min_updates=${min_updates:-0}   # the quick corpus is far too small for 500 updates per run
  epochs=${epochs:-2}
  # Tiny model; decoding with one acoustic scale and a narrow beam.
  quick_train=(data.max_duration=40 optim.warmup_steps=10 optim.lr=0.003 num_threads=2
               model.tdnn_lstm.conv_dim=48 model.tdnn_lstm.num_conv_layers=2 model.tdnn_lstm.lstm_dim=48
               model.tdnn_lstm.num_lstm_layers=1)
  decode_opts="acoustic_scales=[1.0] blank_penalties=[0.0,2.0] beam=8.0 max_active=1000 bootstrap_replications=200 $decode_opts"
fi
workers=${workers:-"32 64 128"}
min_updates=${min_updates:-500}
group_size=${group_size:-8}
asr_one_of --profile "$profile" quick default study
asr_one_of --norm "$norm" instance layer batch
asr_one_of --lr-scaling "$lr_scaling" none sqrt linear
asr_one_of --gtc-lr-scaling "$gtc_lr_scaling" none sqrt linear

. local/setup_env.sh
asr_setup_env "$PWD" "$corpus"

# The device (asr_trainer/train/launch_plan.py, as ./run.sh decides it): sets device (cpu | cuda) and the
# trainer's settings device_opts; the study's workers are simulated, so the plan's worker counts are not taken.
plan=$(asr-trainer launch-plan --device "$device" --gpus "$gpus" --workers 1 --dtype "$dtype") || exit 1
eval "$(grep -E '^(device|device_opts)=' <<< "$plan")"
if [ -n "$gpus" ] && [ "$gpus" -gt 1 ]; then
  echo "$0: --gpus $gpus: a simulated cluster runs in one process on one GPU (use --gpus 1, or ./run.sh for" \
    "real multi-GPU workers)" >&2
  exit 1
fi

tag=${tag:-${corpus}_${profile}}
study=${study:-scaling}
data=$data_root/$tag
fbank=$data/fbank
lang=$data/lang_$units
dir=$exp_root/$tag/$study
log_dir=$dir/log
mkdir -p "$log_dir"
. local/stages.sh
log "scaling study: tag=$tag study=$dir workers=\"$workers\" strategies=\"$strategies\" device=$device" \
  "stages $stage..$stop_stage"

main_opts=(--profile "$profile" --corpus "$corpus" --units "$units" --tag "$tag" --data-root "$data_root"
           --exp-root "$exp_root")
main_opts+=(--nj "$nj" --device "$device")
[ -n "$corpus_dir" ] && main_opts+=(--corpus-dir "$corpus_dir")
common=(--lang-dir "$lang" --cuts-dir "$fbank")
read -r -a extra_train <<< "$train_opts ${device_opts[*]}"
read -r -a extra_decode <<< "$decode_opts device=$device"

# ------------------------------------------------------------------ 0: data of the main recipe
if run_stage 0 data "$dir/.data-done"; then
  t0=$(date +%s)
  if [ -f "$fbank/.done" ] && [ -f "$lang/.done" ]; then
    log "stage 0 (data): reusing $fbank and $lang"
  else
    logged 0 data ./run.sh --stop-stage 2 "${main_opts[@]}"
  fi
  finish_stage 0 data "$dir/.data-done" "$t0"
fi

# ------------------------------------------------------------------ 1: the plan (cheap; always redone)
# The study's training settings (its baseline's): conf/train.yaml, the quick profile's, then --train-opts.
# --parallel-runs J: each run takes its share of the cores (before --train-opts, which may override it)
[ "$parallel_runs" -ge 1 ] 2>/dev/null || { echo "$0: --parallel-runs must be >= 1" >&2; exit 1; }
threads_each=$(( $(nproc) / parallel_runs )); [ "$threads_each" -ge 1 ] || threads_each=1
pool_opts=(); [ "$parallel_runs" -gt 1 ] && pool_opts=("num_threads=$threads_each")
study_opts=("data.corpus=$corpus" "${quick_train[@]}" progress_bar=false "model.tdnn_lstm.norm=$norm"
            "model.tdnn.norm=$norm" "${pool_opts[@]}" "${extra_train[@]}")
plan=$dir/plan.tsv
base=$dir/baseline
# baseline_setting KEY: a setting of the first seed's baseline train.yaml (written when its training starts)
baseline_setting() {
  python -c "import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))$1)" "$base/train.yaml"
}

# reference_batch: the audio of one baseline step in seconds (data.max_duration), what optim.lr was set for:
# the study baseline's own setting once it has started, else the study's training settings (which that
# baseline, still queued, will train with)
reference_batch() {
  if [ -f "$base/train.yaml" ]; then baseline_setting "['data']['max_duration']"; return; fi
  python -c "import sys; from asr_trainer.config import load_config; from asr_trainer.train.config \
import TrainConfig; opts = [o for o in sys.argv[1:] if not o.startswith('model.')]; \
print(load_config(TrainConfig, 'conf/train.yaml', opts).data.max_duration)" "${study_opts[@]}"
}

# check_epochs PLAN: a part of the study (a subset of --workers) plans its epochs from its own largest N; it
# must train as many as the study's baseline did, or its rows compare unequal training
check_epochs() {
  local planned trained
  [ -f "$base/train.yaml" ] || return 0
  planned=$(head -n 1 "$1" | cut -f 7)
  trained=$(baseline_setting "['num_epochs']")
  [ "$trained" = "$planned" ] && return 0
  log "the study's baseline ($base) trained $trained epochs, this plan has $planned (from the largest of" \
      "--workers \"$workers\"): pass --epochs $trained, or use another --study"
  return 1
}

if [ 1 -ge "$stage" ] && [ 1 -le "$stop_stage" ]; then
  log "stage 1 (plan): epochs, per-worker batches, steps, warm-up and BMUF blocks -> $plan"
  plan_opts=(--cuts "$fbank/${corpus}_cuts_train.jsonl.gz" --train-config conf/train.yaml --workers "$workers"
             --min-batches "$min_batches" --min-updates "$min_updates" --epochs "${epochs:-0}"
             --bmuf-syncs "$bmuf_syncs" --bmuf-block "$bmuf_block" --group-size "$group_size")
  [ "$scale_warmup" = true ] || plan_opts+=(--no-scale-warmup)
  python recipes/scaling/local/plan.py "${plan_opts[@]}" "${study_opts[@]}" > "$plan.tmp.$$" \
    2> >(tee -a "$log_dir/stage1-plan.log" >&2)
  check_epochs "$plan.tmp.$$" || { rm -f "$plan.tmp.$$"; exit 1; }
  mv "$plan.tmp.$$" "$plan"
fi
[ -f "$plan" ] || { log "no $plan: run stage 1"; exit 1; }
study_epochs=$(head -n 1 "$plan" | cut -f 7)
seed_workers=${seed_workers:-$(cut -f 1 "$plan" | sort -n | tail -n 1)}
read -r -a seed_list <<< "$seeds"
[ "${#seed_list[@]}" -ge 1 ] || { echo "$0: --seeds is empty" >&2; exit 1; }

# seeded NAME SEED: the run name of a seed (the first seed's run keeps NAME)
seeded() { if [ "$2" = "${seed_list[0]}" ]; then echo "$1"; else echo "$1-seed$2"; fi; }

# prefixed PREFIX "k=v ...": each k=v as PREFIXk=v (the --bmuf-opts / --gtc-opts of one tier)
prefixed() {
  local kv
  for kv in $2; do echo "$1$kv"; done
}

# sync_opts STRATEGY BLOCK: the --sync options of one run: conf/sync/<STRATEGY>.yaml's settings, the plan's
# BMUF block and group size, then --bmuf-opts / --gtc-opts
sync_opts() {
  case $1 in
    gtc) echo --sync gtc $(prefixed sync. "$gtc_opts") ;;
    bmuf) echo --sync bmuf "sync.block_size=$2" $(prefixed sync. "$bmuf_opts") ;;
    hybrid) echo --sync hybrid "sync.group_size=$group_size" "sync.bmuf.block_size=$2" \
              $(prefixed sync.gtc. "$gtc_opts") $(prefixed sync.bmuf. "$bmuf_opts") ;;
    allreduce) echo --sync allreduce ;;
    *) echo "$0: unknown strategy $1 (gtc bmuf hybrid allreduce)" >&2; return 1 ;;
  esac
}

cells() {  # every "name strategy N seed max_duration max_cuts steps warmup block" of the plan, for N in --workers
  local s n d cuts steps warmup block seed seeds_here
  for s in $strategies; do
    while IFS=$'\t' read -r n d cuts steps warmup block _; do
      [[ " $workers " == *" $n "* ]] || continue  # a plan of another part (stage 1 not run this time)
      seeds_here=${seed_list[0]}
      [ "$s" = allreduce ] && [ "$n" = "$seed_workers" ] && seeds_here=${seed_list[*]}
      for seed in $seeds_here; do
        echo "$(seeded "$s-w$n" "$seed") $s $n $seed $d $cuts $steps $warmup $block"
      done
    done < "$plan"
  done
}

# run_pool FN ITEM...: "FN ITEM" for every ITEM, --parallel-runs at a time; fails when any failed (the others
# still finish, so no finished work is lost)
run_pool() {
  local fn=$1 item failed=0; shift
  for item in "$@"; do
    while [ "$(jobs -rp | wc -l)" -ge "$parallel_runs" ]; do wait -n || failed=1; done
    "$fn" "$item" &
  done
  while [ "$(jobs -rp | wc -l)" -gt 0 ]; do wait -n || failed=1; done
  return "$failed"
}

# baseline_cmd SEED: sets cmd, the training command of the study's baseline of one seed
baseline_cmd() {
  cmd=(asr-trainer train --config conf/train.yaml --exp-dir "$dir/$(seeded baseline "$1")" "${common[@]}" --resume
       "${study_opts[@]}" "num_epochs=$study_epochs" "seed=$1")
}

# train_baseline SEED: stage 2, the study's 1-worker baseline of one seed
train_baseline() {
  local seed=$1 run_dir name t0 cmd
  name=$(seeded baseline "$seed"); run_dir=$dir/$name
  t0=$(date +%s)
  log "stage 2 (train): $name, seed $seed, $study_epochs epochs; log in $log_dir/stage2-train-$name.log"
  baseline_cmd "$seed"
  logged 2 "train-$name" "${cmd[@]}" || return 1
  [ "$keep_state" = true ] || rm -f "$run_dir"/strategy-*.pt
  finish_stage 2 "train-$name" "$run_dir/.done" "$t0"
  echo -e "$name\t$(( $(date +%s) - t0 ))" >> "$dir/train-seconds.tsv"
}

# cell_lr_scaling STRATEGY: the learning-rate rule of the strategy's runs
cell_lr_scaling() {
  if [ "$1" = gtc ]; then echo "$gtc_lr_scaling"; else echo "$lr_scaling"; fi
}

# cell_cmd "NAME STRATEGY N SEED MAX_DURATION MAX_CUTS STEPS WARMUP BLOCK" REFERENCE: sets cmd, the training
# command of one simulated run of the plan (the baseline's train.yaml and model.yaml, or the study's settings
# where no baseline has started, as in a part by --stage 3 on a new machine; the plan's epochs, the cell's
# settings)
cell_cmd() {
  local name s n seed d cuts steps warmup block reference=$2
  read -r name s n seed d cuts steps warmup block <<< "$1"
  # shellcheck disable=SC2046
  # --resume: a run dir without .done is this stage's own, interrupted; it goes on from its last checkpoint
  local config=$base/train.yaml settings=("model_config=$base/model.yaml")
  if [ ! -f "$config" ]; then config=conf/train.yaml; settings=("${study_opts[@]}"); fi  # a probe before stage 2
  cmd=(asr-trainer train --config "$config" --exp-dir "$dir/$name" "${common[@]}"
       --resume --simulate-workers "$n" $(sync_opts "$s" "$block") "${settings[@]}" "num_epochs=$study_epochs"
       "data.max_duration=$d" "data.max_cuts=$cuts" "data.valid_max_duration=$reference" "seed=$seed"
       "optim.warmup_steps=$warmup" "optim.lr_scaling=$(cell_lr_scaling "$s")"
       "optim.reference_batch=$reference" checkpoint.keep_last=2 log_every=1
       progress_bar=false "${pool_opts[@]}" "${extra_train[@]}")
}

# train_cell CELL: stage 3, one simulated run of the plan
train_cell() {
  local name s n seed d cuts steps warmup block t0 batch reference cmd
  read -r name s n seed d cuts steps warmup block <<< "$1"
  reference=$(reference_batch)
  t0=$(date +%s)
  batch="$d s"; [ "$cuts" = 1 ] && batch="1 utterance"
  log "stage 3 (train): $name: $s at $n simulated workers, seed $seed: $batch a worker batch," \
      "~$steps steps/epoch, $study_epochs epochs, warm-up $warmup; log in $log_dir/stage3-train-$name.log"
  cell_cmd "$1" "$reference"
  logged 3 "train-$name" "${cmd[@]}"
  [ "$keep_state" = true ] || rm -f "$dir/$name"/strategy-*.pt
  finish_stage 3 "train-$name" "$dir/$name/.done" "$t0"
  echo -e "$name\t$(( $(date +%s) - t0 ))" >> "$dir/train-seconds.tsv"
  estimate_left
}

# estimate_left: the time the stage-3 runs not done yet take, at the mean wall time of those done so far
estimate_left() {
  local item name left=0 secs=0 done=0
  for item in "${queue[@]}"; do
    read -r name _ <<< "$item"
    case $name in baseline) ;; *) [ -f "$dir/$name/.done" ] || left=$((left + 1)) ;; esac
  done
  while IFS=$'\t' read -r name s; do
    case $name in baseline*) ;; *) secs=$((secs + s)); done=$((done + 1)) ;; esac
  done < "$dir/train-seconds.tsv"
  [ "$done" -gt 0 ] && [ "$left" -gt 0 ] || return 0
  log "measured $((secs / done)) s per simulated run (mean of $done); the $left left, $parallel_runs at once:" \
      "about $((secs / done * left / parallel_runs / 60)) min (plus decoding)"
}

# estimate_queue: before the long stages, the speed of every kind of run still to train (the baselines; each
# strategy x N) from a --probe-steps probe of its own settings, and the training time of the whole queue
estimate_queue() {
  local item name s n key cmd probed total=0 runs=0 reference
  declare -A epoch_s=()
  reference=$(reference_batch) || return 0
  for item in "${queue[@]}"; do
    read -r name s n _ <<< "$item"
    if [ "$name" = baseline ]; then
      key=baseline; stage_selected 2 && [ ! -f "$dir/$(seeded baseline "$s")/.done" ] || continue
      baseline_cmd "$s"
    else
      key="$s at $n workers"; stage_selected 3 && [ ! -f "$dir/$name/.done" ] || continue
      cell_cmd "$item" "$reference"
    fi
    if [ -z "${epoch_s[$key]:-}" ]; then
      # --probe-steps right after "asr-trainer train": the key=value settings end the command
      probed=$("${cmd[@]:0:2}" --probe-steps "$probe_steps" "${cmd[@]:2}" 2>>"$log_dir/probe.log" | grep '^probe:') ||
        { log "probe of $key failed (see $log_dir/probe.log): no estimate"; return 0; }
      epoch_s[$key]=$(grep -oE '[0-9]+ s$' <<< "$probed" | cut -d' ' -f1)
      log "probe, $key: ${probed#probe: }"
    fi
    total=$((total + epoch_s[$key] * study_epochs)); runs=$((runs + 1))
  done
  [ "$runs" -gt 0 ] || return 0
  log "estimate: $runs run(s) to train, $study_epochs epochs each, $parallel_runs at once: about" \
      "$((total / parallel_runs / 60)) min of training (at the probed speeds; runs at once slow each other, so" \
      "more), plus validation and decoding"
}

# decode_run NAME: stage 4, HLG decoding of one trained run
decode_run() {
  local name=$1 t0
  run_stage 4 "decode-$name" "$dir/$name/.decoded-hlg" || return 0
  [ -f "$dir/$name/.done" ] || { log "stage 4 (decode): $dir/$name is not trained (stages 2-3)"; return 1; }
  t0=$(date +%s)
  logged 4 "decode-$name" asr-trainer decode --exp-dir "$dir/$name" --method hlg "${common[@]}" "corpus=$corpus" \
    "${extra_decode[@]}"
  grep -h . "$dir/$name/wer-summary-test-hlg.txt" | tee -a "$log_dir/stage4-decode.log"
  finish_stage 4 "decode-$name" "$dir/$name/.decoded-hlg" "$t0"
}

# run_item "baseline SEED" | CELL: train it (stage 2 or 3, when selected and not done), then decode it (stage 4,
# when selected) beside the next run's training
run_item() {
  local name
  case $1 in
    baseline\ *)
      name=$(seeded baseline "${1#baseline }")
      if stage_selected 2 && [ ! -f "$dir/$name/.done" ]; then train_baseline "${1#baseline }"; fi ;;
    *)
      read -r name _ <<< "$1"
      if stage_selected 3 && [ ! -f "$dir/$name/.done" ]; then train_cell "$1"; fi ;;
  esac
  if stage_selected 4; then decode_run "$name"; fi
}

# ------------------------------------------------------------------ 2-4: train and decode every run
# One queue, --parallel-runs at a time, each run with its share of the cores: the baselines (one per seed),
# then the plan's cells; each run is decoded as soon as it is trained. A run's output goes to its own log
# (log/stage<N>-{train,decode}-<name>.log), its training wall time to train-seconds.tsv.
# enqueue NAME ITEM TRAIN_STAGE: queue a run to train (its training stage selected, not done) and/or to decode
# (stage 4, trained, not decoded). An untrained run whose training stage is not selected belongs to another
# part of the study (a part by --stage 3 leaves the baselines alone); with neither training stage selected it
# cannot be decoded, an error.
enqueue() {
  local name=$1 item=$2 train_stage=$3
  if stage_selected "$train_stage" && [ ! -f "$dir/$name/.done" ]; then queue+=("$item"); return 0; fi
  stage_selected 4 && [ ! -f "$dir/$name/.decoded-hlg" ] || return 0
  if [ -f "$dir/$name/.done" ]; then queue+=("$item")
  elif stage_selected 2 || stage_selected 3; then
    log "stage 4 (decode): $name is not trained and stage $train_stage is not selected: left to the part that trains it"
  else log "stage 4 (decode): $dir/$name is not trained (stages 2-3)"; exit 1; fi
}
queue=()
for seed in "${seed_list[@]}"; do enqueue "$(seeded baseline "$seed")" "baseline $seed" 2; done
while read -r name rest; do enqueue "$name" "$name $rest" 3; done < <(cells)
log "stages 2-4: ${#queue[@]} run(s) to train and/or decode, $parallel_runs at once, $threads_each thread(s) each"
[ "$probe" = true ] && estimate_queue
run_pool run_item "${queue[@]}"

# ------------------------------------------------------------------ 5: report
report_stage 5 "$dir"

log "scaling study finished stages $stage..$stop_stage"
