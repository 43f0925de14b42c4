//! The shipped gateway (deploy/gateway/nginx.conf, run by Debian's nginx) in front of the
//! parts as separate processes: a whole checkout through its single entry point, and its
//! sign-in rate limit under a burst of logins.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mercato_event_store::testing::TestDatabase;
use mercato_nats::testing::TestNats;
use serde_json::{json, Value};

use crate::guest::Shop;
use crate::process::{database_url, migrate, Mercato};

/// nginx running the shipped configuration in a scratch directory.
struct Gateway {
    child: Child,
    dir: PathBuf,
    url: String,
}

impl Gateway {
    /// Starts nginx with deploy/gateway/nginx.conf in front of `command` and `query`
    /// (`host:port`), on a free port.
    fn start(command: &str, query: &str) -> Self {
        let nginx = ["/usr/sbin/nginx", "/usr/bin/nginx"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("nginx is installed (deploy/local/stack.sh)");
        let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/gateway/nginx.conf");
        for _ in 0..5 {
            let dir =
                std::env::temp_dir().join(format!("mercato-gateway-{}", uuid::Uuid::new_v4()));
            let (conf, prefix) = (dir.join("conf"), dir.join("prefix"));
            std::fs::create_dir_all(&conf).unwrap();
            std::fs::create_dir_all(&prefix).unwrap();
            std::fs::copy(&shipped, conf.join("nginx.conf")).unwrap();
            std::fs::write(
                conf.join("upstreams.conf"),
                format!(
                    "upstream mercato_command {{ server {command}; keepalive 8; }}\n\
                     upstream mercato_query {{ server {query}; keepalive 8; }}\n"
                ),
            )
            .unwrap();
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            std::fs::write(
                conf.join("listen.conf"),
                format!("listen 127.0.0.1:{port};\n"),
            )
            .unwrap();
            // Its logs go to files: a pipe held by a worker would outlive the test.
            let mut child = Command::new(nginx)
                .arg("-p")
                .arg(&prefix)
                .arg("-e")
                .arg(dir.join("error.log"))
                .arg("-c")
                .arg(conf.join("nginx.conf"))
                .args(["-g", "daemon off;"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("nginx runs");
            let url = format!("http://127.0.0.1:{port}");
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if child.try_wait().unwrap().is_some() {
                    break; // e.g. the port was taken meanwhile: try another
                }
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Self { child, dir, url };
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            stop(&mut child);
            let log = std::fs::read_to_string(dir.join("error.log")).unwrap_or_default();
            eprintln!("nginx did not start:\n{log}");
            let _ = std::fs::remove_dir_all(&dir);
        }
        panic!("nginx did not start with the shipped configuration");
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        stop(&mut self.child);
        if std::thread::panicking() {
            let log = std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default();
            eprintln!("--- nginx's error log ---\n{log}");
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Stops nginx with SIGTERM, so that its master stops the workers (a SIGKILL would leave
/// them running without it), then SIGKILL if it lingers.
fn stop(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkout_through_the_gateway_and_its_sign_in_limit() {
    let db = TestDatabase::new().await;
    let nats = TestNats::new().await;
    assert!(migrate(&database_url(&db)));
    let behind_gateway = [("MERCATO_TRUST_FORWARDED_FOR", "true")];
    let command = Mercato::start_with(&["command-api"], &db, &nats, &behind_gateway);
    let query = Mercato::start_with(&["query-api"], &db, &nats, &behind_gateway);
    let _relay = Mercato::start(&["relay"], &db, &nats);
    let _worker = Mercato::start(&["worker"], &db, &nats);
    let gateway = Gateway::start(
        command.command_api_addr.as_deref().unwrap(),
        query.query_api_addr.as_deref().unwrap(),
    );
    let shop = Shop {
        http: reqwest::Client::new(),
        command: gateway.url.clone(),
        query: gateway.url.clone(),
    };
    let (http, at) = (&shop.http, |path: &str| format!("{}{path}", gateway.url));

    // Everything through the one entry point: writes reach the command API, reads the query API.
    let admin = shop.admin_token().await;
    shop.stock_product(&admin, "GW-1", 5).await;
    let placed = shop
        .guest_checkout("GW-1", 2, &[("idempotency-key", "gateway-checkout-1")])
        .await;
    let order = shop.wait_until_confirmed(&placed).await;
    assert_eq!(order["total"]["amount"], 5000, "{order}");
    let deadline = Instant::now() + Duration::from_secs(60);
    // Two of the five units are held for it (the stock read model may follow a moment later).
    loop {
        let stock: Value = http
            .get(at("/v1/stock/GW-1"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if stock["available"] == 3 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "stock through the gateway: {stock}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // Both APIs' documents are reachable.
    for path in ["/openapi.json", "/command/openapi.json"] {
        let doc: Value = http
            .get(at(path))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(doc["paths"].is_object(), "{path}");
    }

    // A burst of sign-ins: the gateway answers 429 problems with Retry-After before the APIs
    // see them.
    let mut limited = 0;
    for _ in 0..20 {
        let resp = http
            .post(at("/v1/auth/token"))
            .json(&json!({"email": "admin@mercato.test", "password": "wrong"}))
            .send()
            .await
            .unwrap();
        if resp.status() == 429 {
            limited += 1;
            assert!(resp.headers().contains_key("retry-after"));
            assert_eq!(
                resp.headers()["content-type"].to_str().unwrap(),
                "application/problem+json"
            );
        } else {
            assert_eq!(resp.status(), 401);
        }
    }
    assert!(limited >= 10, "only {limited} of 20 sign-ins were limited");
}
