#!/usr/bin/env python3
"""PyTorch twin of sbi-gpu's Glow (`--estimator glow`, Sources/SBIModels/Flows/Glow.swift), and of
its multi-scale RealNVP (`--estimator realnvp-ms`; `MultiScaleRealNVP`, for `logprob` so far).

  bench    time a training step, log-prob and sampling at one spec; print JSON rows like sbi-gpu's
  train    train on images with the same budget and rules, print the validation bits/dim
  logprob  load an sbi-gpu glow model.safetensors and images, print log q per image

Spec, layer for layer as in Glow.swift: pixels y in 0…levels−1 are dequantized to
x = (y + u)/levels − ½ (u ~ U(0,1), log-det −D·ln levels); L scales, each a 2×2 squeeze (output
channel (2·di + dj)·C + k of pixel (i, j) is channel k of input pixel (2i + di, 2j + dj)), then K
steps of [ActNorm (y = (x + b)·exp(s), data-dependent init), invertible 1×1 conv
W = P·L·(U + diag(exp s)) with P the channel reversal, affine coupling on the second half of the
channels: [t | raw] = conv3×3 → ReLU → conv1×1 → ReLU → conv3×3 (zero init) of the first half,
y_b = (x_b + t)·σ(raw + 2)], then (except at the last scale) the second half of the channels is
factored out to N(μ, σ²) with [μ | log σ] a zero-initialized conv3×3 of the first half. The top
is N(0, I). Convolution weights Kaiming-uniform U(±√(6/fan_in)), biases 0. Adam, gradient norm
clipped at 5. float32.
"""
import argparse
import json
import math
import resource
import sys
import time

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

from timing import median_seconds


def kaiming(conv):
    fan_in = conv.in_channels * conv.kernel_size[0] * conv.kernel_size[1]
    bound = math.sqrt(6 / fan_in)
    nn.init.uniform_(conv.weight, -bound, bound)
    nn.init.zeros_(conv.bias)
    return conv


def zeros(conv):
    nn.init.zeros_(conv.weight)
    nn.init.zeros_(conv.bias)
    return conv


def net(cin, hidden, cout):
    """A coupling net: conv 3×3 → ReLU → conv 1×1 → ReLU → zero-initialized conv 3×3."""
    return nn.Sequential(kaiming(nn.Conv2d(cin, hidden, 3, padding=1)), nn.ReLU(),
                         kaiming(nn.Conv2d(hidden, hidden, 1)), nn.ReLU(),
                         zeros(nn.Conv2d(hidden, cout, 3, padding=1)))


def squeeze(x):
    n, c, h, w = x.shape
    x = x.reshape(n, c, h // 2, 2, w // 2, 2).permute(0, 3, 5, 1, 2, 4)
    return x.reshape(n, 4 * c, h // 2, w // 2)


def unsqueeze(x):
    n, c4, h, w = x.shape
    c = c4 // 4
    x = x.reshape(n, 2, 2, c, h, w).permute(0, 3, 4, 1, 5, 2)
    return x.reshape(n, c, 2 * h, 2 * w)


class ActNorm(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(c))
        self.log_scale = nn.Parameter(torch.zeros(c))
        self.initialized = False

    def forward(self, x):
        if not self.initialized:  # data-dependent: standardize the first batch per channel
            with torch.no_grad():
                mean = x.mean(dim=(0, 2, 3))
                std = x.std(dim=(0, 2, 3), unbiased=False)
                std = torch.where(std > 0, std, torch.ones_like(std))
                self.bias.copy_(-mean)
                self.log_scale.copy_(-torch.log(std))
            self.initialized = True
        y = (x + self.bias.view(1, -1, 1, 1)) * torch.exp(self.log_scale).view(1, -1, 1, 1)
        return y, x.shape[2] * x.shape[3] * self.log_scale.sum().expand(x.shape[0])

    def inverse(self, y):
        return y * torch.exp(-self.log_scale).view(1, -1, 1, 1) - self.bias.view(1, -1, 1, 1)


class InvConv(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.lower = nn.Parameter(torch.zeros(c, c))
        self.upper = nn.Parameter(torch.zeros(c, c))
        self.log_scale = nn.Parameter(torch.zeros(c))
        self.register_buffer("perm", torch.arange(c - 1, -1, -1))
        self.register_buffer("strict_lower", torch.tril(torch.ones(c, c), -1))
        self.register_buffer("eye", torch.eye(c))

    def factors(self):
        l = self.lower * self.strict_lower + self.eye
        u = self.upper * self.strict_lower.T + torch.diag(torch.exp(self.log_scale))
        return l, u

    def weight(self):
        l, u = self.factors()
        return (l @ u)[self.perm]

    def forward(self, x):
        w = self.weight()
        y = F.conv2d(x, w.view(*w.shape, 1, 1))
        return y, x.shape[2] * x.shape[3] * self.log_scale.sum().expand(x.shape[0])

    def inverse(self, y):
        w = torch.linalg.inv(self.weight())
        return F.conv2d(y, w.view(*w.shape, 1, 1))


class Coupling(nn.Module):
    def __init__(self, c, hidden):
        super().__init__()
        self.ca, self.cb = c // 2, c - c // 2
        self.net = net(self.ca, hidden, 2 * self.cb)

    def params(self, xa):
        out = self.net(xa)
        raw = out[:, self.cb:] + 2
        return out[:, : self.cb], torch.sigmoid(raw), -F.softplus(-raw)

    def forward(self, x):
        xa, xb = x[:, : self.ca], x[:, self.ca:]
        shift, scale, log_scale = self.params(xa)
        return torch.cat([xa, (xb + shift) * scale], 1), log_scale.flatten(1).sum(1)

    def inverse(self, y):
        ya, yb = y[:, : self.ca], y[:, self.ca:]
        shift, scale, _ = self.params(ya)
        return torch.cat([ya, yb / scale - shift], 1)


def gaussian(z, mean=None, log_std=None):
    z = z.flatten(1)
    if mean is None:
        return -0.5 * (z * z).sum(1) - 0.5 * z.shape[1] * math.log(2 * math.pi)
    mean, log_std = mean.flatten(1), log_std.flatten(1)
    e = (z - mean) * torch.exp(-log_std)
    return -0.5 * (e * e).sum(1) - log_std.sum(1) - 0.5 * z.shape[1] * math.log(2 * math.pi)


def split(h, prior):
    """The second half of the channels factored out to N(μ, σ²), [μ | log σ] = prior(first half):
    the first half, and the second's log density."""
    half = h.shape[1] // 2
    kept, factored = h[:, :half], h[:, half:]
    out = prior(kept)
    return kept, gaussian(factored, out[:, :half], out[:, half:])


class MultiScaleFlow(nn.Module):
    """What the two twins share: per scale, `kinds` lists "squeeze" and "step" in order and
    `programs` holds each step's layers; then (except at the last scale) a split to `priors`."""

    def log_prob(self, y, noise=None):
        """y: N×C×H×W pixel values; noise: the dequantization u (drawn when None)."""
        h, total = preprocess(y, self.levels, noise, self.preprocessing, self.alpha)
        for level in range(self.scales):
            layers = iter(self.programs[level])
            for kind in self.kinds[level]:
                if kind == "squeeze":
                    h = squeeze(h)
                    continue
                for layer in next(layers):
                    h, logdet = layer(h)
                    total = total + logdet
            if level < self.scales - 1:
                h, factored_log_prob = split(h, self.priors[level])
                total = total + factored_log_prob
        return total + gaussian(h)


class Glow(MultiScaleFlow):
    def __init__(self, height, width, channels, levels=256, scales=2, steps=8, hidden=64):
        super().__init__()
        self.shape, self.levels, self.scales = (channels, height, width), levels, scales
        self.preprocessing, self.alpha = "centered", 0
        self.programs = nn.ModuleList()
        self.kinds = [["squeeze"] + ["step"] * steps for _ in range(scales)]
        self.priors = nn.ModuleList()
        c = channels
        for level in range(scales):
            c *= 4
            self.programs.append(nn.ModuleList([nn.ModuleList([ActNorm(c), InvConv(c), Coupling(c, hidden)])
                                                for _ in range(steps)]))
            if level < scales - 1:
                self.priors.append(zeros(nn.Conv2d(c // 2, c, 3, padding=1)))
                c //= 2

    def sample(self, n, temperature=1.0):
        c, hh, ww = self.shape
        for _ in range(self.scales):
            c, hh, ww = 4 * c, hh // 2, ww // 2
            if _ < self.scales - 1:
                c //= 2
        h = temperature * torch.randn(n, c, hh, ww)
        for level in reversed(range(self.scales)):
            if level < self.scales - 1:
                out = self.priors[level](h)
                half = h.shape[1]
                factored = out[:, :half] + torch.exp(out[:, half:]) * temperature * torch.randn_like(h)
                h = torch.cat([h, factored], 1)
            for actnorm, invconv, coupling in reversed(self.programs[level]):
                h = actnorm.inverse(invconv.inverse(coupling.inverse(h)))
            h = unsqueeze(h)
        return ((h + 0.5) * self.levels).clamp(0, self.levels - 1).floor()


def preprocess(y, levels, noise, preprocessing, alpha):
    """Dequantized pixels as the flow's input, and the per-image log-det (as Glow.swift's encode)."""
    d = y[0].numel()
    unit = (y + (torch.rand_like(y) if noise is None else noise)) / levels
    logdet = torch.full((y.shape[0],), -d * math.log(levels))
    if preprocessing == "centered":
        return unit - 0.5, logdet
    p = alpha + (1 - 2 * alpha) * unit
    log_p, log_q = torch.log(p), torch.log(1 - p)
    return log_p - log_q, logdet - (log_p + log_q).flatten(1).sum(1) + d * math.log(1 - 2 * alpha)


class MaskedAffine(nn.Module):
    """RealNVP's coupling (AffineCouplingOp): y = m·x + (1 − m)·(x·exp(s) + t), s = 2·tanh(raw/2),
    [raw s | t] per pixel from a net of the masked input. checkerboard: pixels with
    (i + j) % 2 = parity pass, with all their channels; else channels: the first half passes (the
    second with flip), and only it feeds the net."""

    def __init__(self, c, hidden, checkerboard, parity=0, flip=False):
        super().__init__()
        self.c, self.checkerboard, self.parity = c, checkerboard, parity
        half = c // 2
        self.passing = (half, c - half) if flip else (0, half)
        self.net = net(c if checkerboard else self.passing[1], hidden, 2 * c)

    def mask(self, x):
        n, c, h, w = x.shape
        if self.checkerboard:
            i, j = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
            return (((i + j) % 2) == self.parity).float().view(1, 1, h, w).expand(1, c, h, w)
        m = torch.zeros(1, c, 1, 1)
        m[:, self.passing[0]:self.passing[0] + self.passing[1]] = 1
        return m.expand(1, c, h, w)

    def params(self, x, m):
        start, width = self.passing
        out = self.net(x * m if self.checkerboard else x[:, start:start + width])
        return 2 * torch.tanh(out[:, : self.c] / 2), out[:, self.c:]

    def forward(self, x):
        m = self.mask(x)
        s, t = self.params(x, m)
        return m * x + (1 - m) * (x * torch.exp(s) + t), ((1 - m) * s).flatten(1).sum(1)


class MultiScaleRealNVP(MultiScaleFlow):
    """`--estimator realnvp-ms` (Glow.swift's realnvp program): at each scale but the last, K
    [ActNorm, checkerboard coupling] with alternating parity, a squeeze, K [ActNorm, channel
    coupling] alternating halves, then the second half of the channels factored out to a learned
    prior; the last scale K + 1 checkerboard steps. The top is N(0, I)."""

    def __init__(self, height, width, channels, levels=256, scales=3, steps=3, hidden=64,
                 preprocessing="centered", alpha=0.05):
        super().__init__()
        self.shape, self.levels, self.scales = (channels, height, width), levels, scales
        self.preprocessing, self.alpha = preprocessing, alpha
        self.programs = nn.ModuleList()  # per scale: each step's [ActNorm, coupling]
        self.kinds = []
        self.priors = nn.ModuleList()
        c = channels
        for level in range(scales):
            last = level == scales - 1
            layers, kinds = nn.ModuleList(), []
            for k in range(steps + 1 if last else steps):
                layers.append(nn.ModuleList([ActNorm(c), MaskedAffine(c, hidden, True, parity=k % 2)]))
                kinds.append("step")
            if not last:
                kinds.append("squeeze")
                c *= 4
                for k in range(steps):
                    layers.append(nn.ModuleList([ActNorm(c), MaskedAffine(c, hidden, False, flip=k % 2 == 1)]))
                    kinds.append("step")
                self.priors.append(zeros(nn.Conv2d(c // 2, c, 3, padding=1)))
                c //= 2
            self.programs.append(layers)
            self.kinds.append(kinds)

    def named_steps(self, prefix="realnvp"):
        """(parameter name of the step, ActNorm, coupling) in checkpoint naming."""
        for level, layers in enumerate(self.programs):
            for k, (actnorm, coupling) in enumerate(layers):
                yield f"{prefix}.{level}.{k}", actnorm, coupling


def load_images(path):
    a = np.load(path).astype(np.float32)
    return torch.from_numpy(a[:, None] if a.ndim == 3 else a.transpose(0, 3, 1, 2).copy())


def bench(args):
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rows = []
    for side in args.sides:
        model = Glow(side, side, args.channels, scales=args.scales, steps=args.steps, hidden=args.hidden)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        x = torch.randint(0, 256, (args.batch, args.channels, side, side)).float()

        def train_step():
            optimizer.zero_grad(set_to_none=True)
            loss = -model.log_prob(x).mean()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5)
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
        rows.append({
            "spec": "glow", "side": side, "backend": "pytorch",
            "device": f"PyTorch {torch.__version__} CPU ({args.threads} threads)", "batch": args.batch,
            "trainImagesPerSecond": args.batch / train, "logProbImagesPerSecond": args.batch / logp,
            "sampleImagesPerSecond": args.batch / samp,
            "peakBytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
            "processPeakBytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        })
        print(f"pytorch glow side {side}: train {args.batch / train:.0f} img/s", file=sys.stderr)
    json.dump(rows, sys.stdout)


def train(args):
    """The same budget and rules as `sbi-gpu train --method density`: a random 90% of the images
    for training, batches of 64, Adam at the given rate with gradient norm 5, the best epoch by
    the held-out 10% kept; then the mean bits/dim of --validation (one dequantization draw)."""
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    images = load_images(args.data)
    n, c, h, w = images.shape
    order = torch.randperm(n)
    held = int(round(0.1 * n))
    val, tr = images[order[:held]], images[order[held:]]
    model = Glow(h, w, c, levels=args.levels, scales=args.scales, steps=args.steps, hidden=args.hidden)
    with torch.no_grad():
        model.log_prob(tr[:512])  # ActNorm's data-dependent initialization
    optimizer = torch.optim.Adam(model.parameters(), lr=args.learning_rate)
    d = c * h * w
    best, best_state, started = float("inf"), None, time.perf_counter()
    for epoch in range(args.epochs):
        perm = torch.randperm(tr.shape[0])
        for i in range(0, tr.shape[0] - args.batch + 1, args.batch):
            optimizer.zero_grad(set_to_none=True)
            loss = -model.log_prob(tr[perm[i:i + args.batch]]).mean()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5)
            optimizer.step()
        with torch.no_grad():
            v = -torch.cat([model.log_prob(val[i:i + 256]) for i in range(0, held, 256)]).mean().item()
        if v < best:
            best, best_state = v, {k: t.clone() for k, t in model.state_dict().items()}
        print(f"epoch {epoch + 1}: held-out {v / (d * math.log(2)):.4f} bits/dim", file=sys.stderr)
    model.load_state_dict(best_state)
    test = load_images(args.validation)
    with torch.no_grad():
        logq = torch.cat([model.log_prob(test[i:i + 256]) for i in range(0, test.shape[0], 256)])
    bpd = (-logq.mean() / (d * math.log(2))).item()
    json.dump({"validationBitsPerDimension": bpd, "seconds": time.perf_counter() - started,
               "device": f"PyTorch {torch.__version__} CPU ({args.threads} threads)"}, sys.stdout)


def load_conv(conv, weights, name):
    # sbi-gpu stores K×K×Cin×Cout; torch's Conv2d holds Cout×Cin×K×K.
    conv.weight.copy_(weights[f"{name}.weight"].permute(3, 2, 0, 1))
    conv.bias.copy_(weights[f"{name}.bias"].reshape(-1))


def load_actnorm(actnorm, weights, name):
    actnorm.bias.copy_(weights[f"{name}.bias"].reshape(-1))
    actnorm.log_scale.copy_(weights[f"{name}.logScale"].reshape(-1))
    actnorm.initialized = True


def logprob(args):
    from safetensors.numpy import load_file
    weights = {k: torch.from_numpy(v.copy()) for k, v in load_file(args.checkpoint).items()}
    images = load_images(args.data)
    n, c, h, w = images.shape
    if args.architecture == "realnvp":
        model = MultiScaleRealNVP(h, w, c, levels=args.levels, scales=args.scales, steps=args.steps, hidden=args.hidden,
                                  preprocessing=args.preprocessing, alpha=args.logit_alpha)
        with torch.no_grad():
            for name, actnorm, coupling in model.named_steps():
                load_actnorm(actnorm, weights, f"{name}.actnorm")
                for i, conv in enumerate([coupling.net[0], coupling.net[2], coupling.net[4]]):
                    load_conv(conv, weights, f"{name}.coupling.net.{i}")
            for level, prior in enumerate(model.priors):
                load_conv(prior, weights, f"realnvp.{level}.prior")
            out = model.log_prob(images, noise=torch.full_like(images, args.dequantization))
        json.dump(out.tolist(), sys.stdout)
        return
    model = Glow(h, w, c, levels=args.levels, scales=args.scales, steps=args.steps, hidden=args.hidden)
    with torch.no_grad():
        for level, steps in enumerate(model.programs):
            for k, (actnorm, invconv, coupling) in enumerate(steps):
                name = f"glow.{level}.{k}"
                load_actnorm(actnorm, weights, f"{name}.actnorm")
                invconv.lower.copy_(weights[f"{name}.invconv.lower"])
                invconv.upper.copy_(weights[f"{name}.invconv.upper"])
                invconv.log_scale.copy_(weights[f"{name}.invconv.logScale"].reshape(-1))
                for i, conv in enumerate([coupling.net[0], coupling.net[2], coupling.net[4]]):
                    load_conv(conv, weights, f"{name}.coupling.net.{i}")
        for level, prior in enumerate(model.priors):
            load_conv(prior, weights, f"glow.{level}.prior")
        noise = torch.full_like(images, args.dequantization)
        out = model.log_prob(images, noise=noise)
    json.dump(out.tolist(), sys.stdout)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="mode", required=True)
    for name in ["bench", "train", "logprob"]:
        p = sub.add_parser(name)
        p.add_argument("--scales", type=int, default=2)
        p.add_argument("--steps", type=int, default=8)
        p.add_argument("--hidden", type=int, default=64)
        p.add_argument("--threads", type=int, default=2)
        if name == "bench":
            p.add_argument("--sides", type=int, nargs="+", default=[28])
            p.add_argument("--channels", type=int, default=1)
            p.add_argument("--batch", type=int, default=64)
            p.add_argument("--repeats", type=int, default=5)
            p.add_argument("--warmups", type=int, default=2)
        if name == "train":
            p.add_argument("--data", required=True)
            p.add_argument("--validation", required=True)
            p.add_argument("--levels", type=int, default=256)
            p.add_argument("--epochs", type=int, default=20)
            p.add_argument("--batch", type=int, default=64)
            p.add_argument("--learning-rate", type=float, default=1e-3)
            p.add_argument("--seed", type=int, default=0)
        if name == "logprob":
            p.add_argument("--checkpoint", required=True)
            p.add_argument("--data", required=True)
            p.add_argument("--levels", type=int, default=256)
            p.add_argument("--dequantization", type=float, default=0.5, help="u for every pixel")
            p.add_argument("--architecture", choices=["glow", "realnvp"], default="glow")
            p.add_argument("--preprocessing", choices=["centered", "logit"], default="centered",
                           help="realnvp: as GlowConfiguration.preprocessing (glow: centered)")
            p.add_argument("--logit-alpha", type=float, default=0.05)
    args = parser.parse_args()
    {"bench": bench, "train": train, "logprob": logprob}[args.mode](args)


if __name__ == "__main__":
    main()
