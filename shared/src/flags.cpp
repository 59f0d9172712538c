#include "maestro/shared/flags.h"

#include <cerrno>
#include <cstdlib>
#include <iostream>
#include <sstream>

namespace maestro {

FlagParser::FlagParser(std::string program, std::string summary)
    : program_(std::move(program)), summary_(std::move(summary)) {}

void FlagParser::Add(const std::string& name, int64_t* target, const std::string& help) {
  flags_.push_back({name, target, help, std::to_string(*target)});
}
void FlagParser::Add(const std::string& name, double* target, const std::string& help) {
  std::ostringstream text;
  text << *target;
  flags_.push_back({name, target, help, text.str()});
}
void FlagParser::Add(const std::string& name, std::string* target, const std::string& help) {
  flags_.push_back({name, target, help, target->empty() ? "\"\"" : *target});
}
void FlagParser::Add(const std::string& name, bool* target, const std::string& help) {
  flags_.push_back({name, target, help, *target ? "true" : "false"});
}

void FlagParser::Add(const std::string& name, std::vector<std::string>* target,
                     const std::string& help) {
  flags_.push_back({name, target, help + " (repeatable)", "none"});
}

Status FlagParser::Assign(const Flag& flag, const std::string& value) const {
  auto bad = [&](const std::string& want) {
    return InvalidArgumentError("--" + flag.name + ": '" + value + "' is not " + want);
  };
  if (auto* p = std::get_if<int64_t*>(&flag.target)) {
    char* end = nullptr;
    errno = 0;
    long long v = std::strtoll(value.c_str(), &end, 10);
    if (value.empty() || *end != '\0' || errno == ERANGE) return bad("an integer");
    **p = v;
  } else if (auto* p = std::get_if<double*>(&flag.target)) {
    char* end = nullptr;
    errno = 0;
    double v = std::strtod(value.c_str(), &end);
    if (value.empty() || *end != '\0' || errno == ERANGE) return bad("a number");
    **p = v;
  } else if (auto* p = std::get_if<std::string*>(&flag.target)) {
    **p = value;
  } else if (auto* p = std::get_if<std::vector<std::string>*>(&flag.target)) {
    (*p)->push_back(value);
  } else if (auto* p = std::get_if<bool*>(&flag.target)) {
    if (value == "true" || value == "1")
      **p = true;
    else if (value == "false" || value == "0")
      **p = false;
    else
      return bad("true or false");
  }
  return OkStatus();
}

Status FlagParser::Parse(int argc, const char* const* argv) {
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      help_requested_ = true;
      return OkStatus();
    }
    if (arg.rfind("--", 0) != 0) {
      return InvalidArgumentError("unexpected argument '" + arg + "' (flags start with --)");
    }
    std::string name = arg.substr(2), value;
    bool has_value = false;
    if (auto eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      has_value = true;
    }
    const Flag* flag = nullptr;
    for (const auto& f : flags_) {
      if (f.name == name) flag = &f;
    }
    if (flag == nullptr) return InvalidArgumentError("unknown flag --" + name);
    if (!has_value) {
      if (std::holds_alternative<bool*>(flag->target)) {
        value = "true";
      } else if (i + 1 < argc) {
        value = argv[++i];
      } else {
        return InvalidArgumentError("--" + name + " needs a value");
      }
    }
    MAESTRO_RETURN_IF_ERROR(Assign(*flag, value));
  }
  return OkStatus();
}

std::string FlagParser::Usage() const {
  std::ostringstream out;
  out << "usage: " << program_ << " [flags]\n\n" << summary_ << "\n\nflags:\n";
  for (const auto& f : flags_) {
    std::string left = "  --" + f.name;
    if (!std::holds_alternative<bool*>(f.target)) left += " VALUE";
    out << left;
    out << std::string(left.size() < 28 ? 28 - left.size() : 1, ' ') << f.help
        << " (default: " << f.default_text << ")\n";
  }
  out << "  --help                    show this help\n";
  return out.str();
}

void ParseFlagsOrExit(FlagParser& parser, int argc, const char* const* argv) {
  Status status = parser.Parse(argc, argv);
  if (parser.help_requested()) {
    std::cout << parser.Usage();
    std::exit(0);
  }
  if (!status.ok()) {
    std::cerr << argv[0] << ": " << status.message() << "\n(see --help)\n";
    std::exit(2);
  }
}

}  // namespace maestro
