#include "algorithms/distill/single_teacher_distill.h"

#include "algorithms/distill/teacher_loading.h"

#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include "components/architectures/image_classifier.h"
#include "components/nn/module.h"
#include "engine/hook.h"
#include "engine/strings.h"
#include "engine/runner.h"

namespace razor {

namespace {

bool is_under(const std::string& path, const std::string& root) {
  return path == root || path.rfind(root + ".", 0) == 0;
}

// Whether a step needs the teacher's loss pass rather than its forward_tensor: the loss pass
// alone calls the heads' loss modules, publishes "sample_idx", mixes batches (batch augments)
// and so draws what deliveries replay to the student.
bool needs_loss_pass(Model& teacher, ConfigurableDistiller& distiller) {
  if (!distiller.deliveries().empty()) return true;
  if (auto* classifier = dynamic_cast<ImageClassifier*>(&teacher)) {
    if (classifier->batch_augments()) return true;
  }
  std::vector<std::string> loss_paths;
  for (const auto& item : teacher.named_modules("", /*include_self=*/true)) {
    if (dynamic_cast<ClsHead*>(item.value().get()))
      loss_paths.push_back(join_key(item.key(), "loss_module"));
  }
  const RecorderManager& recorders = distiller.teacher_recorders();
  for (const auto& name : recorders.names()) {
    const Recorder& recorder = recorders.get(name);
    const std::string& source = recorder.source();
    if (dynamic_cast<const TapRecorder*>(&recorder)) {
      if (source == "sample_idx") return true;
    } else if (dynamic_cast<const ModuleOutputsRecorder*>(&recorder)) {
      // Sources under any "loss..." child, as MMRazor's `head.loss_module`, whatever the head.
      std::string rest = "." + source;
      if (rest.find(".loss") != std::string::npos) return true;
      for (const auto& root : loss_paths) {
        if (is_under(source, root)) return true;
      }
    }
  }
  return false;
}

}  // namespace

SingleTeacherDistill::SingleTeacherDistill(std::shared_ptr<Model> student, std::shared_ptr<Model> teacher,
                                           std::shared_ptr<ConfigurableDistiller> distiller,
                                           SingleTeacherDistillOptions options)
    : BaseAlgorithm(std::move(student)), options_(options) {
  teacher_ = register_module("teacher", std::move(teacher));
  distiller_ = register_module("distiller", std::move(distiller));
  if (!options_.teacher_trainable) {
    for (auto& p : teacher_->parameters()) p.set_requires_grad(false);
  }
  if (!options_.student_trainable) {
    for (auto& p : architecture_->parameters()) p.set_requires_grad(false);
  }
  distiller_->prepare(*architecture_, teacher_.get());
  teacher_runs_loss_ = needs_loss_pass(*teacher_, *distiller_);
}

void SingleTeacherDistill::train(bool on) {
  Model::train(on);
  if (on && options_.teacher_norm_eval) teacher_->eval();
}

LossMap SingleTeacherDistill::loss(const Batch& batch) {
  {
    // The teacher's random draws (batch augments) are kept, then replayed for the student.
    DeliveryScope delivering(distiller_->deliveries(), /*override_data=*/false);
    RecordingScope recording(distiller_->teacher_recorders());
    // A frozen teacher keeps no graph. Not InferenceMode: the recorded tensors feed
    // connectors and losses whose backward saves them, which inference tensors refuse.
    torch::AutoGradMode grad_mode(options_.teacher_trainable);
    if (teacher_runs_loss_) {
      teacher_->loss(batch);
    } else {
      teacher_->forward_tensor(batch.inputs);
    }
  }
  LossMap losses;
  {
    DeliveryScope delivering(distiller_->deliveries(), /*override_data=*/true);
    RecordingScope recording(distiller_->student_recorders());
    LossMap student = architecture_->loss(batch);
    if (options_.calculate_student_loss) {
      for (auto& item : student) losses.emplace_back("student." + item.first, item.second);
    }
  }
  if (!distillation_stopped_) {
    for (auto& item : distiller_->compute_distill_losses()) losses.emplace_back("distill." + item.first, item.second);
  }
  RAZOR_CHECK(!losses.empty(), "SingleTeacherDistill: no loss to train with (calculate_student_loss = false and "
                               "distillation stopped)");
  return losses;
}

namespace {

std::shared_ptr<Model> build_single_teacher(Args& args, const BuildContext& context) {
  const bool has_table = args.has("teacher");
  const bool has_file = args.has("teacher_cfg");
  if (has_table == has_file) {
    args.fail(has_table ? "teacher_cfg" : "teacher", "give the teacher as a table (teacher) or a razor config file (teacher_cfg), exactly one");
  }
  std::shared_ptr<Model> teacher;
  if (has_table) {
    Args teacher_args = args.sub("teacher");
    teacher = build_model_as<Model>(teacher_args, context, "a teacher model");
    nn::assign_paths(*teacher);
  } else {
    teacher = build_model_from_config_file(args, "teacher_cfg", context);
  }
  load_teacher_checkpoint(*teacher, args, "teacher_ckpt");
  return teacher;
}

std::shared_ptr<SingleTeacherDistill> build_single_teacher_distill(Args& args, const BuildContext& context,
                                                                  const char* default_distiller) {
  Args student_args = args.sub("architecture");
  auto student = build_model_as<Model>(student_args, context, "a student architecture");
  nn::assign_paths(*student);
  auto teacher = build_single_teacher(args, context);
  SingleTeacherDistillOptions options;
  options.teacher_trainable = args.get<bool>("teacher_trainable", false);
  options.teacher_norm_eval = args.get<bool>("teacher_norm_eval", true);
  options.student_trainable = args.get<bool>("student_trainable", true);
  options.calculate_student_loss = args.get<bool>("calculate_student_loss", true);
  Args distiller_args = args.sub("distiller");
  auto distiller = distiller_registry().build(distiller_args, context, default_distiller);
  return std::make_shared<SingleTeacherDistill>(student, teacher, distiller, options);
}

/// Stops distillation at `stop_epoch` (MMRazor's StopDistillHook).
class StopDistillHook : public Hook {
 public:
  explicit StopDistillHook(int64_t stop_epoch) : stop_epoch_(stop_epoch) { set_priority(kLow); }
  std::string name() const override { return "StopDistillHook"; }
  void before_train_epoch(Runner& runner) override {
    auto* algorithm = dynamic_cast<SingleTeacherDistill*>(&runner.model());
    RAZOR_CHECK(algorithm, "StopDistillHook needs a distillation model (SingleTeacherDistill)");
    if (runner.epoch() >= stop_epoch_ && !algorithm->distillation_stopped()) {
      algorithm->set_distillation_stopped(true);
      spdlog::info("Distillation stopped at epoch {}", runner.epoch());
    }
  }

 private:
  int64_t stop_epoch_;
};

}  // namespace

void register_distill_algorithms() {
  static bool done = false;
  if (done) return;
  done = true;
  register_distillers();
  model_registry().add("SingleTeacherDistill", [](Args& args, const BuildContext& context) {
    return std::static_pointer_cast<torch::nn::Module>(build_single_teacher_distill(args, context, "ConfigurableDistiller"));
  });
  // MMRazor's OverhaulFeatureDistillation is SingleTeacherDistill with an OFDDistiller whose
  // teacher connectors take their margins from the (loaded) teacher's BatchNorm statistics.
  model_registry().add("OverhaulFeatureDistillation", [](Args& args, const BuildContext& context) {
    auto algorithm = build_single_teacher_distill(args, context, "OFDDistiller");
    auto* distiller = dynamic_cast<OFDDistiller*>(&algorithm->distiller());
    if (!distiller) args.fail("distiller.type", "OverhaulFeatureDistillation needs an OFDDistiller");
    distiller->init_ofd_connectors(algorithm->teacher());
    return std::static_pointer_cast<torch::nn::Module>(algorithm);
  });
  hook_registry().add("StopDistillHook", [](Args& args, const BuildContext&) {
    const int64_t stop_epoch = args.require<int64_t>("stop_epoch");
    auto hook = std::make_shared<StopDistillHook>(stop_epoch);
    hook->set_priority(parse_priority(args, "priority", kLow));
    return hook;
  });
}

}  // namespace razor
