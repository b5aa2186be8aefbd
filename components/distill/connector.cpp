#include "components/distill/connector.h"

#include "components/distill/connectors/byot_connector.h"
#include "components/distill/connectors/conv_module_connector.h"
#include "components/distill/connectors/crd_connector.h"
#include "components/distill/connectors/factor_transfer_connectors.h"
#include "components/distill/connectors/functional_connector.h"
#include "components/distill/connectors/mgd_connector.h"
#include "components/distill/connectors/norm_connector.h"
#include "components/distill/connectors/ofd_connector.h"
#include "engine/error.h"

namespace razor {

ConnectorChain::ConnectorChain(std::vector<std::shared_ptr<Connector>> connectors)
    : Connector("ConnectorChain"), connectors_(std::move(connectors)) {
  RAZOR_ASSERT(!connectors_.empty());
  for (size_t i = 0; i < connectors_.size(); ++i) register_module(std::to_string(i), connectors_[i]);
}

std::vector<torch::Tensor> ConnectorChain::forward(const torch::Tensor& input) {
  std::vector<torch::Tensor> x{input};
  for (size_t i = 0; i < connectors_.size(); ++i) {
    RAZOR_CHECK(x.size() == 1, "connector ", i - 1, " of a chain gives ", x.size(),
                " tensors; only the last connector of a chain may give several");
    x = connectors_[i]->forward(x[0]);
  }
  return x;
}

Registry<Connector>& connector_registry() {
  static Registry<Connector> registry("connectors");
  return registry;
}

void register_connectors() {
  static bool done = false;
  if (done) return;
  done = true;
  auto& registry = connector_registry();
  registry.add("ConvModuleConnector", ConvModuleConnector::from_args);
  registry.add("NormConnector", NormConnector::from_args);
  registry.add("TorchFunctionalConnector", TorchFunctionalConnector::from_args);
  registry.add("CRDConnector", CRDConnector::from_args);
  registry.add("OFDTeacherConnector", OFDTeacherConnector::from_args);
  registry.add("Paraphraser", Paraphraser::from_args);
  registry.add("Translator", Translator::from_args);
  registry.add("BYOTConnector", BYOTConnector::from_args);
  registry.add("MGDConnector", MGDConnector::from_args);
}

std::shared_ptr<Connector> build_connector(Args& parent, const std::string& key, const BuildContext& context) {
  register_connectors();
  const Json& value = parent.raw(key);
  if (value.is_array()) {
    std::vector<std::shared_ptr<Connector>> chain;
    for (Args& item : parent.sub_list(key)) chain.push_back(connector_registry().build(item, context));
    if (chain.empty()) parent.fail(key, "an empty list of connectors");
    return std::make_shared<ConnectorChain>(std::move(chain));
  }
  Args args = parent.sub(key);
  return connector_registry().build(args, context);
}

std::optional<std::string> layer_type(Args& args, const std::string& key, const std::string& fallback) {
  if (!args.has(key)) return fallback.empty() ? std::nullopt : std::optional<std::string>(fallback);
  const Json& value = args.raw(key);
  if (value.is_null() || (value.is_string() && value.get<std::string>() == "none")) return std::nullopt;
  if (value.is_object()) {
    Args table = args.sub(key);
    const std::string type = table.require<std::string>("type");
    table.finish();
    return type;
  }
  args.fail(key, "expected a table such as { type = \"BN\" }, or \"none\"");
  return std::nullopt;
}

}  // namespace razor
