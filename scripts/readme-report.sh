#!/usr/bin/env bash
# Regenerates every block of README.md that `report` writes, from the committed results: each run's report and
# chart, the ResNet-20 and ResNet-56 comparisons beside the paper, the mask comparisons and the speedup tables. Run it from any
# folder; it works in the repository root. Nothing is trained or timed here.
#
#   bash scripts/readme-report.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
report() { npx tsx src/cli/main.ts report "$@" --readme README.md > /dev/null; }

# Every run folder that has a block of its own.
runs=()
for name in $(grep -o '^<!-- report:[A-Za-z0-9._-]* -->$' README.md | sed 's/<!-- report:\(.*\) -->/\1/'); do
  case $name in compare-* | masks-* | bench-*) continue ;; esac
  runs+=(--run "results/$name")
done
report "${runs[@]}"

r=results/resnet20
report --paper resnet20-30 --compare "$(
  IFS=,
  pairs=(
    "baseline=$r-onecycle15" "sfp-scratch=$r-sfp30-onecycle15" "hard-scratch=$r-hard30-onecycle15"
    "sfp=$r-sfp30-ft4" "hard=$r-hard30-ft4" "sfp-seed1=$r-sfp30-ft4-seed1" "hard-seed1=$r-hard30-ft4-seed1"
    "sfp-lr002=$r-sfp30-ft4-lr002" "hard-lr002=$r-hard30-ft4-lr002"
    "sfp-torch=results/torch-resnet20-sfp30-ft4" "sfp-torch-seed1=results/torch-resnet20-sfp30-ft4-seed1"
    "sfp-torch-seed2=results/torch-resnet20-sfp30-ft4-seed2" "sfp-torch-seed3=results/torch-resnet20-sfp30-ft4-seed3"
    "hard-torch=results/torch-resnet20-hard30-ft4"
    "sfp-steps20=$r-sfp30-steps20-ft4" "sfp-steps1=$r-sfp30-steps1-ft4" "asfp=$r-asfp30-ft4"
    "sfp-skiplast=$r-sfp30-skiplast-ft4" "hard-skiplast=$r-hard30-skiplast-ft4"
    "sfp-15ep=$r-sfp30-ft15" "hard-15ep=$r-hard30-ft15" "sfp-2ep=$r-sfp30-ft2" "hard-2ep=$r-hard30-ft2"
  )
  echo "${pairs[*]}"
)"

r56=results/resnet56
report --paper auto --compare "baseline=$r56-onecycle10,sfp=$r56-sfp40-ft4,hard=$r56-hard40-ft4"

report --masks "hard-scratch=$r-hard30-onecycle15,sfp-scratch=$r-sfp30-onecycle15"
report --masks "hard=$r-hard30-ft4,sfp=$r-sfp30-ft4,sfp-steps20=$r-sfp30-steps20-ft4,sfp-steps1=$r-sfp30-steps1-ft4,asfp=$r-asfp30-ft4,sfp-2ep=$r-sfp30-ft2,sfp-15ep=$r-sfp30-ft15"
report --masks "hard-skiplast=$r-hard30-skiplast-ft4,sfp-skiplast=$r-sfp30-skiplast-ft4"

benches=()
for name in $(grep -o '^<!-- report:bench-[A-Za-z0-9._-]* -->$' README.md | sed 's/<!-- report:bench-\(.*\) -->/\1/'); do
  benches+=(--bench "results/$name")
done
report "${benches[@]}"
