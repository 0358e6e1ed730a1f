#!/usr/bin/env python3
"""Held-out negative log-likelihood of NPE on a built-in task: a quick screen for training choices.

For each seed: `sbi-gpu train --task T --num-simulations N --seed S [extra]`, then
`sbi-gpu log-prob` on a fixed test set of fresh simulations (its own seed), and the mean of
−log q(θ|x) over it. Lower is better; it estimates the expected KL divergence from the true
posterior up to a constant (the posterior entropy), averaged over the prior predictive. It costs
seconds where C2ST on ten observations costs minutes, so it screens options before the C2ST table
(`c2st_table.py`) is run on the chosen one.

    python3 Benchmarks/sbibm/heldout_nll.py --binary .build/release/sbi-gpu --task two_moons \
        --budget 1000 --seeds 0 1 2 --extra "--averaging 0"
"""
import argparse
import json
import os
import subprocess
import tempfile

import numpy as np


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", default=".build/release/sbi-gpu")
    parser.add_argument("--task", default="two_moons")
    parser.add_argument("--budget", type=int, default=1000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--extra", default="", help="extra arguments for sbi-gpu train")
    parser.add_argument("--test-size", type=int, default=20000)
    parser.add_argument("--test-seed", type=int, default=777)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        test = os.path.join(work, "test")
        subprocess.run([args.binary, "simulate", "--task", args.task, "--num", str(args.test_size),
                        "--seed", str(args.test_seed), "--out", test], check=True, capture_output=True)
        scores = []
        for seed in args.seeds:
            run = os.path.join(work, f"run-{seed}")
            subprocess.run([args.binary, "train", "--device", args.device, "--task", args.task,
                            "--num-simulations", str(args.budget), "--seed", str(seed), "--out", run, "--quiet"]
                           + args.extra.split(), check=True)
            out = os.path.join(work, f"lp-{seed}.npy")
            subprocess.run([args.binary, "log-prob", "--device", args.device, "--model", run,
                            "--theta", os.path.join(test, "theta.npy"), "--observation", os.path.join(test, "x.npy"),
                            "--out", out], check=True, capture_output=True)
            config = json.load(open(os.path.join(run, "config.json")))
            scores.append(-float(np.load(out).mean()))
            print(f"{args.task} {args.budget} seed {seed} [{args.extra}]: held-out NLL {scores[-1]:.4f}, "
                  f"{config['epochsRun']} epochs, {config['trainingSeconds']:.1f} s", flush=True)
        print(f"{args.task} {args.budget} [{args.extra}]: mean held-out NLL {np.mean(scores):.4f} over seeds {args.seeds}")


if __name__ == "__main__":
    main()
