#!/usr/bin/env python3
"""How long onnxruntime's thread pool keeps a core busy after its last run.

    python benches/peers/peer_spin.py MODEL.onnx [--threads 2] [--batch 1]

Runs the model for one second, then samples the process's CPU time (all its threads) every
10 ms while the main thread sleeps. A pool that parked at once would show 0% from the first
sample; onnxruntime's default pool (intra-op spinning on) shows ~100% (one core) for about
30 ms on the Intel dev host. `synprof paired` alternates bursts of synprof and the peer; on
a 2-core machine that spin took a core from the first iterations of synprof's next burst,
which is why it now pauses (`--settle-secs`, default 0.1) before each burst
(benches/peers/RESULTS.md section 12). Needs onnxruntime and numpy.
"""
import argparse
import os
import time

import numpy as np
import onnxruntime as ort


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=1)
    a = ap.parse_args()
    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = a.threads, 1
    s = ort.InferenceSession(a.model, so, providers=["CPUExecutionProvider"])
    inp = s.get_inputs()[0]
    x = np.random.default_rng(0).standard_normal([a.batch] + list(inp.shape[1:])).astype(np.float32)
    start = time.time()
    while time.time() - start < 1.0:
        s.run(None, {inp.name: x})
    before, wall, shares = os.times(), time.time(), []
    for _ in range(12):
        time.sleep(0.01)
        now, t = os.times(), time.time()
        cpu = (now.user + now.system) - (before.user + before.system)
        shares.append(f"{100 * cpu / (t - wall):.0f}%")
        before, wall = now, t
    print("CPU use of the process per 10 ms after its last run:", " ".join(shares))


if __name__ == "__main__":
    main()
