#!/usr/bin/env bash
# The CPU measurements of a release, in one command, on an otherwise idle machine:
#
#   bash benchmarks/cpu_round.sh VITON_DIR OLD_MODELS_DIR OUT_DIR
#
# VITON_DIR is what ../shared/data/unpack.sh writes; OLD_MODELS_DIR holds the previous
# release's generator-fp32.onnx and segmenter-fp32.onnx (for the ratios). Writes into OUT_DIR:
#   models-*.json        bench: old and new generator, parser, try-on at 256x192 (and the
#                        new generator at 1024x768), batch 1 and 8, one file per model
#   e2e-*.json / .time   extract on 504 VITON validation photos without masks (segmenter +
#                        generator): old and new models, threads and processes; peak RSS
#   serve.json           serve_load.py: 16 clients, batched vs one request per model run
#   ray.txt              extract vs extract --ray on 1,008 photos, same machine, same run
#   tryon.txt            tryon on 100 pairs
#   folder-memory-nested.json  extract's peak RSS and time on folders of 504 / 65,536 /
#                        262,144 photos (links; all but 504 already done), 1,000 per subfolder
set -euo pipefail
data=${1:?usage: cpu_round.sh VITON_DIR OLD_MODELS_DIR OUT_DIR}
old=${2:?usage: cpu_round.sh VITON_DIR OLD_MODELS_DIR OUT_DIR}
out=${3:?usage: cpu_round.sh VITON_DIR OLD_MODELS_DIR OUT_DIR}
cd "$(dirname "$0")/.."
mkdir -p "$out"
ce=${CE:-clothes-extractor}
models=clothes_extractor/models
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# 504 validation photos without their parse maps (the segmenter finds the garments)
mkdir -p "$work/photos"
find "$data/val/image" -name '*.jpg' | sort | awk 'NR <= 504' | xargs -I{} cp {} "$work/photos/"
# 1,008 for Ray (each twice, under two names)
mkdir -p "$work/photos1008"
for f in "$work"/photos/*.jpg; do b=$(basename "$f" .jpg); cp "$f" "$work/photos1008/$b-a.jpg"; cp "$f" "$work/photos1008/$b-b.jpg"; done

quick=(--provider cpu --batch-sizes 1,8 --warmup-s 2 --min-time-s 5)
$ce bench --model "$old/generator-fp32.onnx" "${quick[@]}" --out "$out/models-unet-old.json"
warping=${WARPING:-$models/generator-fp32.onnx}
$ce bench --model "$warping" "${quick[@]}" --out "$out/models-warping.json"
$ce bench --model "$warping" --provider cpu --batch-sizes 1 --photo-size 1024x768 \
  --warmup-s 2 --min-time-s 5 --out "$out/models-warping-1024.json"
$ce bench --model "$old/segmenter-fp32.onnx" "${quick[@]}" --out "$out/models-segmenter-old.json"
$ce bench --model "$models/segmenter-fp32.onnx" "${quick[@]}" --out "$out/models-parser.json"
[ -f "$models/tryon-fp32.onnx" ] && $ce bench --model "$models/tryon-fp32.onnx" "${quick[@]}" \
  --out "$out/models-tryon.json"

e2e() {  # name, extract args...
  local name=$1; shift
  rm -rf "$work/out"
  /usr/bin/time -v $ce extract "$work/photos" -o "$work/out" --provider cpu "$@" 2> "$out/e2e-$name.time"
  grep -E "done in|Maximum resident" "$out/e2e-$name.time"
}
e2e old-models-threads --model "$old/generator-fp32.onnx" --segmenter "$old/segmenter-fp32.onnx" --threads
e2e old-models-processes --model "$old/generator-fp32.onnx" --segmenter "$old/segmenter-fp32.onnx" --processes
e2e new-models-model-size-threads --output-size model --threads
e2e new-models-threads --threads
e2e new-models-processes --processes

python benchmarks/serve_load.py "$work/photos" --clients 16 --seconds 30 --out "$out/serve.json"

{
  rm -rf "$work/out"
  echo "local:"; $ce extract "$work/photos1008" -o "$work/out" --provider cpu 2>&1 | tail -1
  rm -rf "$work/out"
  echo "ray (local Ray, 2 CPUs, 1 model actor):"; $ce extract "$work/photos1008" -o "$work/out" --provider cpu --ray 2>&1 | tail -1
} | tee "$out/ray.txt"

if [ -f "$models/tryon-fp32.onnx" ]; then
  head -100 "$data/val_pairs.txt" > "$work/pairs.txt"
  $ce tryon --person "$data/val/image" --garment "$data/val/cloth" --pairs "$work/pairs.txt" -o "$work/dressed" \
    --provider cpu 2>&1 | tail -1 | tee "$out/tryon.txt"
fi

python benchmarks/folder_memory.py "$data/val/image" --sizes 504,65536,262144 --per-folder 1000 \
  --work "$work" --out "$out/folder-memory-nested.json"
