"""Time one training epoch of the NumPy MLP against the same PyTorch MLP, on the CPU.

Both train sizes [784, 200, 200, 200, 200, 10] with ReLU, float32, SGD (lr 0.01), batches of
100, through the same ``course_lib.training.fit`` loop (same shuffling), with the same number
of threads for NumPy's BLAS and for torch. Training time only (``eval_train=False``; ``fit``
times the batches of each epoch, not the evaluation). One warm-up epoch each, then the timed
epochs, the two models taking turns; the median seconds per epoch of each, and their ratio.
Target: the NumPy MLP within 1.5x of PyTorch.

    COURSE_DATA_DIR=../shared/data .venv/bin/python benchmarks/bench_mlp.py [--epochs 5] [--threads N]

Prints the dataset it used: MNIST-10k, or the bundled digits when MNIST is missing (then the
times are not comparable with MNIST's).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from course_lib.data import load_course_data
from course_lib.numpy_impl.mlp import MLP as NumpyMLP
from course_lib.torch_impl.mlp import MLP as TorchMLP
from course_lib.training import fit

SIZES_HIDDEN = [200, 200, 200, 200]
TARGET = 1.5  # NumPy seconds per epoch / torch seconds per epoch must be at most this


def time_epochs(models: dict, X, y, epochs: int, lr: float, batch_size: int) -> dict[str, list[float]]:
    """Seconds of training per epoch for each model: one warm-up epoch each, then ``epochs``
    timed epochs, the models taking turns (numpy, torch, numpy, ...) so that a busy machine
    slows both alike."""
    times: dict[str, list[float]] = {name: [] for name in models}
    for epoch in range(epochs + 1):
        for name, model in models.items():
            hist = fit(
                model,
                X,
                y,
                epochs=1,
                lr=lr,
                batch_size=batch_size,
                rng=epoch,
                progress=False,
                eval_train=False,
            )
            if epoch:  # epoch 0 is the warm-up
                times[name] += hist.seconds
    return times


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--epochs", type=int, default=5, help="timed epochs per model (after a warm-up)")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="threads for both")
    ap.add_argument("--batch-size", type=int, default=100)
    ap.add_argument("--lr", type=float, default=0.01)
    args = ap.parse_args()

    data = load_course_data()
    X = data.X_train.astype(np.float32)
    y = data.y_train
    sizes = [data.n_features, *SIZES_HIDDEN, data.n_classes]
    print(
        f"dataset: {data.name} ({len(X)} training rows, {data.n_features} features)"
        + (" -- digits FALLBACK, MNIST not found; set COURSE_DATA_DIR" if data.fallback else "")
    )
    print(f"model: sizes {sizes}, relu, float32, SGD lr {args.lr}, batch {args.batch_size}")
    print(
        f"threads: {args.threads} (NumPy BLAS and torch); numpy {np.__version__}, "
        f"torch {torch.__version__}, {platform.processor() or platform.machine()}"
    )

    torch.set_num_threads(args.threads)
    with threadpool_limits(limits=args.threads):
        np_model = NumpyMLP(sizes, "relu", rng=0, dtype=np.float32)
        th_model = TorchMLP(sizes, "relu", dtype=torch.float32).load_numpy_params(np_model.params)
        times = time_epochs(
            {"numpy": np_model, "torch": th_model}, X, y, args.epochs, args.lr, args.batch_size
        )

    med = {k: statistics.median(v) for k, v in times.items()}
    for name, t in times.items():
        print(
            f"{name}: median {med[name] * 1e3:7.1f} ms/epoch, best {min(t) * 1e3:7.1f}  (epochs: "
            + ", ".join(f"{s * 1e3:.1f}" for s in t)
            + ")"
        )
    ratio = med["numpy"] / med["torch"]
    print(
        f"ratio numpy/torch (medians): {ratio:.2f}; best epochs: "
        f"{min(times['numpy']) / min(times['torch']):.2f}"
    )
    load = os.getloadavg()[0]
    if load > (os.cpu_count() or 1) - 0.5:
        print(
            f"warning: load average {load:.1f} on {os.cpu_count()} cores: other processes "
            "share the CPU and the times are noisy; rerun on a quiet machine"
        )
    print(f"target: NumPy within {TARGET}x of PyTorch -> {'PASS' if ratio <= TARGET else 'FAIL'}")
    return 0 if ratio <= TARGET else 1


if __name__ == "__main__":
    raise SystemExit(main())
