#!/usr/bin/env bash
# The GPU check, in one go, on a fresh machine with one NVIDIA GPU, CUDA 13 and Python 3.12 with torch (CUDA) and
# onnx already there, no network. Everything it writes goes under $OUT (default: ./gpu-check).
#
#   onnxruntime-gpu travels in parts (one call carries at most 64 MiB): on a machine with network,
#     pip download --no-deps --python-version 3.12 --only-binary=:all: onnxruntime-gpu==1.31.1 -d wheels/
#     split -b 60M wheels/onnxruntime_gpu-*.whl wheels/ort.part.
#   and carry wheels/ort.part.* over; this script joins them.
#
# Steps: install the project and onnxruntime-gpu; export tiny and base bundles (random init, fp32 and fp16) and
# the shipped chorale bundle's model if its run folder came along; verify each on CUDA; run the bridge tests that
# exercise providers and IOBinding; run the benchmark on the GPU; record the card and the driver.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu-check}
mkdir -p "$OUT"
log() { echo "== $*" | tee -a "$OUT/steps.log"; }

log "card"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/card.csv"

log "install"
if ls wheels/ort.part.* >/dev/null 2>&1; then
  cat wheels/ort.part.* > /tmp/onnxruntime_gpu-1.31.1-cp312-cp312-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl
  pip install --no-deps /tmp/onnxruntime_gpu-*.whl >> "$OUT/install.log" 2>&1
fi
pip install --no-deps -e . >> "$OUT/install.log" 2>&1
pip install python-osc soxr soundfile platformdirs rich psutil >> "$OUT/install.log" 2>&1
python -c "import onnxruntime as o; print(o.__version__, o.get_available_providers())" | tee -a "$OUT/steps.log"

for config in tiny base; do
  for precision in fp32 fp16; do
    flag=$([ "$precision" = fp16 ] && echo --fp16)
    log "export $config $precision"
    accompgen export --config "$config" --random-init --out "/tmp/bundle-$config-$precision" $flag --overwrite \
      >> "$OUT/export.log" 2>&1
    log "verify $config $precision on cuda"
    accompgen verify "/tmp/bundle-$config-$precision" --device cuda 2>&1 | tee -a "$OUT/verify.log"
  done
done

log "bridge tests: providers, engine, IOBinding"
python -m pytest -q tests/bridge/test_providers.py tests/bridge/test_engine.py tests/export/test_graphs.py \
  2>&1 | tail -20 | tee "$OUT/tests.log"

log "bench on the GPU"
accompgen bench --config base --out "$OUT/bench" --no-musicgen --json > "$OUT/bench.json" 2> "$OUT/bench.log"
tail -5 "$OUT/bench.log"
log "done"
