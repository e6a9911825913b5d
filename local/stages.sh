#!/usr/bin/env bash
# Stage bookkeeping for recipes: which stages run, sentinels of finished work, logged commands.
# Needs $stage, $stop_stage and $log_dir set by the recipe (stage_selected: the first two only).

log() { echo "$(date '+%F %T') [${0##*/}] $*" | tee -a "$log_dir/recipe.log" >&2; }

# stage_selected N: true when stage N is in --stage..--stop-stage.
stage_selected() { [ "$1" -ge "$stage" ] && [ "$1" -le "$stop_stage" ]; }

# run_stage N NAME SENTINEL: true when stage N is selected and not yet done (says so when skipped).
run_stage() {
  local n=$1 name=$2 sentinel=$3
  stage_selected "$n" || return 1
  if [ -f "$sentinel" ]; then
    log "stage $n ($name): already done ($sentinel); skipping"
    return 1
  fi
  log "stage $n ($name): starting; log in $log_dir/stage$n-$name.log"
  return 0
}

# logged N NAME CMD...: run CMD, its output to the terminal and to the stage's log file.
logged() {
  local n=$1 name=$2; shift 2
  set -o pipefail
  "$@" 2>&1 | tee -a "$log_dir/stage$n-$name.log"
}

# finish_stage N NAME SENTINEL START_SECONDS: write the sentinel and report the elapsed time.
finish_stage() {
  local n=$1 name=$2 sentinel=$3 start=$4
  mkdir -p "$(dirname "$sentinel")"
  date > "$sentinel"
  log "stage $n ($name): done in $(( $(date +%s) - start )) s"
}

# report_stage N EXP_ROOT: stage N, when selected, writes the trade-off report of every experiment under
# EXP_ROOT against EXP_ROOT/baseline (HLG, test set) into EXP_ROOT/report and prints the table.
report_stage() {
  local n=$1 root=$2
  stage_selected "$n" || return 0
  log "stage $n (report): writing $root/report"
  logged "$n" report asr-trainer report --exp-root "$root" --baseline baseline --set test --method hlg \
    --out-dir "$root/report"
}
