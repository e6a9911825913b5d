#!/usr/bin/env bash
# asr_trainer: the end-to-end recipe (Kaldi / icefall style).
#
#   ./run.sh                          # the default profile on the synthetic corpus
#   ./run.sh --profile quick          # ~10 min of training audio: minutes end to end (tests, CI)
#   ./run.sh --profile study          # >= 10 h of training audio for the scaling study (default's dev/test)
#   ./run.sh --stage 2 --stop-stage 2 # just one stage
#   ./run.sh --help
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
workers=4              # workers of the strategy runs (real torchrun processes, gloo)
strategies="allreduce gtc bmuf hybrid"   # trained at $workers workers after the baseline (allreduce: the dense reference)

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
  --workers N           workers of the strategy runs (default $workers)
  --strategies \"S...\"  strategies trained at N workers (default \"$strategies\"), each with the settings of
                        conf/sync/<S>.yaml (the hybrid's group_size auto: groups of 2 at 4 workers)
Stages:
  0 data       corpus -> lhotse manifests (synth: TTS synthesis with noise and reverb)
  1 features   80-dim fbank with lhotse, lilcom storage
  2 lang       lexicon / BPE, 3-gram Kneser-Ney LM, L, G, HLG
  3 train      the 1-worker baseline (exp/<tag>/baseline)
  4 decode     greedy CTC and HLG decoding of the baseline; prints its WERs
  5 train-sync each strategy at N workers as torchrun processes over gloo (exp/<tag>/<strategy>-w<N>)
  6 decode-sync  HLG and greedy decoding of each strategy; prints WERs beside the baseline's
  7 report     exp/<tag>/report: relative WER increase with CIs, bytes, modelled speed-up
"

. local/parse_options.sh
# Per-profile training and decoding settings (overrides of conf/train.yaml, conf/decode.yaml). The quick
# profile tunes over a coarser grid of acoustic scales and blank penalties (one grid for every row):
# the full grid's ~25 dev decodings per system were most of the test suite's end-to-end time.
case "$profile" in
  quick) train_opts=(num_epochs=40 data.max_duration=40 optim.warmup_steps=50 optim.lr=0.003)
         decode_opts=("acoustic_scales=[0.7,1.0,2.0,5.0]" "blank_penalties=[0.0,2.0]") ;;
  default|study) train_opts=(num_epochs=15); decode_opts=() ;;
  *) echo "$0: --profile must be quick, default or study" >&2; exit 1 ;;
esac

. local/setup_env.sh
asr_setup_env "$PWD"

[ -n "$epochs" ] && train_opts+=("num_epochs=$epochs")
tag=${tag:-${corpus}_${profile}}
data=$data_root/$tag
exp=$exp_root/$tag
log_dir=$exp/log
mkdir -p "$data" "$log_dir"
. local/stages.sh
log "recipe: corpus=$corpus profile=$profile units=$units stages $stage..$stop_stage"

manifests=$data/manifests
fbank=$data/fbank
lang=$data/lang_$units

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

common=(--lang-dir "$lang" --cuts-dir "$fbank")
data_opts=("data.corpus=$corpus")

if run_stage 3 train "$exp/baseline/.done"; then
  t0=$(date +%s)
  logged 3 train asr-trainer train --config conf/train.yaml --exp-dir "$exp/baseline" "${common[@]}" \
    "${data_opts[@]}" "${train_opts[@]}" progress_bar=false
  finish_stage 3 train "$exp/baseline/.done" "$t0"
fi

# decode_exp STAGE NAME EXP_DIR: greedy and HLG decoding of one experiment, then its WERs.
decode_exp() {
  local n=$1 name=$2 dir=$3 method
  for method in greedy hlg; do
    logged "$n" "$name" asr-trainer decode --exp-dir "$dir" --method "$method" "${common[@]}" "corpus=$corpus" \
      "${decode_opts[@]}"
  done
  grep -h . "$dir"/wer-summary-test-*.txt | tee -a "$log_dir/stage$n-$name.log"
}

if run_stage 4 decode "$exp/baseline/.decoded"; then
  t0=$(date +%s)
  decode_exp 4 decode "$exp/baseline"
  finish_stage 4 decode "$exp/baseline/.decoded" "$t0"
fi

# Every strategy runs with the settings of conf/sync/<s>.yaml, the ones measured best with Adam.
for s in $strategies; do
  dir=$exp/$s-w$workers
  if run_stage 5 train-sync "$dir/.done"; then
    t0=$(date +%s)
    logged 5 train-sync torchrun --standalone --nproc-per-node "$workers" --no-python \
      asr-trainer train --config conf/train.yaml --exp-dir "$dir" "${common[@]}" --resume --sync "$s" \
      "${data_opts[@]}" "${train_opts[@]}" num_threads=1 progress_bar=false
    finish_stage 5 train-sync "$dir/.done" "$t0"
  fi
done

for s in $strategies; do
  dir=$exp/$s-w$workers
  if run_stage 6 decode-sync "$dir/.decoded"; then
    t0=$(date +%s)
    decode_exp 6 decode-sync "$dir"
    finish_stage 6 decode-sync "$dir/.decoded" "$t0"
  fi
done

report_stage 7 "$exp"

log "recipe finished stages $stage..$stop_stage"
