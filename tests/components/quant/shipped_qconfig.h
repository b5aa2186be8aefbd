#pragma once
// MMRazor's shipped global_qconfig (configs/quantization/ptq/base/ptq_openvino_*.py), for the
// quantisation tests; `a_qdtype` "qint8" is its TensorRT variant.
#include <string>

#include "engine/config.h"

namespace razor::test {

inline Json shipped_qconfig(const std::string& a_qdtype = "quint8") {
  return Json::parse(R"({
    "w_observer": {"type": "mmrazor.PerChannelMinMaxObserver"},
    "a_observer": {"type": "mmrazor.MovingAverageMinMaxObserver"},
    "w_fake_quant": {"type": "mmrazor.FakeQuantize"},
    "a_fake_quant": {"type": "mmrazor.FakeQuantize"},
    "w_qscheme": {"qdtype": "qint8", "bit": 8, "is_symmetry": true, "is_symmetric_range": true},
    "a_qscheme": {"qdtype": ")" + a_qdtype + R"(", "bit": 8, "is_symmetry": true, "averaging_constant": 0.1}
  })");
}

}  // namespace razor::test
