#!/usr/bin/env bash
# asr_trainer: the end-to-end recipe (Kaldi / icefall style).
#
#   ./run.sh                          # the default profile on the synthetic corpus
#   ./run.sh --profile quick          # ~10 min of training audio: minutes end to end (tests, CI)
#   ./run.sh --stage 2 --stop-stage 2 # just one stage
#   ./run.sh --help
#
# Every stage skips work already done (a sentinel per stage) and logs to exp/<tag>/log/.
set -euo pipefail
cd "$(dirname "$0")"

stage=0
stop_stage=100
profile=default        # quick | default
corpus=synth           # synth | librispeech | mini_librispeech | kaldi
corpus_dir=            # source directory of a non-synthetic corpus
units=phone            # phone | bpe<N>, e.g. bpe500
nj=$(nproc)            # parallel jobs for data preparation and features
tag=                   # data/<tag>, exp/<tag>; default: <corpus>_<profile>

help_message="Usage: $0 [options]
Options:
  --stage N             first stage to run (default $stage)
  --stop-stage M        last stage to run (default $stop_stage)
  --profile P           quick | default (default $profile)
  --corpus NAME         synth | librispeech | mini_librispeech | kaldi (default $corpus)
  --corpus-dir DIR      source directory of librispeech, mini_librispeech or kaldi
                        (kaldi: DIR/{train,dev,test} are Kaldi data directories)
  --units U             phone | bpe<N> (default $units)
  --nj N                parallel jobs (default: number of cores)
  --tag T               name of data/T and exp/T (default <corpus>_<profile>)
Stages:
  0 data       corpus -> lhotse manifests (synth: TTS synthesis with noise and reverb)
  1 features   80-dim fbank with lhotse, lilcom storage
  2 lang       lexicon / BPE, 3-gram Kneser-Ney LM, L, G, HLG
"

. local/parse_options.sh
case "$profile" in quick|default) ;; *) echo "$0: --profile must be quick or default" >&2; exit 1 ;; esac

. local/setup_env.sh
asr_setup_env "$PWD"

tag=${tag:-${corpus}_${profile}}
data=data/$tag
exp=exp/$tag
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

log "recipe finished stages $stage..$stop_stage"
