#!/usr/bin/python3
"""Build the infaas model zoo: train small MNIST / Fashion-MNIST classifiers,
export them to ONNX, write the validation subsets and the manifest.

Run with Debian's python (it needs the Debian packages python3-torch,
python3-torchvision and python3-onnx); see README.md for the full recipe:

    /usr/bin/python3 zoo/train.py --mnist-dir DIR --fashion-dir DIR

Each data directory must hold the four classic files
{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz.

Outputs (relative to --out, default: the directory of this script):
    models/<dataset>-<arch>.onnx     exported models (input "input" [N,1,28,28]
                                     float32 in 0..1, output "logits" [N,10])
    data/<dataset>/inputs.idx        first 1000 test images, IDX ubyte [1000,28,28]
    data/<dataset>/labels.idx        their labels, IDX ubyte [1000]
    manifest.json                    one entry per model (also models/mnist-8.onnx
                                     when that file is present)
    results.json                     params, sizes, accuracies, training times

Everything is seeded and uses deterministic CPU kernels, so a rerun on the
same torch version gives the same weights.
"""

import argparse
import gzip
import inspect
import json
import os
import struct
import sys
import time
import zlib

import numpy as np
import onnx
from onnx import numpy_helper
import torch
import torch.nn as nn
import torch.nn.functional as F

VALIDATION_SIZE = 1000
OPSET = 13
SEED = 20240601


# ----------------------------------------------------------------------------
# IDX files

def read_idx(path):
    """Read a (possibly gzip-compressed) IDX file into a numpy array."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    zero, dtype, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype != 0x08:
        raise ValueError("%s: unsupported IDX header %r" % (path, data[:4]))
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    arr = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    return arr.reshape(dims).copy()


def write_idx(path, arr):
    """Write an uint8 numpy array as an uncompressed IDX file."""
    arr = np.ascontiguousarray(arr, dtype=np.uint8)
    with open(path, "wb") as f:
        f.write(struct.pack(">HBB", 0, 0x08, arr.ndim))
        f.write(struct.pack(">" + "I" * arr.ndim, *arr.shape))
        f.write(arr.tobytes())


def load_dataset(d):
    def p(name):
        return os.path.join(d, name)
    return {
        "train_x": read_idx(p("train-images-idx3-ubyte.gz")),
        "train_y": read_idx(p("train-labels-idx1-ubyte.gz")),
        "test_x": read_idx(p("t10k-images-idx3-ubyte.gz")),
        "test_y": read_idx(p("t10k-labels-idx1-ubyte.gz")),
    }


# ----------------------------------------------------------------------------
# Architectures. All take [N,1,28,28] float32 in 0..1 and return [N,10] logits.

def mlp(*widths):
    layers = [nn.Flatten()]
    for i in range(len(widths) - 1):
        layers.append(nn.Linear(widths[i], widths[i + 1]))
        if i < len(widths) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def cnn_s():
    # one 3x3 stride-2 conv with 8 channels, 2x2 max-pool, linear classifier
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, stride=2, padding=1), nn.ReLU(),   # 8x14x14
        nn.MaxPool2d(2),                                       # 8x7x7
        nn.Flatten(),
        nn.Linear(8 * 7 * 7, 10),
    )


def cnn_m():
    # two 3x3 convs (32, 64 channels) with max-pooling, FC 3136-128-10
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),    # 32x14x14
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),   # 64x7x7
        nn.Flatten(),
        nn.Linear(64 * 7 * 7, 128), nn.ReLU(),
        nn.Linear(128, 10),
    )


# name -> (constructor, description, epochs)
ARCHS = [
    ("mlp-s", lambda: mlp(784, 32, 10), "MLP 784-32-10", 1),
    ("mlp-m", lambda: mlp(784, 128, 10), "MLP 784-128-10", 2),
    ("mlp-l", lambda: mlp(784, 1024, 512, 10), "MLP 784-1024-512-10", 1),
    ("cnn-s", cnn_s, "Conv3x3/s2(8)-MaxPool-FC 392-10", 2),
    ("cnn-m", cnn_m, "Conv3x3(32)-Pool-Conv3x3(64)-Pool-FC 3136-128-10", 2),
]


# ----------------------------------------------------------------------------
# Training

def seed_all(seed):
    torch.manual_seed(seed)
    np.random.seed(seed % (2 ** 32))


def to_input(x_uint8):
    """uint8 [N,28,28] -> float32 [N,1,28,28] in 0..1 (the models' input scale)."""
    return torch.from_numpy(x_uint8).float().div_(255.0).unsqueeze(1)


def train(model, x, y, epochs, seed, batch_size=64, lr=1e-3):
    g = torch.Generator()
    g.manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    xt = to_input(x)
    yt = torch.from_numpy(y.astype(np.int64))
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(len(xt), generator=g)
        for i in range(0, len(xt), batch_size):
            idx = perm[i:i + batch_size]
            opt.zero_grad()
            loss = F.cross_entropy(model(xt[idx]), yt[idx])
            loss.backward()
            opt.step()
    model.eval()


@torch.no_grad()
def torch_predict(model, x):
    model.eval()
    out = []
    for i in range(0, len(x), 1000):
        out.append(model(to_input(x[i:i + 1000])).argmax(1).numpy())
    return np.concatenate(out)


# ----------------------------------------------------------------------------
# A tiny ONNX interpreter (torch kernels) for the handful of operators used by
# the zoo. python onnxruntime and onnx.reference are not available from
# Debian's python3 here, so the exported graphs are evaluated with this to
# check that the *files* (not just the torch modules) are correct.

def _attrs(node):
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _same_pads(in_hw, kernel, strides, dilations, upper):
    pads_begin, pads_end = [], []
    for size, k, s, d in zip(in_hw, kernel, strides, dilations):
        out = -(-size // s)
        total = max(0, (out - 1) * s + (k - 1) * d + 1 - size)
        small, big = total // 2, total - total // 2
        pads_begin.append(small if upper else big)
        pads_end.append(big if upper else small)
    return pads_begin, pads_end


def _pad_for(node_attrs, x, kernel):
    nd = len(kernel)
    strides = list(node_attrs.get("strides", [1] * nd))
    dil = list(node_attrs.get("dilations", [1] * nd))
    auto_pad = node_attrs.get("auto_pad", b"NOTSET")
    if isinstance(auto_pad, bytes):
        auto_pad = auto_pad.decode()
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        b, e = _same_pads(x.shape[2:], kernel, strides, dil, auto_pad == "SAME_UPPER")
    elif auto_pad == "VALID":
        b, e = [0] * nd, [0] * nd
    else:
        pads = list(node_attrs.get("pads", [0] * (2 * nd)))
        b, e = pads[:nd], pads[nd:]
    return strides, dil, b, e


def _pad(x, b, e, value=0.0):
    if not any(b) and not any(e):
        return x
    flat = []
    for bb, ee in zip(reversed(b), reversed(e)):
        flat += [bb, ee]
    return F.pad(x, flat, value=value)


def run_onnx(model, feeds):
    env = {t.name: torch.from_numpy(numpy_helper.to_array(t).copy()) for t in model.graph.initializer}
    env.update(feeds)
    for node in model.graph.node:
        a = _attrs(node)
        ins = [env[n] if n else None for n in node.input]
        op = node.op_type
        if op == "Conv":
            x, w = ins[0], ins[1]
            bias = ins[2] if len(ins) > 2 else None
            kernel = list(a.get("kernel_shape", w.shape[2:]))
            strides, dil, b, e = _pad_for(a, x, kernel)
            y = F.conv2d(_pad(x, b, e), w, bias, stride=strides, dilation=dil, groups=a.get("group", 1))
        elif op == "MaxPool":
            x = ins[0]
            kernel = list(a["kernel_shape"])
            strides, dil, b, e = _pad_for(a, x, kernel)
            if a.get("ceil_mode", 0):
                raise NotImplementedError("MaxPool ceil_mode")
            y = F.max_pool2d(_pad(x, b, e, float("-inf")), kernel, strides, dilation=dil)
        elif op == "Relu":
            y = torch.relu(ins[0])
        elif op == "Add":
            y = ins[0] + ins[1]
        elif op == "MatMul":
            y = torch.matmul(ins[0], ins[1])
        elif op == "Gemm":
            A, B = ins[0], ins[1]
            if a.get("transA", 0):
                A = A.t()
            if a.get("transB", 0):
                B = B.t()
            y = a.get("alpha", 1.0) * (A @ B)
            if len(ins) > 2 and ins[2] is not None:
                y = y + a.get("beta", 1.0) * ins[2]
        elif op == "Flatten":
            axis = a.get("axis", 1)
            x = ins[0]
            lead = int(np.prod(x.shape[:axis])) if axis else 1
            y = x.reshape(lead, -1)
        elif op == "Reshape":
            x, shape = ins[0], [int(s) for s in ins[1].tolist()]
            shape = [x.shape[i] if s == 0 else s for i, s in enumerate(shape)]
            y = x.reshape(shape)
        else:
            raise NotImplementedError("operator %s" % op)
        env[node.output[0]] = y
    return [env[o.name] for o in model.graph.output]


def graph_io(model):
    inits = {t.name for t in model.graph.initializer}
    ins = [i for i in model.graph.input if i.name not in inits]

    def desc(v):
        dims = [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
        return {"name": v.name, "shape": dims}
    return [desc(i) for i in ins], [desc(o) for o in model.graph.output]


@torch.no_grad()
def onnx_predict(model, x_uint8, scale, batch=None):
    """Top-1 predictions of an ONNX graph; batch=None means any batch size."""
    (inp,), _ = graph_io(model)
    preds = []
    step = batch or 1000
    for i in range(0, len(x_uint8), step):
        xb = torch.from_numpy(x_uint8[i:i + step]).float().unsqueeze(1) * scale
        (logits,) = run_onnx(model, {inp["name"]: xb.contiguous()})
        preds.append(logits.argmax(1).numpy())
    return np.concatenate(preds)


# ----------------------------------------------------------------------------
# Export

def export(model, path):
    dummy = torch.zeros(1, 1, 28, 28)
    kwargs = dict(
        input_names=["input"],
        output_names=["logits"],
        dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
        opset_version=OPSET,
        do_constant_folding=True,
        export_params=True,
    )
    # Newer torch defaults to the dynamo exporter (which needs onnxscript);
    # ask for the legacy TorchScript exporter where the option exists.
    if "dynamo" in inspect.signature(torch.onnx.export).parameters:
        kwargs["dynamo"] = False
    torch.onnx.export(model, dummy, path, **kwargs)
    m = onnx.load(path)
    onnx.checker.check_model(m)
    for t in m.graph.initializer:
        if t.data_location == onnx.TensorProto.EXTERNAL:
            raise RuntimeError("%s: external data in %s" % (path, t.name))
    return m


def accuracy(pred, y):
    return round(100.0 * float((pred == y).mean()), 2)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mnist-dir", required=True, help="directory with the MNIST *-ubyte.gz files")
    ap.add_argument("--fashion-dir", required=True, help="directory with the Fashion-MNIST *-ubyte.gz files")
    ap.add_argument("--out", default=os.path.dirname(os.path.abspath(__file__)), help="zoo directory (default: next to this script)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    # Fashion-MNIST training otherwise runs into denormal floats, which made
    # some models (cnn-s) train ~30x slower on this CPU.
    torch.set_flush_denormal(True)
    torch.use_deterministic_algorithms(True)
    models_dir = os.path.join(args.out, "models")
    os.makedirs(models_dir, exist_ok=True)

    manifest, results = [], []
    t_all = time.time()
    for dataset, ddir in (("mnist", args.mnist_dir), ("fashion", args.fashion_dir)):
        ds = load_dataset(ddir)
        vx, vy = ds["test_x"][:VALIDATION_SIZE], ds["test_y"][:VALIDATION_SIZE]
        vdir = os.path.join(args.out, "data", dataset)
        os.makedirs(vdir, exist_ok=True)
        write_idx(os.path.join(vdir, "inputs.idx"), vx)
        write_idx(os.path.join(vdir, "labels.idx"), vy)
        assert (read_idx(os.path.join(vdir, "inputs.idx")) == vx).all()

        for arch, ctor, desc, epochs in ARCHS:
            name = "%s-%s" % (dataset, arch)
            seed = SEED + zlib.crc32(name.encode())
            seed_all(seed)
            model = ctor()
            t0 = time.time()
            train(model, ds["train_x"], ds["train_y"], epochs, seed)
            train_s = time.time() - t0
            path = os.path.join(models_dir, name + ".onnx")
            m = export(model, path)
            # accuracies from the exported graph, cross-checked against torch
            full_pred = onnx_predict(m, ds["test_x"], 1.0 / 255.0)
            torch_pred = torch_predict(model, ds["test_x"])
            agree = float((full_pred == torch_pred).mean())
            if agree < 0.999:
                raise RuntimeError("%s: ONNX graph and torch disagree on %.2f%% of images" % (name, 100 * (1 - agree)))
            r = {
                "name": name, "dataset": dataset, "arch": desc, "epochs": epochs,
                "params": sum(p.numel() for p in model.parameters()),
                "bytes": os.path.getsize(path),
                "acc_subset": accuracy(full_pred[:VALIDATION_SIZE], vy),
                "acc_full": accuracy(full_pred, ds["test_y"]),
                "train_seconds": round(train_s, 1),
                "input_scale": 1.0 / 255.0,
            }
            results.append(r)
            print("%-16s params=%8d bytes=%8d subset=%6.2f%% full=%6.2f%% train=%.1fs" % (
                name, r["params"], r["bytes"], r["acc_subset"], r["acc_full"], train_s), flush=True)
            manifest.append({
                "name": name, "file": "models/%s.onnx" % name, "task": "classification",
                "dataset": dataset, "validation": "data/%s" % dataset,
                "input_scale": 1.0 / 255.0, "declared_accuracy": r["acc_subset"],
            })

        if dataset == "mnist":
            # the ONNX model zoo's mnist-8 (see README.md for how it is extracted)
            p8 = os.path.join(models_dir, "mnist-8.onnx")
            if os.path.exists(p8):
                m8 = onnx.load(p8)
                onnx.checker.check_model(m8)
                ins, outs = graph_io(m8)
                print("mnist-8 inputs=%s outputs=%s" % (ins, outs))
                pred = onnx_predict(m8, ds["test_x"], 1.0, batch=1)  # fixed batch 1, raw 0..255
                params = sum(int(np.prod(t.dims)) for t in m8.graph.initializer if t.data_type == onnx.TensorProto.FLOAT)
                r = {
                    "name": "mnist-8", "dataset": "mnist", "arch": "ONNX model zoo mnist-8 (CNTK): Conv5x5(8)-Pool-Conv5x5(16)-Pool-FC 256-10",
                    "epochs": None, "params": params, "bytes": os.path.getsize(p8),
                    "acc_subset": accuracy(pred[:VALIDATION_SIZE], vy),
                    "acc_full": accuracy(pred, ds["test_y"]),
                    "train_seconds": None, "input_scale": 1.0,
                    "inputs": ins, "outputs": outs,
                }
                results.append(r)
                print("%-16s params=%8d bytes=%8d subset=%6.2f%% full=%6.2f%%" % (
                    "mnist-8", params, r["bytes"], r["acc_subset"], r["acc_full"]), flush=True)
                manifest.append({
                    "name": "mnist-8", "file": "models/mnist-8.onnx", "task": "classification",
                    "dataset": "mnist", "validation": "data/mnist",
                    "input_scale": 1.0, "declared_accuracy": r["acc_subset"],
                })
            else:
                print("warning: %s missing; not added to the manifest" % p8, file=sys.stderr)

    with open(os.path.join(args.out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump({"torch": torch.__version__, "onnx": onnx.__version__, "models": results}, f, indent=2)
        f.write("\n")
    total = sum(os.path.getsize(os.path.join(models_dir, n)) for n in os.listdir(models_dir) if n.endswith(".onnx"))
    print("total ONNX bytes: %d; wall time %.1fs" % (total, time.time() - t_all))


if __name__ == "__main__":
    main()
