#pragma once

#include <cstdlib>
#include <filesystem>
#include <string>

namespace healthtwin::testing {

/// A fresh directory under $TMPDIR (or /tmp), removed with everything in it
/// when the object goes away (kept when HEALTHTWIN_KEEP_TEST_DIRS is set, to
/// read node logs after a failure).
class temp_dir {
public:
  temp_dir() {
    auto base = std::filesystem::temp_directory_path() / "healthtwin-test-XXXXXX";
    std::string tmpl = base.string();
    if (!mkdtemp(tmpl.data()))
      std::abort();
    path_ = tmpl;
  }
  ~temp_dir() {
    if (std::getenv("HEALTHTWIN_KEEP_TEST_DIRS"))
      return;
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;

  const std::filesystem::path& path() const noexcept { return path_; }
  std::string str() const { return path_.string(); }

private:
  std::filesystem::path path_;
};

}  // namespace healthtwin::testing
