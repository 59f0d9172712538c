#include "maestro/shared/trial_placement.h"

#include "maestro/shared/config_tree.h"
#include "maestro/shared/train_config.h"

namespace maestro {
namespace {

constexpr const char* kPlacedKeys[] = {"data.source",  "data.path",      "data.service",
                                       "data.dataset", "run.output_dir", "checkpoint.dir"};

}  // namespace

std::span<const char* const> PlacedConfigKeys() { return kPlacedKeys; }

std::string ConfiguredDevice(const Json& config) {
  const Json* device = FindConfigValue(config, "run.device");
  return device != nullptr && device->is_string() ? device->as_string()
                                                  : engine::TrainConfig().run.device;
}

std::string StripPlacement(Json& config) {
  std::string pretrained;
  if (const Json* weights = FindConfigValue(config, "classify.pretrained");
      weights != nullptr && weights->is_string()) {
    pretrained = weights->as_string();
  }
  for (const char* key : kPlacedKeys) EraseConfigValue(config, key);
  EraseConfigValue(config, "classify.pretrained");
  return pretrained;
}

Status ApplyPlacement(const TrialPlacement& placement, Json& config) {
  if (!config.is_object()) return InvalidArgumentError("the trainer config is not an object");
  if (placement.data_path.empty() && placement.data_service.empty()) {
    return InvalidArgumentError("placement: neither a data path nor a data service");
  }
  if (placement.output_dir.empty() || placement.checkpoint_dir.empty()) {
    return InvalidArgumentError("placement: no output or checkpoint folder");
  }
  StripPlacement(config);
  MAESTRO_RETURN_IF_ERROR(SetConfigValue(config, "data.source", Json("shards")));
  if (!placement.data_path.empty()) {
    MAESTRO_RETURN_IF_ERROR(SetConfigValue(config, "data.path", Json(placement.data_path)));
  }
  if (!placement.data_service.empty()) {
    MAESTRO_RETURN_IF_ERROR(SetConfigValue(config, "data.service", Json(placement.data_service)));
    MAESTRO_RETURN_IF_ERROR(SetConfigValue(config, "data.dataset", Json(placement.data_dataset)));
  }
  MAESTRO_RETURN_IF_ERROR(SetConfigValue(config, "run.output_dir", Json(placement.output_dir)));
  MAESTRO_RETURN_IF_ERROR(SetConfigValue(config, "checkpoint.dir", Json(placement.checkpoint_dir)));
  if (!placement.pretrained.empty()) {
    MAESTRO_RETURN_IF_ERROR(
        SetConfigValue(config, "classify.pretrained", Json(placement.pretrained)));
  }
  return OkStatus();
}

}  // namespace maestro
