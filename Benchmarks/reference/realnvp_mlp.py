#!/usr/bin/env python3
"""PyTorch twin of `sbi-gpu bench flows --spec mlp`: the same RealNVP, the same timing rules.

  bench    time training steps, log-prob and sampling; print JSON rows like sbi-gpu's
  logprob  load an sbi-gpu safetensors checkpoint and inputs, print log q (correctness check)

Spec: D = side² pixels; K coupling layers with alternating checkerboard masks (layer t passes
through the pixels whose (row + col) parity equals t mod 2); each coupling net an MLP
D → H → H → 2D with ReLU on the masked input; s = tanh(raw s); y = m⊙x + (1−m)⊙(x⊙exp(s) + t);
log|det| = Σ(1−m)⊙s; standard-normal base; Adam; float32.
"""
import argparse
import json
import math
import resource
import sys

import torch
from torch import nn

from timing import median_seconds


def checkerboard(side, layer):
    rows = torch.arange(side).unsqueeze(1)
    cols = torch.arange(side).unsqueeze(0)
    return (((rows + cols) % 2) == (layer % 2)).float().reshape(-1)


class Coupling(nn.Module):
    def __init__(self, d, hidden, mask):
        super().__init__()
        self.register_buffer("mask", mask)
        self.net = nn.Sequential(nn.Linear(d, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                 nn.Linear(hidden, 2 * d))
        self.d = d

    def forward(self, x):
        st = self.net(x * self.mask)
        s = torch.tanh(st[:, : self.d])
        t = st[:, self.d:]
        keep = 1 - self.mask
        y = self.mask * x + keep * (x * torch.exp(s) + t)
        return y, (keep * s).sum(dim=1)

    def inverse(self, y):
        st = self.net(y * self.mask)
        s = torch.tanh(st[:, : self.d])
        t = st[:, self.d:]
        keep = 1 - self.mask
        return self.mask * y + keep * ((y - t) * torch.exp(-s))


class RealNVP(nn.Module):
    def __init__(self, side, layers, hidden):
        super().__init__()
        d = side * side
        self.d = d
        self.layers = nn.ModuleList([Coupling(d, hidden, checkerboard(side, t)) for t in range(layers)])

    def log_prob(self, x):
        total = torch.zeros(x.shape[0])
        for layer in self.layers:
            x, logdet = layer(x)
            total = total + logdet
        base = -0.5 * (x * x).sum(dim=1) - 0.5 * self.d * math.log(2 * math.pi)
        return base + total

    def sample(self, n):
        z = torch.randn(n, self.d)
        for layer in reversed(self.layers):
            z = layer.inverse(z)
        return z


def bench(args):
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rows = []
    for side in args.sides:
        d = side * side
        model = RealNVP(side, args.layers, args.hidden)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
        x = torch.rand(args.batch, d) * 2 - 1

        def train_step():
            optimizer.zero_grad(set_to_none=True)
            loss = -model.log_prob(x).mean()
            loss.backward()
            optimizer.step()

        def log_prob():
            with torch.no_grad():
                model.log_prob(x)

        def sample():
            with torch.no_grad():
                model.sample(args.batch)

        train = median_seconds(train_step, args.warmups, args.repeats)
        logp = median_seconds(log_prob, args.warmups, args.repeats)
        samp = median_seconds(sample, args.warmups, args.repeats)
        forward_flops = args.layers * 2 * args.batch * (d * args.hidden + args.hidden * args.hidden + args.hidden * 2 * d)
        rows.append({
            "spec": "mlp", "side": side, "backend": "pytorch",
            "device": f"PyTorch {torch.__version__} CPU ({args.threads} threads)", "batch": args.batch,
            "trainImagesPerSecond": args.batch / train, "logProbImagesPerSecond": args.batch / logp,
            "sampleImagesPerSecond": args.batch / samp,
            "peakBytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
            "processPeakBytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
            "trainGflops": 3 * forward_flops / train / 1e9, "logProbGflops": forward_flops / logp / 1e9,
        })
        print(f"pytorch side {side}: train {args.batch / train:.0f} img/s", file=sys.stderr)
    json.dump(rows, sys.stdout)


def logprob(args):
    from safetensors.numpy import load_file
    import numpy as np
    weights = load_file(args.checkpoint)
    inputs = load_file(args.inputs)["x"]
    model = RealNVP(args.side, args.layers, args.hidden)
    with torch.no_grad():
        for t, layer in enumerate(model.layers):
            for i, linear in enumerate([layer.net[0], layer.net[2], layer.net[4]]):
                # sbi-gpu stores weights in×out (y = x·W + b); torch's Linear holds out×in.
                linear.weight.copy_(torch.from_numpy(np.ascontiguousarray(weights[f"flow.{t}.net.{i}.weight"].T)))
                linear.bias.copy_(torch.from_numpy(weights[f"flow.{t}.net.{i}.bias"].reshape(-1)))
        out = model.log_prob(torch.from_numpy(inputs))
    json.dump(out.tolist(), sys.stdout)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="mode", required=True)
    b = sub.add_parser("bench")
    b.add_argument("--sides", type=int, nargs="+", default=[16, 28, 32, 64])
    b.add_argument("--batch", type=int, default=256)
    b.add_argument("--layers", type=int, default=8)
    b.add_argument("--hidden", type=int, default=1024)
    b.add_argument("--repeats", type=int, default=5)
    b.add_argument("--warmups", type=int, default=2)
    b.add_argument("--threads", type=int, default=2)
    l = sub.add_parser("logprob")
    l.add_argument("--checkpoint", required=True)
    l.add_argument("--inputs", required=True)
    l.add_argument("--side", type=int, required=True)
    l.add_argument("--layers", type=int, default=8)
    l.add_argument("--hidden", type=int, default=1024)
    args = parser.parse_args()
    bench(args) if args.mode == "bench" else logprob(args)


if __name__ == "__main__":
    main()
