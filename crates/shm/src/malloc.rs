//! The process allocator's settings for ringfeed's binaries (`ringfeedd`, `ringfeed`,
//! `store_bench`), not for processes that merely link a ringfeed crate.

/// Keep freed memory in the process for the next allocation (glibc only; elsewhere a
/// no-op): blocks up to 32 MiB come from the heap instead of their own `mmap`, and up to
/// 256 MiB of free heap stays mapped. A query decodes tens of MiB of column buffers and
/// frees them; with glibc's defaults each came back as fresh pages that the kernel zeroes
/// on first touch, ~30 % of a cold symbol-year query (docs/benchmarks.md, Store). The cost
/// is resident memory a daemon keeps after its largest request, as jemalloc and mimalloc
/// keep it too.
///
/// Call it first thing in `main`, before threads start. Returns whether every setting took.
pub fn retain_freed_memory() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let settings = [
            (libc::M_MMAP_THRESHOLD, 32 << 20), // glibc's maximum on 64-bit
            (libc::M_TRIM_THRESHOLD, 256 << 20),
            (libc::M_TOP_PAD, 64 << 20),
        ];
        settings.iter().all(|&(param, value)| {
            // SAFETY: mallopt only changes the allocator's tunables; it is called before
            // other threads allocate (the caller's contract), and glibc serialises it with
            // its arena lock anyway.
            unsafe { libc::mallopt(param, value) == 1 }
        })
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    #[test]
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn every_setting_is_accepted() {
        assert!(super::retain_freed_memory());
    }
}
