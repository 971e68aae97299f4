"""The light model-zoo topologies that ship inside the `onnx` package, made into a check.

Their weights are constant fills (ConstantOfShape), so every class scores the same; this
puts seeded random weights in their place (U(-b, b), b = sqrt(6 / fan_in), for tensors of
rank >= 2; U(0.5, 1.5) for vectors, which keeps batch-norm variances positive), adds the
softmax's input (the logits) as a second output, and runs onnxruntime on the input the
ONNX backend tests use (arange(n) / n). Writes, into OUT_DIR, per model NAME:
NAME.onnx, NAME.input.npy, NAME.output0.npy, NAME.output1.npy (when there are logits);
prints `original NAME PATH` for each original file.

usage: python light_models.py OUT_DIR
"""

import os
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper, numpy_helper


def randomise(model, rng):
    g = model.graph
    inits = {t.name: t for t in g.initializer}
    keep, fills = [], []
    for n in g.node:
        if n.op_type == "ConstantOfShape" and n.input[0] in inits:
            shape = [int(d) for d in numpy_helper.to_array(inits[n.input[0]])]
            if len(shape) >= 2:
                b = np.sqrt(6.0 / max(1, int(np.prod(shape[1:]))))
                v = rng.uniform(-b, b, size=shape)
            else:
                v = rng.uniform(0.5, 1.5, size=shape)
            fills.append(numpy_helper.from_array(v.astype(np.float32), n.output[0]))
        else:
            keep.append(n)
    used = {i for n in keep for i in n.input}
    del g.node[:]
    g.node.extend(keep)
    old = [t for t in g.initializer if t.name in used]
    del g.initializer[:]
    g.initializer.extend(old + fills)
    names = {t.name for t in g.initializer}
    inputs = [i for i in g.input if i.name not in names and i.name in used]
    del g.input[:]
    g.input.extend(inputs)
    # Initializers need not be graph inputs from IR version 4 on.
    model.ir_version = max(model.ir_version, 4)
    # The logits: the input of a final Softmax.
    outputs = {o.name for o in g.output}
    for n in g.node:
        if n.op_type == "Softmax" and n.output[0] in outputs:
            g.output.append(helper.make_tensor_value_info(n.input[0], onnx.TensorProto.FLOAT, None))
    return model


def main():
    out_dir = sys.argv[1]
    light = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "light")
    rng = np.random.default_rng(7)
    for file in sorted(os.listdir(light)):
        if not file.endswith(".onnx"):
            continue
        name = file[len("light_"):-len(".onnx")]
        path = os.path.join(light, file)
        print("original", name, path)
        model = randomise(onnx.load(path), rng)
        target = os.path.join(out_dir, name + ".onnx")
        onnx.save(model, target)
        x_info = model.graph.input[0]
        shape = [d.dim_value for d in x_info.type.tensor_type.shape.dim]
        n = int(np.prod(shape))
        x = (np.arange(n).reshape(shape) / n).astype(np.float32)
        np.save(os.path.join(out_dir, name + ".input.npy"), x)
        sess = ort.InferenceSession(target, providers=["CPUExecutionProvider"])
        outs = sess.run(None, {x_info.name: x})
        for k, o in enumerate(outs):
            np.save(os.path.join(out_dir, f"{name}.output{k}.npy"), np.ascontiguousarray(o, dtype=np.float32))
        print("ran", name, [o.shape for o in outs], flush=True)


if __name__ == "__main__":
    main()
