#pragma once
// Connectors adapt a recorded feature before a distillation loss sees it (MMRazor's
// connectors): a 1x1 conv that lifts the student's channels to the teacher's, a norm, a
// pooling, Factor Transfer's paraphraser and translator, OFD's teacher margin, BYOT's
// auxiliary head, CRD's embedding, MGD's generator. A distiller names them in `connectors`
// and a `loss_forward_mappings` entry applies one with `connector = "name"`; a list of
// connectors in the config chains them.
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <torch/nn/module.h>
#include <torch/types.h>

#include "engine/args.h"
#include "engine/registry.h"

namespace razor {

class Connector : public torch::nn::Module {
 public:
  explicit Connector(const std::string& name) : torch::nn::Module(name) {}

  /// Most connectors give one tensor; BYOT gives {feature, logits}, of which a mapping's
  /// `connector_idx` picks one.
  virtual std::vector<torch::Tensor> forward(const torch::Tensor& input) = 0;
};

/// Connectors applied in order (a list in the config). Every one but the last must give a
/// single tensor.
class ConnectorChain : public Connector {
 public:
  explicit ConnectorChain(std::vector<std::shared_ptr<Connector>> connectors);
  std::vector<torch::Tensor> forward(const torch::Tensor& input) override;
  const std::vector<std::shared_ptr<Connector>>& connectors() const { return connectors_; }

 private:
  std::vector<std::shared_ptr<Connector>> connectors_;
};

/// "connectors": ConvModuleConnector, NormConnector, TorchFunctionalConnector, CRDConnector,
/// OFDTeacherConnector, Paraphraser, Translator, BYOTConnector, MGDConnector.
Registry<Connector>& connector_registry();
void register_connectors();

/// A layer option such as norm_cfg / act_cfg: `{ type = "BN" }` gives "BN"; "none" (or null)
/// gives nothing; absent gives `fallback` ("" for nothing).
std::optional<std::string> layer_type(Args& args, const std::string& key, const std::string& fallback);

/// Builds `parent[key]`: a table is one connector, an array of tables a ConnectorChain.
std::shared_ptr<Connector> build_connector(Args& parent, const std::string& key, const BuildContext& context);

}  // namespace razor
