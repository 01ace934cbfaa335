// examples/tutorial/cli.hpp — the tutorial's tiny command-line parser (not part of the library):
// options `--name value` or `--name=value` with defaults, flags, `--help`.
//
//   tutorial::Cli cli(argc, argv, "Each rank draws numbers from N(rank, 1).");
//   const auto seed = cli.option<std::uint64_t>("--seed", 2024, "seed of the whole run");
//   if (const auto status = cli.finish(world.rank() == 0)) return *status;  // --help or error
//
// mpirun gives every rank the same arguments, so every rank parses them the same way and
// reaches the same decision (run, print help, refuse) without communicating; only the rank
// passed `print = true` writes the help or the error.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <iostream>
#include <limits>
#include <optional>
#include <sstream>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace tutorial {

class Cli {
 public:
  Cli(int argc, char** argv, std::string summary) : summary_(std::move(summary)) {
    program_ = argc > 0 ? argv[0] : "program";
    const auto slash = program_.find_last_of('/');
    if (slash != std::string::npos) program_ = program_.substr(slash + 1);
    for (int i = 1; i < argc; ++i) args_.emplace_back(argv[i]);
    used_.assign(args_.size(), false);
  }

  /// The value of `--name` (integers accept 1e6; doubles; strings), or `fallback` when absent.
  template <class T>
  T option(const std::string& name, T fallback, const std::string& help) {
    std::ostringstream shown;
    shown << fallback;
    help_lines_.push_back({name + " " + placeholder<T>(), help + " (default " + shown.str() + ")"});
    const std::optional<std::string> text = take_value(name);
    if (!text) return fallback;
    const std::optional<T> value = parse<T>(*text);
    if (!value) {
      errors_.push_back(name + " expects " + kind<T>() + ", got '" + *text + "'");
      return fallback;
    }
    return *value;
  }

  /// True when `--name` is given.
  bool flag(const std::string& name, const std::string& help) {
    help_lines_.push_back({name, help});
    bool seen = false;
    for (std::size_t i = 0; i < args_.size(); ++i) {
      if (!used_[i] && args_[i] == name) used_[i] = seen = true;
    }
    return seen;
  }

  /// Records a problem found after parsing (a value out of range), reported by finish().
  void reject(const std::string& problem) { errors_.push_back(problem); }

  /// Call after every option(): empty to go on; otherwise the exit status (0 after --help, 2
  /// after a bad or unknown argument), with the help or the errors printed when `print`.
  std::optional<int> finish(bool print) {
    bool help = false;
    for (std::size_t i = 0; i < args_.size(); ++i) {
      if (used_[i]) continue;
      if (args_[i] == "--help" || args_[i] == "-h") {
        help = true;
      } else {
        errors_.push_back("unknown argument '" + args_[i] + "'");
      }
    }
    if (help) {
      if (print) std::cout << usage() << std::flush;
      return 0;
    }
    if (errors_.empty()) return std::nullopt;
    if (print) {
      for (const std::string& e : errors_) std::cerr << program_ << ": error: " << e << '\n';
      std::cerr << "run '" << program_ << " --help' for the options\n" << std::flush;
    }
    return 2;
  }

  std::string usage() const {
    std::ostringstream out;
    out << "usage: mpirun -np N " << program_ << " [options]\n\n"
        << wrapped(summary_, 90) << "\noptions:\n";
    std::size_t width = std::string("--help").size();
    for (const auto& line : help_lines_) width = std::max(width, line.first.size());
    for (const auto& line : help_lines_)
      out << "  " << line.first << std::string(width - line.first.size() + 2, ' ') << line.second
          << '\n';
    out << "  --help" << std::string(width - 6 + 2, ' ') << "print this help and exit\n";
    return out.str();
  }

  const std::string& program() const { return program_; }

 private:
  /// `text` broken into lines of at most `width` characters, at spaces.
  static std::string wrapped(const std::string& text, std::size_t width) {
    std::istringstream words(text);
    std::string out, line;
    for (std::string word; words >> word;) {
      if (!line.empty() && line.size() + 1 + word.size() > width) {
        out += line + '\n';
        line.clear();
      }
      line += (line.empty() ? "" : " ") + word;
    }
    return out + line + '\n';
  }

  std::optional<std::string> take_value(const std::string& name) {
    std::optional<std::string> value;
    for (std::size_t i = 0; i < args_.size(); ++i) {
      if (used_[i]) continue;
      if (args_[i] == name) {
        used_[i] = true;
        if (i + 1 < args_.size()) {
          used_[i + 1] = true;
          value = args_[i + 1];
        } else {
          errors_.push_back(name + " needs a value");
        }
      } else if (args_[i].rfind(name + "=", 0) == 0) {
        used_[i] = true;
        value = args_[i].substr(name.size() + 1);
      }
    }
    return value;  // the last one wins, as in most programs
  }

  template <class T>
  static std::optional<T> parse(const std::string& text) {
    if constexpr (std::is_same_v<T, std::string>) {
      return text;
    } else if constexpr (std::is_integral_v<T>) {
      // Whole numbers, also written as 1e6; must fit in T.
      std::istringstream in(text);
      long double v = 0;
      if (!(in >> v) || !in.eof() || std::floor(v) != v) return std::nullopt;
      if (v < static_cast<long double>(std::numeric_limits<T>::min()) ||
          v > static_cast<long double>(std::numeric_limits<T>::max()))
        return std::nullopt;
      return static_cast<T>(v);
    } else {
      std::istringstream in(text);
      T v{};
      if (!(in >> v) || !in.eof()) return std::nullopt;
      return v;
    }
  }

  template <class T>
  static std::string placeholder() {
    if constexpr (std::is_same_v<T, std::string>)
      return "TEXT";
    else if constexpr (std::is_integral_v<T>)
      return "N";
    else
      return "X";
  }
  template <class T>
  static std::string kind() {
    if constexpr (std::is_same_v<T, std::string>)
      return "a text";
    else if constexpr (std::is_unsigned_v<T>)
      return "a whole number >= 0";
    else if constexpr (std::is_integral_v<T>)
      return "a whole number";
    else
      return "a number";
  }

  std::string program_;
  std::string summary_;
  std::vector<std::string> args_;
  std::vector<bool> used_;
  std::vector<std::pair<std::string, std::string>> help_lines_;
  std::vector<std::string> errors_;
};

}  // namespace tutorial
