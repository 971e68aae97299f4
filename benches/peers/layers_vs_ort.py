#!/usr/bin/env python3
"""Where synprof's time goes against onnxruntime's, layer by layer, on the same model file.

    python benches/peers/layers_vs_ort.py MODEL [--batch 1] [--threads 2] [--seconds 5]
        [--synprof target/release/synprof] [--rounds 1] [--top 15]

onnxruntime: the model as synprof exports it (`synprof export MODEL --format onnx`), one
session with its profiler on, each node's kernel time (median over the measured iterations).
synprof: `synprof run MODEL --layers --json`, each layer's mean time; a layer fused into the
one before it (batch-norm, ReLU, residual add) has its time counted in that layer's.

onnxruntime fuses too and renames: its node `layer1.0.relu2_nchwc` is the conv whose
output that ReLU was, so each of its nodes maps to the synprof layer its name (without
`_nchwc`) names, and from there to the unfused layer that layer's work is counted in.
Nodes with no synprof layer (onnxruntime's layout reorders) are listed apart.

With --rounds N the two are measured N times alternately and each layer's figure is the
median over the rounds (the host's speed drifts; see RESULTS.md section 9).
Needs a Python with onnxruntime and numpy; the profiler adds a little per node to
onnxruntime's wall time, not to its kernel times.
"""
import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def ort_nodes(onnx_path, batch, threads, seconds, tmp):
    """{node name: median kernel ms}, the median wall ms per run."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.enable_profiling = True
    so.profile_file_prefix = os.path.join(tmp, "ortprof")
    session = ort.InferenceSession(onnx_path, so, providers=["CPUExecutionProvider"])
    inp = session.get_inputs()[0]
    x = np.random.default_rng(0).standard_normal([batch] + list(inp.shape[1:])).astype(np.float32)
    warmup = 5
    for _ in range(warmup):
        session.run(None, {inp.name: x})
    walls, start = [], time.perf_counter()
    while time.perf_counter() - start < seconds or len(walls) < 5:
        t = time.perf_counter()
        session.run(None, {inp.name: x})
        walls.append(time.perf_counter() - t)
    path = session.end_profiling()
    with open(path) as f:
        events = json.load(f)
    os.remove(path)
    per_node = collections.defaultdict(list)
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            per_node[e["name"][: -len("_kernel_time")]].append(e["dur"] / 1000.0)
    # The last len(walls) events of each node are the measured runs (warm-up ones come first).
    return {n: float(np.median(v[-len(walls):])) for n, v in per_node.items()}, float(np.median(walls)) * 1e3


def synprof_layers(synprof, model, batch, threads, seconds):
    """[(name, op, fused, mean ms)] in execution order, the median wall ms per run."""
    out = subprocess.run(
        [synprof, "run", model, "--batch", str(batch), "--threads", str(threads), "--layers", "--json",
         "--min-secs", str(seconds), "--iters", "5"],
        check=True, capture_output=True, text=True)
    case = json.loads(out.stdout)[0]
    layers = [(l["name"], l["op"], l["fused"], l["mean_ms"]) for l in case["layers"]]
    return layers, case["latency"]["median_ms"]


def owners(layers):
    """{layer name: the unfused layer its time is counted in}."""
    owner, last = {}, None
    for name, _op, fused, _ms in layers:
        if not fused:
            last = name
        owner[name] = last if fused and last else name
    return owner


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--top", type=int, default=15)
    p.add_argument("--synprof", default=os.path.join(ROOT, "target", "release", "synprof"))
    a = p.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = os.path.join(tmp, "model.onnx")
        subprocess.run([a.synprof, "export", a.model, "--format", "onnx", "-o", onnx_path], check=True,
                       capture_output=True)
        ort_rounds, syn_rounds = [], []
        for r in range(a.rounds):
            order = [0, 1] if r % 2 == 0 else [1, 0]
            for side in order:
                if side == 0:
                    ort_rounds.append(ort_nodes(onnx_path, a.batch, a.threads, a.seconds, tmp))
                else:
                    syn_rounds.append(synprof_layers(a.synprof, a.model, a.batch, a.threads, a.seconds))
            print(f"round {r + 1}: onnxruntime wall {ort_rounds[-1][1]:.3f} ms, synprof median {syn_rounds[-1][1]:.3f} ms",
                  file=sys.stderr)

    layers = syn_rounds[0][0]
    owner = owners(layers)
    op_of = {name: op for name, op, _f, _ms in layers}
    ours = {name: float(np.median([dict((n, ms) for n, _o, _f, ms in r[0])[name] for r in syn_rounds]))
            for name, _op, fused, _ms in layers if not fused}
    theirs = collections.defaultdict(float)
    unmapped = collections.defaultdict(float)
    for node in ort_rounds[0][0]:
        ms = float(np.median([r[0].get(node, 0.0) for r in ort_rounds]))
        base = node[: -len("_nchwc")] if node.endswith("_nchwc") else node
        if base in owner:
            theirs[owner[base]] += ms
        else:
            unmapped[node] += ms

    rows = sorted(((ours[n] - theirs.get(n, 0.0), n) for n in ours), reverse=True)
    sum_ours, sum_theirs, sum_unmapped = sum(ours.values()), sum(theirs.values()), sum(unmapped.values())
    wall_ours = float(np.median([r[1] for r in syn_rounds]))
    wall_theirs = float(np.median([r[1] for r in ort_rounds]))
    print(f"{a.model}, batch {a.batch}, {a.threads} threads, {a.rounds} round(s) of >= {a.seconds} s each side")
    print(f"synprof: layers sum {sum_ours:.3f} ms, median run {wall_ours:.3f} ms (--layers synchronises each layer)")
    print(f"onnxruntime: mapped kernels {sum_theirs:.3f} ms + unmapped {sum_unmapped:.3f} ms, "
          f"median run {wall_theirs:.3f} ms (profiler on)")
    print(f"\n{'layer':40s} {'op':12s} {'synprof ms':>10s} {'ort ms':>8s} {'gap ms':>8s}")
    for gap, n in rows[: a.top]:
        print(f"{n:40s} {op_of[n]:12s} {ours[n]:10.3f} {theirs.get(n, 0.0):8.3f} {gap:+8.3f}")
    print("...")
    for gap, n in rows[-5:]:
        print(f"{n:40s} {op_of[n]:12s} {ours[n]:10.3f} {theirs.get(n, 0.0):8.3f} {gap:+8.3f}")
    by_op = collections.defaultdict(lambda: [0.0, 0.0])
    for n in ours:
        by_op[op_of[n]][0] += ours[n]
        by_op[op_of[n]][1] += theirs.get(n, 0.0)
    print("\nby op: " + ", ".join(f"{op} {s:.3f} / {t:.3f}" for op, (s, t) in sorted(by_op.items())))
    if unmapped:
        print("onnxruntime only: " + ", ".join(f"{n} {ms:.3f}" for n, ms in sorted(unmapped.items(), key=lambda kv: -kv[1])[:8]))


if __name__ == "__main__":
    main()
