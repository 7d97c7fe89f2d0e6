"""Time ``fit_seeds`` (5 seeds as one batched MultiSeedMLP) against 5 sequential ``fit`` runs.

Two regimes of the book's chapters, ReLU, float64, SGD (lr 0.01), batches of 100, one BLAS
thread (``threadpool_limits(1)``), training time only (``eval_train=False``; ``seconds`` of the
histories):

* (a) sizes [D, 256, 256, 10] on 1,000 training images for 20 epochs;
* (b) sizes [D, 100, 100, 10] on 8,000 training images for 3 epochs.

Both sides train the same members on the same batches (``fit_seeds`` reproduces ``fit``), so
the script also checks that their final parameters agree. Prints seconds of each (median and
best of the repeats; the best is the robust one on a shared machine) and the ratio
``fit_seeds / sequential fits``: 1/5 would be five seeds for the price of one, 1 no gain.

    COURSE_DATA_DIR=../shared/data .venv/bin/python benchmarks/bench_multiseed.py [--repeats 3]

Prints the dataset it used: MNIST-10k (D = 784), or the bundled 8x8 digits (D = 64, 1,438
training rows, fewer than case (b) asks for) when MNIST is missing.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics

import numpy as np
from threadpoolctl import threadpool_limits

from course_lib.data import load_course_data
from course_lib.numpy_impl.mlp import MLP
from course_lib.numpy_impl.multiseed import MultiSeedMLP
from course_lib.training import fit, fit_seeds

SEEDS = [0, 1, 2, 3, 4]
CASES = {  # name -> (hidden widths, training rows, epochs)
    "a": ([256, 256], 1000, 20),
    "b": ([100, 100], 8000, 3),
}


def time_case(X, y, sizes: list[int], epochs: int, repeats: int) -> tuple[list[float], list[float], float]:
    """Seconds of training for fit_seeds and for the 5 sequential fits (one value per repeat, the two
    taking turns), and the largest parameter difference between them."""
    batched, sequential, diff = [], [], 0.0
    kw = dict(epochs=epochs, batch_size=100, lr=0.01, eval_train=False)
    for _ in range(repeats):
        model = MultiSeedMLP(sizes, SEEDS)
        hist = fit_seeds(model, X, y, rngs=[100 + s for s in SEEDS], **kw)
        batched.append(hist.total_seconds)
        total = 0.0
        for s, seed in enumerate(SEEDS):
            ref = MLP(sizes, rng=seed)
            total += fit(ref, X, y, rng=100 + seed, progress=False, **kw).total_seconds
            diff = max(diff, max(float(np.abs(ref.params[k] - model.params[k][s]).max()) for k in ref.params))
        sequential.append(total)
    return batched, sequential, diff


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=3, help="timed runs of each side per case")
    args = ap.parse_args()

    data = load_course_data()
    print(
        f"dataset: {data.name} ({len(data.X_train)} training rows, {data.n_features} features)"
        + (" -- digits FALLBACK, MNIST not found; set COURSE_DATA_DIR" if data.fallback else "")
    )
    print(
        f"{len(SEEDS)} seeds, relu, float64, SGD lr 0.01, batch 100, 1 BLAS thread; "
        f"numpy {np.__version__}, {platform.processor() or platform.machine()}"
    )
    with threadpool_limits(limits=1):
        for name, (hidden, n_rows, epochs) in CASES.items():
            X, y = data.X_train[:n_rows], data.y_train[:n_rows]
            sizes = [data.n_features, *hidden, data.n_classes]
            batched, sequential, diff = time_case(X, y, sizes, epochs, args.repeats)
            b, s = statistics.median(batched), statistics.median(sequential)
            b_best, s_best = min(batched), min(sequential)
            print(
                f"({name}) sizes {sizes}, {len(X)} rows, {epochs} epochs: fit_seeds {b:.3f} s, "
                f"5 x fit {s:.3f} s, ratio {b / s:.2f} (medians of {args.repeats}; best runs: "
                f"{b_best:.3f} s, {s_best:.3f} s, ratio {b_best / s_best:.2f}); "
                f"max |param difference| {diff:.1e}"
            )
    load = os.getloadavg()[0]
    if load > (os.cpu_count() or 1) - 0.5:
        print(f"warning: load average {load:.1f} on {os.cpu_count()} cores: the times are noisy")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
