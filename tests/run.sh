#!/usr/bin/env bash
# Bootstrap the environment (see local/setup_env.sh), then run the test suite.
# Extra arguments go to pytest, e.g. `tests/run.sh -k gtc -x`.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# shellcheck source=../local/setup_env.sh
source local/setup_env.sh
asr_setup_env "$root" synth   # the suite builds the synthetic quick corpus
exec python -m pytest -q -ra --durations=15 "$@"
