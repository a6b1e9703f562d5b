"""PyTorch side of the rmsnorm benchmark (bench/run.mjs runs it as a child, one round at a time).

Reads one JSON object on stdin:
  {"threads": N, "eps": 1e-5, "time_ms": 60, "iterations": 3,
   "cases": [{"op": "rmsNorm" | "layerNorm", "pass": "forward" | "backward",
              "dtype": "float32" | "bfloat16", "rows": R, "dim": D}, ...],
   "verify": {"dir": PATH, "rows": R, "dim": D}}            (optional)
and prints one JSON object on stdout:
  {"torch": version, "threads": N, "results": [{..case, "ms": median, "min_ms": fastest sample}, ...]}.

The ops are what a PyTorch user runs on the CPU:
  rmsNorm   Hugging Face's LlamaRMSNorm (PyTorch 1.13 has no RMSNorm op): in float32,
            x * rsqrt(mean(x^2) + eps), cast back to the input dtype, times the weight; its backward through
            autograd (torch.autograd.grad of the saved graph, dx and dweight).
  layerNorm torch.ops.aten.native_layer_norm and native_layer_norm_backward called directly (dx, dweight,
            dbias): PyTorch's own kernels without autograd's bookkeeping, its best case.
Forward passes run under torch.no_grad() (inference). Each case is warmed up, timed in batches of at least 0.1 ms,
and its median and fastest time per call (ms) reported.

With "verify", the inputs x, w, b, dy (float32 files x.f32, w.f32, b.f32, dy.f32 in that directory, rows x dim,
values already rounded to bfloat16 for the bfloat16 run) are read for float32 and bfloat16, and every output is
written as float32 (<dtype>-<name>.f32) so the caller can compare it with its own.
"""

import json
import os
import statistics
import sys
import time

import torch

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def llama_rms_norm(x, w, eps):
    h = x.to(torch.float32)
    h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps)
    return w * h.to(x.dtype)


def make_calls(case, eps, inputs=None):
    """Returns (fn, outputs): fn() runs the op once; outputs() returns its results as named tensors."""
    rows, dim, dtype = case["rows"], case["dim"], DTYPES[case["dtype"]]
    if inputs is None:
        g = torch.Generator().manual_seed(rows * 7919 + dim)
        x = torch.randn(rows, dim, generator=g).to(dtype)
        w = (1 + 0.2 * torch.randn(dim, generator=g)).to(dtype)
        b = (0.1 * torch.randn(dim, generator=g)).to(dtype)
        dy = torch.randn(rows, dim, generator=g).to(dtype)
    else:
        x, w, b, dy = (t.to(dtype) for t in inputs)
    op, direction = case["op"], case["pass"]
    if op == "rmsNorm" and direction == "forward":
        box = {}

        def fn():
            with torch.no_grad():
                box["y"] = llama_rms_norm(x, w, eps)

        return fn, lambda: {"y": box["y"]}
    if op == "rmsNorm":
        xg = x.clone().requires_grad_(True)
        wg = w.clone().requires_grad_(True)
        y = llama_rms_norm(xg, wg, eps)
        box = {}

        def fn():
            box["dx"], box["dw"] = torch.autograd.grad(y, (xg, wg), dy, retain_graph=True)

        return fn, lambda: box
    if direction == "forward":
        box = {}

        def fn():
            with torch.no_grad():
                box["y"] = torch.ops.aten.native_layer_norm(x, [dim], w, b, eps)[0]

        return fn, lambda: box
    with torch.no_grad():
        _, mean, rstd = torch.ops.aten.native_layer_norm(x, [dim], w, b, eps)
    box = {}

    def fn():
        with torch.no_grad():
            box["dx"], box["dw"], box["db"] = torch.ops.aten.native_layer_norm_backward(
                dy, x, [dim], mean, rstd, w, b, [True, True, True]
            )

    return fn, lambda: box


def measure(fn, time_ms, iterations):
    """Median and minimum time per call (ms): warm-up, batches of at least 0.1 ms, at least `iterations` batches and time_ms."""
    now = time.perf_counter
    calls, per_call, done = 1, float("inf"), 0
    deadline = now() + 0.02
    while True:
        start = now()
        for _ in range(calls):
            fn()
        per_call = min(per_call, (now() - start) / calls)
        done += calls
        if calls * per_call < 1e-4:
            calls *= 2
        if now() >= deadline and done >= 2:
            break
    inner = max(1, int(1e-4 / per_call + 0.999))
    samples = []
    end = now() + time_ms / 1000
    while len(samples) < iterations or now() < end:
        start = now()
        for _ in range(inner):
            fn()
        samples.append((now() - start) / inner * 1000)
    return statistics.median(samples), min(samples)


def verify(spec, eps):
    d, rows, dim = spec["dir"], spec["rows"], spec["dim"]

    def load(name, shape):
        return torch.from_file(os.path.join(d, name), size=rows * dim if shape == 2 else dim, dtype=torch.float32)

    x = load("x.f32", 2).reshape(rows, dim)
    dy = load("dy.f32", 2).reshape(rows, dim)
    w = load("w.f32", 1)
    b = load("b.f32", 1)
    for dtype in DTYPES:
        for op in ("rmsNorm", "layerNorm"):
            for direction in ("forward", "backward"):
                case = {"op": op, "pass": direction, "dtype": dtype, "rows": rows, "dim": dim}
                fn, outputs = make_calls(case, eps, (x, w, b, dy))
                fn()
                for name, t in outputs().items():
                    path = os.path.join(d, f"{dtype}-{op}-{name}.f32")
                    t.detach().to(torch.float32).contiguous().numpy().tofile(path)


def main():
    spec = json.load(sys.stdin)
    threads = int(spec["threads"])
    torch.set_num_threads(threads)
    eps = float(spec["eps"])
    if spec.get("verify"):
        verify(spec["verify"], eps)
    results = []
    for case in spec["cases"]:
        fn, _ = make_calls(case, eps)
        ms, min_ms = measure(fn, float(spec.get("time_ms", 60)), int(spec.get("iterations", 3)))
        results.append({**case, "ms": ms, "min_ms": min_ms})
    json.dump({"torch": torch.__version__, "threads": torch.get_num_threads(), "results": results}, sys.stdout)


if __name__ == "__main__":
    main()
