#include "maestro/dataloader/shards.h"

#include <rocksdb/db.h>
#include <rocksdb/options.h>
#include <rocksdb/sst_file_writer.h>
#include <rocksdb/table.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <optional>

#include "maestro/dataloader/jpeg.h"
#include "maestro/dataloader/png.h"
#include "maestro/dataloader/resize.h"
#include "maestro/shared/file_util.h"
#include "maestro/shared/rocksdb_status.h"
#include "maestro/shared/sha256.h"

namespace maestro::dataloader {
namespace {

constexpr const char* kManifestName = "manifest.json";
constexpr const char* kDoneName = "ingest.json";

std::string ShardName(int64_t k) {
  char name[32];
  std::snprintf(name, sizeof(name), "shard-%05lld", static_cast<long long>(k));
  return name;
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

// Writes shard `info` (source items [info.source_first, + info.source_count), the readable
// ones with global indices from info.first) into `dir/<info.name>` through an SST file, then
// its done-marker. Fills info.count, info.sha256 and `skipped`.
Status WriteShard(const RecordSource& source, const std::string& dir, ShardInfo& info,
                  std::vector<std::string>& skipped) {
  const std::string shard_dir = dir + "/" + info.name;
  const std::string sst_path = dir + "/.staging-" + info.name + ".sst";
  MAESTRO_RETURN_IF_ERROR(RemoveTree(shard_dir));  // a partial shard from an interrupted run
  (void)std::remove(sst_path.c_str());
  rocksdb::Options options = ShardOptions();
  std::optional<rocksdb::SstFileWriter> writer;  // opened at the first record: an SST file
                                                 // cannot be empty
  Sha256 hash;
  info.count = 0;
  for (int64_t i = info.source_first; i < info.source_first + info.source_count; ++i) {
    auto value = source.Record(i);
    if (!value.ok()) {
      skipped.push_back(source.Describe(i) + ": " + value.status().message());
      continue;
    }
    const std::string key = ShardKey(info.first + info.count);
    hash.Update(key);
    hash.Update(*value);
    if (!writer) {
      writer.emplace(rocksdb::EnvOptions(), options);
      MAESTRO_RETURN_IF_ERROR(FromRocksStatus(writer->Open(sst_path), "opening " + sst_path));
    }
    MAESTRO_RETURN_IF_ERROR(FromRocksStatus(writer->Put(key, *value), "writing " + sst_path));
    ++info.count;
  }
  info.sha256 = hash.HexDigest();
  if (writer) MAESTRO_RETURN_IF_ERROR(FromRocksStatus(writer->Finish(), "finishing " + sst_path));

  options.create_if_missing = true;
  options.error_if_exists = true;
  rocksdb::DB* raw = nullptr;
  MAESTRO_RETURN_IF_ERROR(FromRocksStatus(rocksdb::DB::Open(options, shard_dir, &raw), shard_dir));
  std::unique_ptr<rocksdb::DB> db(raw);
  if (info.count > 0) {
    rocksdb::IngestExternalFileOptions ingest;
    ingest.move_files = true;
    MAESTRO_RETURN_IF_ERROR(
        FromRocksStatus(db->IngestExternalFile({sst_path}, ingest), "ingesting " + sst_path));
  }
  MAESTRO_RETURN_IF_ERROR(FromRocksStatus(db->Close(), "closing " + shard_dir));
  db.reset();
  Json::Array skipped_json;
  for (const auto& line : skipped) skipped_json.emplace_back(line);
  Json done(Json::Object{{"name", info.name},
                         {"first", info.first},
                         {"count", info.count},
                         {"source_first", info.source_first},
                         {"source_count", info.source_count},
                         {"sha256", info.sha256},
                         {"skipped", Json(std::move(skipped_json))}});
  return WriteFileAtomic(shard_dir + "/" + kDoneName, done.Dump() + "\n");
}

class RawDatasetRecords : public RecordSource {
 public:
  explicit RawDatasetRecords(const Dataset& dataset) : dataset_(dataset) {}
  int64_t size() const override { return dataset_.size(); }
  int64_t num_classes() const override { return dataset_.identity().num_classes; }
  Result<std::string> Record(int64_t i) const override {
    MAESTRO_ASSIGN_OR_RETURN(RawSample sample, dataset_.Get(i));
    return EncodeRecord(sample);
  }
  std::string Describe(int64_t i) const override {
    return dataset_.identity().name + "[" + std::to_string(i) + "]";
  }

 private:
  const Dataset& dataset_;
};

class ImageFolderRecords : public RecordSource {
 public:
  ImageFolderRecords(std::vector<std::string> classes,
                     std::vector<std::pair<std::string, int64_t>> files, ImageFolderOptions options)
      : classes_(std::move(classes)), files_(std::move(files)), options_(std::move(options)) {}
  int64_t size() const override { return static_cast<int64_t>(files_.size()); }
  int64_t num_classes() const override { return static_cast<int64_t>(classes_.size()); }
  std::vector<std::string> classes() const override { return classes_; }

  Result<std::string> Record(int64_t i) const override {
    const auto& [path, label] = files_[static_cast<size_t>(i)];
    MAESTRO_ASSIGN_OR_RETURN(std::string bytes, ReadFile(path));
    RecordFormat format;
    RawSample header;  // height and width
    if (LooksLikeJpeg(bytes)) {
      format = RecordFormat::kJpeg;
      MAESTRO_ASSIGN_OR_RETURN(JpegInfo info, ReadJpegHeader(bytes));
      header.height = info.height;
      header.width = info.width;
      if (options_.storage == "original") {  // a 1/8-scale decode reads every coefficient
        MAESTRO_RETURN_IF_ERROR(
            DecodeJpegRegion(bytes, {0, 0, info.height, info.width}, 8).status());
      }
    } else if (LooksLikePng(bytes)) {
      format = RecordFormat::kPng;
      MAESTRO_ASSIGN_OR_RETURN(header, DecodePng(bytes));
    } else {
      return InvalidArgumentError("neither a JPEG nor a PNG file");
    }
    if (options_.storage == "original") {
      return EncodeEncodedRecord(format, label, header.height, header.width, 3, bytes);
    }
    return Reencode(bytes, format, label);
  }
  std::string Describe(int64_t i) const override { return files_[static_cast<size_t>(i)].first; }

 private:
  // Decoded to RGB, shrunk to the short side, stored as a q90 4:2:0 JPEG.
  Result<std::string> Reencode(const std::string& bytes, RecordFormat format, int64_t label) const {
    RawSample image;
    if (format == RecordFormat::kPng) {
      MAESTRO_ASSIGN_OR_RETURN(image, DecodePng(bytes));
    } else {
      MAESTRO_ASSIGN_OR_RETURN(JpegInfo info, ReadJpegHeader(bytes));
      MAESTRO_ASSIGN_OR_RETURN(image, DecodeJpegRegion(bytes, {0, 0, info.height, info.width}));
    }
    const int64_t short_side = std::min(image.height, image.width);
    if (short_side > options_.short_side) {
      const double ratio =
          static_cast<double>(options_.short_side) / static_cast<double>(short_side);
      const int64_t out_h = image.height == short_side
                                ? options_.short_side
                                : std::lround(static_cast<double>(image.height) * ratio);
      const int64_t out_w = image.width == short_side
                                ? options_.short_side
                                : std::lround(static_cast<double>(image.width) * ratio);
      thread_local BicubicResizer resizer;
      RawSample resized;
      resized.height = out_h;
      resized.width = out_w;
      resized.channels = image.channels;
      resized.pixels.resize(static_cast<size_t>(out_h * out_w * image.channels));
      resizer.Resize(image.pixels.data(), image.height, image.width, image.channels,
                     image.width * image.channels,
                     {0, 0, static_cast<double>(image.width), static_cast<double>(image.height)},
                     out_h, out_w, false, resized.pixels.data());
      image = std::move(resized);
    }
    MAESTRO_ASSIGN_OR_RETURN(std::string jpeg, EncodeJpeg(image, options_.quality));
    return EncodeEncodedRecord(RecordFormat::kJpeg, label, image.height, image.width, 3, jpeg);
  }

  std::vector<std::string> classes_;
  std::vector<std::pair<std::string, int64_t>> files_;
  ImageFolderOptions options_;
};

}  // namespace

std::unique_ptr<RecordSource> RawRecords(const Dataset& dataset) {
  return std::make_unique<RawDatasetRecords>(dataset);
}

Result<std::unique_ptr<RecordSource>> OpenImageFolder(const std::string& split_dir,
                                                      const ImageFolderOptions& options) {
  if (options.storage != "original" && options.storage != "reencode") {
    return InvalidArgumentError("storage '" + options.storage +
                                "' is not known (original, "
                                "reencode)");
  }
  if (options.short_side <= 0 || options.quality < 1 || options.quality > 100) {
    return InvalidArgumentError("reencode needs short_side > 0 and quality in [1, 100]");
  }
  if (!IsDirectory(split_dir)) return NotFoundError(split_dir + " is not a folder");
  MAESTRO_ASSIGN_OR_RETURN(std::vector<std::string> entries, ListDirectory(split_dir));
  std::sort(entries.begin(), entries.end());
  std::vector<std::string> classes;
  std::vector<std::pair<std::string, int64_t>> files;
  for (const auto& entry : entries) {
    const std::string class_dir = split_dir + "/" + entry;
    if (entry.starts_with(".") || !IsDirectory(class_dir)) continue;
    const auto label = static_cast<int64_t>(classes.size());
    classes.push_back(entry);
    MAESTRO_ASSIGN_OR_RETURN(std::vector<std::string> names, ListDirectory(class_dir));
    std::sort(names.begin(), names.end());
    for (const auto& name : names) {
      const std::string file = class_dir + "/" + name;
      if (name.starts_with(".") || IsDirectory(file)) continue;
      // A FIFO would block the reader for ever, a device read without end.
      MAESTRO_RETURN_IF_ERROR(CheckRegularFile(file));
      files.emplace_back(file, label);
    }
  }
  if (classes.empty()) {
    return InvalidArgumentError(split_dir + " has no class folders (expected <class>/<image>)");
  }
  return std::unique_ptr<RecordSource>(
      new ImageFolderRecords(std::move(classes), std::move(files), options));
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
    shard_list.emplace_back(Json::Object{{"name", s.name},
                                         {"first", s.first},
                                         {"count", s.count},
                                         {"source_first", s.source_first},
                                         {"source_count", s.source_count},
                                         {"sha256", s.sha256}});
  }
  for (const auto& s : skipped) skipped_list.emplace_back(s);
  Json::Array class_list;
  for (const auto& c : classes) class_list.emplace_back(c);
  return Json(Json::Object{{"format_version", format_version},
                           {"name", name},
                           {"source", source},
                           {"storage", storage},
                           {"count", count},
                           {"source_items", source_items},
                           {"num_classes", num_classes},
                           {"classes", Json(std::move(class_list))},
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
    m.source_items = json.Find("source_items")->as_int();
    m.num_classes = json.Find("num_classes")->as_int();
    for (const auto& c : json.Find("classes")->as_array()) m.classes.push_back(c.as_string());
    for (const auto& s : json.Find("shards")->as_array()) {
      m.shards.push_back({s.Find("name")->as_string(), s.Find("first")->as_int(),
                          s.Find("count")->as_int(), s.Find("source_first")->as_int(),
                          s.Find("source_count")->as_int(), s.Find("sha256")->as_string()});
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
  for (const auto& c : classes) {  // none for IDX sources
    hash.Update(c);
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

Result<ShardManifest> IngestRecords(const RecordSource& source, const IngestOptions& options,
                                    const IngestProgress& progress) {
  if (options.shards <= 0) return InvalidArgumentError("the shard count must be positive");
  const std::string& dir = options.out_dir;
  const int64_t total = source.size();
  ShardManifest manifest;
  manifest.name = options.name;
  manifest.source = options.source;
  manifest.source_items = total;
  manifest.storage = options.storage;
  manifest.num_classes = source.num_classes();
  manifest.classes = source.classes();
  const int64_t shards = std::min<int64_t>(options.shards, std::max<int64_t>(total, 1));
  for (int64_t k = 0; k < shards; ++k) {
    const int64_t first = total * k / shards, next = total * (k + 1) / shards;
    manifest.shards.push_back({ShardName(k), 0, 0, first, next - first, ""});
  }

  if (PathExists(dir + "/" + kManifestName)) {
    MAESTRO_ASSIGN_OR_RETURN(std::string text, ReadFile(dir + "/" + kManifestName));
    MAESTRO_ASSIGN_OR_RETURN(Json json, Json::Parse(text));
    MAESTRO_ASSIGN_OR_RETURN(ShardManifest existing, ShardManifest::FromJson(json));
    if (existing.source == manifest.source && existing.source_items == total &&
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
  int64_t next_index = 0, items_done = 0;
  for (int64_t k = 0; k < shards; ++k) {
    ShardInfo& info = manifest.shards[static_cast<size_t>(k)];
    info.first = next_index;
    std::vector<std::string> skipped;
    const std::string done_path = dir + "/" + info.name + "/" + kDoneName;
    bool done = false;
    if (PathExists(done_path)) {  // finished by an earlier, interrupted run
      auto text = ReadFile(done_path);
      auto json = text.ok() ? Json::Parse(*text) : Result<Json>(text.status());
      try {
        if (json.ok() && json->Find("first")->as_int() == info.first &&
            json->Find("source_first")->as_int() == info.source_first &&
            json->Find("source_count")->as_int() == info.source_count) {
          info.count = json->Find("count")->as_int();
          info.sha256 = json->Find("sha256")->as_string();
          for (const auto& line : json->Find("skipped")->as_array())
            skipped.push_back(line.as_string());
          done = true;
        }
      } catch (const std::exception&) {
        done = false;  // an unreadable marker: rebuild the shard
      }
    }
    if (!done) MAESTRO_RETURN_IF_ERROR(WriteShard(source, dir, info, skipped));
    manifest.skipped.insert(manifest.skipped.end(), skipped.begin(), skipped.end());
    next_index += info.count;
    items_done += info.source_count;
    if (progress) progress(k + 1, items_done, total);
  }
  manifest.count = next_index;
  manifest.content_hash = manifest.ComputeContentHash();
  MAESTRO_RETURN_IF_ERROR(
      WriteFileAtomic(dir + "/" + kManifestName, manifest.ToJson().Dump() + "\n"));
  return manifest;
}

Result<ShardManifest> IngestDataset(const Dataset& source, const IngestOptions& options,
                                    const IngestProgress& progress) {
  return IngestRecords(*RawRecords(source), options, progress);
}

ShardStore::ShardStore(ShardManifest manifest, std::vector<std::unique_ptr<rocksdb::DB>> dbs)
    : manifest_(std::move(manifest)), dbs_(std::move(dbs)) {
  identity_ = {manifest_.name, manifest_.content_hash, manifest_.count, manifest_.num_classes};
}

ShardStore::~ShardStore() = default;

bool ShardStore::holds_encoded() const {
  const Json* format = manifest_.source.is_object() ? manifest_.source.Find("format") : nullptr;
  return format != nullptr && format->is_string() && format->as_string() == "imagefolder";
}

Result<std::string> ShardStore::Read(int64_t index) const {
  if (index < 0 || index >= manifest_.count) {
    return InvalidArgumentError("index " + std::to_string(index) + " outside [0, " +
                                std::to_string(manifest_.count) + ")");
  }
  // The last shard whose first index is <= index.
  auto it = std::upper_bound(manifest_.shards.begin(), manifest_.shards.end(), index,
                             [](int64_t i, const ShardInfo& shard) { return i < shard.first; });
  const size_t shard = static_cast<size_t>(it - manifest_.shards.begin()) - 1;
  std::string value;
  MAESTRO_RETURN_IF_ERROR(
      FromRocksStatus(dbs_[shard]->Get(rocksdb::ReadOptions(), ShardKey(index), &value),
                      manifest_.name + " record " + std::to_string(index)));
  return value;
}

Result<std::unique_ptr<ShardStore>> OpenShardStore(const std::string& dir) {
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
        FromRocksStatus(rocksdb::DB::OpenForReadOnly(options, shard_dir, &raw), shard_dir));
    dbs.emplace_back(raw);
  }
  return std::unique_ptr<ShardStore>(new ShardStore(std::move(manifest), std::move(dbs)));
}

Result<std::unique_ptr<Dataset>> OpenShardDataset(const std::string& dir) {
  MAESTRO_ASSIGN_OR_RETURN(std::unique_ptr<ShardStore> store, OpenShardStore(dir));
  return RecordDataset(std::shared_ptr<const RecordStore>(std::move(store)));
}

}  // namespace maestro::dataloader
