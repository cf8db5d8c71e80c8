#!/usr/bin/env bash
# GPU check: parity of every GPU path against the CPU, and timings against PyTorch
# (eager fp32, eager fp16 channels_last, torch.compile) on the same models. Installs
# nothing: the machine must already have torch, onnx and onnxruntime-gpu importable
# (../shared/gpu/README.md says how to get onnxruntime-gpu onto a lent device machine).
#
#   bash benchmarks/gpu_check.sh [OUT_DIR]        (default: benchmarks/results)
#
# Writes OUT_DIR/gpu-<label>-<model>.json, the parity report and a markdown table per
# model. With BATCHES=1,32,128 TORCH_COMPILE=0 the two models took ~4.5 minutes on an H200
# (2026-11-27); torch.compile and TensorRT engine builds add to that where they run.
# TORCH_COMPILE=0 leaves torch.compile out; MODELS="g64" and BATCHES=1,32,128 narrow it to
# fit a short lease.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-benchmarks/results}
mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
py=${PYTHON:-python3}
label=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1 | tr ' ' '-')
quick=(--warmup-s 1 --min-runs 20 --min-time-s 1)

$py -m clothes_extractor info --json > "$out/gpu-$label-info.json" || echo "info failed" >&2

# The two models the targets name: the 256x256 ngf-64 pix2pix generator (GPU README's
# anchor) and the shipped default size (256x192, ngf 32), seeded random weights: speed
# and parity do not depend on training.
$py - "$work" <<'PY'
import sys, torch
from clothes_extractor.train.checkpoint import save_checkpoint
from clothes_extractor.train.networks import UNet, UNetConfig
work = sys.argv[1]
for name, cfg in {"g64": UNetConfig(height=256, width=256, ngf=64, depth=8),
                  "g32": UNetConfig(height=256, width=192, ngf=32, depth=6)}.items():
    torch.manual_seed(0)
    save_checkpoint(f"{work}/{name}.pt", UNet(cfg).eval())
PY
models=(${MODELS:-g64 g32})
trt=()  # where TensorRT is installed, the fp16 export also builds an engine (MODEL.engine)
$py -c 'import tensorrt' 2>/dev/null && trt=(--tensorrt --trt-batch 1,32,128)
for m in "${models[@]}"; do
  $py -m clothes_extractor export "$work/$m.pt" -o "$work/$m-fp32.onnx" --precision fp32
  $py -m clothes_extractor export "$work/$m.pt" -o "$work/$m-fp16.onnx" --precision fp16 "${trt[@]}"
done

status=0
$py benchmarks/gpu_parity.py "$work"/g*-fp*.onnx --out "$out/gpu-$label-parity.json" || status=$?

compile=()
[ "${TORCH_COMPILE:-1}" = 1 ] && compile=(--torch-compile)
providers=(cuda)
$py -c 'from clothes_extractor.runtime.session import probe_provider as p; exit(not p("tensorrt")[0])' 2>/dev/null \
  && providers+=(tensorrt)
batches=(--batch-sizes "${BATCHES:-1,8,32,128}")
for m in "${models[@]}"; do
  # onnxruntime with CUDA graphs (numpy in/out one batch at a time, device-resident, and numpy
  # in/out streamed with copies overlapping compute) and PyTorch, interleaved in one run so
  # every ratio is measured side by side
  $py -m clothes_extractor bench --model "$work/$m-fp16.onnx" --provider cuda "${batches[@]}" "${quick[@]}" \
    --io host,device,pipelined --cuda-graph --torch-baseline "$work/$m.pt" "${compile[@]}" \
    --label "$label" --out "$out/gpu-$label-$m.json" || status=1
  # onnxruntime's TensorRT provider and the TensorRT engine run directly, where TensorRT is installed
  if [[ " ${providers[*]} " == *" tensorrt "* ]]; then
    $py -m clothes_extractor bench --model "$work/$m-fp16.onnx" --provider tensorrt "${batches[@]}" "${quick[@]}" \
      --label "$label-trt-provider" --out "$out/gpu-$label-$m-trt-provider.json" || status=1
  fi
  if [ -f "$work/$m-fp16.engine" ]; then
    $py -m clothes_extractor bench --model "$work/$m-fp16.engine" "${batches[@]}" "${quick[@]}" \
      --label "$label-engine" --out "$out/gpu-$label-$m-engine.json" || status=1
  fi
done
for m in "${models[@]}"; do
  $py -m clothes_extractor bench compare "$out"/gpu-"$label"-"$m"*.json --markdown "$out/gpu-$label-$m.md"
done
echo "results in $out (parity status $status)"
exit $status
