// Lets a linux-x64 / linux-arm64 addon linked on a current distribution (Debian 12: glibc 2.36, GCC 12) load on
// glibc 2.17 and on any libstdc++. CMakeLists.txt links libstdc++ statically (-static-libstdc++) and hides it
// (-Wl,--exclude-libs,ALL plus compat/exports.ver), so no GLIBCXX_* / CXXABI_* version is needed; this file
// then answers the few glibc symbols that libstdc++.a binds at versions newer than 2.17. Every reference to
// one of them is redirected here with -Wl,--wrap=NAME (RMSNORM_GLIBC_WRAPPED in CMakeLists.txt), so nothing
// the addon or libstdc++ calls is bound at a newer version. scripts/check-baseline.mjs checks the result on
// every prebuild (glibc <= 2.17, no libstdc++ version).
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

#define RMSNORM_HIDDEN __attribute__((visibility("hidden")))
#if defined(__x86_64__)
#define RMSNORM_GLIBC_BASE "GLIBC_2.2.5"
#elif defined(__aarch64__)
#define RMSNORM_GLIBC_BASE "GLIBC_2.17"
#else
#error "glibc_compat.cc knows the base glibc symbol version of x86-64 and AArch64 only"
#endif

extern "C" {

// 1. glibc 2.34 merged libpthread into libc and gave these functions a new default version (GLIBC_2.34); the
//    original versions are still exported (by libpthread.so.0 before 2.34, by libc.so.6 since), so bind those.
#define RMSNORM_FORWARD(ret, name, params, args)                    \
  ret rmsnorm_old_##name params;                                    \
  __asm__(".symver rmsnorm_old_" #name "," #name "@" RMSNORM_GLIBC_BASE); \
  RMSNORM_HIDDEN ret __wrap_##name params { return rmsnorm_old_##name args; }

RMSNORM_FORWARD(int, pthread_create, (pthread_t * t, const pthread_attr_t* a, void* (*f)(void*), void* arg), (t, a, f, arg))
RMSNORM_FORWARD(int, pthread_join, (pthread_t t, void** r), (t, r))
RMSNORM_FORWARD(int, pthread_detach, (pthread_t t), (t))
RMSNORM_FORWARD(int, pthread_once, (pthread_once_t * o, void (*f)(void)), (o, f))
RMSNORM_FORWARD(int, pthread_key_create, (pthread_key_t * k, void (*d)(void*)), (k, d))
RMSNORM_FORWARD(int, __pthread_key_create, (pthread_key_t * k, void (*d)(void*)), (k, d))
RMSNORM_FORWARD(int, pthread_key_delete, (pthread_key_t k), (k))
RMSNORM_FORWARD(void*, pthread_getspecific, (pthread_key_t k), (k))
RMSNORM_FORWARD(int, pthread_setspecific, (pthread_key_t k, const void* v), (k, v))

// 2. __libc_single_threaded (2.32) lets libstdc++ skip atomic reference counting in a single-threaded process;
//    "not known to be single-threaded" is always a correct answer.
RMSNORM_HIDDEN char __wrap___libc_single_threaded = 0;

// 3. getentropy (2.25) and arc4random (2.36): referenced by std::random_device in libstdc++.a, which the addon
//    never constructs; answered from the getrandom system call (Linux 3.17) all the same.
RMSNORM_HIDDEN int __wrap_getentropy(void* buf, size_t len) {
  if (len > 256) {
    errno = EIO;
    return -1;
  }
  unsigned char* p = static_cast<unsigned char*>(buf);
  while (len > 0) {
    long n = syscall(SYS_getrandom, p, len, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    p += n;
    len -= static_cast<size_t>(n);
  }
  return 0;
}
RMSNORM_HIDDEN uint32_t __wrap_arc4random(void) {
  uint32_t v;
  if (__wrap_getentropy(&v, sizeof v) != 0) abort();
  return v;
}

// 4. __cxa_thread_atexit_impl (2.18): how libstdc++ registers destructors of thread_local objects (the
//    per-thread scratch vector in binding.cc). Run them from a pthread key's destructor instead, the scheme
//    libstdc++ itself uses where glibc lacks the function. Node.js never unloads an addon, so the DSO
//    argument (which keeps a library loaded while its destructors are pending) is not needed.
struct rmsnorm_tl_dtor {
  void (*fn)(void*);
  void* obj;
  rmsnorm_tl_dtor* next;
};
static pthread_key_t rmsnorm_tl_key;
static pthread_once_t rmsnorm_tl_once = PTHREAD_ONCE_INIT;
static void rmsnorm_tl_run(void* p) {
  for (rmsnorm_tl_dtor* e = static_cast<rmsnorm_tl_dtor*>(p); e;) {
    rmsnorm_tl_dtor* next = e->next;
    e->fn(e->obj);
    free(e);
    e = next;
  }
}
static void rmsnorm_tl_init(void) { __wrap_pthread_key_create(&rmsnorm_tl_key, rmsnorm_tl_run); }
RMSNORM_HIDDEN int __wrap___cxa_thread_atexit_impl(void (*fn)(void*), void* obj, void* dso) {
  (void)dso;
  __wrap_pthread_once(&rmsnorm_tl_once, rmsnorm_tl_init);
  rmsnorm_tl_dtor* e = static_cast<rmsnorm_tl_dtor*>(malloc(sizeof *e));
  if (!e) return -1;
  e->fn = fn;
  e->obj = obj;
  e->next = static_cast<rmsnorm_tl_dtor*>(__wrap_pthread_getspecific(rmsnorm_tl_key));
  __wrap_pthread_setspecific(rmsnorm_tl_key, e);
  return 0;
}

}  // extern "C"
