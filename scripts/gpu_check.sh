#!/usr/bin/env bash
# One prepared GPU check (docs/gpu.md): the GRPO step, the judge and the service benchmarks in one call, <= 8 min.
#
#   bash scripts/gpu_check.sh prepare [--dry-run]   here, with the network: wheels the GPU machine lacks -> .whl/,
#                                                   size check, and the device call to make (--dry-run: no download,
#                                                   checks whatever .whl/ already holds)
#   bash scripts/gpu_check.sh run                   there: install .whl/ into a private target, versions, nvidia-smi,
#                                                   each benchmark under its own time cap -> $OUT/gpu_check.jsonl
#   bash scripts/gpu_check.sh run --cpu-smoke       here: the same run on CPU, tiny model, tiny sizes (CI runs it)
#
# Environment: PYTHON (interpreter; default python3, or .venv/bin/python for prepare), OUT (results folder; default
# ./gpu_check_out), GPU_CHECK_WHEELS (wheel folder; default .whl), GPU_CHECK_SITE (install target; default
# /tmp/editjudge_site), GPU_CHECK_BUDGET_S (whole-run budget; default 465 on GPU, 1200 with --cpu-smoke, whose caps only catch hangs),
# GPU_CHECK_EXTRA_WHEELS (more name==version pins to download, space separated).
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 2
LIB=scripts/gpu_check_lib.py
WHEELS=${GPU_CHECK_WHEELS:-.whl}
DEVICE_TIMEOUT_S=540  # the device call's timeout_s: the run's budget + install + slack, leaving a rerun in 15 min

usage() {
    sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
}

# ------------------------------------------------------------------------------------------------ prepare
prepare() {
    local dry=0
    case "${1:-}" in
        --dry-run) dry=1 ;;
        "") ;;
        *) echo "error: unknown option for prepare: $1 (use --dry-run or nothing)" >&2; exit 2 ;;
    esac
    local py=${PYTHON:-}
    if [ -z "$py" ]; then
        if [ -x .venv/bin/python ]; then py=.venv/bin/python; else py=python3; fi
    fi
    local pins
    pins=$("$py" "$LIB" pins) || exit 2
    # shellcheck disable=SC2206
    local all=($pins ${GPU_CHECK_EXTRA_WHEELS:-})
    echo "wheels for the GPU machine (scripts/gpu_check_wheels.txt${GPU_CHECK_EXTRA_WHEELS:+ + GPU_CHECK_EXTRA_WHEELS}):"
    printf '  %s\n' "editjudge (this working tree)" "${all[@]}"
    local local_versions
    local_versions=$("$py" - "${all[@]}" <<'EOF'
import sys
from importlib import metadata
for pin in sys.argv[1:]:
    name, version = pin.split("==")
    try:
        here = metadata.version(name)
    except metadata.PackageNotFoundError:
        continue
    if here != version:
        print(f"  note: {name} is pinned at {version} for the device but {here} here (the tests' version?)")
EOF
)
    [ -n "$local_versions" ] && echo "$local_versions"
    if [ "$dry" = 0 ]; then
        mkdir -p "$WHEELS" || exit 1
        find "$WHEELS" -maxdepth 1 -name '*.whl' -delete  # one version of each: start from an empty folder
        echo "building the editjudge wheel from $ROOT ..."
        local leftovers=() d
        for d in build src/editjudge.egg-info; do [ -e "$d" ] || leftovers+=("$d"); done
        "$py" -m pip wheel -q --no-deps --no-build-isolation -w "$WHEELS" . \
            || "$py" -m pip wheel -q --no-deps -w "$WHEELS" . || { echo "error: could not build the editjudge wheel" >&2; exit 1; }
        echo "downloading ${#all[@]} wheels for CPython 3.12 / manylinux x86_64 ..."
        local platforms=() n
        for n in 2_17 2_24 2_27 2_28 2_31 2_34 2_35; do platforms+=(--platform "manylinux_${n}_x86_64"); done
        "$py" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
            "${platforms[@]}" --platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform any \
            -d "$WHEELS" "${all[@]}" || { echo "error: pip download failed (network? a pin without a wheel?)" >&2; exit 1; }
        [ ${#leftovers[@]} -gt 0 ] && rm -rf "${leftovers[@]}"  # what the wheel build left (not what was there)
    fi
    local tree_bytes
    tree_bytes=$("$py" "$LIB" tree-bytes "$ROOT") || exit 1
    echo "checking $WHEELS:"
    local pin_file=scripts/gpu_check_wheels.txt
    "$py" "$LIB" wheels "$WHEELS" --tree-bytes "$tree_bytes" --pins "$pin_file" || {
        [ "$dry" = 1 ] && echo "(dry run: nothing downloaded; run without --dry-run to fill $WHEELS)"
        exit 1
    }
    git check-ignore -q "$WHEELS/x.whl" 2>/dev/null
    if [ $? = 1 ]; then  # 1: not ignored (128: outside the repository, or no git)
        echo "warning: $WHEELS is not ignored by git: add '/$WHEELS/' to .gitignore or .git/info/exclude," \
             "or it travels twice" >&2
    fi
    cat <<EOF

ready. Make this one device call (the 'run' tool), then give the machine back:
  command:   bash scripts/gpu_check.sh run
  carry:     ["$WHEELS"]
  timeout_s: $DEVICE_TIMEOUT_S
Results come back as gpu_check.jsonl and gpu_check.log under the call's files_at; copy the figures into docs/gpu.md.
EOF
}

# ------------------------------------------------------------------------------------------------ run
SMOKE=0
MODE=gpu
PY=python3
START=$SECONDS
BUDGET=465

# bench NAME CAP SCRIPT ARGS... : run one benchmark under min(CAP, what is left of the budget); always one JSON line.
bench() {
    local name=$1 cap=$2 script=$3
    shift 3
    local note=""
    [ "$name" = serve ] && note="in-process dynamic batching only (--no-ray): the GPU machine has no Ray"
    local json=$TMP/$name.json log=$TMP/$name.log
    local command="$PY $script $* --out \$TMP/$name.json"
    echo
    echo "=== $name: $command"
    if [ ! -f "$script" ]; then
        echo "$script: not present"
        "$PY" "$LIB" record --out "$JSONL" --mode "$MODE" --check "$name" --status "not present" \
            --command "$command" ${note:+--note "$note"}
        return
    fi
    local left=$((BUDGET - (SECONDS - START) - 5))
    [ "$cap" -gt "$left" ] && cap=$left
    if [ "$cap" -lt 10 ]; then
        echo "$name: skipped, the run's budget of ${BUDGET}s is spent"
        "$PY" "$LIB" record --out "$JSONL" --mode "$MODE" --check "$name" --status skipped --cap "$cap" \
            --command "$command" --note "budget spent before it started"
        return
    fi
    local started=$SECONDS rc status
    timeout --kill-after=10 "$cap" "$PY" "$script" "$@" --out "$json" 2>&1 | tee "$log"
    rc=${PIPESTATUS[0]}
    case $rc in
        0) status=ok ;;
        124 | 137) status=timeout ;;
        *) status=failed ;;
    esac
    echo "=== $name: $status (rc $rc, $((SECONDS - started)) s of a ${cap} s cap)"
    "$PY" "$LIB" record --out "$JSONL" --mode "$MODE" --check "$name" --status "$status" --rc "$rc" \
        --seconds $((SECONDS - started)) --cap "$cap" --result "$json" --log "$log" --command "$command" \
        ${note:+--note "$note"}
}

run_checks() {
    echo "editjudge GPU check ($MODE) $(date -u +%Y-%m-%dT%H:%M:%SZ), budget ${BUDGET}s, results in $OUT"
    if [ "$SMOKE" = 0 ]; then
        local site=${GPU_CHECK_SITE:-/tmp/editjudge_site}
        if ! ls "$WHEELS"/*.whl >/dev/null 2>&1; then
            echo "error: no wheels in $WHEELS: run 'bash scripts/gpu_check.sh prepare' where pip works and carry $WHEELS" >&2
            return 2
        fi
        rm -rf "$site"
        "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" \
            "$WHEELS"/*.whl || { echo "error: installing the carried wheels failed" >&2; return 1; }
        export PYTHONPATH=$site
        "$PY" "$LIB" env --out "$JSONL" --mode "$MODE" --site "$site"
        nvidia-smi || echo "(nvidia-smi failed)"
        bench grpo_step 240 benchmarks/bench_grpo_step.py --prompts-per-step 1 2 --gradient-checkpointing off on \
            --steps 2 --warmup 1 --max-completion-length 256 --image-size 1024 --image-tokens 1369
        bench judge_throughput 140 benchmarks/bench_judge_throughput.py --pairs 32 --batch-sizes 1 8 32 \
            --max-new-tokens 64 --repeat 1 --image-size 1024
        bench serve 120 benchmarks/bench_serve.py --no-ray
        # vLLM against transformers (benchmarks/bench_vllm.py) needs vLLM, Ray and real weights, none of which this
        # machine has: it is the plan for a GPU box with vLLM (docs/gpu.md), not a check of this run.
        "$PY" -c "import vllm" 2>/dev/null || echo "=== vllm: not run (no vLLM here); on a GPU box with vLLM:" \
            "python benchmarks/bench_vllm.py --model Qwen2.5-VL-3B-Instruct --image-size 448 --out bench_vllm_gpu.json"
    else
        export PYTHONPATH=$ROOT/src${PYTHONPATH:+:$PYTHONPATH}
        export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
        "$PY" "$LIB" env --out "$JSONL" --mode "$MODE"
        nvidia-smi >/dev/null 2>&1 && echo "(a GPU is visible; --cpu-smoke runs on CPU anyway)"
        # caps that only catch a hang: a busy 2-core machine runs these 3-5x slower than a quiet one
        bench grpo_step 450 benchmarks/bench_grpo_step.py --tiny --prompts-per-step 1 --gradient-checkpointing off on \
            --steps 1 --warmup 0 --max-completion-length 8
        bench judge_throughput 300 benchmarks/bench_judge_throughput.py --tiny --pairs 2 --batch-sizes 1 2 \
            --max-new-tokens 4 --repeat 1
        bench serve 300 benchmarks/bench_serve.py --tiny --no-ray
    fi
    echo
    echo "done in $((SECONDS - START)) s: $JSONL"
    "$PY" - "$JSONL" <<'EOF'
import json, sys
for line in open(sys.argv[1], encoding="utf-8"):
    r = json.loads(line)
    print(f"  {r['check']:<17} {r['status']:<12} {'' if r.get('seconds') is None else str(r['seconds']) + ' s'}")
EOF
}

run() {
    case "${1:-}" in
        --cpu-smoke) SMOKE=1; MODE=cpu-smoke; BUDGET=${GPU_CHECK_BUDGET_S:-1200} ;;  # caps only catch hangs here
        "") BUDGET=${GPU_CHECK_BUDGET_S:-465} ;;
        *) echo "error: unknown option for run: $1 (use --cpu-smoke or nothing)" >&2; exit 2 ;;
    esac
    PY=${PYTHON:-python3}
    OUT=${OUT:-$ROOT/gpu_check_out}
    mkdir -p "$OUT" || exit 1
    JSONL=$OUT/gpu_check.jsonl
    : >"$JSONL"
    TMP=$(mktemp -d "${TMPDIR:-/tmp}/gpu_check.XXXXXX") || exit 1
    trap 'rm -rf "$TMP"' EXIT
    export TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1
    export PYTHONUNBUFFERED=1 HF_HOME=$TMP/hf TQDM_MININTERVAL=5
    run_checks 2>&1 | tee "$OUT/gpu_check.log"
    local rc=${PIPESTATUS[0]}
    # The run itself succeeds when every check wrote its line; a benchmark's failure is in its line, not the exit code.
    return "$rc"
}

case "${1:-}" in
    prepare) shift; prepare "$@" ;;
    run) shift; run "$@" ;;
    -h | --help | "") usage ;;
    *) echo "error: unknown verb $1 (use prepare or run; --help)" >&2; exit 2 ;;
esac
