// examples/tutorial/checks/snippets.cpp — keeps docs/tutorial.md honest: every ```cpp block in
// it must be marked with the file it was taken from (`<!-- snippet: path -->` on the line
// before), and its lines must appear in that file, in the same order (leading and trailing
// spaces ignored; a line `// ...` stands for omitted code). Prints what does not match.
//   snippets <repository root> docs/tutorial.md
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

namespace {

std::string trim(const std::string& s) {
  const auto first = s.find_first_not_of(" \t\r");
  if (first == std::string::npos) return {};
  const auto last = s.find_last_not_of(" \t\r");
  return s.substr(first, last - first + 1);
}

bool read_lines(const std::string& path, std::vector<std::string>& lines) {
  std::ifstream in(path);
  if (!in) return false;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return true;
}

}  // namespace

int main(int argc, char* argv[]) {
  if (argc != 3) {
    std::cerr << "usage: snippets <repository root> <markdown file>\n";
    return 2;
  }
  const std::string root = argv[1];
  std::vector<std::string> doc;
  if (!read_lines(root + "/" + argv[2], doc)) {
    std::cerr << "cannot read " << root << "/" << argv[2] << '\n';
    return 2;
  }
  const std::string marker = "<!-- snippet: ";
  int blocks = 0, problems = 0;
  for (std::size_t i = 0; i < doc.size(); ++i) {
    if (trim(doc[i]) != "```cpp") continue;
    ++blocks;
    const std::size_t fence = i + 1;  // the block's first line, for messages (1-based: fence)
    const std::string previous = i > 0 ? trim(doc[i - 1]) : std::string();
    std::vector<std::string> block;
    for (++i; i < doc.size() && trim(doc[i]) != "```"; ++i) block.push_back(doc[i]);
    if (previous.rfind(marker, 0) != 0 || previous.size() < marker.size() + 4) {
      std::cerr << argv[2] << ":" << fence << ": a ```cpp block without a '" << marker
                << "file -->' line before it\n";
      ++problems;
      continue;
    }
    const std::string source =
        trim(previous.substr(marker.size(), previous.size() - marker.size() - 3));
    std::vector<std::string> code;
    if (!read_lines(root + "/" + source, code)) {
      std::cerr << argv[2] << ":" << fence << ": cannot read " << source << '\n';
      ++problems;
      continue;
    }
    std::size_t at = 0;  // the next source line a snippet line may match
    for (const std::string& raw : block) {
      const std::string line = trim(raw);
      if (line.empty() || line == "// ...") continue;
      while (at < code.size() && trim(code[at]) != line) ++at;
      if (at == code.size()) {
        std::cerr << argv[2] << ":" << fence << ": this line is not in " << source
                  << " (or not in this order):\n    " << line << '\n';
        ++problems;
        break;
      }
      ++at;
    }
  }
  std::cout << blocks << " C++ blocks checked, " << problems << " problem(s)\n";
  return problems == 0 && blocks > 0 ? 0 : 1;
}
