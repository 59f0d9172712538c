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
  kJpeg = 1,   // the source file's bytes, unchanged ("original" storage)
};

// The stored value: version, payload format, label, original size, payload.
std::string EncodeRecord(const RawSample& sample);
std::string EncodeEncodedRecord(RecordFormat format, int64_t label, int64_t height, int64_t width,
                                int64_t channels, std::string_view payload);
// Decodes a stored value into pixels (JPEG payloads to RGB). DATA_LOSS for a value that is not
// a record of this version or whose payload does not decode.
Result<RawSample> DecodeRecord(std::string_view value, int64_t index);
// A JPEG record's payload and header, not decoded. DATA_LOSS for another record.
Result<EncodedSample> DecodeEncodedRecord(std::string_view value, int64_t index);

// What an ingest reads: items with their stored value, in a fixed order.
class RecordSource {
 public:
  virtual ~RecordSource() = default;
  virtual int64_t size() const = 0;
  virtual int64_t num_classes() const = 0;
  // Class names by label (empty when the source has none).
  virtual std::vector<std::string> classes() const { return {}; }
  // The stored value of item i; an error marks the item unreadable (skipped and listed).
  virtual Result<std::string> Record(int64_t i) const = 0;
  // How the item is named in the skipped list (a path).
  virtual std::string Describe(int64_t i) const = 0;
};

// The samples of `dataset` as raw-pixel records. `dataset` must outlive the source.
std::unique_ptr<RecordSource> RawRecords(const Dataset& dataset);

// ImageNet's layout: `split_dir/<class>/<file>`, classes in sorted folder-name order (label =
// position, as torchvision's ImageFolder), files sorted within a class. JPEG files are stored
// as they are (their header is checked); anything else is reported unreadable. NOT_FOUND for a
// missing folder, INVALID_ARGUMENT when it has no class folders.
Result<std::unique_ptr<RecordSource>> OpenImageFolder(const std::string& split_dir);
// The 8-byte big-endian key of a global index.
std::string ShardKey(int64_t index);

struct ShardInfo {
  std::string name;                            // "shard-00000"
  int64_t first = 0;                           // global index of its first record
  int64_t count = 0;                           // records written
  int64_t source_first = 0, source_count = 0;  // the source items it covers
  std::string sha256;                          // over (key, value) of its records in key order
};

struct ShardManifest {
  int64_t format_version = kShardFormatVersion;
  std::string name;  // "fashion-mnist/train"
  Json source;       // what was ingested (format, path, split)
  std::string storage = "original";
  int64_t count = 0;         // records
  int64_t source_items = 0;  // items of the source (records + skipped)
  int64_t num_classes = 0;
  std::vector<ShardInfo> shards;
  std::vector<std::string> classes;  // class names by label (empty for IDX sources)
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

// Writes every readable item of `source` into options.shards shards under options.out_dir
// (resuming an interrupted ingest of the same source), then the manifest. Shard k takes source
// items [k N / K, (k + 1) N / K); records get consecutive global indices, unreadable items are
// skipped and listed. INVALID_ARGUMENT when out_dir holds a finished ingest of another source
// or shard count.
Result<ShardManifest> IngestRecords(const RecordSource& source, const IngestOptions& options,
                                    const IngestProgress& progress = {});
// The samples of a Dataset as raw-pixel records.
Result<ShardManifest> IngestDataset(const Dataset& source, const IngestOptions& options,
                                    const IngestProgress& progress = {});

// Reads the manifest of the split folder `dir` and opens its shards read-only.
// NOT_FOUND without a manifest (an unfinished ingest), DATA_LOSS for a malformed one.
Result<std::unique_ptr<Dataset>> OpenShardDataset(const std::string& dir);

}  // namespace maestro::dataloader
