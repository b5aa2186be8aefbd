#pragma once
// Distillation from one frozen teacher (MMRazor's SingleTeacherDistill). The student is the
// `architecture`; the teacher is built from its own table (or the `model` of a razor config
// file) and loaded from `teacher_ckpt`. Each step runs the teacher with its recorders, then
// the student with its recorders, and returns the student's losses as "student.*" and the
// distiller's as "distill.*". The teacher runs its loss pass only when something needs it
// (a recorder of its loss module or of the "sample_idx" tap, batch augments, deliveries);
// otherwise only its forward_tensor, without autograd unless it is trainable.
//
//   [model]
//   type = "SingleTeacherDistill"
//   architecture = { ... the student ... }
//   teacher_cfg = "configs/distill/resnet32_fmnist_teacher.toml"   # or teacher = { ... }
//   teacher_ckpt = "work_dirs/resnet32_fmnist_teacher/epoch_3.pth"
//   teacher_trainable = false     teacher_norm_eval = true     calculate_student_loss = true
//   [model.distiller] ...
#include <memory>
#include <string>

#include "algorithms/base_algorithm.h"
#include "components/distill/configurable_distiller.h"

namespace razor {

struct SingleTeacherDistillOptions {
  bool teacher_trainable = false;
  /// Keep the teacher's norms in eval mode while the student trains.
  bool teacher_norm_eval = true;
  bool student_trainable = true;
  bool calculate_student_loss = true;
};

class SingleTeacherDistill : public BaseAlgorithm {
 public:
  SingleTeacherDistill(std::shared_ptr<Model> student, std::shared_ptr<Model> teacher,
                       std::shared_ptr<ConfigurableDistiller> distiller, SingleTeacherDistillOptions options);

  LossMap loss(const Batch& batch) override;
  void train(bool on = true) override;

  Model& teacher() { return *teacher_; }
  ConfigurableDistiller& distiller() { return *distiller_; }
  /// "distiller.distill_losses.<name>.loss_weight" for parameter schedulers.
  ScheduledValues scheduled_values() override { return prefixed("distiller.", distiller_->scheduled_values()); }
  /// Set by StopDistillHook: from then on only the student's own losses train it.
  void set_distillation_stopped(bool stopped) { distillation_stopped_ = stopped; }
  bool distillation_stopped() const { return distillation_stopped_; }
  /// Whether each step runs the teacher's loss pass (else its forward_tensor).
  bool teacher_runs_loss() const { return teacher_runs_loss_; }

 private:
  std::shared_ptr<Model> teacher_;
  std::shared_ptr<ConfigurableDistiller> distiller_;
  SingleTeacherDistillOptions options_;
  bool distillation_stopped_ = false;
  bool teacher_runs_loss_ = true;
};

void register_distill_algorithms();

}  // namespace razor
