// A pass-through FUSE file system whose writes can be made to fail, for
// tests of I/O errors (issue 4, item 8): the kernel of the test machines has
// no device-mapper, so a failing disk is a file system that answers EIO.
//
//   faulty_fs BACKING_DIR MOUNT_POINT
//
// mounts MOUNT_POINT in the foreground, passing every call through to
// BACKING_DIR. SIGUSR1 makes every call that changes data (write, fsync,
// create, mkdir, rename, unlink, truncate, fallocate) fail with EIO, as a
// dying disk does; SIGUSR2 heals it; SIGTERM unmounts and exits. Reads keep
// working. Needs root (or CAP_SYS_ADMIN) and /dev/fuse.

#define FUSE_USE_VERSION 35

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

#include <fuse3/fuse.h>

namespace {

std::string backing;
std::atomic<bool> failing{false};

std::string real(const char* path) {
  return backing + path;
}

int result(int rc) {
  return rc < 0 ? -errno : rc;
}

// Every operation that changes data starts here.
bool fail_write() {
  return failing.load(std::memory_order_relaxed);
}

int fs_getattr(const char* path, struct stat* st, fuse_file_info* fi) {
  return result(fi ? ::fstat(static_cast<int>(fi->fh), st) : ::lstat(real(path).c_str(), st));
}

int fs_readdir(const char* path, void* buf, fuse_fill_dir_t fill, off_t, fuse_file_info*,
               fuse_readdir_flags) {
  DIR* d = ::opendir(real(path).c_str());
  if (!d)
    return -errno;
  while (auto* e = ::readdir(d)) {
    struct stat st {};
    st.st_ino = e->d_ino;
    st.st_mode = static_cast<mode_t>(e->d_type) << 12;
    if (fill(buf, e->d_name, &st, 0, static_cast<fuse_fill_dir_flags>(0)))
      break;
  }
  ::closedir(d);
  return 0;
}

int fs_open(const char* path, fuse_file_info* fi) {
  if (fail_write() && (fi->flags & (O_WRONLY | O_RDWR | O_TRUNC)))
    return -EIO;
  int fd = ::open(real(path).c_str(), fi->flags);
  if (fd < 0)
    return -errno;
  fi->fh = static_cast<uint64_t>(fd);
  return 0;
}

int fs_create(const char* path, mode_t mode, fuse_file_info* fi) {
  if (fail_write())
    return -EIO;
  int fd = ::open(real(path).c_str(), fi->flags, mode);
  if (fd < 0)
    return -errno;
  fi->fh = static_cast<uint64_t>(fd);
  return 0;
}

int fs_read(const char*, char* buf, size_t size, off_t off, fuse_file_info* fi) {
  return result(static_cast<int>(::pread(static_cast<int>(fi->fh), buf, size, off)));
}

int fs_write(const char*, const char* buf, size_t size, off_t off, fuse_file_info* fi) {
  if (fail_write())
    return -EIO;
  return result(static_cast<int>(::pwrite(static_cast<int>(fi->fh), buf, size, off)));
}

int fs_fsync(const char*, int datasync, fuse_file_info* fi) {
  if (fail_write())
    return -EIO;
  int fd = static_cast<int>(fi->fh);
  return result(datasync ? ::fdatasync(fd) : ::fsync(fd));
}

int fs_fsyncdir(const char*, int, fuse_file_info*) {
  return fail_write() ? -EIO : 0;
}

int fs_release(const char*, fuse_file_info* fi) {
  ::close(static_cast<int>(fi->fh));
  return 0;
}

int fs_truncate(const char* path, off_t size, fuse_file_info* fi) {
  if (fail_write())
    return -EIO;
  return result(fi ? ::ftruncate(static_cast<int>(fi->fh), size)
                   : ::truncate(real(path).c_str(), size));
}

int fs_fallocate(const char*, int mode, off_t off, off_t len, fuse_file_info* fi) {
  if (fail_write())
    return -EIO;
  return result(::fallocate(static_cast<int>(fi->fh), mode, off, len));
}

int fs_mkdir(const char* path, mode_t mode) {
  return fail_write() ? -EIO : result(::mkdir(real(path).c_str(), mode));
}

int fs_rmdir(const char* path) {
  return fail_write() ? -EIO : result(::rmdir(real(path).c_str()));
}

int fs_unlink(const char* path) {
  return fail_write() ? -EIO : result(::unlink(real(path).c_str()));
}

int fs_rename(const char* from, const char* to, unsigned int flags) {
  if (flags != 0)
    return -EINVAL;
  return fail_write() ? -EIO : result(::rename(real(from).c_str(), real(to).c_str()));
}

int fs_link(const char* from, const char* to) {
  return fail_write() ? -EIO : result(::link(real(from).c_str(), real(to).c_str()));
}

int fs_chmod(const char* path, mode_t mode, fuse_file_info*) {
  return result(::chmod(real(path).c_str(), mode));
}

int fs_utimens(const char* path, const timespec tv[2], fuse_file_info*) {
  return result(::utimensat(AT_FDCWD, real(path).c_str(), tv, AT_SYMLINK_NOFOLLOW));
}

int fs_access(const char* path, int mask) {
  return result(::access(real(path).c_str(), mask));
}

int fs_statfs(const char* path, struct statvfs* st) {
  return result(::statvfs(real(path).c_str(), st));
}

void on_signal(int sig) {
  failing.store(sig == SIGUSR1, std::memory_order_relaxed);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: faulty_fs BACKING_DIR MOUNT_POINT\n");
    return 2;
  }
  char resolved[PATH_MAX];
  if (!::realpath(argv[1], resolved)) {
    std::fprintf(stderr, "faulty_fs: backing dir %s: %s\n", argv[1], std::strerror(errno));
    return 2;
  }
  backing = resolved;
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  ::sigaction(SIGUSR1, &sa, nullptr);
  ::sigaction(SIGUSR2, &sa, nullptr);

  fuse_operations ops{};
  ops.getattr = fs_getattr;
  ops.readdir = fs_readdir;
  ops.open = fs_open;
  ops.create = fs_create;
  ops.read = fs_read;
  ops.write = fs_write;
  ops.fsync = fs_fsync;
  ops.fsyncdir = fs_fsyncdir;
  ops.release = fs_release;
  ops.truncate = fs_truncate;
  ops.fallocate = fs_fallocate;
  ops.mkdir = fs_mkdir;
  ops.rmdir = fs_rmdir;
  ops.unlink = fs_unlink;
  ops.rename = fs_rename;
  ops.link = fs_link;
  ops.chmod = fs_chmod;
  ops.utimens = fs_utimens;
  ops.access = fs_access;
  ops.statfs = fs_statfs;
  // Foreground, and every call reaches this process (no attribute cache
  // hides a failing disk).
  char* args[] = {argv[0], const_cast<char*>("-f"), const_cast<char*>("-o"),
                  const_cast<char*>("attr_timeout=0,entry_timeout=0,negative_timeout=0"), argv[2],
                  nullptr};
  return fuse_main(5, args, &ops, nullptr);
}
