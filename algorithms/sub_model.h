#pragma once
// MMRazor's sub_model: an architecture `cfg` fixed for good to `fix_subnet`, built as a
// plain model. This is the form in which razor export writes a NAS subnet (mode "mutable":
// every op mutable fixed to its choice and put in its block's place) and a pruned model
// (mode "mutator": every channel unit cut to its width), so that one builder reads both.
//
//   model = { type = "sub_model", cfg = <the architecture>, mode = "mutable" | "mutator",
//             fix_subnet = <table or file>, init_cfg = { type = "Pretrained", checkpoint },
//             init_weight_from_supernet = false, demo_input = [1, 3, 32, 32] }
//
// fix_subnet is, in mode "mutable", MMRazor's subnet YAML ({mutable: {chosen: value}},
// inline or a .yaml file); in mode "mutator", a channel mutator file or {unit: width}.
// With init_weight_from_supernet, init_cfg's checkpoint (the supernet's) is loaded before
// the fix, so that the chosen parts are taken from it (a pruning unit picks its channels
// from the weights, an L1 unit the largest |W|); without, after (the subnet's own weights,
// as razor export and ItePruneValLoop write them).

namespace razor {

void register_sub_model();

}  // namespace razor
