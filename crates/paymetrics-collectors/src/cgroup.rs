//! The container: CPU usage and throttling, memory usage and limit, from cgroup v2 with a v1
//! fallback.
//!
//! cgroup v2 (a unified hierarchy: `cgroup.controllers` at the root) is read from the process's
//! own cgroup (`0::/path` in `/proc/self/cgroup`): `cpu.stat`, `cpu.max`, `memory.current`,
//! `memory.max`. cgroup v1 is read per controller (`cpu`, `cpuacct`, `memory`), under the
//! process's path in that controller when it exists there, else at the controller's root:
//! `cpuacct.usage`, `cpu.stat`, `cpu.cfs_quota_us`/`cpu.cfs_period_us`,
//! `memory.usage_in_bytes`, `memory.limit_in_bytes`. No limit means no limit gauge.

use std::path::{Path, PathBuf};

/// Gauge, seconds: CPU time used by the container's cgroup since it started.
pub const CPU_USAGE_SECONDS: &str = "container.cpu.usage_seconds";
/// Gauge, periods: scheduler periods in which the cgroup was throttled, since it started.
pub const CPU_THROTTLED_PERIODS: &str = "container.cpu.throttled_periods";
/// Gauge, seconds: time the cgroup spent throttled, since it started.
pub const CPU_THROTTLED_SECONDS: &str = "container.cpu.throttled_seconds";
/// Gauge, cores: the CPU quota (`quota / period`); absent when unlimited.
pub const CPU_LIMIT_CORES: &str = "container.cpu.limit_cores";
/// Gauge, bytes: memory charged to the cgroup.
pub const MEMORY_USAGE_BYTES: &str = "container.memory.usage_bytes";
/// Gauge, bytes: the memory limit; absent when unlimited.
pub const MEMORY_LIMIT_BYTES: &str = "container.memory.limit_bytes";
/// Tag key on every container gauge: `1` or `2`.
pub const CGROUP_VERSION: &str = "cgroup_version";

/// One reading of the container's cgroup.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct CgroupStats {
    /// 1 or 2.
    pub version: u8,
    /// [`CPU_USAGE_SECONDS`].
    pub cpu_usage_seconds: Option<f64>,
    /// [`CPU_THROTTLED_PERIODS`].
    pub cpu_throttled_periods: Option<u64>,
    /// [`CPU_THROTTLED_SECONDS`].
    pub cpu_throttled_seconds: Option<f64>,
    /// [`CPU_LIMIT_CORES`].
    pub cpu_limit_cores: Option<f64>,
    /// [`MEMORY_USAGE_BYTES`].
    pub memory_usage_bytes: Option<u64>,
    /// [`MEMORY_LIMIT_BYTES`].
    pub memory_limit_bytes: Option<u64>,
}

/// v1 reports "no limit" as a huge page-aligned number.
const V1_UNLIMITED: u64 = 1 << 62;

fn read(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

fn number<T: std::str::FromStr>(path: &Path) -> Option<T> {
    read(path)?.trim().parse().ok()
}

fn stat_field(text: &str, name: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == name).then(|| v.trim().parse().ok()).flatten()
    })
}

/// The cgroup path of each controller in `/proc/self/cgroup` text (`""` is the v2 entry).
fn paths(self_cgroup: &str) -> Vec<(String, String)> {
    self_cgroup
        .lines()
        .filter_map(|l| {
            let mut parts = l.splitn(3, ':');
            parts.next()?;
            let controllers = parts.next()?;
            let path = parts.next()?;
            Some((
                controllers.to_owned(),
                path.trim_start_matches('/').to_owned(),
            ))
        })
        .collect()
}

/// Reads the cgroup mounted at `root` for the process described by `self_cgroup` (the text of
/// `/proc/self/cgroup`). `None` when no cgroup is mounted there.
pub fn read_stats(root: &Path, self_cgroup: &str) -> Option<CgroupStats> {
    let paths = paths(self_cgroup);
    if root.join("cgroup.controllers").exists() {
        let own = paths
            .iter()
            .find(|(c, _)| c.is_empty())
            .map_or("", |(_, p)| p.as_str());
        let dir = [root.join(own), root.to_path_buf()]
            .into_iter()
            .find(|d| d.join("cpu.stat").exists())?;
        let cpu = read(&dir.join("cpu.stat")).unwrap_or_default();
        let cpu_limit_cores = read(&dir.join("cpu.max")).and_then(|t| {
            let (quota, period) = t.trim().split_once(' ')?;
            let (quota, period): (f64, f64) = (quota.parse().ok()?, period.parse().ok()?);
            (period > 0.0).then_some(quota / period)
        });
        return Some(CgroupStats {
            version: 2,
            cpu_usage_seconds: stat_field(&cpu, "usage_usec").map(|us| us as f64 / 1e6),
            cpu_throttled_periods: stat_field(&cpu, "nr_throttled"),
            cpu_throttled_seconds: stat_field(&cpu, "throttled_usec").map(|us| us as f64 / 1e6),
            cpu_limit_cores,
            memory_usage_bytes: number(&dir.join("memory.current")),
            memory_limit_bytes: number(&dir.join("memory.max")),
        });
    }
    // v1: each controller has its own mount and its own path for this process.
    let dir = |controller: &str, file: &str| -> Option<PathBuf> {
        let mount = root.join(controller);
        let own = paths
            .iter()
            .find(|(c, _)| c.split(',').any(|c| c == controller))
            .map_or("", |(_, p)| p.as_str());
        [mount.join(own), mount]
            .into_iter()
            .find(|d| d.join(file).exists())
    };
    let cpuacct = dir("cpuacct", "cpuacct.usage");
    let cpu = dir("cpu", "cpu.stat");
    let memory = dir("memory", "memory.usage_in_bytes");
    if cpuacct.is_none() && cpu.is_none() && memory.is_none() {
        return None;
    }
    let cpu_stat = cpu
        .as_ref()
        .and_then(|d| read(&d.join("cpu.stat")))
        .unwrap_or_default();
    let cpu_limit_cores = cpu.as_ref().and_then(|d| {
        let quota: i64 = number(&d.join("cpu.cfs_quota_us"))?;
        let period: i64 = number(&d.join("cpu.cfs_period_us"))?;
        (quota > 0 && period > 0).then(|| quota as f64 / period as f64)
    });
    Some(CgroupStats {
        version: 1,
        cpu_usage_seconds: cpuacct
            .and_then(|d| number::<u64>(&d.join("cpuacct.usage")))
            .map(|ns| ns as f64 / 1e9),
        cpu_throttled_periods: stat_field(&cpu_stat, "nr_throttled"),
        cpu_throttled_seconds: stat_field(&cpu_stat, "throttled_time").map(|ns| ns as f64 / 1e9),
        cpu_limit_cores,
        memory_usage_bytes: memory
            .as_ref()
            .and_then(|d| number(&d.join("memory.usage_in_bytes"))),
        memory_limit_bytes: memory
            .as_ref()
            .and_then(|d| number::<u64>(&d.join("memory.limit_in_bytes")))
            .filter(|l| *l < V1_UNLIMITED),
    })
}

/// Records [`CgroupStats`] of this process's container.
#[derive(Debug, Clone)]
pub struct CgroupCollector {
    root: PathBuf,
    self_cgroup: PathBuf,
}

impl Default for CgroupCollector {
    fn default() -> Self {
        Self::new()
    }
}

impl CgroupCollector {
    /// Reads `/sys/fs/cgroup` for `/proc/self/cgroup`.
    pub fn new() -> Self {
        Self::at("/sys/fs/cgroup", "/proc/self/cgroup")
    }

    /// Reads a cgroup mounted at `root`, for the process whose cgroup file is `self_cgroup`.
    pub fn at(root: impl Into<PathBuf>, self_cgroup: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            self_cgroup: self_cgroup.into(),
        }
    }

    /// Reads the cgroup now.
    pub fn read(&self) -> Option<CgroupStats> {
        read_stats(&self.root, &read(&self.self_cgroup).unwrap_or_default())
    }

    /// Reads the cgroup and sets the gauges it has values for.
    pub fn collect(&self) {
        let Some(s) = self.read() else { return };
        let version = if s.version == 2 { "2" } else { "1" };
        let set = |name: &'static str, v: Option<f64>| {
            if let Some(v) = v {
                metrics::gauge!(name, CGROUP_VERSION => version).set(v);
            }
        };
        set(CPU_USAGE_SECONDS, s.cpu_usage_seconds);
        set(
            CPU_THROTTLED_PERIODS,
            s.cpu_throttled_periods.map(|n| n as f64),
        );
        set(CPU_THROTTLED_SECONDS, s.cpu_throttled_seconds);
        set(CPU_LIMIT_CORES, s.cpu_limit_cores);
        set(MEMORY_USAGE_BYTES, s.memory_usage_bytes.map(|n| n as f64));
        set(MEMORY_LIMIT_BYTES, s.memory_limit_bytes.map(|n| n as f64));
    }
}

impl paymetrics_automation::Collector for CgroupCollector {
    fn collect(&self) {
        CgroupCollector::collect(self);
    }
}
