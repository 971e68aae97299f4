"""Side by side: synprof binaries alternated with one onnxruntime session, round by round.

    python benches/peers/side_by_side.py MODEL BATCH THREADS ROUNDS SYNPROF_BIN [SYNPROF_BIN ...]

Each round runs every synprof binary (`run MODEL --batch B --threads T --min-secs 3 --json`,
median latency) and then onnxruntime (the model exported by the first binary, `intra_op_num_threads
= T`, 3 s after 3 warm-up runs, median latency). Prints each round's img/s and, at the end, the
medians and each binary's median / onnxruntime's median. Used in benches/peers/RESULTS.md section 8
to compare an old and a new build against the same onnxruntime session on a noisy host: the
binaries' rounds sit next to each other in time, so a slow phase of the host hits both. Each
round's own ratio (synprof / onnxruntime, measured seconds apart) is printed too, and the median
of those: on a host whose speed drifts, the steadiest figure. SECONDS_PER_RUN (default 3) sets
each measured window; short windows (0.5-1 s) and many rounds pair the two more tightly.
Needs onnxruntime and numpy (e.g. /work/venv-torch).

With PINGPONG=/path/to/pingpong (benches/host/pingpong.c, built) each round first prints the
host's cache-line round trip between the two CPUs: ~100 ns while the vCPUs share an L3, ~400 ns
while they do not (benches/conv_RESULTS.md, "night"); the rounds can then be read per state.
"""
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import onnxruntime as ort


def main():
    model, batch, threads, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    bins = sys.argv[5:]
    tmp = tempfile.mkdtemp(prefix="synprof-side-by-side-")
    path = os.path.join(tmp, f"{model}.onnx")
    subprocess.run([bins[0], "export", model, "--format", "onnx", "-o", path], check=True, capture_output=True)
    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).uniform(-1, 1, [batch] + list(sess.get_inputs()[0].shape[1:])).astype(np.float32)

    seconds = float(os.environ.get("SECONDS_PER_RUN", "3"))

    def onnxruntime_ips():
        for _ in range(3):
            sess.run(None, {"input": x})
        lat, start = [], time.perf_counter()
        while time.perf_counter() - start < seconds or len(lat) < 5:
            t = time.perf_counter()
            sess.run(None, {"input": x})
            lat.append(time.perf_counter() - t)
        return batch / float(np.median(lat))

    def synprof_ips(binary):
        out = subprocess.run([binary, "run", model, "--batch", str(batch), "--threads", str(threads),
                              "--min-secs", str(seconds), "--iters", "5", "--warmup-iters", "3", "--json"],
                             check=True, capture_output=True, text=True).stdout
        return batch * 1e3 / json.loads(out)[0]["latency"]["median_ms"]

    names = [f"{i}:{os.path.basename(b)}" for i, b in enumerate(bins)]
    results = {n: [] for n in names + ["onnxruntime"]}
    probe = os.environ.get("PINGPONG")
    ratios = {n: [] for n in names}
    for r in range(rounds):
        if probe:
            ns = subprocess.run([probe, "1"], check=True, capture_output=True, text=True).stdout.split()
            print(f"[round trip {ns[-1]} ns] ", end="")
        # onnxruntime before the binaries in odd rounds, after them in even ones: a trend in
        # the host's speed then favours neither side.
        if r % 2 == 1:
            results["onnxruntime"].append(onnxruntime_ips())
        for n, b in zip(names, bins):
            results[n].append(synprof_ips(b))
        if r % 2 == 0:
            results["onnxruntime"].append(onnxruntime_ips())
        for n in names:
            ratios[n].append(results[n][-1] / results["onnxruntime"][-1])
        print("  ".join(f"{n} {v[-1]:.1f}" for n, v in results.items())
              + "  (" + " ".join(f"{ratios[n][-1]:.3f}" for n in names) + ")", flush=True)
    med = {n: statistics.median(v) for n, v in results.items()}
    print("medians (img/s): " + "  ".join(f"{n} {v:.1f}" for n, v in med.items()))
    print("/ onnxruntime:   " + "  ".join(f"{n} {med[n] / med['onnxruntime']:.3f}" for n in names))
    print("median of the rounds' own ratios: " + "  ".join(f"{n} {statistics.median(ratios[n]):.3f}" for n in names))


if __name__ == "__main__":
    main()
