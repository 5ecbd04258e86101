//! The service's memory pages: transparent huge pages off for the process.
//!
//! mimalloc asks the kernel for huge pages (`madvise(MADV_HUGEPAGE)`) in
//! the arenas it grows into as state grows; each such fault zeroes 2 MiB,
//! and purging part of one splits it again. A partition task that touches
//! new memory then stalls for tens of milliseconds, every task behind it
//! on the same worker waits, and the alerts of the events they hold are
//! late. With huge pages off, the event → alert p99 at 58,000 events/s
//! fell from 105–149 ms to 51–56 ms (BENCHMARKS.md, section 5). The flag
//! holds for the whole process, whatever the machine's
//! `/sys/kernel/mm/transparent_hugepage` settings, including the pages
//! already mapped; it is inherited by children.

/// What became of the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HugePages {
    /// Off for this process from now on.
    Off,
    /// The kernel refused; the reason.
    Refused(String),
}

/// Turns transparent huge pages off for this process.
#[cfg(target_os = "linux")]
pub fn disable_huge_pages() -> HugePages {
    match nix::sys::prctl::set_thp_disable(true) {
        Ok(()) => HugePages::Off,
        Err(e) => HugePages::Refused(e.to_string()),
    }
}

/// Elsewhere there is nothing to turn off.
#[cfg(not(target_os = "linux"))]
pub fn disable_huge_pages() -> HugePages {
    HugePages::Refused("transparent huge pages are a Linux feature".into())
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn huge_pages_are_off_for_the_process_afterwards() {
        assert_eq!(disable_huge_pages(), HugePages::Off);
        assert!(nix::sys::prctl::get_thp_disable().unwrap());
        // Asking again changes nothing.
        assert_eq!(disable_huge_pages(), HugePages::Off);
        assert!(nix::sys::prctl::get_thp_disable().unwrap());
    }
}
