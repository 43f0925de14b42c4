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
}

impl Mercato {
    /// Starts `mercato <args>` against the test's database and stream and waits until its
    /// admin server listens.
    pub fn start(args: &[&str], db: &TestDatabase, nats: &TestNats) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_mercato"))
            .args(args)
            .env("MERCATO_DATABASE_URL", database_url(db))
            .env("MERCATO_DATABASE_MAX_CONNECTIONS", "4")
            .env("MERCATO_NATS_URL", &nats.config.url)
            .env("MERCATO_STREAM", &nats.config.stream)
            .env("MERCATO_SUBJECT_PREFIX", &nats.config.subject_prefix)
            .env("MERCATO_ADMIN_ADDR", "127.0.0.1:0")
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
        };
        let line = me.wait_for_log("admin server listening", Duration::from_secs(30));
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        me.admin_addr = v["addr"].as_str().map(str::to_owned);
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
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `mercato migrate` with only a database URL; returns whether it succeeded.
pub fn migrate(database_url: &str) -> bool {
    Command::new(env!("CARGO_BIN_EXE_mercato"))
        .arg("migrate")
        .env("MERCATO_DATABASE_URL", database_url)
        .stdout(Stdio::null())
        .status()
        .unwrap()
        .success()
}
