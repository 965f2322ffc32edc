import CMalloc
import Glibc

/// glibc's allocator settings for a process that hands megabyte-sized event buffers from one
/// thread to another, many times a second.
///
/// By default glibc serves every allocation above 128 KiB with its own `mmap` and returns it with
/// `munmap`, and gives the top of a thread's heap back to the kernel as soon as 128 KiB of it are
/// free, so each batch buffer is page-faulted in again (measured with `perf` on
/// `scripts/bench-apply`: a tenth of pgbridge's CPU in page faults and `madvise`). With these
/// settings freed buffers are kept and reused: pgbridge's CPU for the 1,000,000-row apply went
/// from 2.5–2.8 s to 2.1–2.2 s (docs/benchmarks.md). Memory stays bounded: each of glibc's
/// arenas (one per thread that allocates, at most eight per core) keeps at most
/// `trimThreshold` of free memory at the top of its heap before returning the rest.
enum MemoryTuning {
    /// Allocations up to this size come from the heaps (glibc's largest allowed value).
    static let mmapThreshold: Int32 = 32 << 20
    /// Free memory kept at the top of a heap before the rest is returned to the kernel.
    static let trimThreshold: Int32 = 64 << 20
    /// Extra memory requested whenever a heap grows (reserved address space until touched).
    static let topPad: Int32 = 16 << 20

    /// Applies the settings unless the environment sets glibc's own `MALLOC_*_` variables.
    static func apply() {
        let environment = ["MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_"]
        guard !environment.contains(where: { getenv($0) != nil }) else { return }
        _ = mallopt(M_MMAP_THRESHOLD, mmapThreshold)
        _ = mallopt(M_TRIM_THRESHOLD, trimThreshold)
        _ = mallopt(M_TOP_PAD, topPad)
    }
}
