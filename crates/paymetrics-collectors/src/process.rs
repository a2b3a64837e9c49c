//! The process: CPU time, resident memory, open file descriptors and threads, from `/proc`.

use std::{path::PathBuf, sync::Mutex, time::Instant};

/// Gauge, seconds: user plus system CPU time the process has used since it started.
pub const CPU_SECONDS: &str = "process.cpu.seconds";
/// Gauge, percent of one core: CPU used between the last two collections (100 = one core busy).
pub const CPU_UTILIZATION: &str = "process.cpu.utilization";
/// Gauge, bytes: resident set size.
pub const RESIDENT_MEMORY_BYTES: &str = "process.memory.resident_bytes";
/// Gauge, open file descriptors.
pub const OPEN_FDS: &str = "process.open_fds";
/// Gauge, threads.
pub const THREADS: &str = "process.threads";

/// One reading of the process.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProcessStats {
    /// [`CPU_SECONDS`].
    pub cpu_seconds: f64,
    /// [`RESIDENT_MEMORY_BYTES`].
    pub resident_memory_bytes: u64,
    /// [`OPEN_FDS`].
    pub open_fds: u64,
    /// [`THREADS`].
    pub threads: u64,
}

/// Parses `/proc/<pid>/stat` and `/proc/<pid>/statm` text (`ticks_per_second` and
/// `page_size_bytes` from `sysconf`). `None` if either is malformed.
pub fn parse(
    stat: &str,
    statm: &str,
    ticks_per_second: f64,
    page_size_bytes: u64,
) -> Option<(f64, u64, u64)> {
    // The command name may contain spaces and parentheses: fields start after the last ')'.
    let fields: Vec<&str> = stat
        .get(stat.rfind(')')? + 1..)?
        .split_whitespace()
        .collect();
    // After ')': state is field 3 of the man page, so field n is fields[n - 3].
    let utime: f64 = fields.get(14 - 3)?.parse().ok()?;
    let stime: f64 = fields.get(15 - 3)?.parse().ok()?;
    let threads: u64 = fields.get(20 - 3)?.parse().ok()?;
    let resident_pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some((
        (utime + stime) / ticks_per_second,
        resident_pages * page_size_bytes,
        threads,
    ))
}

/// Records [`ProcessStats`] of this process.
#[derive(Debug)]
pub struct ProcessCollector {
    proc_dir: PathBuf,
    previous: Mutex<Option<(Instant, f64)>>,
}

impl Default for ProcessCollector {
    fn default() -> Self {
        Self::new()
    }
}

impl ProcessCollector {
    /// Reads `/proc/self`.
    pub fn new() -> Self {
        Self {
            proc_dir: PathBuf::from("/proc/self"),
            previous: Mutex::new(None),
        }
    }

    /// Reads the process now; `None` where `/proc` is not available.
    pub fn read(&self) -> Option<ProcessStats> {
        let stat = std::fs::read_to_string(self.proc_dir.join("stat")).ok()?;
        let statm = std::fs::read_to_string(self.proc_dir.join("statm")).ok()?;
        // SAFETY: sysconf has no preconditions; it returns -1 for an unknown name.
        let (ticks, page) = unsafe {
            (
                libc::sysconf(libc::_SC_CLK_TCK),
                libc::sysconf(libc::_SC_PAGESIZE),
            )
        };
        let (ticks, page) = (
            if ticks > 0 { ticks as f64 } else { 100.0 },
            if page > 0 { page as u64 } else { 4096 },
        );
        let (cpu_seconds, resident_memory_bytes, threads) = parse(&stat, &statm, ticks, page)?;
        let open_fds = std::fs::read_dir(self.proc_dir.join("fd")).map_or(0, |d| d.count() as u64);
        Some(ProcessStats {
            cpu_seconds,
            resident_memory_bytes,
            open_fds,
            threads,
        })
    }

    /// Reads the process and sets the gauges.
    pub fn collect(&self) {
        let Some(stats) = self.read() else { return };
        metrics::gauge!(CPU_SECONDS).set(stats.cpu_seconds);
        metrics::gauge!(RESIDENT_MEMORY_BYTES).set(stats.resident_memory_bytes as f64);
        metrics::gauge!(OPEN_FDS).set(stats.open_fds as f64);
        metrics::gauge!(THREADS).set(stats.threads as f64);
        let now = Instant::now();
        let mut previous = self
            .previous
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((at, cpu)) = *previous {
            let wall = now.duration_since(at).as_secs_f64();
            if wall > 0.0 {
                metrics::gauge!(CPU_UTILIZATION)
                    .set((stats.cpu_seconds - cpu).max(0.0) / wall * 100.0);
            }
        }
        *previous = Some((now, stats.cpu_seconds));
    }
}

impl paymetrics_automation::Collector for ProcessCollector {
    fn collect(&self) {
        ProcessCollector::collect(self);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_a_tricky_command_name() {
        let stat = "4242 (my (odd) app) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 50 0 0 20 0 7 0 12345 1000000 300 18446744073709551615";
        let statm = "25000 300 100 10 0 5000 0\n";
        assert_eq!(parse(stat, statm, 100.0, 4096), Some((3.0, 300 * 4096, 7)));
        assert_eq!(parse("garbage", statm, 100.0, 4096), None);
    }

    #[test]
    fn reads_this_process() {
        // Other tests run in this process at the same time: assert floors, not differences.
        let threads: Vec<_> = (0..3)
            .map(|_| {
                std::thread::spawn(|| std::thread::park_timeout(std::time::Duration::from_secs(30)))
            })
            .collect();
        let file = std::fs::File::open("/proc/self/stat").unwrap();
        let stats = ProcessCollector::new().read().expect("/proc is here");
        assert!(stats.threads >= 4, "{stats:?}"); // this test's thread and the three parked ones
        assert!(stats.open_fds >= 4, "{stats:?}"); // stdio and `file`
        assert!(stats.resident_memory_bytes > 1 << 20, "{stats:?}");
        drop(file);
        for t in threads {
            t.thread().unpark();
            t.join().unwrap();
        }
    }
}
