#!/usr/bin/env python3
"""Reference parameter / MAC counts for CNN architectures, computed with real
PyTorch, torchvision and timm.  The numbers are used to test synprof's own
(Rust) architecture definitions and counters.

How to run (CPU only, no network access needed; no pretrained weights are
downloaded -- every model is randomly initialised):

    python3 -m venv /work/venv-torch
    /work/venv-torch/bin/pip install torch torchvision timm onnx onnxruntime
    /work/venv-torch/bin/python tests/reference/torch_counts.py

(run from the repository root, or pass --out-dir).  It takes about a minute.

Outputs (next to this script by default):

  torch_counts.csv  one row per model with the columns
      model             name of the model in synprof
      source            library and exact installed version
      input_chw         input shape of ONE image, e.g. 3x224x224
      params_trainable  sum(p.numel() for p in model.parameters() if p.requires_grad)
      macs              multiply-accumulates of Conv2d and Linear layers only,
                        for one image (the fvcore / torchvision "GFLOPS"
                        convention):
                          conv   = out.numel() * (in_channels / groups) * kh * kw
                          linear = out.numel() * in_features
                                   (= in_features * out_features for one image)
                        biases, BatchNorm, activations, pools, adds are NOT counted
      convs, linears    number of distinct Conv2d / Linear modules that ran in
                        forward (counted with hooks, so heads that do not run,
                        e.g. inactive aux classifiers, are excluded)
      bn_layers         number of distinct BatchNorm2d modules that ran
      bn_channels       sum of num_features over those BatchNorm2d modules
      notes             the constructor call used (plus remarks)

  layers/<model>.txt  per-layer dump: one line per Conv2d / Linear /
      BatchNorm2d / pooling call, in execution order, with the module name,
      type, key attributes, output shape, the module's own parameters and its
      MACs.  Pooling done through torch.nn.functional (e.g. F.max_pool2d inside
      torchvision's Inception blocks, F.adaptive_avg_pool2d in DenseNet and
      MobileNetV2) is captured too and listed as "<enclosing module>:F.<fn>".
      Global pooling written as x.mean([2, 3]) (ShuffleNetV2) can not be seen
      and is missing from the dump.

Subclasses are included: timm's BatchNormAct2d counts as BatchNorm2d and
Conv2dSame as Conv2d; Squeeze-and-Excitation blocks built from 1x1 Conv2d
(torchvision MobileNetV3 / EfficientNet, timm SE-ResNet) count as convs.
"""

import argparse
import csv
import functools
import os
import sys
import warnings
from importlib.metadata import version

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
import torchvision.models as tvm
import timm
from timm.models.resnet import Bottleneck, ResNet

TV = f"torchvision {version('torchvision')}"
TIMM = f"timm {version('timm')}"


# --------------------------------------------------------------------------
# Model list: (synprof name, source, (C, H, W), constructor, notes string,
#              mode).  mode is "eval" except for inception_v3_with_aux.
# --------------------------------------------------------------------------
def tv(fn_name, **kw):
    """torchvision constructor with weights=None (random init, no download)."""
    fn = getattr(tvm, fn_name)
    args = ", ".join(["weights=None"] + [f"{k}={v!r}" for k, v in kw.items()])
    return (lambda: fn(weights=None, **kw)), f"torchvision.models.{fn_name}({args})"


def tm(name, **kw):
    """timm constructor with pretrained=False."""
    args = ", ".join([repr(name), "pretrained=False"] + [f"{k}={v!r}" for k, v in kw.items()])
    return (lambda: timm.create_model(name, pretrained=False, **kw)), f"timm.create_model({args})"


def timm_resnet(layers, cardinality, base_width):
    """ResNeXt-D style nets built from timm's ResNet class directly."""
    kw = dict(layers=layers, cardinality=cardinality, base_width=base_width,
              stem_width=32, stem_type="deep", avg_down=True)
    args = ", ".join(["block=Bottleneck"] + [f"{k}={v!r}" for k, v in kw.items()])
    return (lambda: ResNet(block=Bottleneck, **kw)), f"timm.models.resnet.ResNet({args})"


def build_model_list():
    S224, S299 = (3, 224, 224), (3, 299, 299)
    m = []

    def add(name, source, chw, ctor_notes, mode="eval", extra=""):
        ctor, notes = ctor_notes
        if extra:
            notes = f"{notes}; {extra}"
        m.append((name, source, chw, ctor, notes, mode))

    # ---- torchvision ----
    for n in ["alexnet", "vgg11", "vgg13", "vgg16", "vgg19",
              "resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
              "resnext50_32x4d", "resnext101_32x8d", "resnext101_64x4d",
              "densenet121", "densenet169", "densenet201"]:
        add(n, TV, S224, tv(n))
    add("googlenet", TV, S224, tv("googlenet", aux_logits=False, init_weights=False))
    # init_weights=False only skips the (slow) truncated-normal init; it does
    # not change any shape.
    add("inception_v3", TV, S299, tv("inception_v3", aux_logits=False, init_weights=False))
    add("inception_v3_with_aux", TV, S299, tv("inception_v3", init_weights=False),
        mode="train_aux",
        extra="default aux_logits=True; run in train mode (BatchNorm kept in eval) so "
              "the AuxLogits head runs; params include the aux head")
    add("mobilenet_v2", TV, S224, tv("mobilenet_v2"))
    add("mobilenet_v2_1.4", TV, S224, tv("mobilenet_v2", width_mult=1.4))
    add("mobilenet_v3_small", TV, S224, tv("mobilenet_v3_small"))
    add("mobilenet_v3_large", TV, S224, tv("mobilenet_v3_large"))
    add("shufflenet_v2_x1_0", TV, S224, tv("shufflenet_v2_x1_0"))
    add("shufflenet_v2_x2_0", TV, S224, tv("shufflenet_v2_x2_0"))
    add("squeezenet1_0", TV, S224, tv("squeezenet1_0"))
    add("squeezenet1_1", TV, S224, tv("squeezenet1_1"))
    add("efficientnet_b0", TV, S224, tv("efficientnet_b0"))

    # ---- timm ----
    add("resnet200", TIMM, S224, tm("resnet200"))
    add("resnet_v1_50_d", TIMM, S224, tm("resnet50d"))
    add("resnet_v1_101_d", TIMM, S224, tm("resnet101d"))
    add("se_resnet50", TIMM, S224, tm("seresnet50"))
    add("inception_v4", TIMM, S299, tm("inception_v4"))
    add("inception_resnet_v2", TIMM, S299, tm("inception_resnet_v2"))
    # timm 1.x renamed the original Xception to 'legacy_xception'; 'xception'
    # is only a deprecated alias of it.
    xname = "legacy_xception" if timm.is_model("legacy_xception") else "xception"
    add("xception", TIMM, S299, tm(xname),
        extra=f"timm model '{xname}' (original Xception; 'xception' is a deprecated alias)")
    add("mobilenet_v1", TIMM, S224, tm("mobilenetv1_100"))
    add("resnext_50_32x4d_d", TIMM, S224, timm_resnet([3, 4, 6, 3], 32, 4))
    add("resnext_50_64x4d_d", TIMM, S224, timm_resnet([3, 4, 6, 3], 64, 4))
    add("resnext_101_64x4d_d", TIMM, S224, timm_resnet([3, 4, 23, 3], 64, 4))
    if timm.is_model("resnet269"):
        add("resnet269", TIMM, S224, tm("resnet269"))
    else:
        print(f"note: {TIMM} has no 'resnet269'; skipped", file=sys.stderr)

    # ---- other input sizes (MACs must scale with the input) ----
    add("resnet50@320", TV, (3, 320, 320), tv("resnet50"))
    add("mobilenet_v2@160", TV, (3, 160, 160), tv("mobilenet_v2"))
    return m


# --------------------------------------------------------------------------
# Counting
# --------------------------------------------------------------------------
POOL_TYPES = (nn.modules.pooling._MaxPoolNd, nn.modules.pooling._AvgPoolNd,
              nn.modules.pooling._AdaptiveAvgPoolNd, nn.modules.pooling._AdaptiveMaxPoolNd)
FUNCTIONAL_POOLS = ["max_pool2d", "avg_pool2d", "adaptive_avg_pool2d", "adaptive_max_pool2d"]


def own_params(mod):
    """Parameters owned by this module itself (not its children)."""
    return sum(p.numel() for p in mod.parameters(recurse=False))


def fmt_shape(t):
    return "x".join(str(d) for d in t.shape)


def pair(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


class Counter:
    """Installs hooks on a model, records every interesting call in order."""

    def __init__(self, model):
        self.model = model
        self.names = {mod: name or "<root>" for name, mod in model.named_modules()}
        self.stack = []          # names of the modules currently executing
        self.pool_depth = 0      # >0 while inside an nn pooling module
        self.lines = []          # per-layer dump lines
        self.macs = 0
        self.ran = {"conv": set(), "linear": set(), "bn": set()}
        self.calls = {}          # module -> number of calls (detect reuse)
        self.handles = []
        for mod in model.modules():
            self.handles.append(mod.register_forward_pre_hook(self._pre))
            self.handles.append(mod.register_forward_hook(self._post))

    def _pre(self, mod, inp):
        self.stack.append(self.names[mod])
        if isinstance(mod, POOL_TYPES):
            self.pool_depth += 1

    def _post(self, mod, inp, out):
        self.stack.pop()
        name = self.names[mod]
        if isinstance(mod, nn.Conv2d):
            kh, kw = mod.kernel_size
            macs = out.numel() * (mod.in_channels // mod.groups) * kh * kw
            attrs = (f"in={mod.in_channels} out={mod.out_channels} k={kh}x{kw} "
                     f"s={'x'.join(map(str, mod.stride))} "
                     f"p={mod.padding if isinstance(mod.padding, str) else 'x'.join(map(str, mod.padding))} "
                     f"d={'x'.join(map(str, mod.dilation))} g={mod.groups} "
                     f"bias={'yes' if mod.bias is not None else 'no'}")
            self._record("conv", mod, name, attrs, out, macs)
        elif isinstance(mod, nn.Linear):
            # out.numel() * in_features == in_features * out_features for one image
            macs = out.numel() * mod.in_features
            attrs = (f"in={mod.in_features} out={mod.out_features} "
                     f"bias={'yes' if mod.bias is not None else 'no'}")
            self._record("linear", mod, name, attrs, out, macs)
        elif isinstance(mod, nn.BatchNorm2d):
            attrs = f"c={mod.num_features} eps={mod.eps:g} affine={'yes' if mod.affine else 'no'}"
            self._record("bn", mod, name, attrs, out, 0)
        elif isinstance(mod, POOL_TYPES):
            self.pool_depth -= 1
            if isinstance(mod, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
                attrs = f"output_size={mod.output_size}"
            else:
                k, s, p = pair(mod.kernel_size), pair(mod.stride), pair(mod.padding)
                attrs = (f"k={k[0]}x{k[1]} s={s[0]}x{s[1]} p={p[0]}x{p[1]} "
                         f"ceil_mode={mod.ceil_mode}")
                if isinstance(mod, nn.AvgPool2d):
                    attrs += f" count_include_pad={mod.count_include_pad}"
                elif hasattr(mod, "dilation"):
                    attrs += f" d={'x'.join(map(str, pair(mod.dilation)))}"
            self._record(None, mod, name, attrs, out, 0)

    def _record(self, kind, mod, name, attrs, out, macs):
        if kind is not None:
            self.ran[kind].add(mod)
        self.calls[mod] = self.calls.get(mod, 0) + 1
        self.macs += macs
        self.lines.append(f"{name}  {type(mod).__name__}  {attrs}  out={fmt_shape(out)}  "
                          f"params={own_params(mod)}  macs={macs}")

    def functional_pool(self, fn_name, out, args, kwargs):
        """Called by the patched F.*pool* functions (see patch_functional)."""
        if self.pool_depth:      # called from inside an nn pooling module: already recorded
            return
        names = ["input", "kernel_size", "stride", "padding", "dilation", "ceil_mode"]
        if fn_name.startswith("adaptive"):
            names = ["input", "output_size"]
        vals = dict(zip(names, args))
        vals.update(kwargs)
        vals.pop("input", None)
        vals.pop("return_indices", None)
        attrs = " ".join(f"{k}={v}" for k, v in vals.items())
        where = self.stack[-1] if self.stack else "<root>"
        self.lines.append(f"{where}:F.{fn_name}  functional  {attrs}  out={fmt_shape(out)}  "
                          f"params=0  macs=0")

    def remove(self):
        for h in self.handles:
            h.remove()


ACTIVE = []   # the Counter currently running, used by the functional patches


def patch_functional():
    """Wrap F.max_pool2d etc. so pools done without an nn module are logged."""
    for fn_name in FUNCTIONAL_POOLS:
        orig = getattr(F, fn_name)

        def wrapper(*args, __orig=orig, __name=fn_name, **kwargs):
            out = __orig(*args, **kwargs)
            if ACTIVE:
                res = out[0] if isinstance(out, tuple) else out
                ACTIVE[-1].functional_pool(__name, res, args, kwargs)
            return out

        functools.update_wrapper(wrapper, orig)
        setattr(F, fn_name, wrapper)


def count(name, ctor, chw, mode):
    torch.manual_seed(0)
    model = ctor()
    params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    if mode == "train_aux":
        # Inception3 only runs its aux head when self.training; keep the
        # BatchNorms in eval so a batch of one image works (the aux head
        # reaches 1x1 spatial size, where train-mode BN needs batch > 1).
        model.train()
        for mod in model.modules():
            if isinstance(mod, nn.modules.batchnorm._BatchNorm):
                mod.eval()
    else:
        model.eval()

    counter = Counter(model)
    ACTIVE.append(counter)
    try:
        with torch.no_grad():
            model(torch.randn(1, *chw))
    finally:
        ACTIVE.pop()
        counter.remove()

    reused = [counter.names[m] for m, c in counter.calls.items() if c > 1]
    if reused:
        print(f"warning: {name}: modules called more than once: {reused}", file=sys.stderr)
    return {
        "params_trainable": params,
        "macs": counter.macs,
        "convs": len(counter.ran["conv"]),
        "linears": len(counter.ran["linear"]),
        "bn_layers": len(counter.ran["bn"]),
        "bn_channels": sum(m.num_features for m in counter.ran["bn"]),
        "lines": counter.lines,
    }


# --------------------------------------------------------------------------
# Cross-check against the metadata torchvision ships with its weight enums
# (num_params and _ops in GFLOPS; reading them needs no download).
# --------------------------------------------------------------------------
def torchvision_meta(tv_name):
    try:
        weights = tvm.get_model_weights(tv_name)
    except Exception:
        return None
    w = list(weights)[0]   # IMAGENET1K_V1
    return w.meta.get("num_params"), w.meta.get("_ops")


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out-dir", default=here)
    args = ap.parse_args()
    layers_dir = os.path.join(args.out_dir, "layers")
    os.makedirs(layers_dir, exist_ok=True)

    warnings.filterwarnings("ignore")
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    patch_functional()

    cols = ["model", "source", "input_chw", "params_trainable", "macs", "convs",
            "linears", "bn_layers", "bn_channels", "notes"]
    rows = []
    for name, source, chw, ctor, notes, mode in build_model_list():
        r = count(name, ctor, chw, mode)
        chw_s = "x".join(map(str, chw))
        with open(os.path.join(layers_dir, f"{name}.txt"), "w") as f:
            f.write(f"# {name}  {source}  input=1x{chw_s}  mode={mode}\n")
            f.write(f"# {notes}\n")
            f.write(f"# params_trainable={r['params_trainable']} macs={r['macs']} "
                    f"convs={r['convs']} linears={r['linears']} bn_layers={r['bn_layers']} "
                    f"bn_channels={r['bn_channels']}\n")
            f.write("# columns: module  type  attributes  out=NxCxHxW  params(own)  macs\n")
            f.write("\n".join(r["lines"]) + "\n")
        rows.append({"model": name, "source": source, "input_chw": chw_s,
                     **{k: r[k] for k in cols[3:9]}, "notes": notes})

        msg = f"{name:24s} params={r['params_trainable']:>11,d} macs={r['macs']/1e9:8.3f}G"
        # torchvision sanity check (standard 224/299 inputs only)
        tv_name = name.split("@")[0]
        if source == TV and "@" not in name and name not in ("mobilenet_v2_1.4",):
            meta = torchvision_meta(tv_name.replace("_with_aux", ""))
            if meta:
                np_, ops = meta
                # torchvision's published inception_v3 num_params includes the
                # aux head, its _ops do not (eval mode): compare accordingly.
                ok_p = np_ == r["params_trainable"] or name == "inception_v3"
                ok_o = (ops is None or abs(ops - r["macs"] / 1e9) < 0.0015
                        or name == "inception_v3_with_aux")
                msg += f"   tv meta: params={np_} gflops={ops} {'OK' if ok_p and ok_o else 'MISMATCH'}"
        print(msg)

    with open(os.path.join(args.out_dir, "torch_counts.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols, lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    print(f"wrote {len(rows)} rows; torch {version('torch')}, {TV}, {TIMM}")


if __name__ == "__main__":
    main()
