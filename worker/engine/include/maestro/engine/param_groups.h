// Parameter groups as the official MAE code builds them: which parameters get weight decay,
// and (fine-tuning) each group's learning-rate scale by layer depth. Plain functions over named
// parameters; parameters without requires_grad (the fixed position embeddings) are left out.
#pragma once

#include <torch/torch.h>

#include <set>
#include <string>
#include <utility>
#include <vector>

namespace maestro::engine {

using NamedParameters = std::vector<std::pair<std::string, torch::Tensor>>;

struct ParamGroup {
  std::string name;  // "decay", "no_decay", "layer_3_decay", ...
  double weight_decay = 0;
  double lr_scale = 1;  // the group's lr is lr_scale times the scheduled lr
  NamedParameters params;
};

// Whether pretraining's grouping (timm's param_groups_weight_decay, as main_pretrain.py calls
// it) exempts a parameter from weight decay: 1-D parameters and biases.
bool SkipsWeightDecay(const std::string& name, const torch::Tensor& param);

// "<group name>: <n> parameters, weight decay <wd>, lr scale <s>", one line per group.
std::string DescribeGroups(const std::vector<ParamGroup>& groups);

// Pretraining: {"no_decay" (weight decay 0), "decay" (`weight_decay`)}, lr_scale 1 both.
std::vector<ParamGroup> WeightDecayGroups(const NamedParameters& named, double weight_decay);

// The layer id of a ViT parameter (util/lr_decay.py get_layer_id_for_vit): cls_token,
// pos_embed and patch_embed.* are 0, blocks.k.* is k + 1, everything else `num_layers`
// (= depth + 1: the final norm, fc_norm and the head).
int64_t VitLayerId(const std::string& name, int64_t num_layers);

// Fine-tuning (util/lr_decay.py param_groups_lrd): one group per (layer id, decay or not),
// lr_scale = layer_decay^(depth + 1 - layer_id); no weight decay for 1-D parameters and the
// names in `no_weight_decay` (timm ViT's no_weight_decay(): pos_embed, cls_token, dist_token).
std::vector<ParamGroup> LayerDecayGroups(const NamedParameters& named, int64_t depth,
                                         double weight_decay, double layer_decay,
                                         const std::set<std::string>& no_weight_decay = {
                                             "pos_embed", "cls_token", "dist_token"});

}  // namespace maestro::engine
