#pragma once
// Data-free distillation (MMRazor's DataFreeDistillation and DAFLDataFreeDistillation,
// models/algorithms/distill/configurable/datafree_distillation.py): a generator makes the
// images, frozen teachers label them, and the student learns from the teachers on them.
// The real data loader's batches are used only for their size; `razor test` evaluates the
// student (predict and forward delegate to `architecture`, as in BaseAlgorithm).
//
//   [model]
//   type = "DAFLDataFreeDistillation"          # or "DataFreeDistillation"
//   architecture = { ... the student ... }
//   generator = { type = "DAFLGenerator", img_size = 28, latent_dim = 100, ... }
//   [model.teachers.res32]                     # one or more, by name
//   build_cfg = { cfg_path = "resnet32_fmnist_teacher.toml" }  # or the model table itself
//   ckpt_path = "work_dirs/resnet32_fmnist_teacher/epoch_3.pth"
//   [model.distiller]            # the student's losses; teacher sources read "res32.head.fc"
//   [model.generator_distiller]  # the generator's losses
//
// The optimisers are two, one per trained child (engine/optim_wrapper_dict.h):
//   [optim_wrapper]
//   constructor = "SeparateOptimWrapperConstructor"
//   architecture = { optimizer = { type = "AdamW", lr = 0.1 } }
//   generator = { optimizer = { type = "AdamW", lr = 1e-3 } }
//
// DataFreeDistillation (DFAD, ZSKT): one generator step on a generated batch, minimising the
// generator_distiller's losses (e.g. L1 with loss_weight -1: the generator seeks images where
// student and teacher disagree), and `student_iter` student steps, each on a fresh generated
// batch (detached), minimising the distiller's losses; `student_train_first` swaps the order.
// DAFLDataFreeDistillation: one generated batch per step; the generator minimises its losses
// on the teachers' outputs (OnehotLike + InformationEntropy + Activation), the student its
// losses (KD) on the detached batch; then the generator steps, then the student.
//
// Where razor departs from MMRazor, on purpose:
// - The generator's backward does not reach the student's weights. In MMRazor it does when
//   the generator's losses read the student (DFAD): the student's .grad keeps that
//   gradient (only the generator's optimiser zeroes its own), and the student's next step
//   applies it, pushing the student away from the teacher.
// - The models run in tensor mode (forward_tensor): no loss on the batch's real labels is
//   computed, used or needed. The student runs in the generator phase only when the
//   generator's losses read it (MMRazor always runs it, updating its BN statistics twice).
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "algorithms/base_algorithm.h"
#include "components/architectures/dafl_generator.h"
#include "components/distill/configurable_distiller.h"

namespace razor {

struct DataFreeDistillationOptions {
  /// Student steps per train_step, each on a freshly generated batch (DataFreeDistillation).
  int64_t student_iter = 1;
  /// Train the student before the generator in each step (DFAD's order), not after.
  bool student_train_first = false;
};

class DataFreeDistillation : public BaseAlgorithm {
 public:
  using Teachers = std::vector<std::pair<std::string, std::shared_ptr<Model>>>;

  /// Freezes the teachers (no gradient, eval mode) and binds both distillers: student
  /// recorder sources are relative to the student, teacher sources to the set of teachers
  /// ("res32.head.fc").
  DataFreeDistillation(std::shared_ptr<Model> student, Teachers teachers, std::shared_ptr<Generator> generator,
                       std::shared_ptr<ConfigurableDistiller> distiller,
                       std::shared_ptr<ConfigurableDistiller> generator_distiller,
                       DataFreeDistillationOptions options = {});

  /// "distill.*" (the last student step's) and "generator.*" losses, each with its total
  /// as "<prefix>.loss". Needs an OptimWrapperDict with "architecture" and "generator".
  LossMap train_step(const Batch& batch, OptimWrapper& optim) override;
  std::vector<std::string> optim_wrapper_names() const override { return {"architecture", "generator"}; }
  /// Teachers stay in eval mode.
  void train(bool on = true) override;

  Model& student() { return *architecture_; }
  Generator& generator() { return *generator_; }
  const Teachers& teachers() const { return teachers_; }
  ConfigurableDistiller& distiller() { return *distiller_; }
  /// "distiller.*" and "generator_distiller.*" loss weights for parameter schedulers.
  ScheduledValues scheduled_values() override {
    ScheduledValues values = prefixed("distiller.", distiller_->scheduled_values());
    for (auto& item : prefixed("generator_distiller.", generator_distiller_->scheduled_values())) {
      values.push_back(std::move(item));
    }
    return values;
  }
  ConfigurableDistiller& generator_distiller() { return *generator_distiller_; }
  const DataFreeDistillationOptions& options() const { return options_; }

  /// The generator's losses on `images` (the teachers, and the student if its recorders ask,
  /// run on them with gradients to the images only).
  LossMap generator_losses(const torch::Tensor& images);
  /// The student's losses on `images` (the teachers run without gradients).
  LossMap distill_losses(const torch::Tensor& images);

 protected:
  /// `student_iter` steps of the student on fresh generated batches of `batch_size`.
  LossMap train_student(int64_t batch_size, OptimWrapper& optim);
  /// One step of the generator on a generated batch of `batch_size`.
  LossMap train_generator(int64_t batch_size, OptimWrapper& optim);

  std::shared_ptr<torch::nn::Module> teacher_holder_;
  Teachers teachers_;
  std::shared_ptr<Generator> generator_;
  std::shared_ptr<ConfigurableDistiller> distiller_, generator_distiller_;
  DataFreeDistillationOptions options_;
};

class DAFLDataFreeDistillation : public DataFreeDistillation {
 public:
  using DataFreeDistillation::DataFreeDistillation;

  /// "generator.*" then "distill.*" losses, from one generated batch.
  LossMap train_step(const Batch& batch, OptimWrapper& optim) override;
};

/// Registers DataFreeDistillation and DAFLDataFreeDistillation in the model registry.
void register_datafree_distillation();

}  // namespace razor
