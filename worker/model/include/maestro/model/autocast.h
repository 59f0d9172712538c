// RAII mixed precision: while an AutocastGuard lives, eligible ops on `device_type` run in
// `dtype` (LibTorch's autocast, as torch.autocast in Python). A guard for a disabled precision
// does nothing, so callers can always construct one. Not thread-safe across threads: autocast
// state is thread-local, and the guard must die on the thread that made it.
#pragma once

#include <ATen/autocast_mode.h>

namespace maestro::model {

class AutocastGuard {
 public:
  AutocastGuard(c10::DeviceType device_type, bool enabled, at::ScalarType dtype = at::kBFloat16)
      : device_type_(device_type), enabled_(enabled) {
    if (!enabled_) return;
    previous_enabled_ = at::autocast::is_autocast_enabled(device_type_);
    previous_dtype_ = at::autocast::get_autocast_dtype(device_type_);
    at::autocast::set_autocast_enabled(device_type_, true);
    at::autocast::set_autocast_dtype(device_type_, dtype);
    at::autocast::increment_nesting();
  }
  ~AutocastGuard() {
    if (!enabled_) return;
    // Leaving the outermost region frees the casted-weight cache, as torch.autocast does.
    if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
    at::autocast::set_autocast_enabled(device_type_, previous_enabled_);
    at::autocast::set_autocast_dtype(device_type_, previous_dtype_);
  }
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;

 private:
  c10::DeviceType device_type_;
  bool enabled_;
  bool previous_enabled_ = false;
  at::ScalarType previous_dtype_ = at::kFloat;
};

}  // namespace maestro::model
