#!/bin/sh
# Re-run every experiment from scratch and write each one's results/ folder
# (recommendations, plots, and the judgement on the week that came).
# Usage: experiments/run.sh   (from the repository root; builds knobs first)
set -eu
cargo build --release --quiet
K=./target/release/knobs
for d in elb-pool twitter-cache service-tuning service-pareto; do rm -rf "experiments/$d/results" "experiments/$d/knobs.db"*; done

$K run experiments/elb-pool/spec.yaml --no-progress > experiments/elb-pool/results.txt 2>&1
$K evaluate experiments/elb-pool/actual.yaml \
  --config experiments/elb-pool/results/elb-pool/recommendations.yaml > experiments/elb-pool/actual.txt 2>&1

$K run experiments/twitter-cache/spec.yaml --no-progress > experiments/twitter-cache/results.txt 2>&1
$K evaluate experiments/twitter-cache/actual.yaml \
  --config experiments/twitter-cache/results/twitter-cache/recommendations.yaml > experiments/twitter-cache/actual.txt 2>&1

$K run experiments/service-tuning/forecast.yaml --no-progress > experiments/service-tuning/forecast.txt 2>&1
$K run experiments/service-tuning/lastweek.yaml --no-progress > experiments/service-tuning/lastweek.txt 2>&1
$K evaluate experiments/service-tuning/actual.yaml \
  --config experiments/service-tuning/results/service-forecast/recommendations.yaml \
  --config experiments/service-tuning/results/service-lastweek/recommendations.yaml \
  > experiments/service-tuning/actual.txt 2>&1

$K run experiments/service-pareto/spec.yaml --no-progress > experiments/service-pareto/results.txt 2>&1
$K evaluate experiments/service-tuning/actual.yaml \
  --config experiments/service-pareto/results/service-pareto/recommendations.yaml > experiments/service-pareto/actual.txt 2>&1
for d in elb-pool twitter-cache service-tuning service-pareto; do rm -f "experiments/$d/knobs.db"*; done
echo "done: experiments/*/results*, actual.txt"
