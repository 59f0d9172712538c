#include "maestro/engine/param_groups.h"

#include <cmath>
#include <cstdio>
#include <map>

namespace maestro::engine {

std::string DescribeGroups(const std::vector<ParamGroup>& groups) {
  std::string out;
  for (const auto& group : groups) {
    char line[160];
    std::snprintf(line, sizeof(line), "%s%s: %zu parameters, weight decay %g, lr scale %g",
                  out.empty() ? "" : "\n", group.name.c_str(), group.params.size(),
                  group.weight_decay, group.lr_scale);
    out += line;
  }
  return out;
}

bool SkipsWeightDecay(const std::string& name, const torch::Tensor& param) {
  return param.dim() <= 1 || name.ends_with(".bias");
}

std::vector<ParamGroup> WeightDecayGroups(const NamedParameters& named, double weight_decay) {
  std::vector<ParamGroup> groups = {{"no_decay", 0.0, 1.0, {}}, {"decay", weight_decay, 1.0, {}}};
  for (const auto& [name, param] : named) {
    if (!param.requires_grad()) continue;
    groups[SkipsWeightDecay(name, param) ? 0 : 1].params.emplace_back(name, param);
  }
  return groups;
}

int64_t VitLayerId(const std::string& name, int64_t num_layers) {
  if (name == "cls_token" || name == "pos_embed") return 0;
  if (name.starts_with("patch_embed")) return 0;
  if (name.starts_with("blocks.")) {
    const size_t start = 7, dot = name.find('.', start);
    return std::stoll(name.substr(start, dot - start)) + 1;
  }
  return num_layers;
}

std::vector<ParamGroup> LayerDecayGroups(const NamedParameters& named, int64_t depth,
                                         double weight_decay, double layer_decay,
                                         const std::set<std::string>& no_weight_decay) {
  const int64_t num_layers = depth + 1;
  std::map<std::pair<int64_t, bool>, ParamGroup> groups;  // (layer id, decayed) -> group
  for (const auto& [name, param] : named) {
    if (!param.requires_grad()) continue;
    const bool decayed = !(param.dim() == 1 || no_weight_decay.count(name));
    const int64_t layer = VitLayerId(name, num_layers);
    ParamGroup& group = groups[{layer, decayed}];
    if (group.name.empty()) {
      group.name = "layer_" + std::to_string(layer) + (decayed ? "_decay" : "_no_decay");
      group.weight_decay = decayed ? weight_decay : 0.0;
      group.lr_scale = std::pow(layer_decay, static_cast<double>(num_layers - layer));
    }
    group.params.emplace_back(name, param);
  }
  std::vector<ParamGroup> out;
  for (auto& [key, group] : groups) out.push_back(std::move(group));
  return out;
}

}  // namespace maestro::engine
