#!/usr/bin/env python3
"""Check ONNX models with the official checker, and run them with onnxruntime.

    onnx_check.py MODEL.onnx...                  check each (full_check: strict shape inference too)
    onnx_check.py --smoke MODEL.onnx...          ... and run each model that carries its weights
                                                 (only `input` as graph input) on a random batch of 1
    onnx_check.py --run IN.npy --out OUT.npy M   check M, run it on IN, save its first output to OUT
    onnx_check.py --run-each MODEL.onnx...       check each M.onnx, run it on M.input.npy, and save
                                                 its first output as M.output.npy

One line per model; on any failure the exit status is 1 and the failing lines name the
model and give the checker's or runtime's message.
"""

import argparse
import sys
import traceback

import numpy as np
import onnx
import onnxruntime as ort


def check(path):
    onnx.checker.check_model(path, full_check=True)
    model = onnx.load(path, load_external_data=False)
    graph = model.graph
    opsets = ",".join(f"{o.domain or 'ai.onnx'}:{o.version}" for o in model.opset_import)
    return model, f"{len(graph.node)} nodes, {len(graph.initializer)} initializers, ir {model.ir_version}, {opsets}"


def session(path):
    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def run(path, x):
    sess = session(path)
    inputs = sess.get_inputs()
    if len(inputs) != 1:
        names = ", ".join(i.name for i in inputs)
        raise RuntimeError(f"the model takes {len(inputs)} inputs ({names}); it carries no weights")
    return sess.run(None, {inputs[0].name: x})


def smoke(path, model):
    inputs = [i for i in model.graph.input]
    if len(inputs) != 1:
        return "not run (no weights)"
    dims = [d.dim_value if d.HasField("dim_value") else 1 for d in inputs[0].type.tensor_type.shape.dim]
    x = np.random.default_rng(0).uniform(-1, 1, size=dims).astype(np.float32)
    outputs = run(path, x)
    for info, out in zip(model.graph.output, outputs):
        want = [d.dim_value if d.HasField("dim_value") else 1 for d in info.type.tensor_type.shape.dim]
        if list(out.shape) != want:
            raise RuntimeError(f"output {info.name} has shape {list(out.shape)}, the model declares {want}")
        if not np.isfinite(out).all():
            raise RuntimeError(f"output {info.name} is not finite")
    return "ran: " + ", ".join(f"{o.name} {list(y.shape)}" for o, y in zip(model.graph.output, outputs))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+")
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--run", metavar="IN.npy")
    parser.add_argument("--out", metavar="OUT.npy")
    parser.add_argument("--run-each", action="store_true")
    args = parser.parse_args()
    if (args.run is None) != (args.out is None):
        parser.error("--run and --out go together")
    if args.run is not None and len(args.models) != 1:
        parser.error("--run takes exactly one model")

    failures = 0
    for path in args.models:
        try:
            model, summary = check(path)
            if args.run is not None:
                y = run(path, np.load(args.run))[0]
                np.save(args.out, np.ascontiguousarray(y, dtype=np.float32))
                summary += f"; ran, output {list(y.shape)} -> {args.out}"
            elif args.run_each:
                stem = path[: -len(".onnx")] if path.endswith(".onnx") else path
                y = run(path, np.load(stem + ".input.npy"))[0]
                np.save(stem + ".output.npy", np.ascontiguousarray(y, dtype=np.float32))
                summary += f"; ran, output {list(y.shape)}"
            elif args.smoke:
                summary += "; " + smoke(path, model)
            print(f"ok {path}: {summary}", flush=True)
        except Exception as e:  # report every model, then fail
            failures += 1
            message = str(e).strip() or traceback.format_exc()
            print(f"FAIL {path}: {type(e).__name__}: {message}", flush=True)
    if failures:
        print(f"{failures} of {len(args.models)} models failed", flush=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
