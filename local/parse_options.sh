#!/usr/bin/env bash
# Kaldi-style option parsing, sourced by a recipe after it sets its defaults:
# `--some-name VALUE` (or `--some-name=VALUE`) sets the shell variable some_name, which must already
# exist; `--help` prints the recipe's $help_message. Anything else (a stray `device=cuda`, a missing `--`)
# is an error: a recipe takes options only.

_asr_print_help() { echo -e "${help_message:-no help}"; }

# asr_one_of OPTION VALUE CHOICE...: for a recipe's checks after parsing; exits with "OPTION must be a, b or
# c" unless VALUE is one of the CHOICEs.
asr_one_of() {
  local option=$1 value=$2 choice; shift 2
  for choice; do [ "$value" = "$choice" ] && return 0; done
  local choices=$*; choices=${choices// /, }
  echo "$0: $option must be ${choices%, *} or ${choices##*, }" >&2; exit 1
}

while [ $# -gt 0 ]; do
  case "$1" in
    --help|-h) _asr_print_help; exit 0 ;;
    --*=*) _name=${1%%=*}; _value=${1#*=}; shift ;;
    --*)
      _name=$1
      [ $# -ge 2 ] || { echo "$0: option $1 needs a value" >&2; exit 1; }
      _value=$2; shift 2 ;;
    *) echo "$0: unexpected argument '$1': the recipe takes options only, --name VALUE (see --help)" >&2
       exit 1 ;;
  esac
  _var=${_name#--}; _var=${_var//-/_}
  if ! declare -p "$_var" >/dev/null 2>&1; then
    echo "$0: unknown option $_name (see --help)" >&2; exit 1
  fi
  printf -v "$_var" '%s' "$_value"
done
unset _name _value _var
