#!/usr/bin/env bash
# Streamed training check: 100,000 float32 images of 64×64 (1.6 GB) train one epoch of NPE on
# the CPU backend with --max-device-memory 256MB (streamed) and with the default budget (in
# memory); prints each run's peak RssAnon (anonymous resident memory: the mapped file's pages are
# reclaimable and do not count) and whether the two models are byte-identical.
# Usage: bash Benchmarks/streaming/run.sh [WORKDIR]   (needs python3 with numpy, ~3.3 GB of disk)
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
work="${1:-/tmp/sbi-gpu-streaming}"
mkdir -p "$work" && cd "$work"
[ -f x.npy ] || python3 - <<'PY'
import numpy as np
n = 100_000
rng = np.random.default_rng(0)
theta = rng.uniform(-1, 1, size=(n, 2)).astype(np.float32)
np.save("theta.npy", theta)
# A Gaussian blob centred at θ plus noise, written through a memmap in chunks.
x = np.lib.format.open_memmap("x.npy", mode="w+", dtype=np.float32, shape=(n, 64, 64))
yy, xx = np.mgrid[0:64, 0:64].astype(np.float32) / 32 - 1
for s in range(0, n, 5000):
    t = theta[s:s + 5000]
    img = np.exp(-((xx[None] - t[:, 0, None, None]) ** 2 + (yy[None] - t[:, 1, None, None]) ** 2) / 0.1)
    x[s:s + 5000] = img + 0.1 * rng.standard_normal(img.shape).astype(np.float32)
x.flush()
PY
peak() {  # runs "$@", samples RssAnon every 0.2 s, prints the peak
    "$@" & local pid=$! anon=0 a
    while kill -0 "$pid" 2>/dev/null; do
        a=$(awk '/RssAnon/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
        [ -n "$a" ] && [ "$a" -gt "$anon" ] && anon=$a
        sleep 0.2
    done
    wait "$pid"
    echo "peak RssAnon $((anon / 1024)) MiB"
}
common=(train --device cpu --theta theta.npy --x x.npy --epochs 1 --prior uniform:-1,1 --quiet)
echo "streamed (--max-device-memory 256MB):"; time peak "$root/.build/release/sbi-gpu" "${common[@]}" --max-device-memory 256MB --out streamed
echo "in memory (default budget):";          time peak "$root/.build/release/sbi-gpu" "${common[@]}" --out memory
cmp streamed/model.safetensors memory/model.safetensors && echo "models byte-identical"
