#!/usr/bin/env python3
"""Accuracy harness: NPE (and NLE) with sbi-gpu on the sbibm tasks in ../shared/sbibm, scored by
C2ST exactly as sbibm computes it, beside the published NPE numbers.

For each task and simulation budget: `sbi-gpu train --task T --num-simulations B`, then for each
observation k `sbi-gpu sample` 10,000 posterior samples and C2ST against the 10,000 reference
samples: both sets z-scored by the reference's mean and std, sklearn MLPClassifier(relu, two
hidden layers of 10·d, adam, max_iter 10000), 5-fold shuffled CV accuracy (sbibm.metrics.c2st).

  python3 Benchmarks/sbibm/c2st_table.py --binary .build/release/sbi-gpu [--tasks two_moons] \
      [--budgets 1000 10000 100000] [--observations 1 2 3] [--method npe] [--estimator nsf]
"""
import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np
from sklearn.model_selection import KFold, cross_val_score
from sklearn.neural_network import MLPClassifier

PUBLISHED_NPE = {  # sbibm, mean C2ST over the 10 observations
    "two_moons": {1000: 0.725, 10000: 0.606, 100000: 0.542},
    "gaussian_linear": {1000: 0.694, 10000: 0.552, 100000: 0.506},
}


def c2st(X, Y, seed=1, n_folds=5):
    """sbibm.metrics.c2st: z-score by X (the reference), MLP classifier, k-fold accuracy."""
    X = np.asarray(X, dtype=np.float32)
    Y = np.asarray(Y, dtype=np.float32)
    mean, std = X.mean(axis=0), X.std(axis=0)
    X = (X - mean) / std
    Y = (Y - mean) / std
    ndim = X.shape[1]
    clf = MLPClassifier(activation="relu", hidden_layer_sizes=(10 * ndim, 10 * ndim), max_iter=10000,
                        solver="adam", random_state=seed)
    data = np.concatenate((X, Y))
    target = np.concatenate((np.zeros((X.shape[0],)), np.ones((Y.shape[0],))))
    shuffle = KFold(n_splits=n_folds, shuffle=True, random_state=seed)
    return float(np.mean(cross_val_score(clf, data, target, cv=shuffle, scoring="accuracy")))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", default=".build/release/sbi-gpu")
    parser.add_argument("--shared", default=os.path.join(os.path.dirname(__file__), "../../../shared/sbibm"))
    parser.add_argument("--tasks", nargs="+", default=["two_moons", "gaussian_linear"])
    parser.add_argument("--budgets", type=int, nargs="+", default=[1000, 10000, 100000])
    parser.add_argument("--observations", type=int, nargs="+", default=list(range(1, 11)))
    parser.add_argument("--method", default="npe")
    parser.add_argument("--estimator", default="nsf")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--runs", default="runs/sbibm")
    parser.add_argument("--extra", default="", help="extra arguments for sbi-gpu train")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    results = []
    for task in args.tasks:
        for budget in args.budgets:
            run = os.path.join(args.runs, f"{task}-{args.method}-{args.estimator}-{budget}")
            started = time.time()
            subprocess.run([args.binary, "train", "--device", args.device, "--method", args.method,
                            "--estimator", args.estimator, "--task", task, "--num-simulations", str(budget),
                            "--out", run, "--quiet"] + args.extra.split(), check=True)
            wall = time.time() - started
            config = json.load(open(os.path.join(run, "config.json")))
            scores = []
            for k in args.observations:
                obs = os.path.join(args.shared, task, f"observation_{k}.npy")
                ref = np.load(os.path.join(args.shared, task, f"reference_posterior_{k}.npy"))
                out = os.path.join(run, f"samples_{k}.npy")
                subprocess.run([args.binary, "sample", "--device", args.device, "--model", run, "--observation", obs,
                                "--num", str(len(ref)), "--out", out, "--seed", str(k)], check=True,
                               stderr=subprocess.DEVNULL)
                scores.append(c2st(ref, np.load(out)))
                print(f"{task} {budget} obs {k}: C2ST {scores[-1]:.3f}", file=sys.stderr)
            results.append({"task": task, "budget": budget, "method": args.method, "estimator": args.estimator,
                            "observations": args.observations, "c2st": scores, "meanC2ST": float(np.mean(scores)),
                            "trainingSeconds": config.get("trainingSeconds"), "wallSeconds": wall,
                            "epochs": config.get("epochsRun"),
                            "publishedNPE": PUBLISHED_NPE.get(task, {}).get(budget)})
            if args.json:  # after every run, so that a long harness killed midway keeps what it measured
                with open(args.json + ".tmp", "w") as f:
                    json.dump(results, f, indent=2)
                os.replace(args.json + ".tmp", args.json)
    print("| task | simulations | method | mean C2ST (obs) | published NPE | training s | epochs |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        obs = ",".join(map(str, r["observations"])) if len(r["observations"]) < 10 else "1–10"
        print(f"| {r['task']} | {r['budget']} | {r['method']} ({r['estimator']}) | {r['meanC2ST']:.3f} ({obs}) | "
              f"{r['publishedNPE'] if r['publishedNPE'] is not None else '–'} | {r['trainingSeconds']:.1f} | {r['epochs']} |")


if __name__ == "__main__":
    main()
