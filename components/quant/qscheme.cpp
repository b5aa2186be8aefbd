#include "components/quant/qscheme.h"

#include "engine/error.h"

namespace razor::quant {

std::string to_string(QDType dtype) { return dtype == QDType::QUInt8 ? "quint8" : "qint8"; }

std::string to_string(QScheme qscheme) {
  switch (qscheme) {
    case QScheme::PerTensorAffine:
      return "per_tensor_affine";
    case QScheme::PerTensorSymmetric:
      return "per_tensor_symmetric";
    case QScheme::PerChannelAffine:
      return "per_channel_affine";
    case QScheme::PerChannelSymmetric:
      return "per_channel_symmetric";
  }
  RAZOR_ASSERT(false);
}

std::optional<QDType> parse_qdtype(const std::string& name) {
  if (name == "quint8") return QDType::QUInt8;
  if (name == "qint8") return QDType::QInt8;
  return std::nullopt;
}

std::optional<QScheme> parse_qscheme(const std::string& name) {
  for (QScheme q : {QScheme::PerTensorAffine, QScheme::PerTensorSymmetric,
                    QScheme::PerChannelAffine, QScheme::PerChannelSymmetric}) {
    if (name == to_string(q)) return q;
  }
  return std::nullopt;
}

namespace {
// Python's `//` (towards minus infinity), which torch's reduce_range uses.
int64_t floor_div2(int64_t v) { return v >= 0 ? v / 2 : -((-v + 1) / 2); }
}  // namespace

QuantRange calculate_qmin_qmax(std::optional<int64_t> quant_min, std::optional<int64_t> quant_max,
                               QDType dtype, bool reduce_range, const std::string& where) {
  const std::string prefix = where.empty() ? "" : where + ": ";
  RAZOR_CHECK(quant_min.has_value() == quant_max.has_value(), prefix,
              "quant_min and quant_max go together (got only ",
              quant_min ? "quant_min" : "quant_max", ")");
  QuantRange range;
  if (quant_min) {
    RAZOR_CHECK(*quant_min <= 0 && 0 <= *quant_max, prefix,
                "the quantisation range must include 0, got [", *quant_min, ", ", *quant_max, "]");
    RAZOR_CHECK(*quant_min < *quant_max, prefix,
                "quant_min must be strictly less than quant_max, got [", *quant_min, ", ",
                *quant_max, "]");
    range.customized = true;
    range.quant_min = reduce_range ? floor_div2(*quant_min) : *quant_min;
    range.quant_max = reduce_range ? floor_div2(*quant_max) : *quant_max;
    return range;
  }
  if (dtype == QDType::QInt8) {
    range.quant_min = reduce_range ? -64 : -128;
    range.quant_max = reduce_range ? 63 : 127;
  } else {
    range.quant_min = 0;
    range.quant_max = reduce_range ? 127 : 255;
  }
  return range;
}

std::pair<int64_t, int64_t> bit_range(QDType dtype, int64_t bit, bool symmetric_range) {
  RAZOR_ASSERT(bit >= 1 && bit <= 32);
  if (dtype == QDType::QUInt8) return {0, (int64_t{1} << bit) - 1};
  const int64_t half = int64_t{1} << (bit - 1);
  return {symmetric_range ? -half + 1 : -half, half - 1};
}

}  // namespace razor::quant
