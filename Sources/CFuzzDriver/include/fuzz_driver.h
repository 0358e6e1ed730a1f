#ifndef SBI_FUZZ_DRIVER_H
#define SBI_FUZZ_DRIVER_H
#include <stddef.h>
#include <stdint.h>

typedef int (*sbi_fuzz_callback)(const uint8_t *data, size_t size);

/// Non-zero when libFuzzer is linked in, i.e. in a `swift build -Xswiftc -sanitize=fuzzer,...`
/// build; zero in an ordinary build, where the fuzz binary replays files instead.
int sbi_fuzzer_linked(void);

/// Hands the process to libFuzzer's driver (its flags and corpus directories in argv).
/// Only valid when sbi_fuzzer_linked() is non-zero.
int sbi_fuzzer_run(int argc, char **argv, sbi_fuzz_callback callback);

#endif
