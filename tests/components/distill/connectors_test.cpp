#include <catch2/catch.hpp>

#include <torch/torch.h>

#include "components/distill/connector.h"
#include "components/distill/connectors/factor_transfer_connectors.h"
#include "components/distill/connectors/mgd_connector.h"
#include "components/distill/connectors/ofd_connector.h"
#include "engine/error.h"

using namespace razor;

namespace {

std::shared_ptr<Connector> build(const Json& table) {
  Json parent = {{"c", table}};
  Args args = Args::of(parent, "model.distiller.connectors");
  return build_connector(args, "c", {});
}

/// The parameter or buffer called `name` of `module`.
torch::Tensor param(const torch::nn::Module& module, const std::string& name) {
  for (const auto& item : module.named_parameters()) {
    if (item.key() == name) return item.value();
  }
  for (const auto& item : module.named_buffers()) {
    if (item.key() == name) return item.value();
  }
  FAIL("no parameter " << name);
  return {};
}

/// BatchNorm with batch statistics (training mode), as torch.nn.functional.batch_norm.
torch::Tensor bn_train(const torch::Tensor& x, const torch::nn::Module& m, const std::string& prefix) {
  return torch::batch_norm(x, param(m, prefix + ".weight"), param(m, prefix + ".bias"), {}, {}, true, 0.1, 1e-5, false);
}

torch::Tensor conv(const torch::Tensor& x, const torch::nn::Module& m, const std::string& prefix, int64_t stride,
                   int64_t padding, int64_t groups = 1, bool bias = false) {
  return torch::conv2d(x, param(m, prefix + ".weight"), bias ? param(m, prefix + ".bias") : torch::Tensor(), stride,
                       padding, 1, groups);
}

bool close(const torch::Tensor& a, const torch::Tensor& b) { return torch::allclose(a, b, 1e-5, 1e-5); }

}  // namespace

TEST_CASE("ConvModuleConnector is conv -> BN -> ReLU with mmcv's defaults", "[connectors]") {
  torch::manual_seed(0);
  auto c = build({{"type", "ConvModuleConnector"}, {"in_channel", 3}, {"out_channel", 5}, {"norm_cfg", {{"type", "BN"}}}});
  auto x = torch::randn({2, 3, 6, 6});
  auto expected = torch::relu(bn_train(conv(x, *c, "conv_module.conv", 1, 0), *c, "conv_module.bn"));
  CHECK(close(c->forward(x).at(0), expected));
  // Without a norm the conv has a bias (bias = "auto"), and act_cfg = "none" drops the ReLU.
  auto plain = build({{"type", "ConvModuleConnector"}, {"in_channel", 3}, {"out_channel", 5}, {"kernel_size", 3},
                      {"padding", 1}, {"act_cfg", "none"}});
  CHECK(close(plain->forward(x).at(0), conv(x, *plain, "conv_module.conv", 1, 1, 1, true)));
}

TEST_CASE("NormConnector, CRDConnector and TorchFunctionalConnector equal their LibTorch forms", "[connectors]") {
  torch::manual_seed(1);
  auto x = torch::randn({4, 3, 4, 4});
  auto norm = build({{"type", "NormConnector"}, {"in_channels", 3}, {"norm_cfg", {{"type", "BN"}}}});
  CHECK(close(norm->forward(x).at(0), bn_train(x, *norm, "norm")));

  auto crd = build({{"type", "CRDConnector"}, {"dim_in", 48}, {"dim_out", 8}});
  auto embedded = torch::linear(x.reshape({4, 48}), param(*crd, "linear.weight"), param(*crd, "linear.bias"));
  auto crd_out = crd->forward(x).at(0);
  CHECK(close(crd_out, embedded / embedded.norm(2, 1, true)));
  CHECK(close(crd_out.norm(2, 1), torch::ones({4})));

  auto pool = build({{"type", "TorchFunctionalConnector"}, {"function_name", "adaptive_avg_pool2d"},
                     {"func_args", {{"output_size", 1}}}});
  CHECK(close(pool->forward(x).at(0), x.mean({2, 3}, true)));
  auto up = build({{"type", "TorchFunctionalConnector"}, {"function_name", "interpolate"},
                   {"func_args", {{"scale_factor", 2.0}, {"mode", "nearest"}}}});
  CHECK(close(up->forward(x).at(0), x.repeat_interleave(2, 2).repeat_interleave(2, 3)));
  auto flat = build({{"type", "TorchFunctionalConnector"}, {"function_name", "flatten"}, {"func_args", {{"start_dim", 1}}}});
  CHECK(flat->forward(x).at(0).sizes() == torch::IntArrayRef({4, 48}));
}

TEST_CASE("OFDTeacherConnector clips at the margins and passes no gradient", "[connectors]") {
  auto c = build({{"type", "OFDTeacherConnector"}});
  auto x = torch::randn({2, 3, 2, 2}, torch::requires_grad());
  CHECK_THROWS_WITH(c->forward(x), Catch::Contains("margins were not set"));
  auto margin = torch::tensor({-0.5f, 0.0f, 1.0f});
  dynamic_cast<OFDTeacherConnector&>(*c).init_margin(margin);
  auto out = c->forward(x).at(0);
  CHECK(out.equal(torch::max(x.detach(), margin.view({1, 3, 1, 1}))));
  CHECK_FALSE(out.requires_grad());
  CHECK(param(*c, "margin").equal(margin));  // a buffer: saved in checkpoints
}

TEST_CASE("Paraphraser reconstructs in pretrain and encodes without gradients in train, Translator encodes",
          "[connectors]") {
  torch::manual_seed(2);
  auto c = build({{"type", "Paraphraser"}, {"in_channel", 4}, {"out_channel", 2}, {"phase", "pretrain"}});
  auto x = torch::randn({2, 4, 5, 5});
  auto leaky = [](const torch::Tensor& t) { return torch::leaky_relu(t, 0.1); };
  auto encode = [&](const torch::nn::Module& m, const std::string& p) {
    auto h = leaky(conv(x, m, p + ".0", 1, 1, 1, true));
    h = leaky(conv(h, m, p + ".2", 1, 1, 1, true));
    return leaky(conv(h, m, p + ".4", 1, 1, 1, true));
  };
  auto factor = encode(*c, "encoder");
  auto deconv = [&](const torch::Tensor& h, const std::string& p) {
    return leaky(torch::conv_transpose2d(h, param(*c, p + ".weight"), param(*c, p + ".bias"), 1, 1));
  };
  auto rebuilt = deconv(deconv(deconv(factor, "decoder.0"), "decoder.2"), "decoder.4");
  CHECK(close(c->forward(x).at(0), rebuilt));
  CHECK(rebuilt.sizes() == x.sizes());
  dynamic_cast<Paraphraser&>(*c).set_phase("train");
  auto trained = c->forward(x).at(0);
  CHECK(close(trained, factor));
  CHECK_FALSE(trained.requires_grad());

  auto t = build({{"type", "Translator"}, {"in_channel", 4}, {"out_channel", 2}, {"use_bn", false}});
  CHECK(close(t->forward(x).at(0), encode(*t, "encoder")));
  CHECK_THROWS_WITH(build({{"type", "Paraphraser"}, {"in_channel", 4}, {"out_channel", 2}, {"phase", "finetune"}}),
                    Catch::Contains("phase"));
}

TEST_CASE("BYOTConnector: attention, separable-conv downsampling, pooling and fc, as MMRazor", "[connectors]") {
  torch::manual_seed(3);
  auto c = build({{"type", "BYOTConnector"}, {"in_channel", 2}, {"out_channel", 4}, {"num_classes", 3},
                  {"expansion", 1}, {"pool_size", 4}, {"stride", 2}});
  auto x = torch::randn({2, 2, 8, 8});
  // DARTS separable conv starting at layer `i` of a flat sequence.
  auto sep_conv = [&](torch::Tensor h, const std::string& seq, int i, int64_t in, int64_t stride) {
    auto at = [&](int k) { return seq + "." + std::to_string(i + k); };
    h = conv(torch::relu(h), *c, at(1), stride, 1, in);
    h = bn_train(conv(h, *c, at(2), 1, 0), *c, at(3));
    h = conv(torch::relu(h), *c, at(5), 1, 1, in);
    return bn_train(conv(h, *c, at(6), 1, 0), *c, at(7));
  };
  auto a = torch::relu(bn_train(sep_conv(x, "attention", 0, 2, 2), *c, "attention.8"));
  a = torch::sigmoid(torch::upsample_bilinear2d(a, {8, 8}, false));
  auto f = sep_conv(a * x, "scala", 0, 2, 2);
  f = torch::avg_pool2d(f, 4).reshape({2, -1});
  auto logits = torch::linear(f, param(*c, "fc.weight"), param(*c, "fc.bias"));
  auto out = c->forward(x);
  REQUIRE(out.size() == 2);
  CHECK(close(out[0], f));
  CHECK(close(out[1], logits));
  CHECK_THROWS_WITH(build({{"type", "BYOTConnector"}, {"in_channel", 2}, {"out_channel", 6}, {"num_classes", 3}}),
                    Catch::Contains("out_channel"));
}

TEST_CASE("MGDConnector aligns, masks with probability lambda and regenerates", "[connectors]") {
  auto c = build({{"type", "MGDConnector"}, {"student_channels", 2}, {"teacher_channels", 3}, {"lambda_mgd", 0.65}});
  auto x = torch::randn({4, 2, 6, 6});
  torch::manual_seed(7);
  auto out = c->forward(x).at(0);
  torch::manual_seed(7);
  auto mask = (torch::rand({4, 1, 6, 6}) <= 0.35).to(torch::kFloat);
  auto aligned = conv(x, *c, "align", 1, 0, 1, true);
  auto expected = conv(torch::relu(conv(aligned * mask, *c, "generation.0", 1, 1, 1, true)), *c, "generation.2", 1, 1, 1, true);
  CHECK(close(out, expected));
  // About 65 % of the positions are dropped.
  auto& mgd = dynamic_cast<MGDConnector&>(*c);
  torch::manual_seed(8);
  const double kept = mgd.draw_mask(torch::zeros({64, 3, 16, 16})).mean().item<double>();
  CHECK(kept == Approx(0.35).margin(0.02));
}

TEST_CASE("A list of connectors chains, config errors name the key", "[connectors]") {
  torch::manual_seed(4);
  auto chain = build(Json::array({{{"type", "ConvModuleConnector"}, {"in_channel", 3}, {"out_channel", 4}},
                                  {{"type", "TorchFunctionalConnector"}, {"function_name", "adaptive_avg_pool2d"},
                                   {"func_args", {{"output_size", 1}}}}}));
  auto x = torch::randn({2, 3, 4, 4});
  auto& links = dynamic_cast<ConnectorChain&>(*chain).connectors();
  REQUIRE(links.size() == 2);
  CHECK(close(chain->forward(x).at(0), links[1]->forward(links[0]->forward(x).at(0)).at(0)));
  CHECK(param(*chain, "0.conv_module.conv.weight").sizes() == torch::IntArrayRef({4, 3, 1, 1}));

  CHECK_THROWS_WITH(build({{"type", "ConvModuleConector"}}), Catch::Contains("ConvModuleConnector"));
  CHECK_THROWS_WITH(build({{"type", "TorchFunctionalConnector"}, {"function_name", "avgpool2d"}}),
                    Catch::Contains("function_name") && Catch::Contains("avg_pool2d"));
  CHECK_THROWS_WITH(build({{"type", "CRDConnector"}, {"dim_in", 8}, {"dim_ot", 4}}), Catch::Contains("dim_ot"));
  CHECK_THROWS_WITH(build({{"type", "ConvModuleConnector"}, {"out_channel", 4}}),
                    Catch::Contains("model.distiller.connectors.c") && Catch::Contains("in_channel"));
}
