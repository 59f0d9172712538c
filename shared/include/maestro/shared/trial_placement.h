// Where an attempt's trainer reads and writes. The coordinator decides it for every trial (the
// registered dataset, a folder under its runs folder, the weights a classification starts
// from) and sends it as typed fields of the assignment (coordinator.proto Placement); the
// worker checks it against its roots and writes it into the trainer's config with
// ApplyPlacement, the one place that names these trainer config keys. A config that arrives
// with other values for them loses those values. Plain data.
#pragma once

#include <span>
#include <string>

#include "maestro/shared/json.h"
#include "maestro/shared/status.h"

namespace maestro {

struct TrialPlacement {
  std::string output_dir;      // run.output_dir
  std::string checkpoint_dir;  // checkpoint.dir
  std::string data_path;       // data.path: ingested shards (data.source becomes shards)
  std::string data_service;    // data.service and data.dataset: streamed from a data service
  std::string data_dataset;
  std::string pretrained;  // classify.pretrained ("none" or weights); empty: left unset
};

// The trainer config keys a placement always sets: neither a trial config nor a hyperparameter
// chooses them (data.source, data.path, data.service, data.dataset, run.output_dir,
// checkpoint.dir). classify.pretrained is placed too, but a finetune experiment may choose it
// (the coordinator checks it against its data roots).
std::span<const char* const> PlacedConfigKeys();

// Erases the placed keys and classify.pretrained from `config` (an object), returning the
// classify.pretrained it held ("" when none, or not a string).
std::string StripPlacement(Json& config);

// The device a trainer config runs on (run.device, or the schema's default).
std::string ConfiguredDevice(const Json& config);

// Strips `config`, then sets the placement's values. INVALID_ARGUMENT when `config` is not an
// object or the placement has neither a data path nor a data service.
Status ApplyPlacement(const TrialPlacement& placement, Json& config);

}  // namespace maestro
