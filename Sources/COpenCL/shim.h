#ifndef SBI_COPENCL_SHIM_H
#define SBI_COPENCL_SHIM_H
// OpenCL 1.2 is the common denominator of PoCL, NVIDIA, AMD and Intel drivers.
#define CL_TARGET_OPENCL_VERSION 120
#define CL_USE_DEPRECATED_OPENCL_1_2_APIS
#include <CL/cl.h>
#endif
