#!/usr/bin/env bash
# The prepared GPU suite: one command for one CUDA GPU, done within 8 minutes.
#
#   bash benchmarks/gpu_suite.sh             # on the GPU machine; results under $OUT
#   bash benchmarks/gpu_suite.sh --dry-run   # anywhere: argument handling and dependency checks,
#                                            # no CUDA touched, no numbers, nothing written
#
# Parts, in order, each in its own process with its own timeout (one hang does not eat the
# budget) and all within SUITE_BUDGET_S (480 s; a part that cannot start is recorded as skipped):
#   gpu_deps             benchmarks/gpu_deps.py: Python, torch + CUDA, grouped_mm, colossalai,
#                        safetensors, pydantic and every import of the scripts below, all at once
#   gpu_mfu              M6-base bf16 MFU, micro-batch sweep 8 16 32 64 (benchmarks/gpu_mfu.py)
#   gpu_moe_mfu          one M6-100B MoE block with 8 local experts (benchmarks/gpu_moe_mfu.py)
#   gpu_vqgan_step       the VQGAN generator + discriminator step at 256 px (benchmarks/gpu_vqgan_step.py)
#   gpu_plugin_<name>    10 Booster steps under torch_ddp, low_level_zero, hybrid_parallel (tp 1),
#                        moe_hybrid_parallel (ep 1), gemini: loss falls, post-clip norm <= max_norm
#                        (benchmarks/gpu_plugins.py; gemini last: its fused Adam kernel is built
#                        on first use)
# Each part writes $OUT/<part>.json and its output to $OUT/logs/<part>.log. A part that fails
# or times out without writing its JSON gets one saying so (status, exit code, the log's tail),
# and the suite goes on; $OUT/gpu_suite.json lists every part's status and seconds. Without
# CUDA torch (gpu_deps exit 2) the GPU parts are skipped.
# $OUT defaults to benchmarks/results/. The Python: $PYTHON if set, else .venv/bin/python when
# it imports torch with CUDA, else python3 (in --dry-run, torch without CUDA suffices); the
# suite says which it took. No install needed: the scripts put src/ on the import path.
# Exit status: 0 when every part passed, 1 otherwise.
set -u

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BENCH="$ROOT/benchmarks"
DRY_RUN=0
for arg in "$@"; do
  case "$arg" in
    --dry-run) DRY_RUN=1 ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "gpu_suite.sh: unknown argument $arg (use --dry-run or --help)" >&2; exit 2 ;;
  esac
done
OUT="${OUT:-$BENCH/results}"
BUDGET="${SUITE_BUDGET_S:-480}"
# offline machine: libraries that look for hub files (bitsandbytes via colossalai) fail fast
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1

# the first candidate that imports torch with CUDA (or any torch in a dry run), else python3
pick_python() {
  local candidates=() candidate test
  if [ -n "${PYTHON:-}" ]; then PY="$PYTHON"; PY_WHY="set by PYTHON"; return; fi
  [ -x "$ROOT/.venv/bin/python" ] && candidates+=("$ROOT/.venv/bin/python")
  command -v python3 >/dev/null && candidates+=("$(command -v python3)")
  for test in "import torch,sys; sys.exit(not torch.cuda.is_available())" "import torch"; do
    [ "$DRY_RUN" = 0 ] && [ "$test" = "import torch" ] && break
    for candidate in "${candidates[@]}"; do
      if "$candidate" -c "$test" >/dev/null 2>&1; then
        PY="$candidate"
        PY_WHY="imports torch$([ "$test" = "import torch" ] || echo " with CUDA")"
        return
      fi
    done
  done
  PY="${candidates[0]:-python3}"
  PY_WHY="no candidate imports torch$([ "$DRY_RUN" = 1 ] || echo " with CUDA") (tried: ${candidates[*]:-none})"
}

pick_python
echo "gpu_suite: python $PY ($("$PY" -c 'import sys; print(sys.version.split()[0])' 2>&1)): $PY_WHY"

if [ "$DRY_RUN" = 1 ]; then
  failed=0
  check() {  # name, command...: runs it, prints its output, counts a failure
    local name=$1; shift
    if "$@"; then echo "  dry run $name: ok"; else echo "  dry run $name: FAILED (exit $?)"; failed=1; fi
  }
  check gpu_deps "$PY" "$BENCH/gpu_deps.py" --dry-run
  check gpu_mfu "$PY" "$BENCH/gpu_mfu.py" --dry-run --micro-batch 8 16 32 64
  check gpu_moe_mfu "$PY" "$BENCH/gpu_moe_mfu.py" --dry-run
  check gpu_vqgan_step "$PY" "$BENCH/gpu_vqgan_step.py" --dry-run
  for plugin in torch_ddp low_level_zero hybrid_parallel moe_hybrid_parallel gemini; do
    check "gpu_plugin_$plugin" "$PY" "$BENCH/gpu_plugins.py" --plugin "$plugin" --dry-run
  done
  echo "gpu_suite: dry run $([ $failed = 0 ] && echo passed || echo FAILED); no numbers produced"
  exit $failed
fi

mkdir -p "$OUT/logs"
START=$SECONDS
SUMMARY="$OUT/logs/parts.tsv"
: >"$SUMMARY"
ALL_OK=1

# record NAME STATUS EXIT_CODE SECONDS: the summary line, and the part's JSON if it wrote none
record() {
  printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$SUMMARY"
  [ "$2" = ok ] || ALL_OK=0
  [ -f "$OUT/$1.json" ] && return
  "$PY" - "$OUT/$1.json" "$1" "$2" "$3" "$4" "$OUT/logs/$1.log" <<'EOF'
import json, sys
from pathlib import Path
path, part, status, code, seconds, log = sys.argv[1:]
tail = Path(log).read_text(errors="replace").splitlines()[-40:] if Path(log).exists() else []
Path(path).write_text(json.dumps({"part": part, "status": status, "exit_code": int(code),
                                  "seconds": int(seconds), "error": "\n".join(tail)}, indent=1))
EOF
}

# run_part NAME TIMEOUT_S COMMAND...: within the budget left, its output to logs/NAME.log
run_part() {
  local name=$1 limit=$2 left rc started status
  shift 2
  left=$((BUDGET - (SECONDS - START)))
  if [ "$left" -lt 20 ]; then
    echo "gpu_suite: $name skipped: the ${BUDGET} s budget is spent" | tee "$OUT/logs/$name.log"
    record "$name" skipped -1 0
    return
  fi
  [ "$limit" -gt "$left" ] && limit=$left
  rm -f "$OUT/$name.json"
  started=$SECONDS
  echo "gpu_suite: $name (timeout ${limit} s) ..."
  timeout --kill-after=10 "$limit" "$@" >"$OUT/logs/$name.log" 2>&1
  rc=$?
  case $rc in
    0) status=ok ;;
    124|137) status=timed_out ;;
    *) status=failed ;;
  esac
  echo "gpu_suite: $name $status (exit $rc) in $((SECONDS - started)) s"
  [ "$status" = ok ] || tail -n 5 "$OUT/logs/$name.log" | sed 's/^/    /'
  record "$name" "$status" "$rc" "$((SECONDS - started))"
}

run_part gpu_deps 90 "$PY" "$BENCH/gpu_deps.py" --output "$OUT/gpu_deps.json"
DEPS_RC=$(tail -n 1 "$SUMMARY" | cut -f 3)
if [ "$DEPS_RC" = 2 ]; then
  echo "gpu_suite: no CUDA torch under $PY (see $OUT/gpu_deps.json): the GPU parts are skipped"
  for name in gpu_mfu gpu_moe_mfu gpu_vqgan_step gpu_plugin_{torch_ddp,low_level_zero,hybrid_parallel,moe_hybrid_parallel,gemini}; do
    echo "skipped: no CUDA torch under $PY" >"$OUT/logs/$name.log"
    rm -f "$OUT/$name.json"
    record "$name" skipped -1 0
  done
else
  run_part gpu_mfu 120 "$PY" "$BENCH/gpu_mfu.py" --micro-batch 8 16 32 64 --steps 10 --warmup 3 --repeats 2 \
    --output "$OUT/gpu_mfu.json"
  run_part gpu_moe_mfu 75 "$PY" "$BENCH/gpu_moe_mfu.py" --steps 10 --warmup 3 --output "$OUT/gpu_moe_mfu.json"
  run_part gpu_vqgan_step 90 "$PY" "$BENCH/gpu_vqgan_step.py" --steps 10 --warmup 3 --output "$OUT/gpu_vqgan_step.json"
  for plugin in torch_ddp low_level_zero hybrid_parallel moe_hybrid_parallel gemini; do
    limit=60
    [ "$plugin" = gemini ] && limit=180
    run_part "gpu_plugin_$plugin" "$limit" "$PY" "$BENCH/gpu_plugins.py" --plugin "$plugin" --steps 10 \
      --output "$OUT/gpu_plugin_$plugin.json"
  done
fi

"$PY" - "$SUMMARY" "$OUT/gpu_suite.json" "$PY" "$PY_WHY" "$BUDGET" "$((SECONDS - START))" <<'EOF'
import json, sys
from pathlib import Path
summary, path, python, why, budget, seconds = sys.argv[1:]
parts = [dict(zip(("part", "status", "exit_code", "seconds"), line.split("\t")))
         for line in Path(summary).read_text().splitlines()]
for part in parts:
    part.update(exit_code=int(part["exit_code"]), seconds=int(part["seconds"]), json=f"{part['part']}.json")
Path(path).write_text(json.dumps({"python": python, "python_choice": why, "budget_s": int(budget),
                                  "seconds": int(seconds), "parts": parts}, indent=1))
EOF
echo "gpu_suite: $([ $ALL_OK = 1 ] && echo 'every part passed' || echo 'some parts failed') in $((SECONDS - START)) s; $OUT/gpu_suite.json"
[ $ALL_OK = 1 ]
