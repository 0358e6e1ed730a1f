#ifndef SBI_CBLAS_SHIM_H
#define SBI_CBLAS_SHIM_H
// Debian's libopenblas-dev installs cblas.h (with openblas_set_num_threads) via alternatives.
#include <cblas.h>
#endif
