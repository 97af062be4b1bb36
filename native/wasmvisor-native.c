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
 *   readNow(fd, views: Uint8Array[], position): number
 *       preadv2(RWF_NOWAIT) into the views (up to 64 of them), straight into guest RAM: what the
 *       host's page cache holds is read at once, without the thread pool's round trip, and the
 *       call never waits for the disk (RWF_NOWAIT). Returns the bytes read (fewer than asked
 *       when only part was cached, 0 at the end of the file), or -1 when nothing could be read
 *       without waiting (EAGAIN). Throws with `code` otherwise: 'EOPNOTSUPP' / 'ENOSYS' /
 *       'EINVAL' where the file system or the host has no RWF_NOWAIT reads (Linux 4.14+).
 *
 *   seekData(fd, offset, hole): number
 *       lseek(SEEK_DATA, or SEEK_HOLE with `hole`): where the next data (or hole) at or after
 *       `offset` starts, -1 when there is no data past it (ENXIO). What `qemu-img map` asks of a
 *       raw file. Synchronous (file system metadata only). 'ENOSYS' where the host has neither.
 *
 *   icmpEchoOpen(ipv6, onMessage, mode = 'auto'): { kind, id, send(addr, seq, payload, ttl), close() }
 *       An ICMP (ICMPv6) echo socket for net=user's ping beyond the gateway (Linux; 'ENOSYS'
 *       elsewhere). First an unprivileged datagram socket (socket(AF_INET, SOCK_DGRAM,
 *       IPPROTO_ICMP)), which the kernel allows to the groups in net.ipv4.ping_group_range (it
 *       covers ICMPv6 too; Debian's default allows everyone); where that is refused, a raw ICMP
 *       socket, which needs root or CAP_NET_RAW. Neither: throws with `code` = the datagram
 *       socket's errno name (EACCES: the sysctl) and `rawCode` = the raw socket's (EPERM).
 *       `kind` says which ('dgram' / 'raw'); `id` is the echo identifier on the wire: a datagram
 *       socket's is the kernel's (it rewrites ours), a raw socket's is chosen here, and as a raw
 *       socket sees every ICMP packet of the host, only replies carrying it are passed on (raw
 *       IPv4 delivers the IP header: stepped over, the ICMP checksum checked here; a kernel
 *       filter lets only echo replies and errors through). send() is one sendto (never waits;
 *       throws with `code`, e.g. ENETUNREACH), with the TTL / hop limit given (-1: default).
 *       Receiving runs on the event loop (uv_poll on the fd, unref'd: it does not keep the
 *       process alive): onMessage(from, type, code, seq, payload, ttl, info) for an echo reply
 *       (payload: the data after the 8-byte header) and for an ICMP error that quotes one of our
 *       requests (payload null, info: the error's second header word; a datagram socket gets
 *       these from its error queue, IP_RECVERR, with the reporting router as `from`). ttl is the
 *       TTL / hop limit it arrived with, -1 if unknown. close() (or the object's finalizer, or
 *       the environment's teardown, e.g. a worker thread exiting) stops polling and closes the
 *       fd (uv_close).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <node_api.h>
#include <sys/mman.h>
#include <sys/uio.h>
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
    case EPROTONOSUPPORT: return "EPROTONOSUPPORT";
    case EAFNOSUPPORT: return "EAFNOSUPPORT";
    case ENETUNREACH: return "ENETUNREACH";
    case EHOSTUNREACH: return "EHOSTUNREACH";
    case EMSGSIZE: return "EMSGSIZE";
    case ENOBUFS: return "ENOBUFS";
    case ENOMEM: return "ENOMEM";
    case EMFILE: return "EMFILE";
    case ENFILE: return "ENFILE";
    case EADDRNOTAVAIL: return "EADDRNOTAVAIL";
    case ENETDOWN: return "ENETDOWN";
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

/* ---- reads from the page cache, never waiting for the disk ---------------------------------- */
#define READ_NOW_MAX_VIEWS 64

static napi_value read_now(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  int fd;
  int64_t position;
  bool is_array = false;
  uint32_t n = 0;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  if (argc < 3 || napi_get_value_int32(env, argv[0], &fd) != napi_ok ||
      napi_is_array(env, argv[1], &is_array) != napi_ok || !is_array ||
      napi_get_array_length(env, argv[1], &n) != napi_ok ||
      napi_get_value_int64(env, argv[2], &position) != napi_ok || position < 0) {
    napi_throw_type_error(env, "ERR_INVALID_ARG", "expected (fd, Uint8Array[], position)");
    return NULL;
  }
  struct iovec iov[READ_NOW_MAX_VIEWS];
  int count = 0;
  for (uint32_t i = 0; i < n && count < READ_NOW_MAX_VIEWS; i++) {
    napi_value v;
    bool is_typedarray = false;
    napi_typedarray_type type;
    size_t length;
    void *data;
    if (napi_get_element(env, argv[1], i, &v) != napi_ok ||
        napi_is_typedarray(env, v, &is_typedarray) != napi_ok || !is_typedarray ||
        napi_get_typedarray_info(env, v, &type, &length, &data, NULL, NULL) != napi_ok ||
        type != napi_uint8_array) {
      napi_throw_type_error(env, "ERR_INVALID_ARG", "expected (fd, Uint8Array[], position)");
      return NULL;
    }
    if (length == 0) continue;
    iov[count].iov_base = data;
    iov[count].iov_len = length;
    count++;
  }
  int64_t got = 0;
  if (count > 0) {
#if defined(__linux__) && defined(RWF_NOWAIT)
    ssize_t r;
    do {
      r = preadv2(fd, iov, count, (off_t)position, RWF_NOWAIT);
    } while (r < 0 && errno == EINTR);
    if (r < 0 && errno != EAGAIN) {
      throw_errno(env, errno);
      return NULL;
    }
    got = r < 0 ? -1 : (int64_t)r;
#else
    (void)fd;
    (void)position;
    throw_errno(env, ENOSYS);
    return NULL;
#endif
  }
  napi_value out;
  napi_create_int64(env, got, &out);
  return out;
}

/* ---- ICMP echo sockets (ping beyond the user network's gateway) ---------------------------- */
#ifdef __linux__
#include <arpa/inet.h>
#include <linux/errqueue.h>
#include <linux/icmp.h>
#include <netinet/icmp6.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <uv.h>

#define ECHO_BUF 65536
#define ECHO_BATCH 64

typedef struct EchoSock {
  napi_env env;
  napi_ref cb;
  napi_async_context ctx;
  uv_poll_t poll;
  int fd;
  bool v6, raw;
  bool closing;  /* close started: the fd is no longer used */
  bool wrapped;  /* the JS object is alive (its finalizer not run) */
  bool hooked;   /* the env cleanup hook is registered */
  bool handle_open;
  uint16_t id;   /* the echo identifier on the wire: ours (raw) or the kernel's (datagram) */
  int ttl;       /* the TTL / hop limit last set, -1: the default */
  uint8_t *buf;
} EchoSock;

static void echo_free_maybe(EchoSock *s) {
  if (s->wrapped || s->handle_open) return;
  free(s->buf);
  free(s);
}

static void echo_on_close(uv_handle_t *h) {
  EchoSock *s = h->data;
  close(s->fd);
  s->handle_open = false;
  echo_free_maybe(s);
}

static void echo_cleanup_hook(void *arg);

/* Stops polling and releases the fd, the callback and the async context (idempotent). */
static void echo_close(EchoSock *s, bool from_hook) {
  if (s->closing) return;
  s->closing = true;
  if (s->hooked && !from_hook) napi_remove_env_cleanup_hook(s->env, echo_cleanup_hook, s);
  s->hooked = false;
  if (s->cb) napi_delete_reference(s->env, s->cb);
  s->cb = NULL;
  if (s->ctx) napi_async_destroy(s->env, s->ctx);
  s->ctx = NULL;
  uv_poll_stop(&s->poll);
  uv_close((uv_handle_t *)&s->poll, echo_on_close);
}

static void echo_cleanup_hook(void *arg) { echo_close(arg, true); }

static void echo_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  EchoSock *s = data;
  echo_close(s, false);
  s->wrapped = false;
  echo_free_maybe(s);
}

static uint16_t icmp_sum(const uint8_t *p, size_t n) {
  uint32_t sum = 0;
  for (size_t i = 0; i + 1 < n; i += 2) sum += (uint32_t)(p[i] << 8 | p[i + 1]);
  if (n & 1) sum += (uint32_t)p[n - 1] << 8;
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return (uint16_t)~sum;
}

static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }

/* Calls the JS callback: (from, type, code, seq, payload | null, ttl, info). */
static void echo_deliver(EchoSock *s, const char *from, int type, int code, int seq,
                         const uint8_t *payload, size_t len, bool has_payload, int ttl,
                         uint32_t info) {
  napi_env env = s->env;
  if (!s->cb || s->closing) return;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value fn, recv, argv[7], result;
  napi_get_reference_value(env, s->cb, &fn);
  napi_get_global(env, &recv); /* napi_make_callback wants an object */
  napi_create_string_utf8(env, from, NAPI_AUTO_LENGTH, &argv[0]);
  napi_create_int32(env, type, &argv[1]);
  napi_create_int32(env, code, &argv[2]);
  napi_create_int32(env, seq, &argv[3]);
  if (has_payload) {
    void *copy;
    napi_create_buffer_copy(env, len, len ? payload : (const void *)"", &copy, &argv[4]);
  } else {
    napi_get_null(env, &argv[4]);
  }
  napi_create_int32(env, ttl, &argv[5]);
  napi_create_uint32(env, info, &argv[6]);
  if (fn && napi_make_callback(env, s->ctx, recv, fn, 7, argv, &result) != napi_ok) {
    bool pending = false;
    napi_is_exception_pending(env, &pending);
    if (pending) {
      napi_value err;
      napi_get_and_clear_last_exception(env, &err);
      napi_fatal_exception(env, err);
    }
  }
  napi_close_handle_scope(env, scope);
}

static bool is_error_type(bool v6, int type) {
  if (v6) return type == ICMP6_DST_UNREACH || type == ICMP6_PACKET_TOO_BIG ||
                type == ICMP6_TIME_EXCEEDED || type == ICMP6_PARAM_PROB;
  return type == ICMP_DEST_UNREACH || type == ICMP_TIME_EXCEEDED || type == ICMP_PARAMETERPROB;
}

/*
 * One ICMP message that arrived (`m`, `n` bytes, the IP header already stepped over): an echo
 * reply with our identifier, or an error about an echo request of ours, goes to JS.
 */
static void echo_message(EchoSock *s, const char *from, const uint8_t *m, size_t n, int ttl) {
  if (n < 8) return;
  int type = m[0], code = m[1];
  int reply = s->v6 ? ICMP6_ECHO_REPLY : ICMP_ECHOREPLY;
  if (type == reply) {
    /* A datagram socket only gets replies to its own identifier (the kernel matched it). */
    if (s->raw && rd16(m + 4) != s->id) return;
    echo_deliver(s, from, type, code, rd16(m + 6), m + 8, n - 8, true, ttl, 0);
    return;
  }
  if (!s->raw || !is_error_type(s->v6, type)) return;
  /* An error quotes the packet that caused it: its IP header, then our echo request. */
  const uint8_t *in = m + 8;
  size_t left = n - 8;
  if (s->v6) {
    if (left < 40 + 8 || in[6] != IPPROTO_ICMPV6) return;
    in += 40;
  } else {
    if (left < 20) return;
    size_t ihl = (size_t)(in[0] & 15) * 4;
    if (ihl < 20 || left < ihl + 8 || in[9] != IPPROTO_ICMP) return;
    in += ihl;
  }
  int request = s->v6 ? ICMP6_ECHO_REQUEST : ICMP_ECHO;
  if (in[0] != request || rd16(in + 4) != s->id) return;
  uint32_t info = (uint32_t)m[4] << 24 | (uint32_t)m[5] << 16 | (uint32_t)m[6] << 8 | m[7];
  echo_deliver(s, from, type, code, rd16(in + 6), NULL, 0, false, ttl, info);
}

static void format_addr(const struct sockaddr_storage *ss, char *out, size_t size) {
  out[0] = 0;
  if (ss->ss_family == AF_INET)
    inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, out, (socklen_t)size);
  else if (ss->ss_family == AF_INET6)
    inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ss)->sin6_addr, out, (socklen_t)size);
}

/* Reads what is queued: errors first (datagram sockets), then messages; at most a batch. */
static void echo_drain(EchoSock *s) {
  char from[INET6_ADDRSTRLEN];
  char control[512];
  for (int i = 0; i < ECHO_BATCH && !s->closing; i++) {
    struct sockaddr_storage ss;
    struct iovec iov = {s->buf, ECHO_BUF};
    struct msghdr mh = {0};
    mh.msg_name = &ss;
    mh.msg_namelen = sizeof ss;
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    mh.msg_control = control;
    mh.msg_controllen = sizeof control;
    bool err_queue = false;
    ssize_t n = -1;
    if (!s->raw) {
      n = recvmsg(s->fd, &mh, MSG_ERRQUEUE | MSG_DONTWAIT);
      err_queue = n >= 0;
      if (!err_queue) {
        mh.msg_namelen = sizeof ss;
        mh.msg_controllen = sizeof control;
      }
    }
    if (!err_queue) n = recvmsg(s->fd, &mh, MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      continue; /* a pending socket error (now cleared) or EINTR: read on */
    }
    int ttl = -1;
    const struct sock_extended_err *ee = NULL;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
      if ((c->cmsg_level == SOL_IP && c->cmsg_type == IP_TTL) ||
          (c->cmsg_level == SOL_IPV6 && c->cmsg_type == IPV6_HOPLIMIT)) {
        int v;
        memcpy(&v, CMSG_DATA(c), sizeof v);
        ttl = v;
      } else if ((c->cmsg_level == SOL_IP && c->cmsg_type == IP_RECVERR) ||
                 (c->cmsg_level == SOL_IPV6 && c->cmsg_type == IPV6_RECVERR)) {
        ee = (const struct sock_extended_err *)CMSG_DATA(c);
      }
    }
    const uint8_t *m = s->buf;
    size_t len = (size_t)n;
    if (err_queue) {
      /* The kernel quotes our echo request; the error came from the offender. */
      int origin = s->v6 ? SO_EE_ORIGIN_ICMP6 : SO_EE_ORIGIN_ICMP;
      if (!ee || ee->ee_origin != origin || len < 8) continue;
      const struct sockaddr *off = SO_EE_OFFENDER(ee);
      struct sockaddr_storage os;
      memset(&os, 0, sizeof os);
      memcpy(&os, off, s->v6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in));
      if (os.ss_family != (s->v6 ? AF_INET6 : AF_INET)) continue;
      format_addr(&os, from, sizeof from);
      echo_deliver(s, from, ee->ee_type, ee->ee_code, rd16(m + 6), NULL, 0, false, ttl,
                   ee->ee_info);
      continue;
    }
    format_addr(&ss, from, sizeof from);
    if (s->raw && !s->v6) {
      /* A raw IPv4 socket hands over the IP header too; the kernel did not check the ICMP sum. */
      if (len < 20) continue;
      size_t ihl = (size_t)(m[0] & 15) * 4;
      if (ihl < 20 || len < ihl) continue;
      ttl = m[8];
      m += ihl;
      len -= ihl;
      if (len < 8 || icmp_sum(m, len) != 0) continue;
    }
    echo_message(s, from, m, len, ttl);
  }
}

static void echo_on_poll(uv_poll_t *h, int status, int events) {
  (void)events;
  EchoSock *s = h->data;
  if (s->closing) return;
  echo_drain(s);
  /* libuv stops the handle on POLLERR (a queued ICMP error): read it above, then poll again. */
  if (status < 0 && !s->closing) uv_poll_start(&s->poll, UV_READABLE, echo_on_poll);
}

static int open_echo_fd(bool v6, bool raw) {
  int fd = socket(v6 ? AF_INET6 : AF_INET, (raw ? SOCK_RAW : SOCK_DGRAM) | SOCK_NONBLOCK | SOCK_CLOEXEC,
                  v6 ? IPPROTO_ICMPV6 : IPPROTO_ICMP);
  if (fd < 0) return -errno;
  int one = 1;
  if (v6) {
    setsockopt(fd, SOL_IPV6, IPV6_RECVHOPLIMIT, &one, sizeof one);
    if (raw) {
      struct icmp6_filter f;
      ICMP6_FILTER_SETBLOCKALL(&f);
      ICMP6_FILTER_SETPASS(ICMP6_ECHO_REPLY, &f);
      ICMP6_FILTER_SETPASS(ICMP6_DST_UNREACH, &f);
      ICMP6_FILTER_SETPASS(ICMP6_PACKET_TOO_BIG, &f);
      ICMP6_FILTER_SETPASS(ICMP6_TIME_EXCEEDED, &f);
      ICMP6_FILTER_SETPASS(ICMP6_PARAM_PROB, &f);
      setsockopt(fd, IPPROTO_ICMPV6, ICMP6_FILTER, &f, sizeof f);
    } else {
      setsockopt(fd, SOL_IPV6, IPV6_RECVERR, &one, sizeof one);
    }
  } else {
    setsockopt(fd, SOL_IP, IP_RECVTTL, &one, sizeof one);
    if (raw) {
      /* Only echo replies and the errors that may quote our requests (bit set: filtered out). */
      struct icmp_filter f = {~(uint32_t)((1u << ICMP_ECHOREPLY) | (1u << ICMP_DEST_UNREACH) |
                                           (1u << ICMP_TIME_EXCEEDED) | (1u << ICMP_PARAMETERPROB))};
      setsockopt(fd, SOL_RAW, ICMP_FILTER, &f, sizeof f);
    } else {
      setsockopt(fd, SOL_IP, IP_RECVERR, &one, sizeof one);
    }
  }
  return fd;
}

static napi_value echo_send(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  void *data;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, &data) != napi_ok) return NULL;
  EchoSock *s = data;
  char addr[64];
  size_t alen = 0;
  uint32_t seq;
  int32_t ttl = -1;
  bool is_buf = false;
  uint8_t *payload = NULL;
  size_t plen = 0;
  if (argc < 3 ||
      napi_get_value_string_utf8(env, argv[0], addr, sizeof addr, &alen) != napi_ok ||
      napi_get_value_uint32(env, argv[1], &seq) != napi_ok || seq > 0xffff ||
      napi_is_typedarray(env, argv[2], &is_buf) != napi_ok || !is_buf ||
      (argc > 3 && napi_get_value_int32(env, argv[3], &ttl) != napi_ok)) {
    napi_throw_type_error(env, "ERR_INVALID_ARG", "expected (address, seq, payload, ttl)");
    return NULL;
  }
  napi_typedarray_type type;
  if (napi_get_typedarray_info(env, argv[2], &type, &plen, (void **)&payload, NULL, NULL) !=
          napi_ok ||
      type != napi_uint8_array || plen > 65507 - 8) {
    napi_throw_type_error(env, "ERR_INVALID_ARG", "payload: a Uint8Array of at most 65499 bytes");
    return NULL;
  }
  if (s->closing) {
    throw_errno(env, EBADF);
    return NULL;
  }
  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof ss);
  socklen_t sl;
  if (s->v6) {
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
    a->sin6_family = AF_INET6;
    sl = sizeof *a;
    if (inet_pton(AF_INET6, addr, &a->sin6_addr) != 1) {
      napi_throw_type_error(env, "ERR_INVALID_ARG", "not an IPv6 address");
      return NULL;
    }
  } else {
    struct sockaddr_in *a = (struct sockaddr_in *)&ss;
    a->sin_family = AF_INET;
    sl = sizeof *a;
    if (inet_pton(AF_INET, addr, &a->sin_addr) != 1) {
      napi_throw_type_error(env, "ERR_INVALID_ARG", "not an IPv4 address");
      return NULL;
    }
  }
  if (ttl < -1 || ttl > 255 || ttl == 0) ttl = -1;
  if (ttl != s->ttl) {
    int v = ttl;
    if (s->v6)
      setsockopt(s->fd, SOL_IPV6, IPV6_UNICAST_HOPS, &v, sizeof v);
    else
      setsockopt(s->fd, SOL_IP, IP_TTL, &v, sizeof v);
    s->ttl = ttl;
  }
  uint8_t *m = malloc(plen + 8);
  if (!m) {
    throw_errno(env, ENOMEM);
    return NULL;
  }
  m[0] = s->v6 ? ICMP6_ECHO_REQUEST : ICMP_ECHO;
  m[1] = 0;
  m[2] = m[3] = 0;
  m[4] = (uint8_t)(s->id >> 8);
  m[5] = (uint8_t)s->id;
  m[6] = (uint8_t)(seq >> 8);
  m[7] = (uint8_t)seq;
  if (plen) memcpy(m + 8, payload, plen);
  /* The kernel sums ICMPv6 (both kinds) and datagram ICMP; a raw IPv4 socket sends ours. */
  if (!s->v6) {
    uint16_t c = icmp_sum(m, plen + 8);
    m[2] = (uint8_t)(c >> 8);
    m[3] = (uint8_t)c;
  }
  ssize_t r;
  do {
    r = sendto(s->fd, m, plen + 8, MSG_DONTWAIT, (struct sockaddr *)&ss, sl);
  } while (r < 0 && errno == EINTR);
  int e = errno;
  free(m);
  if (r < 0) throw_errno(env, e);
  return NULL;
}

static napi_value echo_close_js(napi_env env, napi_callback_info info) {
  void *data;
  if (napi_get_cb_info(env, info, NULL, NULL, NULL, &data) != napi_ok) return NULL;
  echo_close(data, false);
  return NULL;
}

static void throw_open_error(napi_env env, int dgram_err, int raw_err) {
  char msg[256];
  snprintf(msg, sizeof msg, "ICMP datagram socket: %s%s%s", strerror(dgram_err),
           raw_err ? "; raw ICMP socket: " : "", raw_err ? strerror(raw_err) : "");
  napi_value code, text, error, v;
  napi_create_string_utf8(env, errno_code(dgram_err), NAPI_AUTO_LENGTH, &code);
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &text);
  napi_create_error(env, code, text, &error);
  napi_create_int32(env, dgram_err, &v);
  napi_set_named_property(env, error, "errno", v);
  if (raw_err) {
    napi_create_string_utf8(env, errno_code(raw_err), NAPI_AUTO_LENGTH, &v);
    napi_set_named_property(env, error, "rawCode", v);
  }
  napi_throw(env, error);
}

static napi_value icmp_echo_open(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  bool v6;
  napi_valuetype t;
  char mode[8] = "auto";
  size_t mlen;
  if (argc < 2 || napi_get_value_bool(env, argv[0], &v6) != napi_ok ||
      napi_typeof(env, argv[1], &t) != napi_ok || t != napi_function ||
      (argc > 2 && napi_get_value_string_utf8(env, argv[2], mode, sizeof mode, &mlen) != napi_ok)) {
    napi_throw_type_error(env, "ERR_INVALID_ARG", "expected (ipv6, onMessage[, 'auto'|'dgram'|'raw'])");
    return NULL;
  }
  bool try_dgram = strcmp(mode, "raw") != 0, try_raw = strcmp(mode, "dgram") != 0;
  int dgram_err = 0, raw_err = 0, fd = -1;
  bool raw = false;
  if (try_dgram) {
    fd = open_echo_fd(v6, false);
    if (fd < 0) dgram_err = -fd;
  } else {
    dgram_err = EACCES; /* not tried */
  }
  if (fd < 0 && try_raw) {
    fd = open_echo_fd(v6, true);
    if (fd < 0) raw_err = -fd;
    else raw = true;
  }
  if (fd < 0) {
    throw_open_error(env, dgram_err, raw_err);
    return NULL;
  }
  EchoSock *s = calloc(1, sizeof *s);
  uint8_t *buf = malloc(ECHO_BUF);
  uv_loop_t *loop = NULL;
  if (!s || !buf || napi_get_uv_event_loop(env, &loop) != napi_ok || !loop) {
    free(s);
    free(buf);
    close(fd);
    throw_errno(env, ENOMEM);
    return NULL;
  }
  s->env = env;
  s->fd = fd;
  s->v6 = v6;
  s->raw = raw;
  s->ttl = -1;
  s->buf = buf;
  if (raw) {
    /* Ours to choose; a raw socket sees every echo reply on the host, so filter on it. */
    uint16_t id = 0;
    while (id == 0) id = (uint16_t)(((uintptr_t)s >> 4) ^ (uint32_t)getpid() ^ (uint32_t)rand());
    s->id = id;
  } else {
    /* The kernel rewrites the identifier to the socket's "port": bind to learn it. */
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    ss.ss_family = v6 ? AF_INET6 : AF_INET;
    socklen_t sl = v6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    if (bind(fd, (struct sockaddr *)&ss, sl) == 0 &&
        getsockname(fd, (struct sockaddr *)&ss, &sl) == 0) {
      s->id = ntohs(v6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                       : ((struct sockaddr_in *)&ss)->sin_port);
    }
  }
  napi_value obj, name, kind, idv;
  napi_create_object(env, &obj);
  napi_create_string_utf8(env, "wasmvisor.icmpEcho", NAPI_AUTO_LENGTH, &name);
  if (uv_poll_init(loop, &s->poll, fd) != 0) {
    close(fd);
    free(buf);
    free(s);
    throw_errno(env, EBADF);
    return NULL;
  }
  s->poll.data = s;
  s->handle_open = true;
  s->wrapped = true;
  napi_create_reference(env, argv[1], 1, &s->cb);
  napi_async_init(env, obj, name, &s->ctx);
  napi_create_string_utf8(env, raw ? "raw" : "dgram", NAPI_AUTO_LENGTH, &kind);
  napi_create_uint32(env, s->id, &idv);
  napi_property_descriptor props[] = {
      {"kind", NULL, NULL, NULL, NULL, kind, napi_enumerable, NULL},
      {"id", NULL, NULL, NULL, NULL, idv, napi_enumerable, NULL},
      {"send", NULL, echo_send, NULL, NULL, NULL, napi_default, s},
      {"close", NULL, echo_close_js, NULL, NULL, NULL, napi_default, s},
  };
  napi_define_properties(env, obj, sizeof props / sizeof props[0], props);
  napi_wrap(env, obj, s, echo_finalize, NULL, NULL);
  if (napi_add_env_cleanup_hook(env, echo_cleanup_hook, s) == napi_ok) s->hooked = true;
  uv_poll_start(&s->poll, UV_READABLE, echo_on_poll);
  /* Pending replies alone do not keep the process alive. */
  uv_unref((uv_handle_t *)&s->poll);
  return obj;
}
#else
static napi_value icmp_echo_open(napi_env env, napi_callback_info info) {
  (void)info;
  throw_errno(env, ENOSYS);
  return NULL;
}
#endif

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
      {"readNow", NULL, read_now, NULL, NULL, NULL, napi_enumerable, NULL},
      {"icmpEchoOpen", NULL, icmp_echo_open, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}

NAPI_MODULE(wasmvisor_native, init)
