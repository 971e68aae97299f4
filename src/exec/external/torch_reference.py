"""Run a synprof model file in PyTorch: an independent implementation of the IR with
torch.nn.functional, used to check synprof's forward outputs and training gradients.

    python torch_reference.py forward MODEL.json WEIGHTS.safetensors INPUT.bin OUT.safetensors
    python torch_reference.py grad    MODEL.json WEIGHTS.safetensors INPUT.bin LABELS.bin OUT.safetensors

INPUT.bin: little-endian f32 [N, ...model input shape]; LABELS.bin: little-endian u32 [N].
forward writes `output` (the first output); grad computes softmax cross-entropy (mean over
the batch) with batch-norm in training mode (batch statistics) and writes `loss` and the
gradient of every parameter under its safetensors name.
Needs torch and numpy (e.g. the venv in the README's PyTorch section).
"""
import json
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F


def read_safetensors(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8 : 8 + n])
    out = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        a, b = meta["data_offsets"]
        arr = np.frombuffer(raw[8 + n + a : 8 + n + b], dtype="<f4").reshape(meta["shape"])
        out[name] = torch.tensor(arr.copy()).to(torch.get_default_dtype())
    return out


def write_safetensors(path, tensors):
    header, blobs, offset = {}, [], 0
    for name, t in tensors.items():
        data = t.detach().contiguous().to(torch.float32).numpy().astype("<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def pad4(x, p, value=0.0):
    return F.pad(x, (p["left"], p["right"], p["top"], p["bottom"]), value=value)


def symmetric(p):
    return p["top"] == p["bottom"] and p["left"] == p["right"]


def run(model, params, x, training):
    values = {}
    for node in model["nodes"]:
        op, name = node["op"], node["name"]
        t = op["type"]
        ins = [values[i] for i in node.get("inputs", [])]
        if t == "input":
            y = x
        elif t == "conv2d":
            y = F.conv2d(pad4(ins[0], op["padding"]), params[name + ".weight"], params.get(name + ".bias"),
                         stride=op["stride"], dilation=op["dilation"], groups=op["groups"])
        elif t == "batch_norm":
            y = F.batch_norm(ins[0], params[name + ".running_mean"].clone(), params[name + ".running_var"].clone(),
                             params[name + ".weight"], params[name + ".bias"], training=training, momentum=0.0, eps=op["eps"])
        elif t in ("relu", "relu6", "sigmoid", "tanh", "silu", "hard_swish", "hard_sigmoid", "gelu"):
            f = {"relu": F.relu, "relu6": F.relu6, "sigmoid": torch.sigmoid, "tanh": torch.tanh, "silu": F.silu,
                 "hard_swish": F.hardswish, "hard_sigmoid": F.hardsigmoid, "gelu": F.gelu}[t]
            y = f(ins[0])
        elif t in ("max_pool2d", "avg_pool2d"):
            p, k, s = op["padding"], op["kernel"], op["stride"]
            if symmetric(p) and p["top"] <= k[0] // 2 and p["left"] <= k[1] // 2:
                pad = (p["top"], p["left"])
                if t == "max_pool2d":
                    y = F.max_pool2d(ins[0], k, s, pad, ceil_mode=op["ceil_mode"])
                else:
                    y = F.avg_pool2d(ins[0], k, s, pad, ceil_mode=op["ceil_mode"], count_include_pad=op["count_include_pad"])
            elif t == "max_pool2d":
                y = F.max_pool2d(pad4(ins[0], p, float("-inf")), k, s, 0, ceil_mode=op["ceil_mode"])
            else:
                total = F.avg_pool2d(pad4(ins[0], p), k, s, 0, ceil_mode=op["ceil_mode"])
                if op["count_include_pad"]:
                    y = total
                else:
                    y = total / F.avg_pool2d(pad4(torch.ones_like(ins[0]), p), k, s, 0, ceil_mode=op["ceil_mode"])
        elif t == "global_avg_pool":
            y = ins[0].mean(dim=(2, 3), keepdim=True)
        elif t == "lrn":
            y = F.local_response_norm(ins[0], op["size"], op["alpha"], op["beta"], op["k"])
        elif t == "add":
            y = ins[0]
            for other in ins[1:]:
                y = y + other
        elif t == "mul":
            y = ins[0] * ins[1]
        elif t == "scale":
            y = ins[0] * op["factor"]
        elif t == "concat":
            y = torch.cat(ins, dim=op.get("axis", 1))
        elif t == "channel_shuffle":
            n, c, h, w = ins[0].shape
            g = op["groups"]
            y = ins[0].reshape(n, g, c // g, h, w).transpose(1, 2).reshape(n, c, h, w)
        elif t == "channel_slice":
            y = ins[0][:, op["start"] : op["end"]]
        elif t == "flatten":
            y = torch.flatten(ins[0], 1)
        elif t == "linear":
            y = F.linear(ins[0], params[name + ".weight"], params.get(name + ".bias"))
        elif t == "dropout":
            y = ins[0]  # identity: the comparisons run without dropout masks
        elif t == "softmax":
            y = F.softmax(ins[0], dim=1)
        else:
            raise SystemExit(f"{name}: op {t} is not known to torch_reference.py")
        values[name] = y
    outputs = model.get("outputs") or [model["nodes"][-1]["name"]]
    out = next(n for n in model["nodes"] if n["name"] == outputs[0])
    if training and out["op"]["type"] == "softmax":
        return values[out["inputs"][0]]  # the loss takes the logits (synprof folds a final softmax into it)
    return values[outputs[0]]


def main():
    import os
    if os.environ.get("TORCH_REFERENCE_DTYPE") == "float64":
        torch.set_default_dtype(torch.float64)
    mode, model_path, weights_path, input_path = sys.argv[1:5]
    torch.set_grad_enabled(mode == "grad")
    model = json.load(open(model_path))
    params = read_safetensors(weights_path)
    shape = next(n["op"]["shape"] for n in model["nodes"] if n["op"]["type"] == "input")
    x = torch.tensor(np.fromfile(input_path, dtype="<f4")).to(torch.get_default_dtype()).reshape(-1, *shape)
    if mode == "forward":
        with torch.no_grad():
            write_safetensors(sys.argv[5], {"output": run(model, params, x, training=False)})
    elif mode == "grad":
        labels = torch.tensor(np.fromfile(sys.argv[5], dtype="<u4").astype(np.int64))
        trainable = {k: v.requires_grad_() for k, v in params.items() if not k.endswith(("running_mean", "running_var"))}
        logits = torch.flatten(run(model, params, x, training=True), 1)
        loss = F.cross_entropy(logits, labels)
        loss.backward()
        out = {"loss": loss.detach().reshape(1)}
        out.update({k: v.grad for k, v in trainable.items() if v.grad is not None})
        write_safetensors(sys.argv[6], out)
    else:
        raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
