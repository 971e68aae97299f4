#!/usr/bin/env python3
"""Peer comparison: synprof (candle backend; convs on synprof's packed CPU kernels and on
candle's conv2d) vs onnxruntime vs PyTorch eager, CPU f32, same model, same weights for
synprof/onnxruntime, same thread count, one run on one machine, measured one after the
other (never concurrently).

    python benches/peers/compare.py [--models resnet50,mobilenet_v2,synnet] [--batches 1,16]
        [--threads 2] [--seconds 10] [--convs packed,candle] [--repeats 1] [--out benches/peers/RESULTS.md]

With --repeats N each model and batch is measured N times in rounds (synprof, onnxruntime,
torch, synprof, ...): the table shows the median img/s of each and the median of the
per-round ratios, which is what survives a machine shared with other work.

Needs: a release build of synprof (target/release/synprof), and a Python with
onnxruntime, numpy, torch (and torchvision for its resnet50/mobilenet_v2).
PyTorch eager runs torchvision's own module where torchvision has the model, else the
synprof model file through src/exec/external/torch_reference.py (torch.nn.functional).
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SYNPROF = os.path.join(ROOT, "target", "release", "synprof")


def timed(fn, seconds, warmup_iters=3):
    for _ in range(warmup_iters):
        fn()
    n, start = 0, time.perf_counter()
    lat = []
    while time.perf_counter() - start < seconds or n < 5:
        t = time.perf_counter()
        fn()
        lat.append(time.perf_counter() - t)
        n += 1
    return sum(lat), lat


def run_synprof(model, batch, threads, seconds, conv):
    out = subprocess.run(
        [SYNPROF, "run", model, "--batch", str(batch), "--threads", str(threads), "--min-secs", str(seconds),
         "--iters", "5", "--warmup-iters", "3", "--cpu-conv", conv, "--json"],
        check=True, capture_output=True, text=True)
    case = json.loads(out.stdout)[0]
    assert case.get("conv_algorithm") == conv, case.get("conv_algorithm")
    return case["latency"]["images_per_s"], case["latency"]["median_ms"]


def run_onnxruntime(model, batch, threads, seconds, tmp):
    import onnxruntime as ort
    path = os.path.join(tmp, f"{model}.onnx")
    if not os.path.exists(path):
        subprocess.run([SYNPROF, "export", model, "--format", "onnx", "-o", path], check=True, capture_output=True)
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    shape = [batch] + [d for d in sess.get_inputs()[0].shape[1:]]
    x = np.random.default_rng(0).uniform(-1, 1, shape).astype(np.float32)
    total, lat = timed(lambda: sess.run(None, {"input": x}), seconds)
    return batch * len(lat) / total, 1e3 * float(np.median(lat))


def torch_module(model, tmp):
    try:
        import torchvision
        if model in ("resnet50", "mobilenet_v2"):
            return getattr(torchvision.models, model)().eval(), "torchvision module"
    except ImportError:
        pass
    # Any other model: the synprof model file through torch.nn.functional.
    import torch
    sys.path.insert(0, os.path.join(ROOT, "src", "exec", "external"))
    from torch_reference import run as run_ir

    path = os.path.join(tmp, f"{model}.json")
    subprocess.run([SYNPROF, "export", model, "-o", path], check=True, capture_output=True)
    spec = json.load(open(path))
    info = json.loads(subprocess.run([SYNPROF, "inspect", path, "--json"], check=True, capture_output=True, text=True).stdout)
    out_shape = {layer["name"]: layer["output_shape"] for layer in info["layers"]}
    params = {}
    for node in spec["nodes"]:
        op, name, ins = node["op"], node["name"], node.get("inputs", [])
        if op["type"] == "conv2d":
            cin = out_shape[ins[0]][0]
            params[name + ".weight"] = torch.randn(op["out_channels"], cin // op["groups"], *op["kernel"]) * 0.05
            if op.get("bias", True):
                params[name + ".bias"] = torch.zeros(op["out_channels"])
        elif op["type"] == "batch_norm":
            c = out_shape[name][0]
            params.update({f"{name}.weight": torch.ones(c), f"{name}.bias": torch.zeros(c),
                           f"{name}.running_mean": torch.zeros(c), f"{name}.running_var": torch.ones(c)})
        elif op["type"] == "linear":
            fin = int(np.prod(out_shape[ins[0]]))
            params[name + ".weight"] = torch.randn(op["out_features"], fin) * 0.05
            if op.get("bias", True):
                params[name + ".bias"] = torch.zeros(op["out_features"])

    class IR(torch.nn.Module):
        def forward(self, x):
            return run_ir(spec, params, x, training=False)

    return IR(), "synprof IR via torch.nn.functional"


def run_torch(model, batch, threads, seconds, tmp):
    import torch
    torch.set_num_threads(threads)
    m, how = torch_module(model, tmp)
    size = 299 if model.startswith("inception") else 224
    x = torch.rand(batch, 3, size, size) * 2 - 1
    with torch.inference_mode():
        total, lat = timed(lambda: m(x), seconds)
    return batch * len(lat) / total, 1e3 * float(np.median(lat)), how


def machine():
    cpu = "unknown"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import onnxruntime
    import torch
    return (f"{cpu}, {os.cpu_count()} logical CPUs, {platform.system()} {platform.release()}; "
            f"onnxruntime {onnxruntime.__version__}, torch {torch.__version__}, python {platform.python_version()}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="resnet50,mobilenet_v2,synnet")
    ap.add_argument("--batches", default="1,16")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--out", default=None)
    ap.add_argument("--convs", default="packed,candle", help="synprof --cpu-conv values to run, first one is the ratios'")
    ap.add_argument("--repeats", type=int, default=1, help="rounds per model and batch; medians are reported")
    args = ap.parse_args()
    med = lambda xs: float(np.median(xs))
    convs = args.convs.split(",")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.models.split(","):
            for batch in [int(b) for b in args.batches.split(",")]:
                rounds = []
                for _ in range(args.repeats):
                    synprof = [run_synprof(model, batch, args.threads, args.seconds, c)[0] for c in convs]
                    o_ips, o_ms = run_onnxruntime(model, batch, args.threads, args.seconds, tmp)
                    t_ips, t_ms, how = run_torch(model, batch, args.threads, args.seconds, tmp)
                    rounds.append((synprof, o_ips, t_ips))
                    if args.repeats > 1:
                        print(f"  round: {model} b{batch} synprof {synprof} ort {o_ips:.2f} torch {t_ips:.2f}", flush=True)
                synprof = [med([r[0][i] for r in rounds]) for i in range(len(convs))]
                s_ips, o_ips, t_ips = synprof[0], med([r[1] for r in rounds]), med([r[2] for r in rounds])
                r_ort, r_torch = med([r[0][0] / r[1] for r in rounds]), med([r[0][0] / r[2] for r in rounds])
                row = (model, batch, synprof, o_ips, t_ips, r_ort, r_torch, how)
                rows.append(row)
                each = "  ".join(f"synprof[{c}] {v:8.2f}" for c, v in zip(convs, synprof))
                print(f"{model:>14} b{batch:<3} {each}  onnxruntime {o_ips:8.2f}  torch {t_ips:8.2f} img/s"
                      f"  ratio vs ort {r_ort:.2f}  vs torch {r_torch:.2f}", flush=True)
    lines = [
        f"Machine: {machine()}",
        f"Threads: {args.threads} (synprof --threads, onnxruntime intra_op_num_threads, torch.set_num_threads); "
        f"f32; window >= {args.seconds:.0f} s each after 3 warm-up iterations; {args.repeats} round(s), medians; "
        f"date {time.strftime('%Y-%m-%d')}",
        "",
        "| model | batch | " + " | ".join(f"synprof {c} img/s" for c in convs)
        + f" | onnxruntime img/s | PyTorch eager img/s | synprof {convs[0]} / ort | synprof {convs[0]} / torch"
        + " | PyTorch runs |",
        "|---|---|" + "---|" * len(convs) + "---|---|---|---|---|",
    ]
    for m, b, s, o, t, r1, r2, how in rows:
        each = " | ".join(f"{v:.2f}" for v in s)
        lines.append(f"| {m} | {b} | {each} | {o:.2f} | {t:.2f} | {r1:.2f} | {r2:.2f} | {how} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        with open(args.out, "a") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
