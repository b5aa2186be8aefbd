#pragma once
// MMRazor's GroupFisherChannelMutator: a ChannelMutator of GroupFisherChannelUnits
// (components/channel/group_fisher_channel_unit.h) that records their Fisher information
// around a train step and removes the one channel, among all mutable units, of least
// accumulated importance.
#include <string>

#include "components/channel/group_fisher_channel_unit.h"
#include "components/mutators/channel_mutator.h"

namespace razor {

class GroupFisherChannelMutator : public ChannelMutator {
 public:
  using ChannelMutator::ChannelMutator;

  void start_record_info();
  void end_record_info();
  void reset_recorded_info();
  /// Adds the recorded batch's Fisher information to each unit's (summed over ranks).
  void update_imp();
  void reset_imp();
  /// Removes the channel of least importance among the units that are mutable and have more
  /// than one channel left; returns the unit's name, empty if none was removed (no unit can
  /// lose a channel, or an importance is NaN: then nothing is pruned this time).
  std::string try_prune();

 private:
  /// Every unit as a GroupFisherChannelUnit (an error naming the type otherwise).
  channel::GroupFisherChannelUnit& fisher_unit(size_t index) const;
};

}  // namespace razor
