"""torchvision models exported to ONNX by PyTorch, with PyTorch's own outputs to compare.

For each model: random weights (torchvision's init, seeded) and random batch-norm running
statistics, eval mode, a seeded input of batch 2; exported with the TorchScript exporter
(opset 17) and, for a few, with the dynamo exporter (opset 18). Writes into OUT_DIR:
NAME.onnx, NAME.input.npy, NAME.output.npy; prints `exported NAME PARAMS BN_CHANNELS`
(trainable parameters, and channels of 2-D batch norms, which exports may fold into convs).

usage: python torchvision_export.py OUT_DIR
"""

import os
import sys
import warnings

import numpy as np
import torch
import torchvision.models as tvm

warnings.filterwarnings("ignore")

MODELS = [
    ("resnet18", 224),
    ("resnet50", 224),
    ("mobilenet_v2", 224),
    ("mobilenet_v3_small", 224),
    ("shufflenet_v2_x1_0", 224),
    ("squeezenet1_1", 224),
    ("densenet121", 224),
    ("efficientnet_b0", 224),
    ("googlenet", 224),
    ("inception_v3", 299),
    ("regnet_y_400mf", 224),
    ("mnasnet1_0", 224),
    ("alexnet", 224),
    ("vgg11_bn", 224),
]
DYNAMO = ["resnet18", "mobilenet_v3_small", "efficientnet_b0"]


def build(name, seed):
    torch.manual_seed(seed)
    kwargs = {"weights": None}
    if name in ("googlenet", "inception_v3"):
        kwargs.update(aux_logits=False, init_weights=True)
    model = getattr(tvm, name)(**kwargs).eval()
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.rand(m.num_features, generator=g) * 0.4 - 0.2)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.rand(m.num_features, generator=g) * 0.4 - 0.2)
    return model


def main():
    out_dir = sys.argv[1]
    torch.set_num_threads(2)
    jobs = [(n, s, False) for n, s in MODELS] + [(n, s, True) for n, s in MODELS if n in DYNAMO]
    for i, (name, size, dynamo) in enumerate(jobs):
        model = build(name, i)
        x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(100 + i))
        with torch.no_grad():
            y = model(x)
        tag = name + ("_dynamo" if dynamo else "")
        path = os.path.join(out_dir, tag + ".onnx")
        if dynamo:
            torch.onnx.export(model, (x,), path, dynamo=True, opset_version=18, external_data=False,
                              input_names=["x"], dynamic_shapes={"x": {0: torch.export.Dim("N")}})
        else:
            torch.onnx.export(model, (x,), path, dynamo=False, opset_version=17,
                              input_names=["x"], dynamic_axes={"x": {0: "N"}})
        np.save(os.path.join(out_dir, tag + ".input.npy"), x.numpy())
        np.save(os.path.join(out_dir, tag + ".output.npy"), y.numpy())
        params = sum(p.numel() for p in model.parameters())
        bn = sum(m.num_features for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))
        print("exported", tag, params, bn, flush=True)


if __name__ == "__main__":
    main()
