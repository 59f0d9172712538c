#include "maestro/dataloader/shards.h"

#include <rocksdb/db.h>
#include <rocksdb/options.h>
#include <rocksdb/sst_file_writer.h>
#include <rocksdb/table.h>

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "maestro/shared/file_util.h"
#include "maestro/shared/sha256.h"

namespace maestro::dataloader {
namespace {

constexpr uint8_t kRecordVersion = 1;
constexpr size_t kRecordHeader = 16;
constexpr const char* kManifestName = "manifest.json";
constexpr const char* kDoneName = "ingest.json";

void PutU32(std::string& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}

uint32_t GetU32(const char* p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= static_cast<uint32_t>(static_cast<uint8_t>(p[i])) << (8 * i);
  return v;
}

std::string ShardName(int64_t k) {
  char name[32];
  std::snprintf(name, sizeof(name), "shard-%05lld", static_cast<long long>(k));
  return name;
}

Status FromRocks(const rocksdb::Status& s, const std::string& what) {
  if (s.ok()) return OkStatus();
  const std::string message = what + ": " + s.ToString();
  if (s.IsNotFound()) return NotFoundError(message);
  if (s.IsCorruption()) return DataLossError(message);
  if (s.IsInvalidArgument()) return InvalidArgumentError(message);
  return UnavailableError(message);
}

// Options for the bulk-loaded, read-mostly shards: values inline, no compression.
rocksdb::Options ShardOptions() {
  rocksdb::Options options;
  options.compression = rocksdb::kNoCompression;
  options.bottommost_compression = rocksdb::kNoCompression;
  rocksdb::BlockBasedTableOptions table;
  table.block_size = 64 * 1024;  // records are hundreds of bytes to hundreds of KB
  options.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  return options;
}

// Writes shard `info` (records [info.first, info.first + info.count) of `source`) into
// `dir/<info.name>` through an SST file, then its done-marker. Fills info.sha256.
Status WriteShard(const Dataset& source, const std::string& dir, ShardInfo& info) {
  const std::string shard_dir = dir + "/" + info.name;
  const std::string sst_path = dir + "/.staging-" + info.name + ".sst";
  MAESTRO_RETURN_IF_ERROR(RemoveTree(shard_dir));  // a partial shard from an interrupted run
  (void)std::remove(sst_path.c_str());
  rocksdb::Options options = ShardOptions();
  rocksdb::SstFileWriter writer(rocksdb::EnvOptions(), options);
  MAESTRO_RETURN_IF_ERROR(FromRocks(writer.Open(sst_path), "opening " + sst_path));
  Sha256 hash;
  for (int64_t i = info.first; i < info.first + info.count; ++i) {
    MAESTRO_ASSIGN_OR_RETURN(RawSample sample, source.Get(i));
    const std::string key = ShardKey(i), value = EncodeRecord(sample);
    hash.Update(key);
    hash.Update(value);
    MAESTRO_RETURN_IF_ERROR(FromRocks(writer.Put(key, value), "writing " + sst_path));
  }
  MAESTRO_RETURN_IF_ERROR(FromRocks(writer.Finish(), "finishing " + sst_path));
  info.sha256 = hash.HexDigest();

  options.create_if_missing = true;
  options.error_if_exists = true;
  rocksdb::DB* raw = nullptr;
  MAESTRO_RETURN_IF_ERROR(FromRocks(rocksdb::DB::Open(options, shard_dir, &raw), shard_dir));
  std::unique_ptr<rocksdb::DB> db(raw);
  rocksdb::IngestExternalFileOptions ingest;
  ingest.move_files = true;
  MAESTRO_RETURN_IF_ERROR(
      FromRocks(db->IngestExternalFile({sst_path}, ingest), "ingesting " + sst_path));
  MAESTRO_RETURN_IF_ERROR(FromRocks(db->Close(), "closing " + shard_dir));
  db.reset();
  Json done(Json::Object{
      {"name", info.name}, {"first", info.first}, {"count", info.count}, {"sha256", info.sha256}});
  return WriteFileAtomic(shard_dir + "/" + kDoneName, done.Dump() + "\n");
}

class ShardDataset : public Dataset {
 public:
  ShardDataset(ShardManifest manifest, std::vector<std::unique_ptr<rocksdb::DB>> dbs)
      : manifest_(std::move(manifest)), dbs_(std::move(dbs)) {
    identity_ = {manifest_.name, manifest_.content_hash, manifest_.count, manifest_.num_classes};
  }

  int64_t size() const override { return manifest_.count; }
  const DatasetIdentity& identity() const override { return identity_; }

  Result<RawSample> Get(int64_t index) const override {
    if (index < 0 || index >= manifest_.count) {
      return InvalidArgumentError("index " + std::to_string(index) + " outside [0, " +
                                  std::to_string(manifest_.count) + ")");
    }
    // The last shard whose first index is <= index.
    auto it = std::upper_bound(manifest_.shards.begin(), manifest_.shards.end(), index,
                               [](int64_t i, const ShardInfo& shard) { return i < shard.first; });
    const size_t shard = static_cast<size_t>(it - manifest_.shards.begin()) - 1;
    rocksdb::PinnableSlice value;
    const std::string key = ShardKey(index);
    MAESTRO_RETURN_IF_ERROR(FromRocks(
        dbs_[shard]->Get(rocksdb::ReadOptions(), dbs_[shard]->DefaultColumnFamily(), key, &value),
        manifest_.name + " record " + std::to_string(index)));
    return DecodeRecord(value.ToStringView(), index);
  }

 private:
  ShardManifest manifest_;
  std::vector<std::unique_ptr<rocksdb::DB>> dbs_;
  DatasetIdentity identity_;
};

}  // namespace

std::string EncodeRecord(const RawSample& sample) {
  std::string out;
  out.reserve(kRecordHeader + sample.pixels.size());
  out.push_back(static_cast<char>(kRecordVersion));
  out.push_back(static_cast<char>(RecordFormat::kRawU8));
  PutU32(out, static_cast<uint32_t>(static_cast<int32_t>(sample.label)));
  PutU32(out, static_cast<uint32_t>(sample.height));
  PutU32(out, static_cast<uint32_t>(sample.width));
  out.push_back(static_cast<char>(sample.channels));
  out.push_back('\0');
  out.append(reinterpret_cast<const char*>(sample.pixels.data()), sample.pixels.size());
  return out;
}

Result<RawSample> DecodeRecord(std::string_view value, int64_t index) {
  const std::string where = "record " + std::to_string(index);
  if (value.size() < kRecordHeader || static_cast<uint8_t>(value[0]) != kRecordVersion) {
    return DataLossError(where + " is not a version-1 record");
  }
  if (static_cast<uint8_t>(value[1]) != static_cast<uint8_t>(RecordFormat::kRawU8)) {
    return DataLossError(where + " has payload format " +
                         std::to_string(static_cast<uint8_t>(value[1])) +
                         ", which this reader does not decode");
  }
  RawSample sample;
  sample.index = index;
  sample.label = static_cast<int32_t>(GetU32(value.data() + 2));
  sample.height = GetU32(value.data() + 6);
  sample.width = GetU32(value.data() + 10);
  sample.channels = static_cast<uint8_t>(value[14]);
  const auto expected = static_cast<size_t>(sample.height * sample.width * sample.channels);
  if (value.size() - kRecordHeader != expected) {
    return DataLossError(where + " holds " + std::to_string(value.size() - kRecordHeader) +
                         " pixel bytes, its size says " + std::to_string(expected));
  }
  sample.pixels.assign(value.begin() + kRecordHeader, value.end());
  return sample;
}

std::string ShardKey(int64_t index) {
  std::string key(8, '\0');
  for (int i = 0; i < 8; ++i)
    key[static_cast<size_t>(i)] =
        static_cast<char>((static_cast<uint64_t>(index) >> (56 - 8 * i)) & 0xFF);
  return key;
}

Json ShardManifest::ToJson() const {
  Json::Array shard_list, skipped_list;
  for (const auto& s : shards) {
    shard_list.emplace_back(Json::Object{
        {"name", s.name}, {"first", s.first}, {"count", s.count}, {"sha256", s.sha256}});
  }
  for (const auto& s : skipped) skipped_list.emplace_back(s);
  return Json(Json::Object{{"format_version", format_version},
                           {"name", name},
                           {"source", source},
                           {"storage", storage},
                           {"count", count},
                           {"num_classes", num_classes},
                           {"shards", Json(std::move(shard_list))},
                           {"skipped", Json(std::move(skipped_list))},
                           {"content_hash", content_hash}});
}

Result<ShardManifest> ShardManifest::FromJson(const Json& json) {
  try {
    ShardManifest m;
    m.format_version = json.Find("format_version")->as_int();
    if (m.format_version != kShardFormatVersion) {
      return DataLossError("shard manifest format " + std::to_string(m.format_version) +
                           " is not the supported " + std::to_string(kShardFormatVersion));
    }
    m.name = json.Find("name")->as_string();
    m.source = *json.Find("source");
    m.storage = json.Find("storage")->as_string();
    m.count = json.Find("count")->as_int();
    m.num_classes = json.Find("num_classes")->as_int();
    for (const auto& s : json.Find("shards")->as_array()) {
      m.shards.push_back({s.Find("name")->as_string(), s.Find("first")->as_int(),
                          s.Find("count")->as_int(), s.Find("sha256")->as_string()});
    }
    for (const auto& s : json.Find("skipped")->as_array()) m.skipped.push_back(s.as_string());
    m.content_hash = json.Find("content_hash")->as_string();
    return m;
  } catch (const std::exception& e) {
    return DataLossError(std::string("malformed shard manifest: ") + e.what());
  }
}

std::string ShardManifest::ComputeContentHash() const {
  Sha256 hash;
  hash.Update("maestro-shards/");
  for (const std::string& part : {std::to_string(format_version), storage, std::to_string(count),
                                  std::to_string(num_classes)}) {
    hash.Update(part);
    hash.Update("/");
  }
  for (const auto& s : shards) {
    hash.Update(std::to_string(s.first));
    hash.Update(":");
    hash.Update(std::to_string(s.count));
    hash.Update(":");
    hash.Update(s.sha256);
    hash.Update("/");
  }
  return hash.HexDigest();
}

Result<ShardManifest> IngestDataset(const Dataset& source, const IngestOptions& options,
                                    const IngestProgress& progress) {
  if (options.shards <= 0) return InvalidArgumentError("the shard count must be positive");
  const std::string& dir = options.out_dir;
  const int64_t total = source.size();
  ShardManifest manifest;
  manifest.name = options.name;
  manifest.source = options.source;
  manifest.count = total;
  manifest.num_classes = source.identity().num_classes;
  const int64_t shards = std::min<int64_t>(options.shards, std::max<int64_t>(total, 1));
  for (int64_t k = 0; k < shards; ++k) {
    const int64_t first = total * k / shards, next = total * (k + 1) / shards;
    manifest.shards.push_back({ShardName(k), first, next - first, ""});
  }

  if (PathExists(dir + "/" + kManifestName)) {
    MAESTRO_ASSIGN_OR_RETURN(std::string text, ReadFile(dir + "/" + kManifestName));
    MAESTRO_ASSIGN_OR_RETURN(Json json, Json::Parse(text));
    MAESTRO_ASSIGN_OR_RETURN(ShardManifest existing, ShardManifest::FromJson(json));
    if (existing.source == manifest.source && existing.count == total &&
        existing.shards.size() == manifest.shards.size()) {
      if (progress) progress(shards, total, total);
      return existing;  // already complete
    }
    return InvalidArgumentError(dir + " already holds a finished ingest of another source or " +
                                "shard count (" + existing.source.Dump() + ", " +
                                std::to_string(existing.shards.size()) +
                                " shards); choose another --out");
  }
  MAESTRO_RETURN_IF_ERROR(MakeDirectories(dir));
  int64_t records = 0;
  for (int64_t k = 0; k < shards; ++k) {
    ShardInfo& info = manifest.shards[static_cast<size_t>(k)];
    const std::string done_path = dir + "/" + info.name + "/" + kDoneName;
    bool done = false;
    if (PathExists(done_path)) {  // finished by an earlier, interrupted run
      auto text = ReadFile(done_path);
      auto json = text.ok() ? Json::Parse(*text) : Result<Json>(text.status());
      if (json.ok() && json->Find("first") && json->Find("count") && json->Find("sha256") &&
          json->Find("first")->as_int() == info.first &&
          json->Find("count")->as_int() == info.count) {
        info.sha256 = json->Find("sha256")->as_string();
        done = true;
      }
    }
    if (!done) MAESTRO_RETURN_IF_ERROR(WriteShard(source, dir, info));
    records += info.count;
    if (progress) progress(k + 1, records, total);
  }
  manifest.content_hash = manifest.ComputeContentHash();
  MAESTRO_RETURN_IF_ERROR(
      WriteFileAtomic(dir + "/" + kManifestName, manifest.ToJson().Dump() + "\n"));
  return manifest;
}

Result<std::unique_ptr<Dataset>> OpenShardDataset(const std::string& dir) {
  const std::string path = dir + "/" + kManifestName;
  if (!PathExists(path)) {
    return NotFoundError(dir + " has no " + kManifestName +
                         " (not a shard folder, or its ingest did not finish: run it again)");
  }
  MAESTRO_ASSIGN_OR_RETURN(std::string text, ReadFile(path));
  auto json = Json::Parse(text);
  if (!json.ok()) return DataLossError(path + ": " + json.status().message());
  MAESTRO_ASSIGN_OR_RETURN(ShardManifest manifest, ShardManifest::FromJson(*json));
  if (manifest.ComputeContentHash() != manifest.content_hash) {
    return DataLossError(path + ": its content hash does not match its shards");
  }
  std::vector<std::unique_ptr<rocksdb::DB>> dbs;
  rocksdb::Options options = ShardOptions();
  for (const auto& shard : manifest.shards) {
    rocksdb::DB* raw = nullptr;
    const std::string shard_dir = dir + "/" + shard.name;
    MAESTRO_RETURN_IF_ERROR(
        FromRocks(rocksdb::DB::OpenForReadOnly(options, shard_dir, &raw), shard_dir));
    dbs.emplace_back(raw);
  }
  return std::unique_ptr<Dataset>(new ShardDataset(std::move(manifest), std::move(dbs)));
}

}  // namespace maestro::dataloader
