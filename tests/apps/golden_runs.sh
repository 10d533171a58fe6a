#!/bin/bash
# usage: tests/apps/golden_runs.sh BUILD_DIR OUT_DIR  -- short real-data runs whose metrics and checkpoints must not change
# (real Fashion-MNIST from Debian's dataset-fashion-mnist, the shipped teacher; about 1 minute on 1 thread). Compare two
# output folders with tests/apps/compare_runs.py.
set -e
B=$1; O=$2; mkdir -p $O; cd "$(dirname "$0")/../.."
BASE="$B/apps/train_kd --test-limit 500 --threads 1 --seed 0 --device cpu"
KD="$B/apps/train_kd --epochs 3 --limit 2000 --test-limit 500 --threads 1 --seed 0 --device cpu"
# The ISL defaults before the ISL study (pinned, so these runs stay the digest's); the study's default is "default".
OLD="--measure loss --isl-warmup 1 --pace-to-lr-drop=false"
$KD --method ce,kd,isl $OLD --out $O/main.safetensors --metrics $O/main.jsonl > $O/main.log
$KD --method isl --pace-to-lr-drop=false --measure teacher-ce --stratified --isl-warmup 0 --phases 2 --hard-share 0.2 --lr-restart --out $O/tce.safetensors --metrics $O/tce.jsonl > $O/tce.log
$KD --method isl $OLD --curriculum-mode weighted --weight-tau 0.5 --rescore-every-epoch --phases 2 --val-split 300 --label-noise 0.1 --eval-every 7 --out $O/w.safetensors --metrics $O/w.jsonl > $O/w.log
$BASE --method kd --augment --limit 600 --epochs 2 --out $O/aug.safetensors --metrics $O/aug.jsonl > $O/aug.log
$B/apps/train --model resnet8 --epochs 2 --limit 1000 --test-limit 300 --threads 1 --seed 0 --device cpu --out $O/t.safetensors --metrics $O/t.jsonl > $O/t.log
$KD --method isl --out $O/default.safetensors --metrics $O/default.jsonl > $O/default.log
