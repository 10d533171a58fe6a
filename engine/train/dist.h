// Data-parallel communication (issue 16): the few collectives the Trainer needs, behind one small interface, with a
// 1-rank implementation and Open MPI loaded at run time (dlopen), so no app links MPI and every app starts on a
// machine without it. NCCL for GPU gradients is engine/train/nccl.h.
#pragma once
#include <cstdint>
#include <memory>
#include <string>

namespace islkd::dist {

// One process's view of the world of ranks. Every collective must be called by every rank, in the same order,
// with the same sizes (as in MPI); results are the same bits on every rank.
class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // This rank's place among the ranks on its machine (which GPU it takes; its share of the CPU threads).
  virtual int local_rank() const = 0;
  virtual int local_size() const = 0;
  virtual std::string backend() const = 0;  // "single" | "mpi"

  // In place: the element-wise mean over the ranks (a sum, then a multiply by 1/size()).
  virtual void allreduce_mean(float* data, int64_t n) = 0;
  // In place: the element-wise sum over the ranks (tallies: loss sums, counts).
  virtual void allreduce_sum(double* data, int64_t n) = 0;
  // Every rank's `bytes` bytes from `mine`, concatenated in rank order into `all` (size() * bytes).
  virtual void allgather(const void* mine, int64_t bytes, void* all) = 0;
  // `root`'s `bytes` bytes at `data` copied to every rank's `data`.
  virtual void broadcast(void* data, int64_t bytes, int root) = 0;
  virtual void barrier() = 0;

  // Non-blocking, in place: the element-wise sum over the ranks of `n` floats, started now and complete after
  // wait_all() (the buffer must not be touched before). Started on every rank in the same order, as every collective.
  virtual void start_allreduce_sum(float* data, int64_t n) = 0;
  // Lets the started sums advance (MPI moves non-blocking collectives on only inside its calls); never waits.
  virtual void progress() {}
  // Waits for every started sum.
  virtual void wait_all() {}

  // The hang watchdog: a collective that waits longer than this for the other ranks ends the run (one error line
  // naming the collective and the wait, then abort(): the launcher ends every rank) instead of waiting forever for a
  // rank that hung (a killed rank is seen by mpirun itself). 0: wait forever. Without effect in a world of 1 rank.
  void set_timeout_seconds(double seconds) { timeout_seconds_ = seconds; }
  double timeout_seconds() const { return timeout_seconds_; }
  // Ends every rank of the run with `code` (after an error on this one): the others never wait for it forever.
  [[noreturn]] virtual void abort(int code) = 0;
  // The clean end of a run (MPI_Finalize); a communicator destroyed without it (an error unwinding) does nothing,
  // since finalising is itself collective and would wait for ranks that may be gone.
  virtual void finalize() {}

  bool is_root() const { return rank() == 0; }

 private:
  double timeout_seconds_ = 0.0;
};

// --dist-timeout's default: torch.distributed's default process-group timeout (30 min), longer than anything one
// rank does alone while the others wait (rank 0's evaluation and checkpoint at an epoch's end).
inline constexpr double kDefaultTimeoutSeconds = 1800.0;

// The world of one process (rank 0 of 1): every collective is the identity.
std::shared_ptr<Communicator> single_process();

// True when this process was started by an MPI launcher (Open MPI's mpirun sets OMPI_COMM_WORLD_SIZE; PMIx and PMI
// launchers set PMIX_RANK / PMI_SIZE).
bool launched_by_mpi_launcher();

// The process's world: MPI (initialised here, once) when launched by mpirun, else single_process(). libmpi is
// Open MPI's libmpi.so.40 (ISLKD_LIBMPI names another file); when it cannot be loaded under mpirun this throws an
// islkd::Error saying so in one line. Open MPI's handles are resolved by their ABI names (ompi_mpi_comm_world, ...):
// another MPI (MPICH's libmpi.so.12) is refused by that check.
std::shared_ptr<Communicator> from_environment();

// After an app has printed its error line: when MPI is running with more than one rank, MPI_Abort, so every other
// rank ends now instead of waiting in its next collective. Returns when there is nothing to abort.
void abort_world_after_error(int code);

}  // namespace islkd::dist
