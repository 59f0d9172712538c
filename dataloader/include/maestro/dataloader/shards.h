// Datasets stored as RocksDB shards (issue 4's storage): each split of a dataset is a folder
//
//   <root>/<split>/manifest.json          written last; the split is complete when it exists
//   <root>/<split>/shard-00000/ ...       one RocksDB database per shard, opened read-only
//
// Shard k holds a contiguous range of global indices; a record's key is its global index as
// 8 bytes big-endian (so keys sort in index order), its value the record below, stored inline
// and uncompressed. Shards are bulk-loaded: records go into an SST file (SstFileWriter) that is
// then ingested (IngestExternalFile). The manifest carries the counts, each shard's sha256 over
// its keys and values, and a content hash over all of it that trainers record in checkpoints.
//
// An interrupted ingest is finished by running it again: a shard whose done-marker
// (shard-NNNNN/ingest.json) exists is kept, any other is rebuilt, and the content hash comes out
// the same. Thread-safe for concurrent Get() (RocksDB reads); ingest is single-writer.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "maestro/dataloader/dataset.h"
#include "maestro/shared/json.h"
#include "maestro/shared/status.h"

namespace maestro::dataloader {

inline constexpr int64_t kShardFormatVersion = 1;

// How a record's payload is encoded.
enum class RecordFormat : uint8_t {
  kRawU8 = 0,  // height x width x channels uint8 pixels, HWC
};

// The stored value: version, payload format, label, original size, payload.
std::string EncodeRecord(const RawSample& sample);
// DATA_LOSS for a value that is not a record of this version.
Result<RawSample> DecodeRecord(std::string_view value, int64_t index);
// The 8-byte big-endian key of a global index.
std::string ShardKey(int64_t index);

struct ShardInfo {
  std::string name;   // "shard-00000"
  int64_t first = 0;  // global index of its first record
  int64_t count = 0;
  std::string sha256;  // over (key, value) of its records in key order
};

struct ShardManifest {
  int64_t format_version = kShardFormatVersion;
  std::string name;  // "fashion-mnist/train"
  Json source;       // what was ingested (format, path, split)
  std::string storage = "original";
  int64_t count = 0;
  int64_t num_classes = 0;
  std::vector<ShardInfo> shards;
  std::vector<std::string> skipped;  // unreadable source items, with the reason
  std::string content_hash;          // sha256 over version, storage, counts, shard hashes

  Json ToJson() const;
  static Result<ShardManifest> FromJson(const Json& json);
  // The content hash of the other fields.
  std::string ComputeContentHash() const;
};

struct IngestOptions {
  std::string out_dir;  // the split's folder (<root>/<split>)
  std::string name;     // manifest name
  Json source;          // recorded in the manifest
  int64_t shards = 4;
};

// Progress after each shard: shards done, records done, total records.
using IngestProgress = std::function<void(int64_t shards_done, int64_t records, int64_t total)>;

// Writes every sample of `source` into options.shards shards under options.out_dir (resuming an
// interrupted ingest of the same source), then the manifest. INVALID_ARGUMENT when out_dir
// holds a finished ingest of another source or shard count.
Result<ShardManifest> IngestDataset(const Dataset& source, const IngestOptions& options,
                                    const IngestProgress& progress = {});

// Reads the manifest of the split folder `dir` and opens its shards read-only.
// NOT_FOUND without a manifest (an unfinished ingest), DATA_LOSS for a malformed one.
Result<std::unique_ptr<Dataset>> OpenShardDataset(const std::string& dir);

}  // namespace maestro::dataloader
