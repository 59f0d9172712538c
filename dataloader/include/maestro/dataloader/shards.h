// Datasets stored as RocksDB shards: each split of a dataset is a folder
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

namespace rocksdb {
class DB;
}

#include "maestro/dataloader/dataset.h"
#include "maestro/dataloader/records.h"
#include "maestro/shared/json.h"
#include "maestro/shared/status.h"

namespace maestro::dataloader {

inline constexpr int64_t kShardFormatVersion = 1;

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

// How an image folder's files are stored.
struct ImageFolderOptions {
  // "original": the file's bytes unchanged (JPEG, or PNG whatever its name), converted to RGB
  // when read. "reencode": decoded, the short side shrunk to short_side (Pillow's bicubic; a
  // smaller image keeps its size) and stored as a baseline 4:2:0 RGB JPEG at `quality`.
  std::string storage = "original";
  int64_t short_side = 320;
  int quality = 90;
};

// ImageNet's layout: `split_dir/<class>/<file>`, classes in sorted folder-name order (label =
// position, as torchvision's ImageFolder), files sorted within a class. Every file is decoded
// once to check it (a JPEG at 1/8 scale, which still reads all its data): corrupt, truncated
// and non-image files are reported unreadable (skipped and listed by the ingest). NOT_FOUND
// for a missing folder, INVALID_ARGUMENT when it has no class folders or for bad options.
Result<std::unique_ptr<RecordSource>> OpenImageFolder(const std::string& split_dir,
                                                      const ImageFolderOptions& options = {});
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
  std::string out_dir;               // the split's folder (<root>/<split>)
  std::string name;                  // manifest name
  Json source;                       // recorded in the manifest
  std::string storage = "original";  // recorded in the manifest (ImageFolderOptions::storage)
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

// A split's shards, opened read-only: the local reader of the data path. Thread-safe.
class ShardStore : public RecordStore {
 public:
  ShardStore(ShardManifest manifest, std::vector<std::unique_ptr<rocksdb::DB>> dbs);
  ~ShardStore() override;
  ShardStore(const ShardStore&) = delete;
  ShardStore& operator=(const ShardStore&) = delete;

  const ShardManifest& manifest() const { return manifest_; }
  const DatasetIdentity& identity() const override { return identity_; }
  bool holds_encoded() const override;
  Result<std::string> Read(int64_t index) const override;

 private:
  ShardManifest manifest_;
  std::vector<std::unique_ptr<rocksdb::DB>> dbs_;
  DatasetIdentity identity_;
};

// Reads the manifest of the split folder `dir`, checks its content hash and opens its shards
// read-only. NOT_FOUND without a manifest (an unfinished ingest), DATA_LOSS for a malformed one.
Result<std::unique_ptr<ShardStore>> OpenShardStore(const std::string& dir);
// The same store as a Dataset.
Result<std::unique_ptr<Dataset>> OpenShardDataset(const std::string& dir);

}  // namespace maestro::dataloader
