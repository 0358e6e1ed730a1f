#ifndef SBI_CZLIB_SHIM_H
#define SBI_CZLIB_SHIM_H
// zlib inflates deflate-compressed .npz members and deflates PNG image data.
#include <zlib.h>
#endif
