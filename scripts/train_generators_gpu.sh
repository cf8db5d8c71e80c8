#!/usr/bin/env bash
# Train the default-generator candidates side by side on one GPU, each for the same wall
# time, with the data decoded once and held on the GPU (--data-on-device):
#   g16     ngf 16, L1 + SSIM, no discriminator   (1.8 M parameters, 3.7 MB as fp16 ONNX)
#   g32     ngf 32, L1 + SSIM, no discriminator   (7.3 M parameters, 14.6 MB as fp16 ONNX)
# (no PatchGAN: on the CPU runs an adversarial loss cost SSIM and PSNR, which are what the
# default model is judged by; `train` keeps it, --gan-weight.) Small U-Nets leave much of
# an H100/H200 idle, so two runs at once cost little more than one. The learning rate is constant for the first half of the time and decays linearly
# to 0 over the second half (--lr-schedule linear with --time-limit).
#
#   bash scripts/train_generators_gpu.sh DATA RUNS [MINUTES]    (default 5 minutes)
#   CANDIDATES="g32" bash scripts/train_generators_gpu.sh ...     (one candidate only)
#   TRAIN_ARGS="--init CKPT --lr-g 1e-4" bash ...                 (more train options, every run)
#
# DATA: VITON in the CP-VTON layout (../shared/data/unpack.sh DEST makes it). Each run
# folder gets best.pt/last.pt, metrics.csv and contact sheets; RUNS/NAME.log the log.
set -euo pipefail
data=${1:?usage: train_generators_gpu.sh DATA RUNS [MINUTES]}
runs=${2:?usage: train_generators_gpu.sh DATA RUNS [MINUTES]}
minutes=${3:-5}
py=${PYTHON:-python3}
mkdir -p "$runs"
common=(--task generator --data "$data" --depth 6 --batch-size 32 --epochs 1000 --time-limit "$minutes"
  --lr-schedule linear --l1-weight 100 --ssim-weight 10 --val-every 2 --data-on-device --workers 4
  --log-every 200)
declare -A extra=(
  [g16]="--ngf 16 --gan-weight 0 --no-dropout"
  [g32]="--ngf 32 --gan-weight 0 --no-dropout"
)
pids=()
for name in ${CANDIDATES:-g16 g32}; do
  [ -n "${extra[$name]:-}" ] || { echo "unknown candidate $name (g16, g32)" >&2; exit 2; }
  # shellcheck disable=SC2086  # the extra options are meant to split
  $py -m clothes_extractor -v train "${common[@]}" ${extra[$name]} ${TRAIN_ARGS:-} --out "$runs/$name" > "$runs/$name.log" 2>&1 &
  pids+=($!)
done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=1; done
exit $status
