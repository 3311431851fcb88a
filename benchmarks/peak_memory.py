"""Peak memory of a training run, fastnet against PyTorch (issue 8, target 4), each in its own process.

    PYTHONPATH=src python benchmarks/peak_memory.py                       # M4, 30 steps, both layouts of torch
    PYTHONPATH=src python benchmarks/peak_memory.py --model R20 --steps 10

Each run builds the model on real MNIST (or random data of the same shape) and takes its peak resident set
(``VmHWM``) after setup; for fastnet setup includes ``fastnet.warmup()``, which loads the compiled kernels as
importing torch loads its (``FASTNET_PEAK_WARMUP=0``: compile lazily in the first step instead). Then it trains
``--steps`` steps at the spec's batch size and reports the peak during training, the increase over setup (what
training itself needs: activations, gradients, optimizer state, scratch) and the whole-process peak (which includes
each library's code: PyTorch's is several hundred MB).
Not a timing: the load of the machine does not change it.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _maxrss_mb() -> float:
    """This process's peak resident set. ``VmHWM`` belongs to the address space, which ``exec`` replaces; Linux keeps
    ``ru_maxrss`` across ``exec``, so a child started by a large process (a pytest run that had trained ResNet-20)
    reported its parent's 824 MB for every framework (2026-12-02)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def _child(framework: str, model: str, steps: int) -> dict:
    sys.path.insert(0, str(HERE))
    from common import SPECS, Batches, dataset_for

    spec = next(s for s in SPECS if s.model == model)
    ds = dataset_for(model)
    if framework == "fastnet":
        from common import fastnet_model

        import fastnet

        if os.environ.get("FASTNET_PEAK_WARMUP", "1") == "1":
            fastnet.warmup()  # loads the compiled kernels now: their memory counts as setup, like torch's libraries
        fastnet.seed(0)
        net, onehot = fastnet_model(model)
        feeder = Batches(ds.x, ds.y_onehot if onehot else ds.y, spec.batch)
        step = net.train_on_batch
    else:
        import torch
        from common import torch_batches, torch_model, torch_step

        torch.manual_seed(0)
        cl = framework == "torch-channels_last"
        net, loss_fn, opt, onehot = torch_model(model, channels_last=cl)
        feeder = torch_batches(ds, spec, onehot, channels_last=cl)
        step = torch_step(net, loss_fn, opt)
    setup = _maxrss_mb()
    for _ in range(steps):
        step(*feeder.next())
    peak = _maxrss_mb()
    return {
        "framework": framework,
        "model": model,
        "batch": spec.batch,
        "steps": steps,
        "setup_mb": round(setup, 1),
        "peak_mb": round(peak, 1),
        "training_mb": round(peak - setup, 1),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="M4")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--frameworks", default="fastnet,torch,torch-channels_last")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--json", help="also write the figures here")
    a = p.parse_args()
    if a.child:
        print(json.dumps(_child(a.child, a.model, a.steps)))
        return
    rows = []
    for fw in a.frameworks.split(","):
        cmd = [sys.executable, __file__, "--child", fw, "--model", a.model, "--steps", str(a.steps)]
        r = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy())
        if r.returncode != 0:
            print(f"{fw}: failed ({r.stderr.strip().splitlines()[-1] if r.stderr.strip() else r.returncode})")
            continue
        rows.append(json.loads(r.stdout.strip().splitlines()[-1]))
    print(f"| {a.model} peak memory, {a.steps} steps | after setup | peak | training needs (peak - setup) |")
    print("|---|---|---|---|")
    for row in rows:
        sizes = " | ".join(f"{row[k]} MB" for k in ("setup_mb", "peak_mb", "training_mb"))
        print(f"| {row['framework']} b{row['batch']} | {sizes} |")
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
