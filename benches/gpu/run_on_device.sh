#!/usr/bin/env bash
# Issue #3's GPU figures in one call on a lent GPU machine (no Rust, no network there):
# ResNet-50 and synNet, synprof against PyTorch eager, f32/f16/bf16, inference at batch
# 1-256 and training at 32 and 128 (profiles/gpu-peers.toml), with the machine's
# description and a smoke case first. Everything lands under $OUT (the device tool's
# output folder; ./gpu-out elsewhere). See benches/gpu/README.md for the build and the call.
set -uo pipefail
OUT=${OUT:-gpu-out}
mkdir -p "$OUT"
BIN=${SYNPROF_BIN:-target-cuda/release/synprof}
PY=${SYNPROF_PYTHON:-python3}
[ -x "$BIN" ] || { echo "no CUDA build at $BIN (carry it: benches/gpu/README.md)" >&2; exit 2; }
# The CUDA libraries (cuBLAS, NVRTC, cuRAND, cuDNN) of the machine's PyTorch environment.
LIBS=$("$PY" -c 'import glob, os, nvidia
print(":".join(sorted({os.path.dirname(p) for d in nvidia.__path__ for p in glob.glob(os.path.join(d, "**", "lib*.so*"), recursive=True)})))' 2>/dev/null) || echo "no nvidia package in $PY: relying on the system's CUDA libraries" >&2
export LD_LIBRARY_PATH="$LIBS${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export SYNPROF_PYTHON="$PY"
{ nvidia-smi; nvidia-smi -q -d CLOCK,POWER,TEMPERATURE; "$PY" -c 'import torch; print("torch", torch.__version__, torch.version.cuda)'; } > "$OUT/machine.txt" 2>&1
"$BIN" devices > "$OUT/devices.txt" 2>&1
cat "$OUT/devices.txt"
# One case first: a wrong build or missing library fails here in seconds, not 72 times.
if ! timeout 120 "$BIN" run resnet50 --device cuda:0 --dtype bf16 --batch 32 --min-secs 2 --json > "$OUT/smoke.json" 2> "$OUT/smoke.err"; then
    echo "smoke case failed:" >&2
    tail -n 20 "$OUT/smoke.err" "$OUT/smoke.json" >&2
    exit 1
fi
# The sweep: results.jsonl grows case by case, so a timeout keeps every case measured so far.
timeout "${SYNPROF_SWEEP_SECS:-480}" "$BIN" profile profiles/gpu-peers.toml --reports "$OUT/reports" > "$OUT/profile.log" 2>&1
echo "profile exit status $?"
tail -40 "$OUT/profile.log"
