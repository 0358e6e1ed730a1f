#!/usr/bin/env python3
"""The peer's held-out NLL: sbi's NPE (nsf) trained on the same simulations that `heldout_nll.py`
trains sbi-gpu on, scored on the same test set (mean −log q(θ|x); lower is better).

    sbi-gpu simulate --task gaussian_linear --num 100000 --seed 0 --out train/
    sbi-gpu simulate --task gaussian_linear --num 20000 --seed 777 --out test/
    python3 Benchmarks/sbibm/sbi_heldout_nll.py --train train --test test --batch 512 --learning-rate 1e-3

Needs `pip install sbi` (measured with sbi 0.27, one torch thread).
"""
import argparse
import os
import time

import numpy as np
import torch
from sbi.inference import NPE


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", required=True, help="directory with theta.npy and x.npy")
    parser.add_argument("--test", required=True, help="directory with theta.npy and x.npy")
    parser.add_argument("--batch", type=int, default=200)
    parser.add_argument("--learning-rate", type=float, default=5e-4)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    load = lambda d, name: torch.tensor(np.load(os.path.join(d, name)))
    inference = NPE(density_estimator="nsf")
    inference.append_simulations(load(args.train, "theta.npy"), load(args.train, "x.npy"))
    started = time.time()
    estimator = inference.train(training_batch_size=args.batch, learning_rate=args.learning_rate,
                                show_train_summary=False)
    seconds = time.time() - started
    theta, x = load(args.test, "theta.npy"), load(args.test, "x.npy")
    with torch.no_grad():
        logq = torch.cat([estimator.log_prob(theta[i:i + 2000].unsqueeze(0), condition=x[i:i + 2000]).reshape(-1)
                          for i in range(0, len(theta), 2000)])
    print(f"sbi {__import__('sbi').__version__} nsf, batch {args.batch}, rate {args.learning_rate}: "
          f"held-out NLL {-logq.mean().item():.4f}, {inference.summary['epochs_trained'][-1]} epochs, {seconds:.1f} s")


if __name__ == "__main__":
    main()
