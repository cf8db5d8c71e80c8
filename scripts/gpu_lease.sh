#!/usr/bin/env bash
# Use a lent GPU machine that has PyTorch but no package index and takes at most 64 MiB
# per call (see ../shared/gpu/README.md): run the GPU checks and train the generator
# candidates there in one command. Two halves:
#
#   here:  [INIT=CHECKPOINT] [RENDERER=U-NET.onnx] [WARPING=W.onnx] [UNSEEN_BY="0 1 2"]
#          bash scripts/gpu_lease.sh prepare [VITON_DIR]
#          -> .lease/p1 .. .lease/pN (ignored by git): onnxruntime-gpu without its TensorRT
#             provider and nvImageCodec + nvJPEG for GPU decode (xz), the VITON training shards, the held-out validation pairs, the
#             VITON-HD sample photos (extract's end-to-end check), the bundled models, the warping generator's
#             renderer (RENDERER: the ngf-32 U-Net's ONNX file), an exported warping
#             generator for gpu_check to time at 256x192 and 1024x768 (WARPING; the issue's
#             >= 2,000 images/s at 1024x768; ~60 s more of checks: CHECK_S=330; without it,
#             the run exports the flow candidate it trained, with the same effect), with
#             UNSEEN_BY="0 1 2" only the training pairs that the renderer, trained on those
#             shards, has not seen in any form (`data overlap --unseen-by`: 3,076 pairs,
#             2,212 distinct photos, instead of 14,221) and, with INIT, that
#             checkpoint's weights as fp16 (a warm start), split into pieces that fit a
#             call beside the working tree; prints the device calls to make. Run it in the project's environment
#             (PYTHON, default python3, imports clothes_extractor: numpy, Pillow; torch with INIT).
#   there: each piece call copies its piece to /tmp/lease; the last call runs
#          DEADLINE_S=585 bash scripts/gpu_lease.sh run
#          -> $OUT: gpures.tar (gpu_check results; a gpures/ folder as they come if the run
#             is cut short), the slim best checkpoints (fp16 weights, no optimizer),
#             results.tar (metrics, logs, last contact sheets, GPU utilisation), session.log
#             (at most 8 files come back from $OUT, and $OUT starts empty on every call)
#
# The run trains first, for DEADLINE_S (the command's limit less the packing time) less
# CHECK_S, then checks for CHECK_S seconds at most (default 280: gpu_check.sh, alone on the
# GPU); ORDER=check checks first, so that a lease cut short still brings the timings back.
# The training's checkpoints are in $OUT before the checks start. With INIT, name one
# candidate (CANDIDATES=g32) and pass its rate (TRAIN_ARGS="--lr-g 1e-4"). From a fresh
# checkout (no earlier run to start from): RENDERER=clothes_extractor/models/generator-fp32.onnx
# UNSEEN_BY="0 1 2" CHECK_S=270 TORCH_BASELINE=0 TRYON=0 CANDIDATES="flowg flowa" (two warping
# candidates side by side: on the 12-04b H200 two filled the GPU and stopped improving at epoch 8 of
# 3.7 minutes; flowr left out since its CPU run drew softer, models/generator.md; gpu_check without what
# the 12-04 lease recorded: the try-on model, the parser, `tryon` and PyTorch's U-Net, about 4 of its 6
# minutes, which go to the training).
# CANDIDATES, TRAIN_ARGS, CHECK_S, ORDER, TORCH_BASELINE and TRYON given to prepare go into the run
# call it prints.
# Lessons of the 2026-12-04 lease: the image has no pytorch-msssim (the [train] extra's), so the
# payload carries its wheel and the run checks the training's imports before it trains; make the
# piece calls in one batch of tool calls: a machine idle 30 s goes back with the pieces copied to it.
# Measured on H200 leases (2026-11-27): start 30-35 s, each piece call ~5 s of lease time,
# onnxruntime-gpu unpacked in 6 s, gpu_check (g64 + ngf-16 size, batches 1/32/128, no
# torch.compile) 255 s (since then its last step, tryon end to end on TRYON_PAIRS=100 person
# photos, runs in what is left of CHECK_S), data decoded onto the GPU in 7 s; one ngf-32 run alone ~2,200
# samples/s, two side by side ~1,500 each. Move the bundled models out of the working
# tree during the calls (they would travel with it and count against the 64 MiB; the
# payload carries them and the run puts them back there); keep clothes_extractor/models/__init__.py.
set -uo pipefail
cd "$(dirname "$0")/.."
mode=${1:?usage: gpu_lease.sh prepare [VITON_DIR] | run}

# A checkpoint's network weights as fp16, without what only --resume reads (a quarter of
# the bytes): what travels to and from a lease. Prints the run's epoch and validation metrics.
slim_checkpoint() {
  ${PYTHON:-python3} -c 'import sys
from clothes_extractor.train.checkpoint import slim_checkpoint
c = slim_checkpoint(sys.argv[1], sys.argv[2])
print(sys.argv[1], "epoch", c.get("epoch"), (c.get("summary") or {}).get("validation"))' "$1" "$2"
}

if [ "$mode" = prepare ]; then
  set -e
  viton=${2:-../shared/data/viton}
  ver=${ORT_VERSION:-1.31.1}
  grep -qx '/.lease/' .git/info/exclude 2>/dev/null || echo '/.lease/' >> .git/info/exclude
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  cache=${LEASE_CACHE:-$HOME/.cache/clothes-extractor/lease}  # the 255 MB wheel, downloaded once
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 -d "$cache" "onnxruntime-gpu==$ver"
  # GPU decode (extract --decode gpu): nvImageCodec and nvJPEG for CUDA 13, unpacked beside onnxruntime
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_27_x86_64 \
    -d "$cache" "nvidia-nvimgcodec-cu13==${NVIMGCODEC_VERSION:-0.9.0.20}" "nvidia-nvjpeg>=13,<14"
  mkdir -p "$work/ort" "$work/pl/viton" "$work/pl/wheels"
  # the [train] extra beyond the image's PyTorch (pyproject.toml): pytorch-msssim, pure Python.
  # The image lacks it, and the 2026-12-04 lease's training stopped at its import in 27 s.
  python3 -m pip download -q --no-deps --only-binary=:all: -d "$work/pl/wheels" "pytorch-msssim>=1.0"
  if [ -n "${INIT:-}" ]; then  # network weights only, as fp16: a few MB instead of ~90 with the optimizers
    slim_checkpoint "$INIT" "$work/pl/init.pt"
  fi
  # the bundled models (gpu_check and extract's end-to-end check run them): they travel in
  # the payload, and the run puts them back into the tree, which goes without them
  mkdir -p "$work/pl/models" && cp clothes_extractor/models/*.onnx "$work/pl/models/"
  if [ -n "${RENDERER:-}" ]; then # a bundled model is carried once
    bundled="clothes_extractor/models/$(basename "$RENDERER")"
    if [ -f "$bundled" ] && cmp -s "$RENDERER" "$bundled"; then
      ln -s "models/$(basename "$RENDERER")" "$work/pl/renderer.onnx"
    else
      cp "$RENDERER" "$work/pl/renderer.onnx"
    fi
  fi
  [ -n "${WARPING:-}" ] && cp "$WARPING" "$work/pl/warping.onnx"
  mkdir -p "$work/pl/photos" && cp "$(dirname "$viton")"/viton-hd-sample/train/image/*.jpg "$work/pl/photos/" 2>/dev/null || true
  # a catalog garment beside them, for gpu_check's tryon end to end ("$photos/../cloth")
  mkdir -p "$work/pl/cloth" && cp "$(dirname "$viton")"/viton-hd-sample/train/cloth/*.jpg "$work/pl/cloth/" 2>/dev/null || true
  (cd "$work/ort" && python3 -m zipfile -e "$cache/onnxruntime_gpu-$ver-"*.whl . \
    && rm -rf onnxruntime/transformers onnxruntime/quantization onnxruntime/tools \
      onnxruntime/capi/libonnxruntime_providers_tensorrt.so \
    && for w in "$cache"/nvidia_nvimgcodec_cu13-*.whl "$cache"/nvidia_nvjpeg-13*.whl; do python3 -m zipfile -e "$w" .; done \
    && rm -f nvidia/nvimgcodec/nvimgcodec_impl.cpython-3{9,10,11,13,13t,14,14t}-*.so)
  tar cf - -C "$work/ort" . | xz -9 -T0 > "$work/pl/ortgpu.tar.xz"
  # the validation pairs held out from training (no copy of their photo or catalog image in
  # any training shard: 341 of 1,528, `data overlap`), in the unpacked layout: the runs
  # choose their epoch by them. The rest are copies of training pairs, and the frozen
  # renderer of the flow candidate learned most of those by heart (models/generator.md).
  mkdir -p "$work/viton" && tar xf "$viton/val.tar" -C "$work/viton"
  mv "$work/viton/val/pairs-val.txt" "$work/viton/val_pairs.txt"
  for t in "$viton"/train-*.tar; do
    tar xf "$t" -C "$work/viton" --wildcards 'train/image/*' 'train/cloth/*' 'train/image-parse/*'
  done
  unseen=()
  if [ -n "${UNSEEN_BY:-}" ]; then # the shards the renderer learned from: their pairs file
    for n in $UNSEEN_BY; do tar -xOf "$viton/train-$n.tar" "train/pairs-train-$n.txt"; done > "$work/learned.txt"
    unseen=(--unseen-by "$work/learned.txt" --unseen-pairs "$work/unseen.txt")
  fi
  PYTHONPATH=$PWD ${PYTHON:-python3} -m clothes_extractor data overlap "$work/viton" \
    --held-out-pairs "$work/val_pairs.txt" "${unseen[@]}"
  if [ -n "${UNSEEN_BY:-}" ]; then # only the training pairs the renderer has not seen in any form
    mkdir -p "$work/viton/train" && cp "$work/unseen.txt" "$work/viton/train/pairs-train-unseen.txt"
    awk '{print "train/image/"$1; print "train/cloth/"$2; sub(/\.jpg$/,".png",$1); print "train/image-parse/"$1}' \
      "$work/unseen.txt" > "$work/train.list"
    tar cf "$work/pl/viton/train-unseen.tar" -C "$work/viton" -T "$work/train.list" train/pairs-train-unseen.txt
  else
    cp "$viton"/train-*.tar "$work/pl/viton/"
  fi
  awk '{print "val/image/"$1; print "val/cloth/"$2; sub(/\.jpg$/,".png",$1); print "val/image-parse/"$1}' \
    "$work/val_pairs.txt" > "$work/val.list"
  tar cf "$work/pl/viton/val.tar" -C "$work/viton" -T "$work/val.list" -C "$work" val_pairs.txt
  tar cf "$work/payload.tar" -C "$work/pl" .
  rm -rf .lease && mkdir -p .lease
  (cd "$work/pl" && sha256sum "$work/payload.tar" | sed "s#$work/##" > "$OLDPWD/.lease/payload.sha")
  # as few pieces as fit beside the working tree (without the bundled models) in a call's 64 MiB
  tree=$(git ls-files -co --exclude-standard | grep -v '^clothes_extractor/models/.*\.onnx$' \
    | while read -r f; do [ -f "$f" ] && stat -c %s "$f"; done | awk '{s += $1} END {print s + 0}')
  cap=$((64 * 1048576 - tree - 1048576)) # and a MiB to spare
  pieces=$(( ($(stat -c %s "$work/payload.tar") + cap - 1) / cap ))
  split -n "$pieces" -d -a 1 "$work/payload.tar" "$work/part"
  n=0
  for part in "$work"/part*; do
    n=$((n + 1)); mkdir -p ".lease/p$n"; mv "$part" ".lease/p$n/"
  done
  echo "payload: $n pieces under .lease/ (of at most $((cap / 1048576)) MiB: the tree, without its bundled models, takes $((tree / 1048576)) MiB)."
  echo "First move the bundled models out of the tree, which goes with every call (the payload has them):"
  echo "  mkdir -p ../bundled-models && mv clothes_extractor/models/*.onnx ../bundled-models/   (back after: mv ../bundled-models/*.onnx clothes_extractor/models/)"
  echo "Device calls, back to back, all in one batch of tool calls (the machine goes back 30 s after a call;"
  echo "a call that answers warm: false started a fresh machine, and the pieces copied before it are gone):"
  for i in $(seq 1 $((n - 1))); do
    echo "  command 'mkdir -p /tmp/lease && cp .lease/p$i/* /tmp/lease/ && ls /tmp/lease'  carry ['.lease/p$i']"
  done
  # the run's own settings, given to prepare, go into the printed call
  runenv=""
  for v in CANDIDATES TRAIN_ARGS CHECK_S ORDER TORCH_BASELINE TRYON; do # (the last two: gpu_check.sh's)
    [ -n "${!v:-}" ] && runenv+="$v=\"${!v}\" "
  done
  echo "  command 'mkdir -p /tmp/lease && cp .lease/p$n/* /tmp/lease/ && ${runenv}DEADLINE_S=585 bash scripts/gpu_lease.sh run'"
  echo "          carry ['.lease/p$n', '.lease/payload.sha'], timeout_s 600"
  echo "If device time is left after it (status; the machine stays warm 30 s), time the try-on model"
  echo "(re-exported 2026-12-04, not yet timed on a GPU) with what the run unpacked there:"
  echo "  command 'cp -n /tmp/pl/models/*.onnx clothes_extractor/models/; PYTHONPATH=/tmp/ortgpu:\$PWD TRYON=only TRYON_PAIRS=100 BATCHES=1,32,128 timeout SECONDS bash benchmarks/gpu_check.sh /tmp/tc /tmp/pl/photos; tar cf \$OUT/tryon-check.tar -C /tmp tc'"
  echo "          timeout_s SECONDS + 15; or continue the better run (RUN, by the held-out scores session.log"
  echo "          prints; the 12-04b lease's stopped improving at epoch 8, so that rarely pays):"
  echo "  command 'cp /tmp/runs/RUN/best.pt /tmp/pl/init.pt && CANDIDATES=RUN CHECK_S=0 TRAIN_ARGS=\"--lr-g 1e-4\" DEADLINE_S=SECONDS bash scripts/gpu_lease.sh run'"
  echo "          carry ['.lease/payload.sha'], timeout_s SECONDS + 15 (the copied pieces are still in /tmp/lease)"
  exit 0
fi

[ "$mode" = run ] || { echo "unknown mode $mode" >&2; exit 2; }
: "${OUT:?run this on the device machine, where OUT is set}"
T0=$(date +%s)
el() { echo "[$(($(date +%s) - T0))s] $*"; }
exec > >(tee -a "$OUT/session.log") 2>&1
DEADLINE_S=${DEADLINE_S:-585} # the command's limit, less the packing time
CHECK_S=${CHECK_S:-280}
el start
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
cat /tmp/lease/part* > /tmp/payload.tar
(cd /tmp && sha256sum -c "$OLDPWD/.lease/payload.sha") || { el "payload broken"; exit 3; }
mkdir -p /tmp/pl /tmp/ortgpu /tmp/viton && tar xf /tmp/payload.tar -C /tmp/pl && rm /tmp/payload.tar
xz -dc -T0 /tmp/pl/ortgpu.tar.xz | tar xf - -C /tmp/ortgpu
el "onnxruntime-gpu unpacked"
for m in /tmp/pl/models/*.onnx; do # the bundled models, back where the package finds them
  [ -f "clothes_extractor/models/$(basename "$m")" ] || cp "$m" clothes_extractor/models/
done
nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader -l 10 > /tmp/util.csv &
utilpid=$!

# the data unpacks in the background (the training waits for it)
(for t in /tmp/pl/viton/train-*.tar; do tar xf "$t" -C /tmp/viton; done
  tar xf /tmp/pl/viton/val.tar -C /tmp/viton
  cat /tmp/viton/train/pairs-train-*.txt > /tmp/viton/train_pairs.txt && rm /tmp/viton/train/pairs-train-*.txt) &
datapid=$!
export PYTHONUNBUFFERED=1
left() { echo $((DEADLINE_S - ($(date +%s) - T0))); } # seconds left of DEADLINE_S

# GPU checks with onnxruntime-gpu, alone on the GPU, for at most $1 seconds
check_rc=
checks() {
  [ "$1" -ge 30 ] || { el "no time left for gpu_check (${1}s)"; return 0; }
  el "gpu_check gets ${1}s (the GPU tests first: their failure fails this run)"
  mkdir -p "$OUT/gpures"
  (
    export PYTHONPATH=/tmp/ortgpu:$PWD
    [ -d /tmp/trainsite ] && PYTHONPATH=$PYTHONPATH:/tmp/trainsite # the training's wheels: a GPU test trains a step
    [ -f /tmp/pl/warping.onnx ] && export WARPING=/tmp/pl/warping.onnx
    python3 -c "import onnxruntime as o; o.preload_dlls(); print(o.__version__, o.get_available_providers())"
    python3 -c "from clothes_extractor.runtime.gpudecode import open_decoder as o; print(o('gpu', 'cuda')[1] or 'GPU decode starts')"
    BATCHES=${BATCHES:-1,32,128} E2E_COPIES=${E2E_COPIES:-2000} TRYON_PAIRS=${TRYON_PAIRS:-100} \
      timeout "$1" bash benchmarks/gpu_check.sh "$OUT/gpures" /tmp/pl/photos
  )
  check_rc=$?
  el "gpu_check rc=$check_rc"
  (cd "$OUT" && tar cf gpures.tar gpures && rm -rf gpures)
}

# training (PyTorch only) for $1 seconds less ~85 s for start-up, the last validation, packing
# and the export of the flow run (9 s on two CPU cores)
training() {
  wait $datapid
  el "data: $(wc -l < /tmp/viton/train_pairs.txt) train, $(wc -l < /tmp/viton/val_pairs.txt) val pairs"
  [ -f /tmp/pl/init.pt ] && export TRAIN_ARGS="--init /tmp/pl/init.pt ${TRAIN_ARGS:-}"
  [ -f /tmp/pl/renderer.onnx ] && export RENDERER=/tmp/pl/renderer.onnx
  local minutes
  minutes=$(python3 -c "print(round(($1 - 85) / 60, 2))")
  el "training for $minutes min (${TRAIN_ARGS:-no extra arguments})"
  python3 -c "exit(not $minutes >= 1)" || return 0
  # the carried [train] wheels, ahead of anything installed; a missing import stops here, not in the runs
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/trainsite /tmp/pl/wheels/*.whl
  PYTHONPATH=/tmp/trainsite:$PWD python3 -c 'import torch, pytorch_msssim
print("training imports: torch", torch.__version__, "cuda" if torch.cuda.is_available() else "NO CUDA", "|", pytorch_msssim.__file__)' \
    || { el "training imports failed: no training"; return 0; }
  # the runs stop on their own clock (which starts after their data is loaded); if start-up ran
  # long, SIGTERM stops them at the next step, validated and saved, and 25 s later SIGKILL.
  # A warm machine may hold an earlier call's runs (their results went back with that call).
  rm -rf /tmp/runs
  PYTHONPATH=/tmp/trainsite:$PWD timeout -k 25 "$(python3 -c "print(int($minutes * 60 + 40))")" \
    bash scripts/train_generators_gpu.sh /tmp/viton /tmp/runs "$minutes"
  el "training rc=$?"
  for best in /tmp/runs/*/best.pt; do
    [ -f "$best" ] && PYTHONPATH=$PWD slim_checkpoint "$best" "$OUT/$(basename "$(dirname "$best")").pt"
  done
  el "checkpoints saved"
  # no WARPING carried in: gpu_check times the warping generator this call trained (the
  # architecture to time, and the model to ship if it wins); its checkpoint went back above
  local flow
  flow=$(ls /tmp/runs/flow*/best.pt 2>/dev/null | head -n 1) # the runs share one architecture
  if [ ! -f /tmp/pl/warping.onnx ] && [ -n "$flow" ]; then
    PYTHONPATH=/tmp/trainsite:$PWD python3 -m clothes_extractor export "$flow" -o /tmp/pl/warping.onnx \
      --precision fp16 > /tmp/runs/flow-export.log 2>&1
    local rc=$?
    el "$flow exported for gpu_check: rc=$rc ($(tail -n 1 /tmp/runs/flow-export.log))"
  fi
}

if [ "${ORDER:-train}" = train ]; then # the developers' guide: the warping generator's training first
  training $(($(left) - CHECK_S))
  [ "$CHECK_S" -gt 0 ] && checks "$(left)" # CHECK_S, or more where the training stopped early
else # ORDER=check: the timings first, so a lease cut short still brings them back
  checks "$CHECK_S"
  training "$(left)"
fi
kill $utilpid
keep=(util.csv)
for run in /tmp/runs/*/; do
  [ -d "$run" ] || continue
  name=$(basename "$run")
  keep+=("runs/$name/metrics.csv" "runs/$name.log")
  last=$(cd /tmp && ls "runs/$name"/sheets/*.png 2>/dev/null | sort | tail -n 1)
  [ -n "$last" ] && keep+=("$last")
done
(cd /tmp && tar cf "$OUT/results.tar" --ignore-failed-read "${keep[@]}")
ls -la "$OUT"
el "done (gpu checks rc=${check_rc:-not run})"
exit "${check_rc:-0}"
