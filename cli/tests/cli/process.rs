//! Spawning `mercato` as a child process.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use mercato_event_store::testing::TestDatabase;
use mercato_nats::testing::TestNats;

/// The test database's URL as a plain string for the child's environment.
pub fn database_url(db: &TestDatabase) -> String {
    let base = mercato_event_store::testing::server_url();
    format!(
        "{}/{}",
        base.rsplit_once('/').map_or("", |(b, _)| b),
        db.name()
    )
}

/// A running `mercato` process whose JSON log lines are collected.
pub struct Mercato {
    child: Child,
    lines: mpsc::Receiver<String>,
    pub admin_addr: Option<String>,
    /// `host:port` of the command API, when the process runs it.
    pub command_api_addr: Option<String>,
    /// `host:port` of the query API, when the process runs it.
    pub query_api_addr: Option<String>,
    /// Where the storefront listens, when the process runs it.
    pub storefront_addr: Option<String>,
    index_dir: std::path::PathBuf,
}

impl Mercato {
    /// Starts `mercato <args>` against the test's database and stream and waits until its
    /// admin server listens.
    pub fn start(args: &[&str], db: &TestDatabase, nats: &TestNats) -> Self {
        Self::start_with(args, db, nats, &[])
    }

    /// Like [`Mercato::start`] with extra environment variables. Every listener is on port 0,
    /// the search index in a private directory, and the admin login is
    /// `admin@mercato.test` / `admin-password`.
    pub fn start_with(
        args: &[&str],
        db: &TestDatabase,
        nats: &TestNats,
        env: &[(&str, &str)],
    ) -> Self {
        let index_dir =
            std::env::temp_dir().join(format!("mercato-index-{}", uuid::Uuid::new_v4()));
        let mut child = Command::new(env!("CARGO_BIN_EXE_mercato"))
            .args(args)
            .env("MERCATO_DATABASE_URL", database_url(db))
            .env(
                "MERCATO_DATA_KEY",
                mercato_event_store::testing::TEST_DATA_KEY,
            )
            .env("MERCATO_DATABASE_MAX_CONNECTIONS", "4")
            .env("MERCATO_NATS_URL", &nats.config.url)
            .env("MERCATO_STREAM", &nats.config.stream)
            .env("MERCATO_SUBJECT_PREFIX", &nats.config.subject_prefix)
            .env("MERCATO_ADMIN_ADDR", "127.0.0.1:0")
            .env("MERCATO_COMMAND_API_ADDR", "127.0.0.1:0")
            .env("MERCATO_QUERY_API_ADDR", "127.0.0.1:0")
            .env("MERCATO_STOREFRONT_ADDR", "127.0.0.1:0")
            .env("MERCATO_INDEX_DIR", &index_dir)
            .env(
                "MERCATO_JWT_SECRET",
                "process-test-secret-process-test-secret",
            )
            .env("MERCATO_ADMIN_EMAIL", "admin@mercato.test")
            .env("MERCATO_ADMIN_PASSWORD", "admin-password")
            .envs(env.iter().copied())
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("mercato binary runs");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut me = Self {
            child,
            lines: rx,
            admin_addr: None,
            command_api_addr: None,
            query_api_addr: None,
            storefront_addr: None,
            index_dir,
        };
        // The API listeners are bound (and logged) before the admin server starts serving.
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while me.admin_addr.is_none() {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let line = me
                .lines
                .recv_timeout(left)
                .expect("mercato starts its admin server in time");
            let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            let addr = v["addr"].as_str().map(str::to_owned);
            match v["message"].as_str() {
                Some("admin server listening") => me.admin_addr = addr,
                Some("command api listening") => me.command_api_addr = addr,
                Some("query api listening") => me.query_api_addr = addr,
                Some("storefront listening") => me.storefront_addr = addr,
                _ => {}
            }
        }
        me
    }

    /// Waits for a log line whose message is `message`; returns the line.
    pub fn wait_for_log(&mut self, message: &str, timeout: Duration) -> String {
        let deadline = std::time::Instant::now() + timeout;
        let needle = format!("\"message\":\"{message}\"");
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(&needle) => return line,
                Ok(_) => continue,
                Err(_) => panic!("mercato did not log {message:?} within {timeout:?}"),
            }
        }
    }

    /// SIGKILL: the process gets no chance to clean up.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "mercato ignored SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Mercato {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // The failing test's evidence: what the process logged that nobody read yet.
            eprintln!("--- log of mercato (pid {}) ---", self.child.id());
            while let Ok(line) = self.lines.try_recv() {
                eprintln!("{line}");
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.index_dir);
    }
}

/// Runs `mercato migrate` with only a database URL; returns whether it succeeded.
pub fn migrate(database_url: &str) -> bool {
    Command::new(env!("CARGO_BIN_EXE_mercato"))
        .arg("migrate")
        .env("MERCATO_DATABASE_URL", database_url)
        .env(
            "MERCATO_DATA_KEY",
            mercato_event_store::testing::TEST_DATA_KEY,
        )
        .stdout(Stdio::null())
        .status()
        .unwrap()
        .success()
}
