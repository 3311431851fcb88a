"""Train LeNet-5 on MNIST, then deploy it outside fastnet: ONNX Runtime and PyTorch.

1. Train the LeNet-5 of ``mnist_cnn.py`` (Adam, batch 128) and save it (``lenet.npz``).
2. Export it to ONNX (opset 17) and run the 10,000 test images in ONNX Runtime: report the largest
   difference from ``model.predict`` and how many predicted classes agree.
3. Save the weights as safetensors under PyTorch names; if PyTorch is installed, load them into the
   equivalent ``nn.Sequential`` and compare its outputs too.

    pip install 'fastnet[onnx,safetensors]' onnxruntime     # torch optional
    python examples/deploy_lenet.py [--epochs 1] [--limit N] [--out-dir DIR] [--data-dir DIR]

Measured with --epochs 1 (test accuracy 0.9756): ONNX Runtime max |difference| 1.6e-6, same class 10000/10000;
PyTorch 2.13 with the safetensors weights 1.4e-6, same class 10000/10000.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from _common import load
from mnist_cnn import lenet5

import fastnet as fn


def onnx_agreement(model, path, x):
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    t0 = time.perf_counter()
    probs = session.run(None, {"input": x})[0]
    seconds = time.perf_counter() - t0
    return probs, seconds


def torch_agreement(weights, x):
    try:
        import torch
        from safetensors.torch import load_file
        from torch import nn
    except ImportError:
        return None
    module = nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(400, 120),
        nn.ReLU(),
        nn.Linear(120, 84),
        nn.ReLU(),
        nn.Linear(84, 10),
    )
    module.load_state_dict(load_file(str(weights)))
    with torch.no_grad():
        return torch.softmax(module.eval()(torch.from_numpy(x)), dim=1).numpy()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--limit", type=int, default=None, help="train on the first N images only")
    p.add_argument("--out-dir", default=".", help="where lenet.npz, lenet.onnx, lenet.safetensors go")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)

    (x_train, y_train), (x_test, y_test) = load("mnist", args.data_dir, normalize=True)
    if args.limit:
        x_train, y_train = x_train[: args.limit], y_train[: args.limit]
    fn.seed(args.seed)
    model = lenet5()
    model.compile(optimizer=fn.optim.Adam(lr=1e-3), loss="softmax_cross_entropy", metrics=["accuracy"])
    model.fit(x_train, y_train, epochs=args.epochs, batch_size=128, verbose=2)
    model.save(out / "lenet.npz")
    expected = model.predict(x_test)
    print(f"fastnet test accuracy: {np.mean(expected.argmax(1) == y_test):.4f}")

    fn.export_onnx(model, out / "lenet.onnx", opset=17)
    probs, seconds = onnx_agreement(model, out / "lenet.onnx", x_test)
    diff, same = np.abs(probs - expected).max(), f"{np.sum(probs.argmax(1) == expected.argmax(1))}/{len(x_test)}"
    print(f"ONNX Runtime, {len(x_test)} test images in {seconds:.2f}s: max |difference| {diff:.2e}, same class {same}")

    fn.save_weights(model, out / "lenet.safetensors")
    torch_probs = torch_agreement(out / "lenet.safetensors", x_test)
    if torch_probs is None:
        print("PyTorch not installed: skipped the torch comparison")
    else:
        diff = np.abs(torch_probs - expected).max()
        same = f"{np.sum(torch_probs.argmax(1) == expected.argmax(1))}/{len(x_test)}"
        print(f"PyTorch nn.Sequential, safetensors weights: max |difference| {diff:.2e}, same class {same}")


if __name__ == "__main__":
    main()
