#include "data_commands.h"

#include <chrono>
#include <cstdio>
#include <iostream>

#include "maestro/dataloader/dataset.h"
#include "maestro/dataloader/shards.h"
#include "maestro/shared/file_util.h"
#include "maestro/shared/flags.h"

namespace maestro::tools {

int DataIngest(int argc, char** argv) {
  std::string format = "idx", src = "/usr/share/datasets/fashion-mnist", out, split = "train";
  int64_t shards = 4;
  dataloader::ImageFolderOptions folder;
  int64_t quality = folder.quality;
  FlagParser flags("maestro data ingest",
                   "Writes a dataset split into RocksDB shards (bulk-loaded SST files, values\n"
                   "inline and uncompressed) under ROOT/<split>/, with a manifest of counts,\n"
                   "per-shard checksums and a content hash. An interrupted ingest finishes when\n"
                   "run again with the same arguments. Train with data.source: shards,\n"
                   "data.path: ROOT. imagefolder: SRC/<split>/<class>/<image> (ImageNet's\n"
                   "layout; labels in sorted class order): every file is decoded once to check\n"
                   "it; JPEG and PNG files are stored as they are (--storage original) and\n"
                   "converted to RGB when read, or re-encoded (--storage reencode); corrupt,\n"
                   "truncated and other files are skipped and listed in the manifest.");
  flags.Add("format", &format,
            "source format: idx (MNIST / Fashion-MNIST IDX files) or imagefolder");
  flags.Add("src", &src,
            "source folder (idx: the four IDX files, gzip-compressed or not; imagefolder: the "
            "folder holding <split>/)");
  flags.Add("out", &out, "dataset root; the split goes to ROOT/<split>");
  flags.Add("split", &split,
            "split to ingest (idx: train or test; imagefolder: its sub-folder, e.g. train or val)");
  flags.Add("shards", &shards, "number of shards");
  flags.Add("storage", &folder.storage,
            "imagefolder: original (the files' bytes unchanged) or reencode (short side shrunk "
            "to --short-side, baseline 4:2:0 RGB JPEG at --quality: 2-3x fewer bytes)");
  flags.Add("short-side", &folder.short_side, "reencode: the short side's length in pixels");
  int64_t num_classes = 10;
  flags.Add("num-classes", &num_classes,
            "idx: the number of classes (IDX files declare none; a label at or above it is an "
            "error)");
  flags.Add("quality", &quality, "reencode: JPEG quality");
  ParseFlagsOrExit(flags, argc - 2, argv + 2);
  if (out.empty()) throw Error(InvalidArgumentError("--out is required"));
  if (format != "idx" && format != "imagefolder") {
    throw Error(InvalidArgumentError("--format " + format + " is not known (idx, imagefolder)"));
  }
  if (shards <= 0) throw Error(InvalidArgumentError("--shards must be positive"));
  folder.quality = static_cast<int>(quality);
  if (format == "idx" && folder.storage != "original") {
    throw Error(InvalidArgumentError("--storage " + folder.storage +
                                     " applies to --format imagefolder only"));
  }
  std::unique_ptr<dataloader::Dataset> idx;  // the records of an idx source read from it
  std::unique_ptr<dataloader::RecordSource> records;
  std::string name;
  if (format == "idx") {
    auto opened = dataloader::OpenFashionMnist(src, split, num_classes);
    if (!opened.ok()) throw Error(opened.status());
    idx = std::move(*opened);
    records = dataloader::RawRecords(*idx);
    name = idx->identity().name;
  } else {
    auto opened = dataloader::OpenImageFolder(src + "/" + split, folder);
    if (!opened.ok()) throw Error(opened.status());
    records = std::move(*opened);
    name = BaseName(src) + "/" + split;
  }

  dataloader::IngestOptions options;
  options.out_dir = out + "/" + split;
  options.name = name;
  Json::Object source{{"format", format}, {"path", src}, {"split", split}};
  if (folder.storage == "reencode") {
    source.emplace("storage", folder.storage);
    source.emplace("short_side", folder.short_side);
    source.emplace("quality", static_cast<int64_t>(folder.quality));
  }
  options.source = Json(std::move(source));
  options.storage = folder.storage;
  options.shards = shards;
  const auto start = std::chrono::steady_clock::now();
  auto progress = [&](int64_t shards_done, int64_t records, int64_t total) {
    const double s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const double rate = static_cast<double>(records) / std::max(s, 1e-9);
    std::fprintf(stderr, "\rshard %lld/%lld  %lld/%lld images (%.1f%%)  %.0f images/s  ETA %.0f s",
                 static_cast<long long>(shards_done), static_cast<long long>(shards),
                 static_cast<long long>(records), static_cast<long long>(total),
                 100.0 * static_cast<double>(records) / std::max<double>(1, total), rate,
                 static_cast<double>(total - records) / std::max(rate, 1e-9));
  };
  auto manifest = dataloader::IngestRecords(*records, options, progress);
  std::fprintf(stderr, "\n");
  if (!manifest.ok()) throw Error(manifest.status());
  std::cout << "ingested " << manifest->count << " images of " << manifest->name << " into "
            << manifest->shards.size() << " shards in " << options.out_dir << "; content hash "
            << manifest->content_hash << "\n";
  if (!manifest->skipped.empty()) {
    std::cout << manifest->skipped.size() << " unreadable items skipped (listed in "
              << options.out_dir << "/manifest.json)\n";
  }
  return 0;
}

}  // namespace maestro::tools
