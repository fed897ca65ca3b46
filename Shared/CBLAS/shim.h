#ifndef MERIDIAN_CBLAS_SHIM_H
#define MERIDIAN_CBLAS_SHIM_H
// OpenBLAS's CBLAS interface: the ONNX executor's matrix products.
#include <cblas.h>
#endif
