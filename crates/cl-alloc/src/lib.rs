//! Process allocator settings for this project's binaries (`cl`, `lora_step`). Libraries never
//! call this: it changes the whole process's `malloc`.
//!
//! A training step allocates and frees tensors of up to tens of megabytes many times. glibc's
//! `malloc` gives such blocks back to the kernel (unmapping them, or trimming the top of the
//! heap), so the next tensor of the same size faults in and zeroes every page afresh. Keeping
//! them mapped took MiniLM's LoRA step from 3.5–3.9 s to 3.2 s and its forward pass from
//! 1.6–1.9 s to 1.5–1.6 s on this project's CPU machine (docs/benchmarks.md). The price: the
//! process's resident memory stays at its peak instead of shrinking between steps.

/// Serves blocks up to 32 MiB (the largest threshold glibc accepts) from the heap rather than
/// from fresh mappings, and never trims the heap, so freed tensor memory is reused while still
/// mapped. Returns whether the settings were applied: `false` off glibc, where nothing changes.
pub fn reuse_freed_memory() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        /// `mallopt(param, value)`, true when glibc accepted the value.
        #[allow(unsafe_code)]
        fn mallopt(param: libc::c_int, value: libc::c_int) -> bool {
            // SAFETY: `mallopt` only sets malloc's tuning parameters, which glibc allows at any
            // time; it returns 0 when it rejects a value, and changes nothing then.
            unsafe { libc::mallopt(param, value) == 1 }
        }
        mallopt(libc::M_MMAP_THRESHOLD, 32 << 20)
            && mallopt(libc::M_TRIM_THRESHOLD, libc::c_int::MAX)
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
    fn glibc_accepts_the_settings() {
        assert!(super::reuse_freed_memory());
    }
}
