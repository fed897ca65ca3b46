// XGBoost's C API (Debian libxgboost-dev, 1.7.x): the inference service's tree-model backend.
#include <xgboost/c_api.h>
