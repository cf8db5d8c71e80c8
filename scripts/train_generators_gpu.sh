#!/usr/bin/env bash
# Train the default-generator candidates side by side on one GPU, each for the same wall
# time, with the data decoded once and held on the GPU (--data-on-device):
#   flow    the warping generator (the candidate to replace the U-Net): ngf 24, grid levels 5, residual
#           offsets bounded to 2 px, the ngf-32 U-Net as its frozen renderer (RENDERER=its ONNX
#           file, required), L1 + SSIM + the warp pyramid, no discriminator; the composition
#           mask's target is the photo inside the garment (weight 0.5)
#   flowb   the same, the mask's target whichever of the sampled photo and the rendering is nearer
#           the catalog image over 8 px (weight 1): the best of the CPU runs on held-out pairs
#   flowr   flowb with its renderer fine-tuned too (--renderer-trainable, at --lr-renderer 2e-6: at
#           the network's 2e-4 one step took its SSIM from 0.82 to 0.47): the garment's shape is the
#           rendering's, and on held-out pairs a wrong shape costs more than the grid gains (the
#           12-04b lease: flow and flowb stopped improving at epoch 8; models/generator.md)
#   flowa   flowb with the silhouette weighted 4x (--alpha-weight 8): the predicted silhouette
#           (alpha IoU 0.81 held out) cuts the photo's pixels and the transparent background
#   flowg   flowb with a PatchGAN and its feature matching (--gan-weight 1 --fm-weight 10): every
#           L1 + SSIM run on held-out pairs gained SSIM by drawing softer (models/generator.md,
#           "Trained on from the 12-04b lease's flowb"); the adversarial term is the one that rewards edges
#   (flowr and flowa, trained on from the 12-04b lease's flowb on the CPU: flowr's renderer drew
#   softer, sharpness 0.50 -> 0.46 in 3 epochs, and flowa's silhouette moved 0.809 -> 0.811; flowb with
#   --warp-mask-weight 20 or 80 found the outline and lost the grid's pixels, so it is no candidate:
#   benchmarks/results/cpu-2core-round2/warping-mask-term.txt)
#   g16     U-Net ngf 16, L1 + SSIM, no discriminator   (1.8 M parameters, 3.7 MB as fp16 ONNX)
#   g32     U-Net ngf 32, L1 + SSIM, no discriminator   (7.3 M parameters, 14.6 MB as fp16 ONNX)
# (no PatchGAN but in flowg: on the CPU runs an adversarial loss cost SSIM and PSNR, which are
# what the default model is judged by; `train` keeps it, --gan-weight.) Small U-Nets leave much of
# an H100/H200 idle, so two runs at once cost little more than one (the 12-04b H200: one warping run
# kept it 30-44% busy at 516-573 samples/s, two 99-100% at 602-723 each). The learning rate is constant for the first half of the time and decays linearly
# to 0 over the second half (--lr-schedule linear with --time-limit).
#
#   bash scripts/train_generators_gpu.sh DATA RUNS [MINUTES]    (default 5 minutes)
#   CANDIDATES="g32" bash scripts/train_generators_gpu.sh ...     (one candidate only; default: flow)
#   TRAIN_ARGS="--init CKPT --lr-g 1e-4" bash ...                 (more train options, every run)
#
# DATA: VITON in the CP-VTON layout (../shared/data/unpack.sh DEST makes it). Each run
# folder gets best.pt/last.pt, metrics.csv and contact sheets; RUNS/NAME.log the log.
# For the flow candidate, `python scripts/warp_diagnosis.py RUNS/flow/best.pt DATA --held-out`
# says whether the grid got better than its renderer inside the garment, on pairs neither
# saw (see models/generator.md).
set -euo pipefail
data=${1:?usage: train_generators_gpu.sh DATA RUNS [MINUTES]}
runs=${2:?usage: train_generators_gpu.sh DATA RUNS [MINUTES]}
minutes=${3:-5}
py=${PYTHON:-python3}
mkdir -p "$runs"
# --val-every 8: on the 12-04 H200 an epoch of the 3,076 unseen pairs took 5 s, and three validations
# two thirds of the run's 91 s; --workers 8: each run decodes its data on 8 cores (two runs side by side)
common=(--task generator --data "$data" --batch-size 32 --epochs 1000 --time-limit "$minutes"
  --lr-schedule linear --val-every 8 --val-limit 500 --data-on-device --workers 8 --log-every 200 --gan-weight 0)
declare -A extra=(
  [flow]="--arch flow --ngf 24 --top 8 --target-ngf 12 --depth 5 --residual-px 2 --renderer ${RENDERER:-missing.onnx}
    --l1-weight 10 --ssim-weight 10 --warp-weight 20 --tv-weight 0.2 --tv2-weight 1 --composition-weight 0.5
    --alpha-weight 2 --framing 0.25"
  [flowb]="--arch flow --ngf 24 --top 8 --target-ngf 12 --depth 5 --residual-px 2 --renderer ${RENDERER:-missing.onnx}
    --l1-weight 10 --ssim-weight 10 --warp-weight 20 --tv-weight 0.2 --tv2-weight 1 --composition better
    --composition-weight 1 --alpha-weight 2 --framing 0.25"
  [flowr]="--arch flow --ngf 24 --top 8 --target-ngf 12 --depth 5 --residual-px 2 --renderer ${RENDERER:-missing.onnx}
    --renderer-trainable --l1-weight 10 --ssim-weight 10 --warp-weight 20 --tv-weight 0.2 --tv2-weight 1
    --composition better --composition-weight 1 --alpha-weight 2 --framing 0.25"
  [flowa]="--arch flow --ngf 24 --top 8 --target-ngf 12 --depth 5 --residual-px 2 --renderer ${RENDERER:-missing.onnx}
    --l1-weight 10 --ssim-weight 10 --warp-weight 20 --tv-weight 0.2 --tv2-weight 1 --composition better
    --composition-weight 1 --alpha-weight 8 --framing 0.25"
  [flowg]="--arch flow --ngf 24 --top 8 --target-ngf 12 --depth 5 --residual-px 2 --renderer ${RENDERER:-missing.onnx}
    --l1-weight 10 --ssim-weight 10 --warp-weight 20 --tv-weight 0.2 --tv2-weight 1 --composition better
    --composition-weight 1 --alpha-weight 2 --framing 0.25 --gan-weight 1 --fm-weight 10" # (the last --gan-weight counts)
  [g16]="--depth 6 --ngf 16 --no-dropout --l1-weight 100 --ssim-weight 10"
  [g32]="--depth 6 --ngf 32 --no-dropout --l1-weight 100 --ssim-weight 10"
)
pids=()
for name in ${CANDIDATES:-flow}; do
  [ -n "${extra[$name]:-}" ] || { echo "unknown candidate $name (flow, flowb, flowr, flowa, flowg, g16, g32)" >&2; exit 2; }
  # shellcheck disable=SC2086  # the extra options are meant to split
  $py -m clothes_extractor -v train "${common[@]}" ${extra[$name]} ${TRAIN_ARGS:-} --out "$runs/$name" > "$runs/$name.log" 2>&1 &
  pids+=($!)
done
# Ctrl-C or `timeout` signal the whole process group: each run stops at its next step,
# validates and saves (train's own handling); this script waits for them to finish that.
trap ':' TERM INT
status=0
for pid in "${pids[@]}"; do
  while :; do
    wait "$pid" && rc=0 || rc=$?
    kill -0 "$pid" 2>/dev/null || break # still running: the wait was cut short by a signal
  done
  [ "$rc" = 0 ] || status=1
done
exit $status
