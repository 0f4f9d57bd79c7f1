#!/usr/bin/env bash
# The README's SFP-against-hard-pruning comparison for one model, start to finish: a baseline, then SFP and hard
# pruning fine-tuned from it under one identical short schedule, then the reports. Each stage resumes from its own
# checkpoint, so the script can be killed and run again (in another session, on another day) and goes on where it
# stopped; a finished stage is skipped. Give the same OUT_ROOT each time: the fine-tuning runs name the baseline's
# checkpoint through it, and a resumed run must repeat its flags as they were.
#
#   bash scripts/sfp-vs-hard.sh MODEL RATE BASELINE_EPOCHS FINETUNE_EPOCHS [OUT_ROOT]
#   bash scripts/sfp-vs-hard.sh resnet56 0.4 10 4          # results/resnet56-onecycle10, -sfp40-ft4, -hard40-ft4
#
# Baseline: one-cycle to lr 0.2. Fine-tuning (the paper's from-pretrained protocol, shortened): cosine from a tenth
# of that, no warm-up, BN statistics re-estimated on 50 batches after each masking. Data as `train` finds it
# (--data is not passed: set CIFAR10_DIR). A stage that fails is tried again after a minute (SFP_RETRY_SECONDS),
# until it fails three times in a row without recording an epoch; a refused command (exit 2) stops at once. A stage is
# finished when its last epoch is recorded and its checkpoint was saved after it.
set -uo pipefail

if [ $# -lt 4 ] || [ $# -gt 5 ]; then
  echo "usage: bash scripts/sfp-vs-hard.sh MODEL RATE BASELINE_EPOCHS FINETUNE_EPOCHS [OUT_ROOT]" >&2
  exit 2
fi
model=$1 rate=$2 baseline_epochs=$3 finetune_epochs=$4 root=${5:-results}
retry_seconds=${SFP_RETRY_SECONDS:-60}
percent=$(awk -v r="$rate" 'BEGIN { printf "%d", r * 100 + 0.5 }')
cd "$(dirname "${BASH_SOURCE[0]}")/.."
baseline="$root/$model-onecycle$baseline_epochs"
sfp="$root/$model-sfp$percent-ft$finetune_epochs"
hard="$root/$model-hard$percent-ft$finetune_epochs"

# The last epoch the run in $1 recorded (0 for none).
recorded() { tail -n 1 "$1/metrics.jsonl" 2>/dev/null | sed -n 's/.*"epoch":\([0-9]*\),.*/\1/p' | grep . || echo 0; }

# Whether the checkpoint $1 was saved at the end of epoch $2 (train writes the epoch's record first, then the
# checkpoint: a run stopped between the two has the record but an older checkpoint). Reads the safetensors header.
saved_at_end_of() {
  node -e '
    const fs = require("fs");
    const [file, epoch] = process.argv.slice(1);
    try {
      const fd = fs.openSync(file, "r");
      const size = Buffer.alloc(8);
      fs.readSync(fd, size, 0, 8, 0);
      const header = Buffer.alloc(Number(size.readBigUInt64LE(0)));
      fs.readSync(fd, header, 0, header.length, 8);
      const meta = JSON.parse(header.toString("utf8")).__metadata__ ?? {};
      process.exit(meta.epoch === epoch && meta.step === "0" ? 0 : 1);
    } catch {
      process.exit(1);
    }' "$1" "$2"
}

# Whether the run in $1 has recorded epoch $2 and saved its checkpoint after it.
finished() { [ "$(recorded "$1")" -eq "$2" ] && saved_at_end_of "$1/checkpoint.safetensors" "$2"; }

# stage OUT EPOCHS TRAIN_FLAGS...: trains into OUT until its last epoch is recorded, resuming where a checkpoint is.
stage() {
  local out=$1 epochs=$2 failures=0; shift 2
  while ! finished "$out" "$epochs"; do
    local before resume=()
    before=$(recorded "$out")
    if [ -f "$out/checkpoint.safetensors" ]; then
      resume=(--resume "$out/checkpoint.safetensors")
    elif [ "$before" -gt 0 ]; then
      # Epochs recorded but no checkpoint (moved or deleted): a fresh run would empty metrics.jsonl.
      echo "sfp-vs-hard.sh: $out records epoch $before but has no checkpoint.safetensors: put it back (git checkout), or move the folder away to train it again" >&2
      exit 1
    fi
    echo "== $(date -u +%FT%TZ) train $* --epochs $epochs --out $out ${resume[*]}"
    npx tsx src/cli/main.ts train "$@" --epochs "$epochs" --out "$out" "${resume[@]}"
    local rc=$?
    if [ "$rc" -eq 2 ]; then echo "sfp-vs-hard.sh: train refused its arguments (exit 2); stopping" >&2; exit 2; fi
    finished "$out" "$epochs" && break
    # Three failures in a row stop the script; a try that recorded an epoch starts the count again.
    if [ "$(recorded "$out")" -gt "$before" ]; then failures=0; else failures=$((failures + 1)); fi
    if [ "$failures" -ge 3 ]; then echo "sfp-vs-hard.sh: train stopped $failures times before epoch $epochs of $out; stopping" >&2; exit 1; fi
    echo "== train stopped (exit $rc) before epoch $epochs; again in $retry_seconds s"
    sleep "$retry_seconds"
  done
}

stage "$baseline" "$baseline_epochs" --model "$model" --lr 0.2 --schedule onecycle --checkpoint-every 50
finetune=(--model "$model" --pretrained "$baseline/checkpoint.safetensors" --sfp-rate "$rate" --schedule cosine --lr 0.02
  --warmup-epochs 0 --bn-recalibrate 50 --checkpoint-every 50)
stage "$sfp" "$finetune_epochs" "${finetune[@]}"
stage "$hard" "$finetune_epochs" "${finetune[@]}" --hard-prune

npx tsx src/cli/main.ts report --run "$baseline" --run "$sfp" --run "$hard"
npx tsx src/cli/main.ts report --compare "baseline=$baseline,sfp=$sfp,hard=$hard" --paper auto
