// maestro-bench-decode: the loader's per-sample work on JPEG files, images/s.
//
//   maestro-bench-decode --list FILES.txt [--threads N] [--seconds S] [--size 224]
//
// Reads the listed files into memory, then N threads each take files in turn and run what the
// loader runs per sample (AugmentEncoded: RandomResizedCrop drawn from the header, only the
// crop's region decoded, at 1/2-1/8 DCT scale when it stays >= size, Pillow's bicubic resize
// with the flip folded in, CHW uint8 out) for about S seconds. Prints one JSON line.
// bench/data_path.py runs it beside torchvision + PIL on the same files.
#include <torch/torch.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <iostream>
#include <thread>
#include <vector>

#include "maestro/dataloader/dataset.h"
#include "maestro/dataloader/jpeg.h"
#include "maestro/dataloader/transform.h"
#include "maestro/engine/host_memory.h"
#include "maestro/shared/file_util.h"
#include "maestro/shared/flags.h"
#include "maestro/shared/json.h"

int main(int argc, char** argv) {
  std::string list;
  int64_t threads = 1, size = 224;
  double seconds = 5;
  maestro::FlagParser flags("maestro-bench-decode",
                            "Images/s of the loader's decode + RandomResizedCrop + flip on the "
                            "JPEG files listed (one path per line).");
  flags.Add("list", &list, "file with one JPEG path per line");
  flags.Add("threads", &threads, "decoding threads");
  flags.Add("seconds", &seconds, "how long to run (after one warm-up pass per thread)");
  flags.Add("size", &size, "output side");
  maestro::ParseFlagsOrExit(flags, argc, argv);
  maestro::engine::TuneHostAllocatorForTraining();  // as maestro-train runs
  torch::set_num_threads(1);
  std::vector<maestro::dataloader::EncodedSample> samples;
  std::ifstream paths(list);
  for (std::string path; std::getline(paths, path);) {
    if (path.empty()) continue;
    auto bytes = maestro::ReadFile(path);
    auto info = bytes.ok() ? maestro::dataloader::ReadJpegHeader(*bytes)
                           : maestro::Result<maestro::dataloader::JpegInfo>(bytes.status());
    if (!info.ok()) {
      std::cerr << path << ": " << info.status().ToString() << "\n";
      return 2;
    }
    maestro::dataloader::EncodedSample s;
    s.index = static_cast<int64_t>(samples.size());
    s.height = info->height;
    s.width = info->width;
    s.bytes = std::move(*bytes);
    samples.push_back(std::move(s));
  }
  if (samples.empty()) {
    std::cerr << "no files in " << list << "\n";
    return 2;
  }
  maestro::dataloader::AugmentOptions options;
  options.output_size = size;
  std::atomic<int64_t> done{0};
  std::atomic<bool> stop{false};
  const auto n = static_cast<int64_t>(samples.size());
  auto work = [&](int64_t t) {
    for (int64_t i = t; i < n; i += threads)  // warm-up: every thread's buffers sized
      (void)maestro::dataloader::AugmentEncoded(samples[static_cast<size_t>(i)], options, 0, 0);
  };
  std::vector<std::thread> pool;
  for (int64_t t = 0; t < threads; ++t) pool.emplace_back(work, t);
  for (auto& th : pool) th.join();
  pool.clear();
  const auto start = std::chrono::steady_clock::now();
  for (int64_t t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      int64_t epoch = 1, count = 0;
      for (int64_t i = t; !stop.load(std::memory_order_relaxed); i += threads) {
        if (i >= n) {
          i -= n;
          ++epoch;
        }
        auto out =
            maestro::dataloader::AugmentEncoded(samples[static_cast<size_t>(i)], options, 0, epoch);
        ++count;
      }
      done += count;
    });
  }
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop = true;
  for (auto& th : pool) th.join();
  const double elapsed =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  maestro::Json out(maestro::Json::Object{
      {"threads", threads},
      {"images", done.load()},
      {"seconds", elapsed},
      {"images_per_s", static_cast<double>(done.load()) / elapsed},
  });
  std::cout << out.Dump() << std::endl;
  return 0;
}
