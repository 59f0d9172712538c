// The data a run's config names (DataConfig): the Dataset, and for shard datasets the record
// store behind it, local or from a data service. Implemented in trainer.cpp.
#pragma once

#include <memory>

#include "maestro/dataloader/dataset.h"
#include "maestro/dataloader/records.h"
#include "maestro/shared/train_config.h"

namespace maestro::engine {

// The dataset of `data.source` and `data.split`. NOT_FOUND / INVALID_ARGUMENT for a missing or
// unknown source, UNAVAILABLE for a data service that cannot be reached.
Result<std::unique_ptr<dataloader::Dataset>> OpenDataset(const DataConfig& data);
// The records of a shard dataset: data.service's when set, else the local shards under
// data.path. Null for sources that are not stored as records (IDX files).
Result<std::shared_ptr<const dataloader::RecordStore>> OpenRecordStore(const DataConfig& data);

}  // namespace maestro::engine
