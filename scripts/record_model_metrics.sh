#!/usr/bin/env bash
# Evaluate every bundled model on the VITON validation split and record the numbers the
# model cards quote and tests/test_models.py checks: the whole split (1,528 pairs), its
# pairs held out from training (those with no copy among the training pairs: 341) and its
# first 16 pairs by name, into clothes_extractor/models/metrics.json; a segmenter also on the
# same photos changed (evaluate --grayscale, --light): black and white, a stop darker, warm; a
# generator also as extract runs it, on the bundled segmenter's masks (evaluate --masks segmenter).
#
#   bash scripts/record_model_metrics.sh VITON_DIR [MODEL.onnx ...]
#
# VITON_DIR is what ../shared/data/unpack.sh writes; without MODEL arguments every bundled
# model is evaluated. Entries of models not evaluated this time are kept.
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:?usage: record_model_metrics.sh VITON_DIR [MODEL.onnx ...]}
shift
models=("$@")
[ ${#models[@]} -gt 0 ] || models=(clothes_extractor/models/*.onnx)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
ce=${CE:-clothes-extractor}
for model in "${models[@]}"; do
  name=$(basename "$model" .onnx)
  $ce evaluate --model "$model" --data "$data" --split val --limit 16 --provider cpu --json "$work/$name-16.json"
  sheet=()
  [[ $name == *-fp32 ]] && sheet=(--sheet "clothes_extractor/models/${name%-fp32}-val-sheet.png" --sheet-rows 8)
  $ce evaluate --model "$model" --data "$data" --split val --provider cpu --json "$work/$name-all.json" "${sheet[@]}"
  if [[ $name == generator-* ]]; then  # as extract runs it (the bundled segmenter of the same precision)
    mkdir -p "$work/as_extract"
    masks=(--masks segmenter --segmenter "clothes_extractor/models/segmenter-${name#generator-}.onnx")
    $ce evaluate --model "$model" --data "$data" --split val --limit 16 --provider cpu "${masks[@]}" \
      --json "$work/as_extract/$name-16.json"
    $ce evaluate --model "$model" --data "$data" --split val --provider cpu "${masks[@]}" \
      --json "$work/as_extract/$name-all.json"
  fi
  if [[ $name == segmenter-* ]]; then
    for change in grayscale:--grayscale dark:--light=0.5 warm:--light=1.15,1,0.7; do
      mkdir -p "$work/${change%%:*}"
      for limit in 16 all; do
        args=(); [[ $limit == 16 ]] && args=(--limit 16)
        $ce evaluate --model "$model" --data "$data" --split val --provider cpu "${change#*:}" "${args[@]}" \
          --json "$work/${change%%:*}/$name-$limit.json"
      done
    done
  fi
done
python3 - "$work" <<'PY'
import json, pathlib, sys
work = pathlib.Path(sys.argv[1])
path = pathlib.Path("clothes_extractor/models/metrics.json")
record = json.loads(path.read_text()) if path.is_file() else {}
for first in sorted(work.glob("*-16.json")):
    name = first.name[: -len("-16.json")]
    whole = json.loads((work / f"{name}-all.json").read_text())
    record[name] = {
        "first_16_val_pairs": json.loads(first.read_text())["metrics"],
        "val": whole["metrics"],
        "val_pairs": whole["samples"],
        # the pairs with no copy among the training pairs (eval/overlap.py)
        "val_held_out": whole["held_out"]["metrics"],
        "val_held_out_pairs": whole["held_out"]["samples"],
    }
    for change in ("grayscale", "dark", "warm", "as_extract"):  # the same photos changed (a segmenter's), or
        # a generator's on the segmenter's masks
        if (work / change / f"{name}-16.json").is_file():
            changed = json.loads((work / change / f"{name}-all.json").read_text())
            record[name][f"first_16_val_pairs_{change}"] = json.loads((work / change / f"{name}-16.json").read_text())["metrics"]
            record[name][f"val_{change}"] = changed["metrics"]
            record[name][f"val_held_out_{change}"] = changed["held_out"]["metrics"]
path.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
print(f"wrote {path}")
PY
