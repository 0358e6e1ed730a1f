#!/usr/bin/env python3
"""NPE on an image task against its explicit-likelihood posterior (issue 14's C2ST goal).

Trains `sbi-gpu train --task T --num-simulations B` (default embedding: the CNN for images),
simulates K observations with a seed the training never used, and for each draws N samples from
q(θ|x_o) (`sample --model`) and N from the exact posterior (`sample --method likelihood`, batched
slice chains on the known likelihood, R̂ and ESS printed), then scores them by sbibm's C2ST
(c2st_table.c2st: z-scored by the reference, MLP classifier, 5-fold accuracy; 0.5 is perfect).

  python3 Benchmarks/sbibm/image_c2st.py --binary .build/release/sbi-gpu --task galaxy \
      --budget 10000 --observations 5 --samples 2000
"""
import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from c2st_table import c2st  # noqa: E402


def run(command):
    started = time.time()
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed: {done.stderr.strip()}")
    return done.stderr, time.time() - started


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", default=".build/release/sbi-gpu")
    parser.add_argument("--task", default="galaxy")
    parser.add_argument("--budget", type=int, default=10000)
    parser.add_argument("--observations", type=int, default=5)
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--chains", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--runs", default="runs/image-c2st")
    parser.add_argument("--extra", default="", help="extra arguments for sbi-gpu train")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    root = os.path.join(args.runs, f"{args.task}-{args.budget}")
    os.makedirs(root, exist_ok=True)
    model = os.path.join(root, "npe")
    if not os.path.exists(os.path.join(model, "model.safetensors")):
        _, seconds = run([args.binary, "train", "--device", args.device, "--task", args.task, "--num-simulations",
                          str(args.budget), "--out", model, "--quiet"] + args.extra.split())
        print(f"trained NPE on {args.budget} simulations in {seconds:.0f} s", flush=True)
    observed = os.path.join(root, "observations")
    run([args.binary, "simulate", "--device", args.device, "--task", args.task, "--num", str(args.observations),
         "--seed", "424242", "--out", observed])
    x = np.load(os.path.join(observed, "x.npy"))
    theta = np.load(os.path.join(observed, "theta.npy"))
    results = []
    for k in range(args.observations):
        one = os.path.join(root, f"observation{k}.npy")
        np.save(one, x[k])
        npe_file, exact_file = os.path.join(root, f"npe{k}.npy"), os.path.join(root, f"exact{k}.npy")
        run([args.binary, "sample", "--device", args.device, "--model", model, "--observation", one,
             "--num", str(args.samples), "--seed", str(k), "--out", npe_file, "--force"])
        log, seconds = run([args.binary, "sample", "--device", args.device, "--method", "likelihood", "--task", args.task,
                            "--observation", one, "--num", str(args.samples), "--chains", str(args.chains),
                            "--warmup", str(args.warmup), "--seed", str(k), "--out", exact_file, "--force"])
        score = c2st(np.load(exact_file), np.load(npe_file))
        chains = log.strip().splitlines()[0]
        results.append({"observation": k, "theta": theta[k].tolist(), "c2st": score, "exact_seconds": seconds,
                        "chains": chains})
        print(f"observation {k}: C2ST {score:.3f}; exact posterior in {seconds:.0f} s ({chains})", flush=True)
    mean = float(np.mean([r["c2st"] for r in results]))
    print(f"{args.task}, {args.budget} simulations: mean C2ST of NPE against the exact posterior {mean:.3f} "
          f"over {args.observations} observations, {args.samples} samples each")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"task": args.task, "budget": args.budget, "mean_c2st": mean, "observations": results}, f, indent=1)


if __name__ == "__main__":
    main()
