#pragma once
// Quantisation dtypes, schemes and integer ranges, derived exactly as torch.ao does
// (torch/ao/quantization/utils.py: calculate_qmin_qmax, validate_qmin_qmax), so that scales
// and zero points match PyTorch's observers bit for bit.
#include <cstdint>
#include <optional>
#include <string>
#include <utility>

namespace razor::quant {

/// The quantised integer type. As in MMRazor, the dtype stays 8-bit for narrower bit widths:
/// only quant_min/quant_max carry the bit width.
enum class QDType { QUInt8, QInt8 };

/// torch.per_{tensor,channel}_{affine,symmetric}.
enum class QScheme { PerTensorAffine, PerTensorSymmetric, PerChannelAffine, PerChannelSymmetric };

/// "quint8" / "qint8".
std::string to_string(QDType dtype);
/// "per_tensor_affine", "per_tensor_symmetric", "per_channel_affine", "per_channel_symmetric".
std::string to_string(QScheme qscheme);
/// Parses the names above; nullopt for anything else.
std::optional<QDType> parse_qdtype(const std::string& name);
std::optional<QScheme> parse_qscheme(const std::string& name);

inline bool is_per_channel(QScheme q) {
  return q == QScheme::PerChannelAffine || q == QScheme::PerChannelSymmetric;
}
inline bool is_symmetric(QScheme q) {
  return q == QScheme::PerTensorSymmetric || q == QScheme::PerChannelSymmetric;
}

/// An inclusive integer range [quant_min, quant_max].
struct QuantRange {
  int64_t quant_min = 0;
  int64_t quant_max = 255;
  /// Whether the range was given (torch's has_customized_qrange): a symmetric quint8
  /// observer then puts its zero point at the range's midpoint instead of 128.
  bool customized = false;
};

/// torch's calculate_qmin_qmax: a given range (both ends or neither) is validated (it must
/// include 0 and quant_min < quant_max; a config error otherwise) and, with reduce_range,
/// halved by floor division; without a range the dtype's 8-bit range ([0, 255] / [-128, 127],
/// [0, 127] / [-64, 63] with reduce_range). Unlike torch, a qint8 range wider than 256
/// values (16-bit activations) is accepted. `where` prefixes error messages.
QuantRange calculate_qmin_qmax(std::optional<int64_t> quant_min, std::optional<int64_t> quant_max,
                               QDType dtype, bool reduce_range, const std::string& where = "");

/// MMRazor's QSchemeHandler.to_observer_params range for `bit` bits: quint8 [0, 2^bit - 1];
/// qint8 [-2^(bit-1), 2^(bit-1) - 1], or [-2^(bit-1) + 1, 2^(bit-1) - 1] with a symmetric range.
std::pair<int64_t, int64_t> bit_range(QDType dtype, int64_t bit, bool symmetric_range);

}  // namespace razor::quant
