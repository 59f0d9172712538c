#include "maestro/shared/hostlist.h"

#include <cctype>

namespace maestro {
namespace {

Status Bad(std::string_view list, const std::string& why) {
  return InvalidArgumentError("host list '" + std::string(list.substr(0, 200)) + "': " + why);
}

bool AllDigits(std::string_view text) {
  if (text.empty() || text.size() > 18) return false;
  for (char c : text) {
    if (!std::isdigit(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

// "01-04,07" -> {"01", "02", "03", "04", "07"}.
Result<std::vector<std::string>> ExpandRanges(std::string_view list, std::string_view ranges) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= ranges.size()) {
    size_t comma = ranges.find(',', start);
    if (comma == std::string_view::npos) comma = ranges.size();
    const std::string_view item = ranges.substr(start, comma - start);
    const size_t dash = item.find('-');
    const std::string_view first = item.substr(0, dash);
    const std::string_view last = dash == std::string_view::npos ? first : item.substr(dash + 1);
    if (!AllDigits(first) || !AllDigits(last)) {
      return Bad(list, "'[" + std::string(ranges) + "]' is not a list of numbers and ranges");
    }
    const int64_t from = std::stoll(std::string(first)), to = std::stoll(std::string(last));
    if (from > to) return Bad(list, "the range " + std::string(item) + " runs backwards");
    if (to - from + static_cast<int64_t>(out.size()) >= kMaxHostListHosts) {
      return Bad(list, "more than " + std::to_string(kMaxHostListHosts) + " hosts");
    }
    for (int64_t n = from; n <= to; ++n) {
      std::string number = std::to_string(n);
      if (number.size() < first.size()) number.insert(0, first.size() - number.size(), '0');
      out.push_back(std::move(number));
    }
    start = comma + 1;
  }
  return out;
}

// One host pattern (commas only inside brackets): every combination of its bracket groups.
Status ExpandHost(std::string_view list, std::string_view pattern, std::vector<std::string>& out) {
  if (pattern.empty()) return Bad(list, "an empty host name");
  std::vector<std::string> hosts = {""};
  size_t i = 0;
  while (i < pattern.size()) {
    const size_t open = pattern.find('[', i);
    const std::string_view literal =
        pattern.substr(i, open == std::string_view::npos ? std::string_view::npos : open - i);
    if (literal.find(']') != std::string_view::npos) return Bad(list, "an unopened ']'");
    for (std::string& h : hosts) h.append(literal);
    if (open == std::string_view::npos) break;
    const size_t close = pattern.find(']', open);
    if (close == std::string_view::npos) return Bad(list, "an unclosed '['");
    const std::string_view ranges = pattern.substr(open + 1, close - open - 1);
    if (ranges.find('[') != std::string_view::npos) return Bad(list, "a nested '['");
    MAESTRO_ASSIGN_OR_RETURN(std::vector<std::string> numbers, ExpandRanges(list, ranges));
    if (static_cast<int64_t>(hosts.size()) * static_cast<int64_t>(numbers.size()) +
            static_cast<int64_t>(out.size()) >
        kMaxHostListHosts) {
      return Bad(list, "more than " + std::to_string(kMaxHostListHosts) + " hosts");
    }
    std::vector<std::string> next;
    next.reserve(hosts.size() * numbers.size());
    for (const std::string& h : hosts) {
      for (const std::string& n : numbers) next.push_back(h + n);
    }
    hosts = std::move(next);
    i = close + 1;
  }
  out.insert(out.end(), hosts.begin(), hosts.end());
  return OkStatus();
}

}  // namespace

Result<std::vector<std::string>> ExpandHostList(std::string_view list) {
  if (list.empty()) return Bad(list, "empty");
  std::vector<std::string> out;
  size_t start = 0;
  int depth = 0;
  for (size_t i = 0; i <= list.size(); ++i) {
    const char c = i < list.size() ? list[i] : ',';
    if (c == '[') ++depth;
    if (c == ']') --depth;
    if (depth < 0) return Bad(list, "an unopened ']'");
    if (c == ',' && depth == 0) {
      MAESTRO_RETURN_IF_ERROR(ExpandHost(list, list.substr(start, i - start), out));
      start = i + 1;
    }
  }
  if (depth != 0) return Bad(list, "an unclosed '['");
  return out;
}

}  // namespace maestro
