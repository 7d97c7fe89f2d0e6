"""Time training epochs of our NumPy RBM against scikit-learn's BernoulliRBM, same data and sizes.

Both train with scikit-learn's procedure and defaults: PCD-1, batches of 10 in the data's order
(``shuffle=False`` on our side), learning rate 0.1, N(0, 0.01^2) initial weights, float64, on
the binarised bundled digits (1,797 x 64; ``--data mnist`` uses MNIST-10k's 8,000 training
images, binarised, when COURSE_DATA_DIR has them). For each hidden size, ``--rounds`` rounds of
``--epochs`` epochs each, the two implementations taking turns so that a busy machine slows
both alike; seconds per epoch is the median over the rounds of (fit time / epochs). Then the
pseudo-likelihood each model reached (last round): exact (the sum over all D single-unit flips,
deterministic) and scikit-learn's stochastic ``score_samples`` estimator (mean of 10 draws).
Target: ours no slower than 1.2x scikit-learn's, for every size.

    .venv/bin/python benchmarks/bench_rbm.py [--hidden 100 256] [--epochs 10] [--rounds 5]
        [--threads 1] [--data digits|mnist]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
import warnings

import numpy as np
import sklearn
from sklearn.neural_network import BernoulliRBM
from threadpoolctl import threadpool_limits

from course_lib.data import load_course_data, load_digits
from course_lib.numpy_impl.rbm import RBM

TARGET = 1.2  # our seconds per epoch / scikit-learn's must be at most this


def load(name: str) -> tuple[np.ndarray, str]:
    if name == "mnist":
        data = load_course_data()
        if data.fallback:
            raise SystemExit("MNIST not found: set COURSE_DATA_DIR, or use --data digits")
        return (data.X_train > 0.5).astype(np.float64), "MNIST-10k training images, binarised (> 0.5)"
    X, _ = load_digits()
    return (X > 0.5).astype(np.float64), "bundled 8x8 digits, binarised (> 0.5)"


def sklearn_pl(sk: BernoulliRBM, X: np.ndarray, draws: int = 10) -> float:
    """Mean of scikit-learn's stochastic pseudo-likelihood over ``draws`` sets of random flips."""
    values = []
    for draw in range(draws):
        sk.random_state = draw
        values.append(sk.score_samples(X).mean())
    return float(np.mean(values))


def our_pl(rbm: RBM, X: np.ndarray, draws: int = 10) -> float:
    return float(np.mean([rbm.pseudo_likelihood(X, np.random.default_rng(d)).mean() for d in range(draws)]))


def as_ours(sk: BernoulliRBM) -> RBM:
    rbm = RBM(sk.components_.shape[1], sk.components_.shape[0])
    rbm.W, rbm.b_v, rbm.b_h = sk.components_.T, sk.intercept_visible_, sk.intercept_hidden_
    return rbm


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hidden", type=int, nargs="+", default=[100, 256], help="hidden sizes to time")
    ap.add_argument("--epochs", type=int, default=10, help="epochs per fit")
    ap.add_argument("--rounds", type=int, default=5, help="fits per implementation and size")
    ap.add_argument("--threads", type=int, default=1, help="BLAS threads for both (1: no contention)")
    ap.add_argument("--data", choices=["digits", "mnist"], default="digits")
    args = ap.parse_args()

    X, description = load(args.data)
    print(f"data: {description}, {X.shape[0]} x {X.shape[1]}")
    print(
        f"procedure: PCD-1, batch 10, lr 0.1, {args.epochs} epochs per fit, {args.rounds} rounds; "
        f"BLAS threads {args.threads}; numpy {np.__version__}, scikit-learn {sklearn.__version__}, "
        f"{platform.processor() or platform.machine()}"
    )
    ok = True
    with threadpool_limits(limits=args.threads), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for hidden in args.hidden:
            times: dict[str, list[float]] = {"ours": [], "sklearn": []}
            for r in range(args.rounds):
                sk = BernoulliRBM(
                    n_components=hidden, learning_rate=0.1, batch_size=10, n_iter=args.epochs, random_state=r
                )
                t0 = time.perf_counter()
                sk.fit(X)
                times["sklearn"].append((time.perf_counter() - t0) / args.epochs)
                ours = RBM(X.shape[1], hidden, rng=r)
                t0 = time.perf_counter()
                ours.fit(
                    X,
                    epochs=args.epochs,
                    batch_size=10,
                    lr=0.1,
                    persistent=True,
                    shuffle=False,
                    monitor=False,
                    progress=False,
                )
                times["ours"].append((time.perf_counter() - t0) / args.epochs)
            med = {k: statistics.median(v) for k, v in times.items()}
            ratio = med["ours"] / med["sklearn"]
            pl_exact = {
                "ours": float(ours.pseudo_likelihood(X, exact=True).mean()),
                "sklearn": float(as_ours(sk).pseudo_likelihood(X, exact=True).mean()),
            }
            pl_est = {"ours": our_pl(ours, X), "sklearn": sklearn_pl(sk, X)}
            verdict = "PASS" if ratio <= TARGET else "FAIL"
            ok &= ratio <= TARGET
            print(f"\nhidden units: {hidden}")
            for name in ("ours", "sklearn"):
                print(
                    f"  {name:8s} {med[name] * 1e3:8.1f} ms/epoch (rounds: "
                    + ", ".join(f"{t * 1e3:.1f}" for t in times[name])
                    + f")  pseudo-likelihood after {args.epochs} epochs: exact {pl_exact[name]:.2f}, "
                    f"stochastic {pl_est[name]:.2f} nats/image"
                )
            print(f"  ratio ours/sklearn: {ratio:.2f} (target <= {TARGET}) -> {verdict}")
    load_avg = os.getloadavg()[0]
    if load_avg > (os.cpu_count() or 1) - 0.5:
        print(
            f"\nwarning: load average {load_avg:.1f} on {os.cpu_count()} cores: other processes share the "
            "CPU and the times are noisy; rerun on a quiet machine"
        )
    print(f"\noverall: {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
