/*
 * wasmvisor's optional host helpers, as one tiny N-API addon (N-API, so the same binary loads in
 * Node and Electron). Everything here is optional: callers feature-test each export and fall back
 * when the addon, or the host call behind an export, is missing.
 *
 *   punchHole(fd, offset, length): Promise<void>
 *       fallocate(PUNCH_HOLE | KEEP_SIZE): the range reads as zeros and its blocks are freed.
 *   zeroRange(fd, offset, length): Promise<void>
 *       fallocate(ZERO_RANGE | KEEP_SIZE): the range reads as zeros and stays allocated.
 *
 * Both run on libuv's thread pool (the vCPU never waits on host I/O) and reject with an Error
 * whose `code` is the errno name (e.g. 'EOPNOTSUPP' on a file system without the operation).
 *
 *   madviseDontNeed(view: Uint8Array): void
 *       Gives the pages under `view` (page-aligned start and length, e.g. a range of guest RAM
 *       in a WebAssembly.Memory, shared or not) back to the OS: the process's RSS drops at once
 *       and the pages read as zeros when next touched. Linux: madvise(MADV_DONTNEED), which
 *       zero-fills private anonymous memory on the next touch. macOS: MADV_DONTNEED only marks
 *       pages, so the range is replaced by a fresh anonymous mapping (MAP_FIXED), which has the
 *       same effect. Synchronous: one system call, no I/O. Throws with `code` on failure.
 *   pageSize: number
 *       The host page size, which madviseDontNeed's ranges must be aligned to.
 *
 *   ofdLock(fd, byte, exclusive): void      ofdUnlock(fd, byte): void
 *   ofdTest(fd, byte, exclusive): boolean
 *       Open-file-description locks (fcntl F_OFD_SETLK / F_OFD_GETLK) on one byte: the kind QEMU
 *       takes on image files, so that images are locked against QEMU and QEMU against us. Lock
 *       and unlock never wait: a conflict throws with code 'EAGAIN'. Test says whether another
 *       open file description (another process, or another open of this one) holds a lock on
 *       the byte that a lock of that kind would conflict with. Where F_OFD_* does not exist
 *       (macOS) they throw with code 'ENOSYS'.
 *
 *   seekData(fd, offset, hole): number
 *       lseek(SEEK_DATA, or SEEK_HOLE with `hole`): where the next data (or hole) at or after
 *       `offset` starts, -1 when there is no data past it (ENXIO). What `qemu-img map` asks of a
 *       raw file. Synchronous (file system metadata only). 'ENOSYS' where the host has neither.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <node_api.h>
#include <sys/mman.h>
#include <unistd.h>

#ifdef __linux__
#include <linux/falloc.h>
#define HAVE_FALLOCATE 1
#else
#define HAVE_FALLOCATE 0
#endif

typedef struct {
  int fd;
  int mode;
  int64_t offset;
  int64_t length;
  int err;
  napi_deferred deferred;
  napi_async_work work;
} FallocateJob;

static const char *errno_code(int e) {
  switch (e) {
    case EOPNOTSUPP: return "EOPNOTSUPP";
    case ENOSYS: return "ENOSYS";
    case EBADF: return "EBADF";
    case EINVAL: return "EINVAL";
    case EIO: return "EIO";
    case ENOSPC: return "ENOSPC";
    case EPERM: return "EPERM";
    case EFBIG: return "EFBIG";
    case EINTR: return "EINTR";
    case ENODEV: return "ENODEV";
    case ESPIPE: return "ESPIPE";
    case ETXTBSY: return "ETXTBSY";
    case ECANCELED: return "ECANCELED";
    case EAGAIN: return "EAGAIN";
    case EACCES: return "EACCES";
    default: return "EUNKNOWN";
  }
}

static void fallocate_execute(napi_env env, void *data) {
  (void)env;
  FallocateJob *job = data;
#if HAVE_FALLOCATE
  int r;
  do {
    r = fallocate(job->fd, job->mode, (off_t)job->offset, (off_t)job->length);
  } while (r != 0 && errno == EINTR);
  job->err = r == 0 ? 0 : errno;
#else
  job->err = ENOSYS;
#endif
}

static void fallocate_complete(napi_env env, napi_status status, void *data) {
  FallocateJob *job = data;
  if (status == napi_ok && job->err == 0) {
    napi_value undef;
    napi_get_undefined(env, &undef);
    napi_resolve_deferred(env, job->deferred, undef);
  } else {
    int e = status == napi_ok ? job->err : ECANCELED;
    napi_value code, msg, error;
    napi_create_string_utf8(env, errno_code(e), NAPI_AUTO_LENGTH, &code);
    napi_create_string_utf8(env, strerror(e), NAPI_AUTO_LENGTH, &msg);
    napi_create_error(env, code, msg, &error);
    napi_value errnum;
    napi_create_int32(env, e, &errnum);
    napi_set_named_property(env, error, "errno", errnum);
    napi_reject_deferred(env, job->deferred, error);
  }
  napi_delete_async_work(env, job->work);
  free(job);
}

/* Reads an integer argument in 0..2^53 (JS numbers are exact up to there). */
static int get_index(napi_env env, napi_value v, int64_t *out) {
  double d;
  if (napi_get_value_double(env, v, &d) != napi_ok) return 0;
  if (!(d >= 0 && d <= 9007199254740992.0) || d != (double)(int64_t)d) return 0;
  *out = (int64_t)d;
  return 1;
}

static napi_value start_fallocate(napi_env env, napi_callback_info info, int mode, const char *name) {
  size_t argc = 3;
  napi_value argv[3];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  int64_t fd, offset, length;
  if (argc < 3 || !get_index(env, argv[0], &fd) || fd > INT32_MAX ||
      !get_index(env, argv[1], &offset) || !get_index(env, argv[2], &length) || length == 0) {
    napi_throw_type_error(env, "ERR_INVALID_ARG",
                          "expected (fd, offset, length): non-negative integers, length > 0");
    return NULL;
  }
  FallocateJob *job = calloc(1, sizeof *job);
  if (!job) {
    napi_throw_error(env, "ENOMEM", "out of memory");
    return NULL;
  }
  job->fd = (int)fd;
  job->mode = mode;
  job->offset = offset;
  job->length = length;
  napi_value promise, resource_name;
  if (napi_create_promise(env, &job->deferred, &promise) != napi_ok ||
      napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &resource_name) != napi_ok ||
      napi_create_async_work(env, NULL, resource_name, fallocate_execute, fallocate_complete, job,
                             &job->work) != napi_ok ||
      napi_queue_async_work(env, job->work) != napi_ok) {
    free(job);
    napi_throw_error(env, "EUNKNOWN", "could not queue the fallocate job");
    return NULL;
  }
  return promise;
}

#if HAVE_FALLOCATE
#define MODE_PUNCH (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE)
#define MODE_ZERO (FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE)
#else
#define MODE_PUNCH 0
#define MODE_ZERO 0
#endif

static napi_value punch_hole(napi_env env, napi_callback_info info) {
  return start_fallocate(env, info, MODE_PUNCH, "wasmvisor.punchHole");
}

static napi_value zero_range(napi_env env, napi_callback_info info) {
  return start_fallocate(env, info, MODE_ZERO, "wasmvisor.zeroRange");
}

static void throw_errno(napi_env env, int e) {
  napi_value code, msg, error, errnum;
  napi_create_string_utf8(env, errno_code(e), NAPI_AUTO_LENGTH, &code);
  napi_create_string_utf8(env, strerror(e), NAPI_AUTO_LENGTH, &msg);
  napi_create_error(env, code, msg, &error);
  napi_create_int32(env, e, &errnum);
  napi_set_named_property(env, error, "errno", errnum);
  napi_throw(env, error);
}

static napi_value madvise_dontneed(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  bool is_typedarray = false;
  if (argc < 1 || napi_is_typedarray(env, argv[0], &is_typedarray) != napi_ok || !is_typedarray) {
    napi_throw_type_error(env, "ERR_INVALID_ARG", "expected a Uint8Array");
    return NULL;
  }
  napi_typedarray_type type;
  size_t length;
  void *data;
  if (napi_get_typedarray_info(env, argv[0], &type, &length, &data, NULL, NULL) != napi_ok ||
      type != napi_uint8_array) {
    napi_throw_type_error(env, "ERR_INVALID_ARG", "expected a Uint8Array");
    return NULL;
  }
  long ps = sysconf(_SC_PAGESIZE);
  /* Only whole pages: rounding here would drop a neighbour's data. */
  if (ps <= 0 || (uintptr_t)data % (uintptr_t)ps != 0 || length % (size_t)ps != 0) {
    napi_throw_range_error(env, "EINVAL", "view start and length must be page-aligned");
    return NULL;
  }
  if (length == 0) return NULL;
#if defined(__APPLE__)
  void *r = mmap(data, length, PROT_READ | PROT_WRITE, MAP_FIXED | MAP_PRIVATE | MAP_ANON, -1, 0);
  if (r == MAP_FAILED) {
    throw_errno(env, errno);
    return NULL;
  }
#elif defined(MADV_DONTNEED)
  if (madvise(data, length, MADV_DONTNEED) != 0) {
    throw_errno(env, errno);
    return NULL;
  }
#else
  throw_errno(env, ENOSYS);
  return NULL;
#endif
  return NULL;
}

/* (fd, byte[, exclusive]) → a 1-byte flock at `byte`, of the kind asked. */
static bool lock_args(napi_env env, napi_callback_info info, int *fd, struct flock *fl) {
  size_t argc = 3;
  napi_value argv[3];
  int64_t byte;
  bool exclusive = false;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return false;
  if (argc < 2 || napi_get_value_int32(env, argv[0], fd) != napi_ok ||
      napi_get_value_int64(env, argv[1], &byte) != napi_ok || byte < 0 ||
      (argc > 2 && napi_get_value_bool(env, argv[2], &exclusive) != napi_ok)) {
    napi_throw_type_error(env, "ERR_INVALID_ARG", "expected (fd, byte, exclusive)");
    return false;
  }
  memset(fl, 0, sizeof *fl);
  fl->l_type = exclusive ? F_WRLCK : F_RDLCK;
  fl->l_whence = SEEK_SET;
  fl->l_start = (off_t)byte;
  fl->l_len = 1;
  return true;
}

static napi_value ofd_set(napi_env env, napi_callback_info info, bool unlock) {
  int fd;
  struct flock fl;
  if (!lock_args(env, info, &fd, &fl)) return NULL;
#ifdef F_OFD_SETLK
  if (unlock) fl.l_type = F_UNLCK;
  if (fcntl(fd, F_OFD_SETLK, &fl) != 0) throw_errno(env, errno);
#else
  (void)unlock;
  throw_errno(env, ENOSYS);
#endif
  return NULL;
}

static napi_value ofd_lock(napi_env env, napi_callback_info info) {
  return ofd_set(env, info, false);
}

static napi_value ofd_unlock(napi_env env, napi_callback_info info) {
  return ofd_set(env, info, true);
}

static napi_value ofd_test(napi_env env, napi_callback_info info) {
  int fd;
  struct flock fl;
  if (!lock_args(env, info, &fd, &fl)) return NULL;
#ifdef F_OFD_GETLK
  if (fcntl(fd, F_OFD_GETLK, &fl) != 0) {
    throw_errno(env, errno);
    return NULL;
  }
  napi_value held;
  napi_get_boolean(env, fl.l_type != F_UNLCK, &held);
  return held;
#else
  throw_errno(env, ENOSYS);
  return NULL;
#endif
}

static napi_value seek_data(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  int fd;
  int64_t offset;
  bool hole;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  if (argc < 3 || napi_get_value_int32(env, argv[0], &fd) != napi_ok ||
      napi_get_value_int64(env, argv[1], &offset) != napi_ok || offset < 0 ||
      napi_get_value_bool(env, argv[2], &hole) != napi_ok) {
    napi_throw_type_error(env, "ERR_INVALID_ARG", "expected (fd, offset, hole)");
    return NULL;
  }
#if defined(SEEK_DATA) && defined(SEEK_HOLE)
  off_t r = lseek(fd, (off_t)offset, hole ? SEEK_HOLE : SEEK_DATA);
  if (r < 0 && errno != ENXIO) {
    throw_errno(env, errno);
    return NULL;
  }
  napi_value out;
  napi_create_int64(env, r < 0 ? -1 : (int64_t)r, &out);
  return out;
#else
  (void)fd;
  (void)hole;
  throw_errno(env, ENOSYS);
  return NULL;
#endif
}

static napi_value init(napi_env env, napi_value exports) {
  napi_value page_size;
  napi_create_int64(env, (int64_t)sysconf(_SC_PAGESIZE), &page_size);
  napi_property_descriptor props[] = {
      {"punchHole", NULL, punch_hole, NULL, NULL, NULL, napi_enumerable, NULL},
      {"zeroRange", NULL, zero_range, NULL, NULL, NULL, napi_enumerable, NULL},
      {"madviseDontNeed", NULL, madvise_dontneed, NULL, NULL, NULL, napi_enumerable, NULL},
      {"pageSize", NULL, NULL, NULL, NULL, page_size, napi_enumerable, NULL},
      {"ofdLock", NULL, ofd_lock, NULL, NULL, NULL, napi_enumerable, NULL},
      {"ofdUnlock", NULL, ofd_unlock, NULL, NULL, NULL, napi_enumerable, NULL},
      {"ofdTest", NULL, ofd_test, NULL, NULL, NULL, napi_enumerable, NULL},
      {"seekData", NULL, seek_data, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}

NAPI_MODULE(wasmvisor_native, init)
