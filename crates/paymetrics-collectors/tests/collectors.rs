//! Collectors against this machine's real `/proc` and `/sys/fs/cgroup`, and against fixture
//! files for the cgroup version this machine does not run.

use std::path::PathBuf;

use paymetrics::testing::capture;
use paymetrics_collectors::{
    cgroup::{self, CgroupCollector, CgroupStats, read_stats},
    process::{self, ProcessCollector},
};

fn fixtures(version: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(version)
}

#[test]
fn cgroup_v2_fixture() {
    let stats = read_stats(&fixtures("cgroup-v2"), "0::/\n").unwrap();
    assert_eq!(
        stats,
        CgroupStats {
            version: 2,
            cpu_usage_seconds: Some(2.5),
            cpu_throttled_periods: Some(3),
            cpu_throttled_seconds: Some(1.5),
            cpu_limit_cores: Some(1.5),
            memory_usage_bytes: Some(104_857_600),
            memory_limit_bytes: Some(536_870_912),
        }
    );
}

#[test]
fn cgroup_v1_fixture_with_unlimited_memory() {
    let self_cgroup = "4:memory:/\n2:cpuacct:/\n1:cpu:/\n0::/\n";
    let stats = read_stats(&fixtures("cgroup-v1"), self_cgroup).unwrap();
    assert_eq!(
        stats,
        CgroupStats {
            version: 1,
            cpu_usage_seconds: Some(7.25),
            cpu_throttled_periods: Some(2),
            cpu_throttled_seconds: Some(0.3),
            cpu_limit_cores: Some(0.5),
            memory_usage_bytes: Some(2_097_152),
            memory_limit_bytes: None,
        }
    );
    let recorded = capture(|| CgroupCollector::at(fixtures("cgroup-v1"), "/nonexistent").collect());
    assert_eq!(
        recorded.gauge(cgroup::CPU_USAGE_SECONDS, &[("cgroup_version", "1")]),
        Some(7.25)
    );
    assert_eq!(
        recorded.gauge(cgroup::MEMORY_LIMIT_BYTES, &[("cgroup_version", "1")]),
        None
    );
}

#[test]
fn this_machines_cgroup_is_read() {
    let Some(stats) = CgroupCollector::new().read() else {
        panic!("no cgroup mounted at /sys/fs/cgroup");
    };
    assert!(stats.cpu_usage_seconds.unwrap() > 0.0, "{stats:?}");
    assert!(stats.memory_usage_bytes.unwrap() > 0, "{stats:?}");
    let recorded = capture(|| CgroupCollector::new().collect());
    let version = stats.version.to_string();
    assert!(
        recorded
            .gauge(cgroup::CPU_USAGE_SECONDS, &[("cgroup_version", &version)])
            .unwrap()
            > 0.0
    );
}

#[test]
fn this_process_is_read() {
    let collector = ProcessCollector::new();
    // Burn CPU until the kernel has charged at least one clock tick to this process.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut x = 0u64;
    while collector.read().unwrap().cpu_seconds == 0.0 && std::time::Instant::now() < deadline {
        for i in 0..1_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
    }
    std::hint::black_box(x);
    let recorded = capture(|| {
        collector.collect();
        collector.collect();
    });
    assert!(recorded.gauge(process::THREADS, &[]).unwrap() >= 1.0);
    assert!(recorded.gauge(process::OPEN_FDS, &[]).unwrap() >= 3.0);
    assert!(recorded.gauge(process::CPU_SECONDS, &[]).unwrap() > 0.0);
    assert!(recorded.gauge(process::CPU_UTILIZATION, &[]).unwrap() >= 0.0);
}

#[cfg(feature = "tokio")]
#[test]
fn the_tokio_runtime_is_read() {
    use paymetrics_collectors::runtime::{self, TokioRuntimeCollector};
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let collector = TokioRuntimeCollector::new(rt.handle());
    rt.block_on(async {
        let tasks: Vec<_> = (0..8).map(|i| tokio::spawn(async move { i * 2 })).collect();
        for t in tasks {
            t.await.unwrap();
        }
    });
    let recorded = capture(|| collector.collect());
    assert_eq!(recorded.gauge(runtime::WORKERS, &[]), Some(2.0));
    let busy = recorded.gauge(runtime::BUSY_RATIO, &[]).unwrap();
    assert!((0.0..=1.0).contains(&busy), "{busy}");
    assert!(recorded.gauge(runtime::GLOBAL_QUEUE_DEPTH, &[]).is_some());
}
