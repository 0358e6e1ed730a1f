#!/usr/bin/env bash
# The GPU check: runs on a machine with an NVIDIA GPU and no Swift toolchain.
#
# Prepare here (see Benchmarks/README.md):   bash Benchmarks/gpu-check.sh --prepare
#   builds a statically linked sbi-gpu and the test bundle into .device/ with the OpenCL loader,
#   OpenBLAS and XCTest libraries they need.
# Carry .devicepack/ there, unpack it (tar -xJf .devicepack/device.tar.xz) and run from the
# repository root:                           bash Benchmarks/gpu-check.sh OUTDIR
#   registers NVIDIA's OpenCL driver with the carried loader, lists the devices, runs the
#   OpenCL tests against the GPU, and writes the benchmark JSON to OUTDIR.
set -uo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dev="$root/.device"

if [ "${1:-}" = "--prepare" ]; then
    set -e
    mkdir -p "$dev/lib"
    swift build -c release --static-swift-stdlib --scratch-path "$root/.build-static" --product sbi-gpu
    # XCTest has no static library: the test bundle links the Swift runtime dynamically and
    # carries its libraries along.
    swift build -c release --scratch-path "$root/.build" --build-tests -Xswiftc -enable-testing
    cp "$root/.build-static/release/sbi-gpu" "$dev/"
    cp "$root/.build/release/sbi-gpuPackageTests.xctest" "$dev/"
    for lib in libOpenCL.so.1 libopenblas.so.0 libgfortran.so.5 libquadmath.so.0; do
        cp -L "/usr/lib/x86_64-linux-gnu/$lib" "$dev/lib/"
    done
    for lib in libXCTest.so libswift_Testing.so libFoundation.so libFoundationEssentials.so \
               libFoundationInternationalization.so lib_FoundationICU.so libswiftCore.so libswiftDispatch.so \
               libdispatch.so libBlocksRuntime.so libswift_Concurrency.so libswift_StringProcessing.so \
               libswift_RegexParser.so libswiftGlibc.so libswiftSynchronization.so libswiftSwiftOnoneSupport.so \
               lib_FoundationCollections.so lib_FoundationCShims.so libswift_Builtin_float.so; do
        [ -e "/opt/swift/usr/lib/swift/linux/$lib" ] && cp -L "/opt/swift/usr/lib/swift/linux/$lib" "$dev/lib/"
    done
    cp -r "$root/Benchmarks/reference" "$dev/" 2>/dev/null || true
    strip "$dev/sbi-gpu" "$dev/sbi-gpuPackageTests.xctest"
    # One compressed file fits the device tool's 64 MiB transfer limit (about 38 MB).
    mkdir -p "$root/.devicepack"
    tar -C "$root" -cf - .device | xz -T0 -6 > "$root/.devicepack/device.tar.xz"
    du -sh "$dev" "$root/.devicepack"
    exit 0
fi

out="${1:-$root/gpu-check-out}"
mkdir -p "$out"
export LD_LIBRARY_PATH="$dev/lib:${LD_LIBRARY_PATH:-}"
# The carried ocl-icd loader finds drivers through .icd files; point it at NVIDIA's.
icd="$dev/icd"
mkdir -p "$icd"
nvidia=$(ldconfig -p | awk '/libnvidia-opencl.so.1/ {print $NF; exit}')
[ -z "$nvidia" ] && nvidia=$(ls /usr/lib/x86_64-linux-gnu/libnvidia-opencl.so.1 /usr/local/nvidia/lib64/libnvidia-opencl.so.1 2>/dev/null | head -1)
echo "NVIDIA OpenCL driver: ${nvidia:-not found}"
[ -n "$nvidia" ] && echo "$nvidia" > "$icd/nvidia.icd"
export OCL_ICD_VENDORS="$icd"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | tee "$out/nvidia-smi.txt"

"$dev/sbi-gpu" devices 2>&1 | tee "$out/devices.txt"
# Every OpenCL test on the GPU (the tests take OpenCL device 0, here the only one: the GPU).
if [ -x "$dev/sbi-gpuPackageTests.xctest" ]; then
    # The CLI tests look for sbi-gpu beside the bundle.
    timeout 200 "$dev/sbi-gpuPackageTests.xctest" 2>&1 | grep -E "error|failed|Executed|skipped" | tail -80 > "$out/tests.txt"
    echo "tests: $(grep -E 'Executed [0-9]+ tests' "$out/tests.txt" | tail -1)"
fi
"$dev/sbi-gpu" bench gemm --device 0 --json > "$out/gemm.json" 2>"$out/gemm.log"
"$dev/sbi-gpu" bench graph --device 0 --device cpu --json > "$out/graph.json" 2>"$out/graph.log"
timeout 240 "$dev/sbi-gpu" bench flows --device 0 --device cpu --side 28 --side 64 --torch auto \
    --results "$out/flows-results.json" > "$out/flows.md" 2>"$out/flows.log"
cat "$out/flows.md"
