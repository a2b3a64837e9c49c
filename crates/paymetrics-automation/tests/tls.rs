//! `rediss://` for real: a `redis-server` this test starts with TLS only (and a password),
//! its certificate signed by a private CA made here with the `openssl` command. The store
//! writes and reads through the TLS connection when it trusts that CA, and fails (an error,
//! not a panic, not a hang) when it trusts only the public roots.
#![cfg(feature = "tls")]

use std::{
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use paymetrics::kpi::PeriodTotals;
use paymetrics_automation::{
    RedisStore,
    store::{FleetStore, Granularity, InstanceReport, StoreError},
};
use tokio::time::{Instant, sleep};

const PASSWORD: &str = "paymetrics-tls-secret";

/// A temporary directory holding a CA and a server certificate for `localhost`/127.0.0.1.
struct Certificates {
    dir: PathBuf,
}

impl Certificates {
    fn make() -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir = std::env::temp_dir().join(format!("pma-tls-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("server.ext"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\n\
             basicConstraints=critical,CA:FALSE\n\
             keyUsage=critical,digitalSignature\n\
             extendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        openssl(
            &dir,
            &[
                &["req", "-x509"][..],
                &ec,
                &[
                    "-keyout",
                    "ca.key",
                    "-out",
                    "ca.crt",
                    "-days",
                    "2",
                    "-subj",
                    "/CN=paymetrics test CA",
                    "-addext",
                    "basicConstraints=critical,CA:TRUE",
                    "-addext",
                    "keyUsage=critical,keyCertSign,cRLSign",
                ],
            ]
            .concat(),
        );
        openssl(
            &dir,
            &[
                &["req"][..],
                &ec,
                &[
                    "-keyout",
                    "server.key",
                    "-out",
                    "server.csr",
                    "-subj",
                    "/CN=localhost",
                ],
            ]
            .concat(),
        );
        openssl(
            &dir,
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "server.crt",
                "-days",
                "2",
                "-extfile",
                "server.ext",
            ],
        );
        Self { dir }
    }

    fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }
}

impl Drop for Certificates {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn openssl(dir: &Path, args: &[&str]) {
    let status = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("the openssl command (Debian package openssl)");
    assert!(status.success(), "openssl {args:?} failed");
}

/// A TLS-only `redis-server`, killed when dropped.
struct Server {
    child: Child,
    port: u16,
}

impl Server {
    fn start(certificates: &Certificates) -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        let child = Command::new("redis-server")
            .args([
                "--port",
                "0",
                "--tls-port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
            ])
            .arg("--tls-cert-file")
            .arg(certificates.path("server.crt"))
            .arg("--tls-key-file")
            .arg(certificates.path("server.key"))
            .arg("--tls-ca-cert-file")
            .arg(certificates.path("ca.crt"))
            .args(["--tls-auth-clients", "no", "--requirepass", PASSWORD])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&certificates.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server on PATH");
        Self { child, port }
    }

    fn url(&self) -> String {
        format!("rediss://:{PASSWORD}@localhost:{}", self.port)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn report() -> InstanceReport {
    let mut report = InstanceReport::new(SystemTime::now());
    let totals = PeriodTotals {
        payments: 2,
        payments_succeeded: 2,
        volume: 12.5,
        ..Default::default()
    };
    report.hours.push((3600, totals));
    report
}

#[tokio::test(flavor = "current_thread")]
async fn rediss_with_a_private_ca_and_a_password() {
    let certificates = Certificates::make();
    let server = Server::start(&certificates);
    let ca = std::fs::read(certificates.path("ca.crt")).unwrap();
    let store = RedisStore::builder(server.url())
        .namespace("tls")
        .tls_root_certificates_pem(ca)
        .operation_timeout(Duration::from_secs(2))
        .build()
        .unwrap();

    // The server takes a moment to listen: retry the first write, bounded.
    let deadline = Instant::now() + Duration::from_secs(60);
    while let Err(e) = store.write("a", &report()).await {
        assert!(Instant::now() < deadline, "no TLS connection: {e}");
        sleep(Duration::from_millis(50)).await;
    }
    let now = SystemTime::now();
    let totals = store.totals(Granularity::Hour, &[3600], now).await.unwrap();
    assert!(totals.complete);
    assert_eq!((totals.value.payments, totals.value.volume), (2, 12.5));
    assert!(
        store
            .try_lock("hour:3600", "a", Duration::from_secs(60), now)
            .await
            .unwrap()
    );

    // Trusting only the public roots, the handshake fails: an error, never a panic.
    let untrusting = RedisStore::builder(server.url())
        .namespace("tls")
        .operation_timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let err = untrusting.write("b", &report()).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Unavailable(m) if m.contains("certificate")),
        "{err}"
    );
}
