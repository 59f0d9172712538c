// Slurm's compressed host lists (SLURM_JOB_NODELIST, `scontrol show hostnames` input):
// "node[01-04,07]", "rack[1-2]-n[01-02]" (several bracket groups: every
// combination, in order), "a,b,c" and mixtures. A range keeps the zero padding of its first
// bound ("08-10" -> 08, 09, 10; "[01-03,7]" -> 01, 02, 03, 7), as `scontrol show hostnames`
// does. A suffix after a bracket group ("gpu[1-2]-ib") is read too, though Debian's Slurm
// 22.05 refuses it. Plain functions, no I/O.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "maestro/shared/status.h"

namespace maestro {

// At most this many hosts from one list (a bigger allocation is refused, not expanded).
inline constexpr int64_t kMaxHostListHosts = 65536;

// The hosts of `list`, in Slurm's order. INVALID_ARGUMENT naming the problem for an empty
// list or host, an unbalanced or nested bracket, a range that is not two decimals with
// first <= last, or more than kMaxHostListHosts hosts.
Result<std::vector<std::string>> ExpandHostList(std::string_view list);

}  // namespace maestro
