#include "pool.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

#if defined(__linux__)
#include <pthread.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>
#elif defined(__APPLE__)
#include <pthread.h>
#elif defined(_WIN32)
#include <windows.h>
#endif

namespace rmsnorm {

namespace {

// Lowers the calling thread's scheduling priority for good (an unprivileged thread cannot raise it again, which
// is why the background pool has threads of its own). Returns how, or "none".
const char* lower_priority() {
#if defined(__linux__)
  // SCHED_IDLE: the thread runs only when no thread of normal priority wants the core, and a normal thread
  // waking up preempts it at once. Any thread may switch itself to it. Where it is refused (a seccomp filter,
  // an old kernel), nice 19 (setpriority on the thread's id applies to that thread alone on Linux).
  sched_param param{};
  param.sched_priority = 0;
  if (pthread_setschedparam(pthread_self(), SCHED_IDLE, &param) == 0) return "sched_idle";
  if (setpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid)), 19) == 0) return "nice";
  return "none";
#elif defined(__APPLE__)
  // Utility, not background: background confines the thread to the efficiency cores and throttles its I/O.
  return pthread_set_qos_class_self_np(QOS_CLASS_UTILITY, 0) == 0 ? "qos_utility" : "none";
#elif defined(_WIN32)
  return SetThreadPriority(GetCurrentThread(), THREAD_PRIORITY_LOWEST) ? "lowest" : "none";
#else
  return "none";
#endif
}

struct Job {
  void (*fn)(void*, size_t);
  void* ctx;
  size_t tasks;
  std::atomic<size_t> next{0};  // next task to hand out
  std::atomic<size_t> done{0};  // tasks finished
  unsigned helpers_wanted;      // pool threads that may still join (guarded by the pool's mutex)
  // Pool threads inside this job now: raised under the pool's mutex when a thread joins, lowered without it when
  // one leaves (the thread touches the job no more after that), so the caller can spin on it.
  std::atomic<unsigned> users{0};
  // Set when the caller has stopped waiting for the pool (patience): pool threads then take no further task.
  std::atomic<bool> caller_only{false};
};

// One pause of a spin-wait: lets the sibling hyperthread run, and costs the memory bus nothing.
inline void cpu_relax() {
#if defined(__x86_64__) || defined(_M_X64) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

// Spins until done() or about `ns` nanoseconds have passed; true when done() held.
template <typename Done>
bool spin_until(Done done, long long ns) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::nanoseconds(ns);
  for (;;) {
    for (int i = 0; i < 64; ++i) {
      if (done()) return true;
      cpu_relax();
    }
    if (std::chrono::steady_clock::now() >= end) return done();
  }
}

// How long a thread of the normal pool keeps watching for the next job after finishing one, and how long a caller
// watches for its helpers to finish, before blocking. Waking a blocked thread costs a system call and, on a
// virtual machine whose idle vCPU was handed back to the host, tens of microseconds or more: back-to-back calls
// (the layers of a model) then find their helpers awake, as OpenMP's spinning threads are (its default spin is
// longer). The background pool never spins: its threads run at idle priority.
constexpr long long kWorkerSpinNs = 100000;
constexpr long long kCallerSpinNs = 200000;

class Pool {
 public:
  // Pool threads are detached and live until the process exits: joining them from a static destructor could
  // deadlock against a worker_thread's exit, and an idle thread blocked on a condition variable costs nothing.
  static Pool& instance(PoolKind kind) {
    static Pool* normal = new Pool(false);
    static Pool* background = new Pool(true);
    return kind == PoolKind::kBackground ? *background : *normal;
  }

  // caller_works: the calling thread takes tasks too (the normal pool's calls); otherwise it only waits.
  void run(size_t tasks, unsigned threads, void (*fn)(void*, size_t), void* ctx, bool caller_works,
           double patience_ns = 0) {
    if (tasks == 0) return;
    if (threads == 0) threads = 1;
    if (caller_works && (threads <= 1 || tasks == 1)) {
      for (size_t t = 0; t < tasks; ++t) fn(ctx, t);
      return;
    }
    Job job;
    job.fn = fn;
    job.ctx = ctx;
    job.tasks = tasks;
    const size_t workers = tasks < threads ? tasks : threads;
    const size_t helpers = caller_works ? workers - 1 : workers;
    job.helpers_wanted = static_cast<unsigned>(helpers);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      grow(helpers);
      queue_.push_back(&job);
      epoch_.fetch_add(1, std::memory_order_release);
      // Blocked threads need a notification; spinning ones see the epoch move.
      if (sleepers_ > 0) {
        if (helpers == 1) {
          work_available_.notify_one();
        } else {
          work_available_.notify_all();
        }
      }
    }
    auto finished = [&] {
      return job.done.load(std::memory_order_acquire) == job.tasks && job.users.load(std::memory_order_acquire) == 0;
    };
    if (caller_works) {
      work_on(job);
      // Our own share is done: make sure no pool thread can join the job again (it lives on this stack), then
      // wait for tasks still running elsewhere: briefly spinning, then blocked.
      {
        std::lock_guard<std::mutex> lock(mutex_);
        remove(&job);
      }
      if (spin_until(finished, kCallerSpinNs)) return;
      std::unique_lock<std::mutex> lock(mutex_);
      job_done_.wait(lock, finished);
      return;
    }
    auto all_done = [&] { return job.done.load(std::memory_order_acquire) == job.tasks; };
    std::unique_lock<std::mutex> lock(mutex_);
    if (patience_ns > 0) {
      // system_clock: libstdc++ waits on steady_clock with pthread_cond_clockwait, which glibc has only from
      // 2.30 (the prebuilds keep to 2.17); a clock change can only make this patience shorter or longer.
      const auto deadline =
          std::chrono::system_clock::now() + std::chrono::duration_cast<std::chrono::system_clock::duration>(
                                                 std::chrono::nanoseconds(static_cast<long long>(patience_ns)));
      if (!job_done_.wait_until(lock, deadline, all_done)) {
        // The pool's threads got no core in all that time: other processes hold them all, and threads of idle
        // priority would wait as long as those stay busy. The caller (normal priority) takes the blocks still
        // unclaimed, so the call progresses at a normal thread's share of the machine.
        job.caller_only.store(true, std::memory_order_relaxed);
        lock.unlock();
        work_on(job);
        lock.lock();
      }
    }
    job_done_.wait(lock, all_done);
    remove(&job);
    job_done_.wait(lock, finished);
  }

 private:
  explicit Pool(bool background) : background_(background) {}

  const bool background_;
  std::mutex mutex_;
  std::condition_variable work_available_;
  std::condition_variable job_done_;
  std::deque<Job*> queue_;
  size_t threads_ = 0;
  unsigned sleepers_ = 0;                // threads blocked on work_available_ (guarded by mutex_)
  std::atomic<unsigned long> epoch_{0};  // bumped whenever a job is queued

  void grow(size_t wanted) {
    for (; threads_ < wanted; ++threads_) std::thread([this] { worker(); }).detach();
  }

  void remove(Job* job) {
    for (auto it = queue_.begin(); it != queue_.end(); ++it) {
      if (*it == job) {
        queue_.erase(it);
        return;
      }
    }
  }

  static void work_on(Job& job, bool pool_thread = false) {
    for (;;) {
      if (pool_thread && job.caller_only.load(std::memory_order_relaxed)) return;
      const size_t t = job.next.fetch_add(1, std::memory_order_relaxed);
      if (t >= job.tasks) return;
      job.fn(job.ctx, t);
      job.done.fetch_add(1, std::memory_order_release);
    }
  }

  void worker() {
#if defined(__linux__)
    // Named for tools (top -H, /proc/<pid>/task/*/comm) and for the tests that check the priority. prctl rather
    // than pthread_setname_np, which glibc versions at 2.34 (the prebuilds keep to glibc 2.17).
    prctl(PR_SET_NAME, background_ ? "rmsnorm-async" : "rmsnorm-pool", 0, 0, 0);
#endif
    if (background_) lower_priority();
    std::unique_lock<std::mutex> lock(mutex_);
    for (;;) {
      Job* job = pick();
      if (!job && !background_) {
        // Watch for the next job a while before blocking (kWorkerSpinNs).
        const unsigned long seen = epoch_.load(std::memory_order_acquire);
        lock.unlock();
        spin_until([&] { return epoch_.load(std::memory_order_acquire) != seen; }, kWorkerSpinNs);
        lock.lock();
        job = pick();
      }
      if (!job) {
        ++sleepers_;
        // Keep the job the wait found: picking again could find none, as the caller takes tasks without the
        // lock and may have taken the last one since (a null job then crashed the process, rarely).
        work_available_.wait(lock, [&] { return (job = pick()) != nullptr; });
        --sleepers_;
      }
      --job->helpers_wanted;
      job->users.fetch_add(1, std::memory_order_relaxed);
      lock.unlock();
      work_on(*job, true);
      job->users.fetch_sub(1, std::memory_order_acq_rel);  // the job may be gone from here on
      lock.lock();
      job_done_.notify_all();
    }
  }

  // The oldest job that still has tasks to hand out and wants another helper (mutex_ held).
  Job* pick() {
    for (Job* job : queue_) {
      if (job->helpers_wanted > 0 && job->next.load(std::memory_order_relaxed) < job->tasks) return job;
    }
    return nullptr;
  }
};

}  // namespace

void parallel_for(size_t tasks, unsigned threads, void (*fn)(void* ctx, size_t task), void* ctx, PoolKind kind,
                  double patience_ns) {
  Pool::instance(kind).run(tasks, threads, fn, ctx, kind == PoolKind::kNormal, patience_ns);
}

unsigned hardware_threads() {
  const unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : n;
}

double round_trip_ns(bool blocked) {
  // Measured with a thread of normal priority: the cost of the hand-off itself, not of waiting for a core that
  // other processes hold (which a busy machine would add to the background pool's figure).
  Pool& pool = Pool::instance(PoolKind::kNormal);
  auto nothing = [](void*, size_t) {};
  pool.run(1, 1, nothing, nullptr, false);  // starts the thread
  double best = 0;
  for (int i = 0; i < 5; ++i) {
    // blocked: past its spin, so that the hand-off measured is that of a call after a pause.
    if (blocked) std::this_thread::sleep_for(std::chrono::nanoseconds(kWorkerSpinNs + 50000));
    const auto t0 = std::chrono::steady_clock::now();
    pool.run(1, 1, nothing, nullptr, false);
    const double ns = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count();
    if (i == 0 || ns < best) best = ns;
  }
  return best;
}

}  // namespace rmsnorm
