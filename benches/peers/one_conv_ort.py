#!/usr/bin/env python3
"""onnxruntime on a one-conv model (conv + ReLU), random weights: a reference time for one layer.

    python benches/peers/one_conv_ort.py C H W OC K STRIDE PAD [BATCH] [--cold] [--threads 2]

Prints the median of 300 runs (100 with --cold) in ms. --cold reads 128 MiB before each run (the
weights come from memory, the input is warm), as `cargo bench --bench conv -- --one ... --cold`
does for synprof's conv. The figure includes onnxruntime's per-run overhead and its layout reorders
(NCHW -> NCHWc and back), which a whole model pays once, so it overstates the conv's own time inside
a model; use it beside synprof's bench for the same shape, not as a per-layer figure of a model
(`layers_vs_ort.py` gives those).
"""
import argparse
import time

import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

p = argparse.ArgumentParser()
for name in ["c", "h", "w", "oc", "k", "stride", "pad"]:
    p.add_argument(name, type=int)
p.add_argument("batch", type=int, nargs="?", default=1)
p.add_argument("--cold", action="store_true")
p.add_argument("--threads", type=int, default=2)
a = p.parse_args()

rng = np.random.default_rng(0)
weight = (rng.standard_normal((a.oc, a.c, a.k, a.k)) * 0.01).astype(np.float32)
bias = np.zeros(a.oc, np.float32)
oh = (a.h + 2 * a.pad - a.k) // a.stride + 1
ow = (a.w + 2 * a.pad - a.k) // a.stride + 1
conv = helper.make_node("Conv", ["x", "W", "B"], ["y0"], kernel_shape=[a.k, a.k], strides=[a.stride] * 2,
                        pads=[a.pad] * 4)
relu = helper.make_node("Relu", ["y0"], ["y"])
graph = helper.make_graph(
    [conv, relu], "one_conv",
    [helper.make_tensor_value_info("x", TensorProto.FLOAT, [a.batch, a.c, a.h, a.w])],
    [helper.make_tensor_value_info("y", TensorProto.FLOAT, [a.batch, a.oc, oh, ow])],
    [numpy_helper.from_array(weight, "W"), numpy_helper.from_array(bias, "B")])
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
so = ort.SessionOptions()
so.intra_op_num_threads = a.threads
so.inter_op_num_threads = 1
sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
x = rng.standard_normal((a.batch, a.c, a.h, a.w)).astype(np.float32)
for _ in range(20):
    sess.run(None, {"x": x})
flush = np.ones(128 << 20 >> 2, np.float32) if a.cold else None
times = []
for _ in range(100 if a.cold else 300):
    if flush is not None:
        flush.sum()
        x.sum()
    t = time.perf_counter()
    sess.run(None, {"x": x})
    times.append(time.perf_counter() - t)
print(f"onnxruntime {a.c}x{a.h}x{a.w} -> {a.oc} {a.k}x{a.k}/{a.stride} batch {a.batch}"
      f"{' cold' if a.cold else ''}: median {np.median(times) * 1e3:.3f} ms")
