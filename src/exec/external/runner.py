"""synprof's external-backend runner: times one case of a synprof model in onnxruntime or
PyTorch with synprof's warm-up and measured windows, and reports on stderr the phases (for
telemetry marks) and the running throughput, and in a JSON file the latencies.

Embedded in the synprof binary (src/exec/external/runner.py) and written next to the model
it runs. Usage:
    python runner.py SPEC.json
SPEC: {"runtime": "onnxruntime"|"pytorch", "model": path (.onnx for onnxruntime, synprof
JSON for pytorch), "weights": safetensors path (pytorch), "input_shape": [C, H, W],
"batch", "device": "cpu"|"cuda:N", "dtype": "f32"|"f16"|"bf16", "mode": "infer"|"train",
"threads", "warmup_iters", "warmup_secs", "iters", "min_secs", "max_secs", "seed",
"classes", "out": result path}
stderr lines: "@phase warmup|measured|cooldown", "@live PHASE IMAGES_PER_S". After
"@phase measured" the runner waits for a line on stdin: synprof's telemetry has marked the
window by then, so the window holds every timed iteration (EOF, with no synprof reading,
lets it go on at once).

With "serve": true in SPEC (`synprof paired`), the runner warms up, prints "@ready RUNTIME"
on stdout, then runs one burst per stdin line "burst SECONDS" (at least one iteration and
SECONDS), answering "@burst ITERATIONS ELAPSED_SECONDS" on stdout, until "quit" or EOF: the
runtime stays loaded and warm between bursts while synprof times its own side.
"""
import json
import os
import platform
import sys
import time


def fail(message):
    sys.stderr.write("@error " + message.replace("\n", " | ") + "\n")
    sys.exit(3)


def phase(name):
    sys.stderr.write(f"@phase {name}\n")
    sys.stderr.flush()


class Live:
    def __init__(self, batch):
        self.batch, self.last = batch, time.perf_counter()

    def report(self, name, iterations, since):
        now = time.perf_counter()
        if now - self.last >= 0.5:
            sys.stderr.write(f"@live {name} {iterations * self.batch / (now - since):.3f}\n")
            sys.stderr.flush()
            self.last = now


def warm_up(spec, step, sync, live):
    """Warm-up by iterations and seconds, bounded by `max_secs`; the iterations run."""
    limit = max(spec["max_secs"], spec["min_secs"])
    phase("warmup")
    start, warmup = time.perf_counter(), 0
    while (warmup < spec["warmup_iters"] or time.perf_counter() - start < spec["warmup_secs"]) and (
        time.perf_counter() - start < limit or warmup == 0
    ):
        step()
        sync()
        warmup += 1
        if live:
            live.report("warmup", warmup, start)
    return warmup


def windows(spec, step, sync):
    """synprof's timing loop (exec/run.rs `measure`): warm-up by iterations and seconds, then
    at least `iters` iterations and `min_secs` seconds, all bounded by `max_secs`."""
    live = Live(spec["batch"])
    limit = max(spec["max_secs"], spec["min_secs"])
    warmup = warm_up(spec, step, sync, live)
    phase("measured")
    sys.stdin.readline()  # synprof has marked the window's start
    latencies, window = [], time.perf_counter()
    while (len(latencies) < spec["iters"] or time.perf_counter() - window < spec["min_secs"]) and (
        time.perf_counter() - window < limit or not latencies
    ):
        t0 = time.perf_counter()
        step()
        sync()
        latencies.append((time.perf_counter() - t0) * 1e3)
        live.report("measured", len(latencies), window)
    phase("cooldown")
    return warmup, latencies


def serve(spec, step, sync, runtime):
    """Warm up, then run bursts on request (see the module's docstring)."""
    warm_up(spec, step, sync, None)
    print(f"@ready {runtime}", flush=True)
    while True:
        words = sys.stdin.readline().split()
        if not words or words[0] == "quit":
            break
        seconds, iterations, start = float(words[1]), 0, time.perf_counter()
        while iterations == 0 or time.perf_counter() - start < seconds:
            step()
            sync()
            iterations += 1
        print(f"@burst {iterations} {time.perf_counter() - start:.9f}", flush=True)


def onnxruntime_case(spec):
    try:
        import numpy as np
        import onnxruntime as ort
    except ImportError as e:
        fail(f"onnxruntime backend: {e}; install it with `pip install onnxruntime numpy` (onnxruntime-gpu for CUDA)")
    if spec["mode"] != "infer":
        fail("onnxruntime backend: inference only (onnxruntime has no training step here); use backend candle or pytorch for train")
    if spec["dtype"] != "f32":
        fail(f"onnxruntime backend: {spec['dtype']} is not exported (the ONNX file is f32); use f32")
    so = ort.SessionOptions()
    so.intra_op_num_threads = spec["threads"]
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if spec["device"] == "cpu":
        providers = ["CPUExecutionProvider"]
    else:
        index = int(spec["device"].split(":")[1])
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            fail("onnxruntime backend: no CUDAExecutionProvider in this onnxruntime (install onnxruntime-gpu)")
        providers = [("CUDAExecutionProvider", {"device_id": index})]
    sess = ort.InferenceSession(spec["model"], so, providers=providers)
    rng = np.random.default_rng(spec["seed"])
    x = (rng.random((spec["batch"], *spec["input_shape"]), dtype=np.float32) * 2 - 1).astype(np.float32)
    name = sess.get_inputs()[0].name
    if spec["device"] == "cpu":
        step = lambda: sess.run(None, {name: x})
    else:
        # device-resident input and output: time the model, not host copies
        binding = sess.io_binding()
        binding.bind_ortvalue_input(name, ort.OrtValue.ortvalue_from_numpy(x, "cuda", index))
        for o in sess.get_outputs():
            binding.bind_output(o.name, "cuda", index)
        step = lambda: sess.run_with_iobinding(binding)
    provider = providers[0] if isinstance(providers[0], str) else providers[0][0]
    return step, lambda: None, f"onnxruntime {ort.__version__} ({provider}, ORT_ENABLE_ALL, {spec['threads']} intra-op threads)"


def pytorch_case(spec):
    try:
        import torch
    except ImportError as e:
        fail(f"pytorch backend: {e}; install it with `pip install torch numpy`")
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from torch_reference import read_safetensors, run as run_ir

    torch.manual_seed(spec["seed"])
    torch.set_num_threads(spec["threads"])
    device = torch.device(spec["device"])
    if device.type == "cuda" and not torch.cuda.is_available():
        fail("pytorch backend: this torch has no CUDA device")
    dtype = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}[spec["dtype"]]
    model = json.load(open(spec["model"]))
    params = {k: v.to(device=device, dtype=dtype) for k, v in read_safetensors(spec["weights"]).items()}
    x = (torch.rand(spec["batch"], *spec["input_shape"]) * 2 - 1).to(device=device, dtype=dtype)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    if spec["mode"] == "infer":
        def step():
            with torch.inference_mode():
                run_ir(model, params, x, training=False)
    else:
        trainable = [v.requires_grad_() for k, v in params.items() if not k.endswith(("running_mean", "running_var"))]
        opt = torch.optim.SGD(trainable, lr=0.01, momentum=0.9)
        labels = torch.randint(0, spec["classes"], (spec["batch"],), device=device)

        def step():
            opt.zero_grad(set_to_none=True)
            loss = torch.nn.functional.cross_entropy(run_ir(model, params, x, training=True).float(), labels)
            loss.backward()
            opt.step()
    return step, sync, f"PyTorch {torch.__version__} eager (the synprof IR through torch.nn.functional, {spec['threads']} threads)"


def peak_rss_bytes():
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None


def main():
    spec = json.load(open(sys.argv[1]))
    case = {"onnxruntime": onnxruntime_case, "pytorch": pytorch_case}[spec["runtime"]]
    try:
        step, sync, runtime = case(spec)
        if spec.get("serve"):
            serve(spec, step, sync, runtime)
            return
        warmup, latencies = windows(spec, step, sync)
    except SystemExit:
        raise
    except Exception as e:  # the runtime's own error, whole, for the record
        fail(f"{spec['runtime']} failed: {type(e).__name__}: {e}")
    json.dump({"warmup_iterations": warmup, "latencies_ms": latencies, "runtime": runtime,
               "python": platform.python_version(), "peak_rss_bytes": peak_rss_bytes()}, open(spec["out"], "w"))


if __name__ == "__main__":
    main()
