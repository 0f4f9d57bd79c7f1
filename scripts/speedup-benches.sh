#!/usr/bin/env bash
# The README's four speedup benches, one after the other, from the committed pruned checkpoints: ResNet-20 at
# 30 % (with the ImageNet ResNets, timing only) and ResNet-56 at 40 %, each faithful and coupled. Run it on a
# quiet machine (each speedup.md records the share of CPU time other processes took), then
# `bash scripts/readme-report.sh` to put the tables into README.md.
#
#   bash scripts/speedup-benches.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bench() { echo "== $(date -u +%FT%TZ) bench $*"; npx tsx src/cli/main.ts bench "$@"; }

bench --checkpoint results/resnet20-sfp30-coupled-short/checkpoint.safetensors --out results/speedup-resnet20-sfp30-coupled
bench --checkpoint results/resnet56-sfp40-coupled-short/checkpoint.safetensors --out results/speedup-resnet56-sfp40-coupled
bench --checkpoint results/resnet56-sfp40-short/checkpoint.safetensors --out results/speedup-resnet56-sfp40
bench --checkpoint results/resnet20-sfp30-ft4/checkpoint.safetensors --imagenet --out results/speedup-resnet20-sfp30
echo "== $(date -u +%FT%TZ) done"
