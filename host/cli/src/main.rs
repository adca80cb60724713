//! The `sluice` binary.

fn main() -> std::process::ExitCode {
    return_big_buffers_to_the_kernel();
    sluice_cli::main()
}

/// Fixes glibc's mmap threshold at 128 KiB. glibc's default threshold is
/// dynamic: it rises to the size of the largest mmapped chunk freed (the
/// host table's columns, file buffers, encoded output parts: hundreds of
/// KB to MB each), after which such buffers come from the per-thread
/// arenas, and what they free stays resident, fragmented between the next
/// mini-batch's buffers (about 30 MiB of a tabular job's peak RSS at
/// `"10 files"`, see BENCHMARKS.md). A fixed threshold turns the dynamic
/// one off: buffers of 128 KiB and more are mapped for their lifetime and
/// unmapped when freed. Set before any thread starts (`mallopt` is not
/// meant to race with allocations in other threads).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn return_big_buffers_to_the_kernel() {
    unsafe extern "C" {
        fn mallopt(param: i32, value: i32) -> i32;
    }
    const M_MMAP_THRESHOLD: i32 = -3;
    // SAFETY: mallopt only changes glibc malloc's tunables; called first
    // thing in main, before any thread exists.
    unsafe {
        mallopt(M_MMAP_THRESHOLD, 128 * 1024);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn return_big_buffers_to_the_kernel() {}
