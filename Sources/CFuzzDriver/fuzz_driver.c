#include "fuzz_driver.h"

// libFuzzer's entry point for a program that keeps its own main (LLVM >= 12). Weak: an ordinary
// build has no libFuzzer, and the reference is then null instead of a link error.
extern int LLVMFuzzerRunDriver(int *argc, char ***argv,
                               int (*callback)(const uint8_t *data, size_t size)) __attribute__((weak));

int sbi_fuzzer_linked(void) { return LLVMFuzzerRunDriver != 0; }

int sbi_fuzzer_run(int argc, char **argv, sbi_fuzz_callback callback) {
    return LLVMFuzzerRunDriver(&argc, &argv, callback);
}

// A -sanitize=fuzzer build links libFuzzer's main into every executable, and that main calls
// this; the weak default lets the package's other executables (the kernel embedder, sbi-gpu)
// link in such a build. sbi-fuzz's own definition replaces it, and only sbi-fuzz starts the driver.
__attribute__((weak)) int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    (void)data;
    (void)size;
    return 0;
}
