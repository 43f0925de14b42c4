//! Test support: a throw-away, migrated database per test.

use sqlx::{Connection, PgConnection, PgPool};
use uuid::Uuid;

use crate::database::{prepare, DatabaseConfig};

pub mod counter;

/// The server tests run against (`MERCATO_TEST_DATABASE_URL`, default the local one).
pub fn server_url() -> String {
    std::env::var("MERCATO_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// The master data key of test processes (a constant: test data is thrown away; the
/// binaries under test get it as `MERCATO_DATA_KEY`).
pub const TEST_DATA_KEY: &str = "dGVzdC1tYXN0ZXIta2V5LW9mLW1lcmNhdG8tdGVzdHM=";

/// Installs [`TEST_DATA_KEY`] as this process's master key.
pub fn install_test_keys() {
    let key = crate::privacy::MasterKey::from_base64(TEST_DATA_KEY).expect("a 32-byte key");
    crate::privacy::install(crate::privacy::MasterKeys::new(key, vec![]))
        .expect("tests use one master key");
}

/// A database of its own for one test, created and migrated on [`TestDatabase::new`] and
/// dropped when the value is dropped, so tests run in parallel and rerun on a dirty machine.
pub struct TestDatabase {
    /// The pool to the test's database.
    pub pool: PgPool,
    /// The test database's configuration (its URL names the test database).
    pub config: DatabaseConfig,
    name: String,
    server: String,
}

impl TestDatabase {
    /// Creates and migrates a fresh database named `mercato_test_<uuid>`.
    pub async fn new() -> Self {
        Self::on(&server_url()).await
    }

    /// The same on the server at `server` (a URL naming its maintenance database).
    pub async fn on(server: &str) -> Self {
        install_test_keys();
        let name = format!("mercato_test_{}", Uuid::new_v4().simple());
        let base = server.to_owned();
        let url = match base.rfind('/') {
            Some(i) if base[..i].contains("://") && base[i..].len() > 1 => {
                format!("{}/{}", &base[..i], name)
            }
            _ => format!("{}/{}", base.trim_end_matches('/'), name),
        };
        // Small pools: several test binaries share the server's 100 connections.
        let config = DatabaseConfig {
            max_connections: 6,
            ..DatabaseConfig::new(url)
        };
        let pool = prepare(&config)
            .await
            .expect("test database can be created and migrated");
        Self {
            pool,
            config,
            name,
            server: base,
        }
    }

    /// The database's URL.
    pub fn url(&self) -> String {
        format!(
            "{}/{}",
            self.server.rsplit_once('/').map_or("", |(b, _)| b),
            self.name
        )
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let name = self.name.clone();
        let server = self.server.clone();
        // Drop runs inside the test's runtime; do the async clean-up on a thread of its own.
        // FORCE ends the test's own pooled connections, which live on the test's runtime.
        let handle = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                if let Ok(mut admin) = PgConnection::connect(&server).await {
                    let sql = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
                    let _ = sqlx::query(&sql).execute(&mut admin).await;
                    let _ = admin.close().await;
                }
            });
        });
        let _ = handle.join();
    }
}

/// A PostgreSQL server of the test's own (for crash and restart tests), in a temporary
/// directory on a free port, built with the installed server's `initdb` and `pg_ctl`.
pub struct PrivatePostgres {
    /// URL of its `postgres` database.
    pub url: String,
    dir: std::path::PathBuf,
    bin: std::path::PathBuf,
}

impl PrivatePostgres {
    /// Initialises and starts a fresh cluster (trust auth, fsync off).
    pub fn start() -> Self {
        let bin = std::env::var("MERCATO_PG_BIN_DIR")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|_| newest_pg_bin_dir());
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let dir = std::env::temp_dir().join(format!("mercato-pg-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let me = Self {
            url: format!("postgres://postgres@127.0.0.1:{port}/postgres"),
            dir,
            bin,
        };
        me.as_postgres(&["chown", "-R", "postgres:postgres"], true);
        let data = me.data_dir();
        me.pg(
            "initdb",
            &[
                "-D",
                &data,
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        );
        me.pg_ctl_start();
        me
    }

    fn data_dir(&self) -> String {
        format!("{}/data", self.dir.display())
    }

    fn opts(&self) -> String {
        let port = self
            .url
            .rsplit_once(':')
            .and_then(|(_, p)| p.split('/').next())
            .unwrap_or("0");
        format!(
            "-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} -c fsync=off -c max_connections=50",
            self.dir.display()
        )
    }

    fn pg_ctl_start(&self) {
        let data = self.data_dir();
        let log = format!("{}/server.log", self.dir.display());
        let opts = self.opts();
        self.pg(
            "pg_ctl",
            &[
                "-D", &data, "-o", &opts, "-l", &log, "-w", "-t", "30", "start",
            ],
        );
    }

    /// Crashes the server (`pg_ctl stop -m immediate`: no checkpoint, clients cut off) and
    /// starts it again on the same port with the same data.
    pub fn crash_and_restart(&self) {
        let data = self.data_dir();
        self.pg("pg_ctl", &["-D", &data, "-m", "immediate", "-w", "stop"]);
        self.pg_ctl_start();
    }

    fn pg(&self, tool: &str, args: &[&str]) {
        let path = self.bin.join(tool);
        let mut cmd = vec![path.to_string_lossy().into_owned()];
        cmd.extend(args.iter().map(|a| a.to_string()));
        let refs: Vec<&str> = cmd.iter().map(String::as_str).collect();
        self.as_postgres(&refs, false);
    }

    /// Runs a command as the `postgres` OS user when we are root (PostgreSQL refuses root).
    fn as_postgres(&self, cmd: &[&str], chown_dir: bool) {
        let is_root = std::process::Command::new("id")
            .arg("-u")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
            .unwrap_or(false);
        let mut command = if chown_dir {
            if !is_root {
                return;
            }
            let mut c = std::process::Command::new(cmd[0]);
            c.args(&cmd[1..]).arg(&self.dir);
            c
        } else if is_root {
            let mut c = std::process::Command::new("runuser");
            c.args(["-u", "postgres", "--"]).args(cmd);
            c
        } else {
            let mut c = std::process::Command::new(cmd[0]);
            c.args(&cmd[1..]);
            c
        };
        let out = command.output().expect("command runs");
        assert!(
            out.status.success(),
            "{cmd:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let data = self.data_dir();
        let pg_ctl = self.bin.join("pg_ctl");
        let _ = std::process::Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(&pg_ctl)
            .args(["-D", &data, "-m", "immediate", "stop"])
            .output();
        let _ = std::process::Command::new(&pg_ctl)
            .args(["-D", &data, "-m", "immediate", "stop"])
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn newest_pg_bin_dir() -> std::path::PathBuf {
    let mut dirs: Vec<(u32, std::path::PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter_map(|e| {
                    let v: u32 = e.file_name().to_string_lossy().parse().ok()?;
                    Some((v, e.path().join("bin")))
                })
                .collect()
        })
        .unwrap_or_default();
    dirs.sort();
    dirs.pop()
        .map(|(_, p)| p)
        .expect("PostgreSQL server binaries under /usr/lib/postgresql (deploy/local/stack.sh installs them)")
}
