#include "services/twinctl/completion.hpp"

#include <vector>

namespace healthtwin::twinctl {

namespace {

struct level {
  std::string path;                  // "/alerts/ack"
  std::vector<std::string> words;    // subcommands and long options here
  std::vector<std::string> valued;   // long options that take a value
  std::vector<std::string> children; // paths one level down
};

void walk(const CLI::App& app, const std::string& path, std::vector<level>& out) {
  level l;
  l.path = path;
  for (auto* sub : app.get_subcommands([](const CLI::App*) { return true; })) {
    l.words.push_back(sub->get_name());
    l.children.push_back(path + "/" + sub->get_name());
  }
  for (auto* opt : app.get_options()) {
    if (opt->get_positional())
      continue;
    for (auto& name : opt->get_lnames()) {
      l.words.push_back("--" + name);
      if (opt->get_items_expected_min() > 0)
        l.valued.push_back("--" + name);
    }
  }
  out.push_back(l);
  for (auto* sub : app.get_subcommands([](const CLI::App*) { return true; }))
    walk(*sub, path + "/" + sub->get_name(), out);
}

std::string join(const std::vector<std::string>& xs, const char* sep) {
  std::string out;
  for (auto& x : xs)
    out += (out.empty() ? "" : sep) + x;
  return out;
}

}  // namespace

std::string bash_completion(const CLI::App& app, const std::string& program) {
  std::vector<level> levels;
  walk(app, "", levels);
  std::vector<std::string> paths;
  for (auto& l : levels)
    if (!l.path.empty())
      paths.push_back("\"" + l.path + "\"");
  std::string fn = "_" + program;
  for (auto& c : fn)
    if (!std::isalnum(static_cast<unsigned char>(c)))
      c = '_';
  std::string s = "# bash completion for " + program + " (made by `" + program + " completion bash`)\n";
  s += fn + "() {\n";
  s += "  local cur=\"${COMP_WORDS[COMP_CWORD]}\" prev=\"${COMP_WORDS[COMP_CWORD-1]}\" path=\"\" i\n";
  s += "  for ((i = 1; i < COMP_CWORD; i++)); do\n";
  s += "    case \"$path/${COMP_WORDS[i]}\" in\n";
  s += "      " + join(paths, "|") + ") path=\"$path/${COMP_WORDS[i]}\" ;;\n";
  s += "    esac\n  done\n";
  // After an option that takes a value: file names for files and
  // directories, nothing (the value is the user's) for the others.
  std::vector<std::string> files, values;
  for (auto& l : levels)
    for (auto& v : l.valued)
      (v.ends_with("-file") || v.ends_with("-dir") ? files : values).push_back("\"" + l.path + " " + v + "\"");
  s += "  case \"$path $prev\" in\n";
  if (!files.empty())
    s += "    " + join(files, "|") + ") COMPREPLY=($(compgen -f -- \"$cur\")); return ;;\n";
  if (!values.empty())
    s += "    " + join(values, "|") + ") COMPREPLY=(); return ;;\n";
  s += "  esac\n  case \"$path\" in\n";
  for (auto& l : levels)
    s += "    \"" + l.path + "\") COMPREPLY=($(compgen -W \"" + join(l.words, " ") + "\" -- \"$cur\")) ;;\n";
  s += "  esac\n}\n";
  s += "complete -F " + fn + " " + program + "\n";
  return s;
}

}  // namespace healthtwin::twinctl
