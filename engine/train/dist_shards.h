// Rows of an n-row table computed in shards, one per rank (rank r: rows [r n / W, (r+1) n / W), the split the
// sharded ISL scores and the teacher-logit cache use), and all-gathered so every rank holds the whole table.
#pragma once
#include <algorithm>
#include <cstdint>
#include <vector>

#include "engine/train/dist.h"

namespace islkd::dist {

inline int64_t shard_begin(int64_t n, int rank, int size) { return n * rank / size; }
inline int64_t shard_end(int64_t n, int rank, int size) { return n * (rank + 1) / size; }

// `table` holds n rows of `row` floats; this rank's shard rows are filled, the others are overwritten with the
// other ranks' shards (the same bits on every rank). Shards differ by at most one row: each is padded to the
// largest for the all-gather.
inline void allgather_shards(Communicator& comm, std::vector<float>& table, int64_t n, int64_t row) {
  const int w = comm.size();
  if (w == 1) return;
  const int64_t chunk = ((n + w - 1) / w) * row;
  std::vector<float> mine(static_cast<size_t>(chunk), 0.0f), all(static_cast<size_t>(chunk * w));
  const int r = comm.rank();
  std::copy(table.begin() + shard_begin(n, r, w) * row, table.begin() + shard_end(n, r, w) * row, mine.begin());
  comm.allgather(mine.data(), chunk * static_cast<int64_t>(sizeof(float)), all.data());
  for (int q = 0; q < w; ++q)
    std::copy(all.begin() + q * chunk, all.begin() + q * chunk + (shard_end(n, q, w) - shard_begin(n, q, w)) * row,
              table.begin() + shard_begin(n, q, w) * row);
}

}  // namespace islkd::dist
