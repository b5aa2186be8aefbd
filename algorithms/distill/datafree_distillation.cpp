#include "algorithms/distill/datafree_distillation.h"

#include "algorithms/distill/teacher_loading.h"

#include <cmath>

#include <torch/torch.h>

#include "components/nn/module.h"
#include "engine/optim_wrapper_dict.h"
#include "engine/strings.h"

namespace razor {

namespace {

/// Turns off requires_grad of a module's trainable parameters for a scope: the graph built
/// meanwhile reaches its inputs but not its weights.
class FrozenParameters {
 public:
  explicit FrozenParameters(torch::nn::Module& module) {
    for (auto& p : module.parameters()) {
      if (p.requires_grad()) {
        p.set_requires_grad(false);
        frozen_.push_back(p);
      }
    }
  }
  ~FrozenParameters() {
    for (auto& p : frozen_) p.set_requires_grad(true);
  }
  FrozenParameters(const FrozenParameters&) = delete;
  FrozenParameters& operator=(const FrozenParameters&) = delete;

 private:
  std::vector<torch::Tensor> frozen_;
};

/// `losses` detached under "<prefix>.<name>", and their total as "<prefix>.loss" (MMRazor's
/// parse_losses + add_prefix).
LossMap logged(const std::string& prefix, const LossMap& losses, const torch::Tensor& total) {
  LossMap out;
  for (const auto& item : losses) {
    if (item.first != "loss") out.emplace_back(prefix + "." + item.first, item.second.detach().mean());
  }
  out.emplace_back(prefix + ".loss", total.detach());
  return out;
}

/// The total that is optimised; a non-finite one stops the run (the loop checks only "loss").
torch::Tensor checked_total(const LossMap& losses, const char* what) {
  torch::Tensor total = total_loss(losses);
  const double value = total.item<double>();
  RAZOR_RUNTIME_CHECK(std::isfinite(value), "the ", what, " loss is ", value,
                      "; stopping. Lower the learning rate or add clip_grad to its optim_wrapper table.");
  return total;
}

void append(LossMap& to, LossMap from) {
  for (auto& item : from) to.push_back(std::move(item));
}

}  // namespace

DataFreeDistillation::DataFreeDistillation(std::shared_ptr<Model> student, Teachers teachers,
                                           std::shared_ptr<Generator> generator,
                                           std::shared_ptr<ConfigurableDistiller> distiller,
                                           std::shared_ptr<ConfigurableDistiller> generator_distiller,
                                           DataFreeDistillationOptions options)
    : BaseAlgorithm(std::move(student)), teachers_(std::move(teachers)), options_(options) {
  RAZOR_CHECK(!teachers_.empty(), "teachers: data-free distillation needs at least one teacher");
  RAZOR_CHECK(options_.student_iter >= 1, "student_iter must be >= 1, got ", options_.student_iter);
  teacher_holder_ = register_module("teachers", std::make_shared<torch::nn::Module>("Teachers"));
  for (auto& item : teachers_) {
    teacher_holder_->register_module(item.first, item.second);
    for (auto& p : item.second->parameters()) p.set_requires_grad(false);
    item.second->eval();
  }
  generator_ = register_module("generator", std::move(generator));
  distiller_ = register_module("distiller", std::move(distiller));
  generator_distiller_ = register_module("generator_distiller", std::move(generator_distiller));

  // Only the student and the generator have optimisers; the images come from the generator.
  for (auto* d : {distiller_.get(), generator_distiller_.get()}) {
    const char* key = d == distiller_.get() ? "distiller" : "generator_distiller";
    RAZOR_CHECK(d->connectors().empty(), key,
                ".connectors: data-free distillation trains no connectors (its optimisers cover the student and "
                "the generator only)");
    RAZOR_CHECK(d->deliveries().empty(), key,
                ".distill_deliveries: data-free distillation has no data pipeline for deliveries to replay");
    RAZOR_CHECK(!d->loss_forward_mappings().empty(), key, ".distill_losses: no loss to train with");
  }
  RAZOR_CHECK(!distiller_->student_recorders().empty(),
              "distiller.student_recorders: the student learns only through them; give at least one");
  RAZOR_CHECK(!generator_distiller_->student_recorders().empty() || !generator_distiller_->teacher_recorders().empty(),
              "generator_distiller: the generator learns only through its recorders; give student_recorders or "
              "teacher_recorders");
  distiller_->prepare(*architecture_, teacher_holder_.get());
  generator_distiller_->prepare(*architecture_, teacher_holder_.get());
}

void DataFreeDistillation::train(bool on) {
  Model::train(on);
  for (auto& item : teachers_) item.second->eval();
}

LossMap DataFreeDistillation::generator_losses(const torch::Tensor& images) {
  ConfigurableDistiller& d = *generator_distiller_;
  if (!d.student_recorders().empty()) {
    FrozenParameters frozen(*architecture_);
    RecordingScope recording(d.student_recorders());
    architecture_->forward_tensor(images);
  }
  if (!d.teacher_recorders().empty()) {
    RecordingScope recording(d.teacher_recorders());
    for (auto& item : teachers_) item.second->forward_tensor(images);
  }
  return d.compute_distill_losses();
}

LossMap DataFreeDistillation::distill_losses(const torch::Tensor& images) {
  ConfigurableDistiller& d = *distiller_;
  {
    RecordingScope recording(d.student_recorders());
    architecture_->forward_tensor(images);
  }
  if (!d.teacher_recorders().empty()) {
    torch::NoGradGuard no_grad;
    RecordingScope recording(d.teacher_recorders());
    for (auto& item : teachers_) item.second->forward_tensor(images);
  }
  return d.compute_distill_losses();
}

LossMap DataFreeDistillation::train_student(int64_t batch_size, OptimWrapper& optim) {
  LossMap last;
  for (int64_t i = 0; i < options_.student_iter; ++i) {
    torch::Tensor images;
    {
      torch::NoGradGuard no_grad;  // the student's steps do not train the generator
      images = generator_->sample(batch_size);
    }
    LossMap losses = distill_losses(images);
    torch::Tensor total = checked_total(losses, "student's distillation");
    optim.update_params(total);
    last = logged("distill", losses, total);
  }
  return last;
}

LossMap DataFreeDistillation::train_generator(int64_t batch_size, OptimWrapper& optim) {
  LossMap losses = generator_losses(generator_->sample(batch_size));
  torch::Tensor total = checked_total(losses, "generator's");
  optim.update_params(total);
  return logged("generator", losses, total);
}

LossMap DataFreeDistillation::train_step(const Batch& batch, OptimWrapper& optim) {
  OptimWrapperDict& wrappers = as_optim_wrapper_dict(optim, "DataFreeDistillation");
  const int64_t batch_size = batch.size();
  LossMap out;
  if (options_.student_train_first) {
    append(out, train_student(batch_size, wrappers.at("architecture")));
    append(out, train_generator(batch_size, wrappers.at("generator")));
  } else {
    LossMap generator = train_generator(batch_size, wrappers.at("generator"));
    append(out, train_student(batch_size, wrappers.at("architecture")));
    append(out, std::move(generator));
  }
  return out;
}

LossMap DAFLDataFreeDistillation::train_step(const Batch& batch, OptimWrapper& optim) {
  OptimWrapperDict& wrappers = as_optim_wrapper_dict(optim, "DAFLDataFreeDistillation");
  torch::Tensor images = generator_->sample(batch.size());
  LossMap generator = generator_losses(images);
  torch::Tensor generator_total = checked_total(generator, "generator's");
  LossMap distill = distill_losses(images.detach());
  torch::Tensor distill_total = checked_total(distill, "student's distillation");
  wrappers.at("generator").update_params(generator_total);
  wrappers.at("architecture").update_params(distill_total);
  LossMap out = logged("generator", generator, generator_total);
  append(out, logged("distill", distill, distill_total));
  return out;
}

namespace {

/// `teachers.NAME = { build_cfg = { cfg_path = FILE } | { type = ... }, ckpt_path = FILE }`
/// (MMRazor's keys). cfg_path is a razor config whose [model] is the teacher, relative to the
/// working directory or else to the config file that set it; ckpt_path is a razor checkpoint.
std::shared_ptr<Model> build_datafree_teacher(Args& args, const BuildContext& context) {
  Args build_cfg = args.sub("build_cfg");
  std::shared_ptr<Model> teacher;
  if (build_cfg.has("cfg_path")) {
    teacher = build_model_from_config_file(build_cfg, "cfg_path", context);
    build_cfg.finish();
  } else {
    teacher = build_model_as<Model>(build_cfg, context, "a teacher model");
    nn::assign_paths(*teacher);
  }
  load_teacher_checkpoint(*teacher, args, "ckpt_path");
  return teacher;
}

std::shared_ptr<torch::nn::Module> build_datafree(Args& args, const BuildContext& context, bool dafl) {
  Args student_args = args.sub("architecture");
  auto student = build_model_as<Model>(student_args, context, "a student architecture");
  nn::assign_paths(*student);

  Args teacher_table = args.sub("teachers");
  DataFreeDistillation::Teachers teachers;
  for (const auto& item : teacher_table.table().items()) {
    Args teacher_args = teacher_table.sub(item.key());
    teachers.emplace_back(item.key(), build_datafree_teacher(teacher_args, context));
    teacher_args.finish();
  }
  if (teachers.empty()) {
    args.fail("teachers", "no teacher: give teachers.NAME = { build_cfg = { cfg_path = \"...\" }, ckpt_path = \"...\" }");
  }

  Args generator_args = args.sub("generator");
  auto generator = build_model_as<Generator>(generator_args, context, "a generator (e.g. DAFLGenerator)");
  nn::assign_paths(*generator);

  Args distiller_args = args.sub("distiller");
  auto distiller = distiller_registry().build(distiller_args, context, "ConfigurableDistiller");
  Args generator_distiller_args = args.sub("generator_distiller");
  auto generator_distiller = distiller_registry().build(generator_distiller_args, context, "ConfigurableDistiller");

  DataFreeDistillationOptions options;
  if (dafl) {
    // MMRazor accepts and ignores them for DAFL; here a key that does nothing is an error.
    for (const char* key : {"student_iter", "student_train_first"}) {
      if (args.has(key)) args.fail(key, "DAFLDataFreeDistillation takes one student step per generator step");
    }
  } else {
    options.student_iter = args.get<int64_t>("student_iter", 1);
    if (options.student_iter < 1) args.fail("student_iter", "must be >= 1, got " + std::to_string(options.student_iter));
    options.student_train_first = args.get<bool>("student_train_first", false);
  }
  std::shared_ptr<DataFreeDistillation> algorithm;
  if (dafl) {
    algorithm = std::make_shared<DAFLDataFreeDistillation>(student, teachers, generator, distiller, generator_distiller, options);
  } else {
    algorithm = std::make_shared<DataFreeDistillation>(student, teachers, generator, distiller, generator_distiller, options);
  }
  return algorithm;
}

}  // namespace

void register_datafree_distillation() {
  static bool done = false;
  if (done) return;
  done = true;
  register_distillers();
  model_registry().add("DataFreeDistillation", [](Args& args, const BuildContext& context) {
    return build_datafree(args, context, /*dafl=*/false);
  });
  model_registry().add("DAFLDataFreeDistillation", [](Args& args, const BuildContext& context) {
    return build_datafree(args, context, /*dafl=*/true);
  });
}

}  // namespace razor
