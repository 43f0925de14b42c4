//! Headless Chromium (Debian's `chromium` and `chromium-driver`, installed by
//! `deploy/local/stack.sh`) driven over WebDriver, one browser per test.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};

/// How long a page may take to show what a test waits for (the order process confirms
/// within a second or two; a loaded CI machine is slower).
const PATIENCE: Duration = Duration::from_secs(60);

/// A chromedriver process and a browser session on it.
pub struct Browser {
    pub client: Client,
    pub base: String,
    driver: Child,
    profile: std::path::PathBuf,
}

/// Whether the browser runs page scripts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scripts {
    On,
    Off,
}

impl Browser {
    /// A fresh browser (its own profile: no cookies) pointed at the storefront `addr`.
    pub async fn open(addr: &str, scripts: Scripts) -> Self {
        let port = free_port();
        let mut driver = Command::new("/usr/bin/chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver runs (deploy/local/stack.sh installs chromium-driver)");
        let profile =
            std::env::temp_dir().join(format!("mercato-chromium-{}", uuid::Uuid::new_v4()));
        let mut prefs = serde_json::Map::new();
        if scripts == Scripts::Off {
            prefs.insert(
                "profile.managed_default_content_settings.javascript".into(),
                serde_json::json!(2),
            );
        }
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                    "--window-size=1280,900", format!("--user-data-dir={}", profile.display()),
                ],
                "prefs": prefs,
            }),
        );
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        let client = loop {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector)
                .capabilities(caps.clone())
                .connect(&url)
                .await
            {
                Ok(c) => break c,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => {
                    let _ = driver.kill();
                    panic!("no browser session: {e}");
                }
            }
        };
        Self {
            client,
            base: format!("http://{addr}"),
            driver,
            profile,
        }
    }

    /// Opens `path` of the storefront.
    pub async fn go(&self, path: &str) {
        self.client
            .goto(&format!("{}{path}", self.base))
            .await
            .unwrap_or_else(|e| panic!("{path}: {e}"));
    }

    /// The element `css`, once the page shows it.
    pub async fn find(&self, css: &str) -> Element {
        match self
            .client
            .wait()
            .at_most(PATIENCE)
            .for_element(Locator::Css(css))
            .await
        {
            Ok(element) => element,
            Err(e) => panic!(
                "no {css:?} on {}: {e}\n{}",
                self.url().await,
                self.source().await
            ),
        }
    }

    /// The link or button whose text is `text`, once the page shows it.
    pub async fn by_text(&self, text: &str) -> Element {
        let xpath = format!(
            "//*[self::a or self::button][normalize-space(.)={}]",
            xpath_literal(text)
        );
        match self
            .client
            .wait()
            .at_most(PATIENCE)
            .for_element(Locator::XPath(&xpath))
            .await
        {
            Ok(element) => element,
            Err(e) => panic!(
                "no link or button {text:?} on {}: {e}\n{}",
                self.url().await,
                self.source().await
            ),
        }
    }

    /// Clicks the link or button `text` (and waits for what it loads).
    pub async fn click(&self, text: &str) {
        self.by_text(text).await.click().await.unwrap();
    }

    /// Types `value` into the field `name` of the page (replacing what it held).
    pub async fn fill(&self, name: &str, value: &str) {
        let field = self.find(&format!("[name=\"{name}\"]")).await;
        field.clear().await.unwrap();
        field.send_keys(value).await.unwrap();
    }

    /// The page's text.
    pub async fn text(&self) -> String {
        self.find("body").await.text().await.unwrap_or_default()
    }

    /// Waits until the page's text contains `needle` (reloading the page when scripts are off
    /// and the page refreshes itself, as a shopper's browser does); returns the text.
    pub async fn wait_for_text(&self, needle: &str) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let text = self.text().await;
            if text.contains(needle) {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "{needle:?} never showed on {}; the page reads:\n{text}",
                self.url().await
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// The page's HTML (for a failing test's message).
    async fn source(&self) -> String {
        self.client.source().await.unwrap_or_default()
    }

    pub async fn url(&self) -> String {
        self.client
            .current_url()
            .await
            .map(|u| u.to_string())
            .unwrap_or_default()
    }

    /// Saves a PNG of the page at `width` when `MERCATO_SCREENSHOTS` names a directory.
    pub async fn screenshot(&self, name: &str) {
        let Ok(dir) = std::env::var("MERCATO_SCREENSHOTS") else {
            return;
        };
        for (suffix, width, height) in [("desktop", 1280, 900), ("phone", 390, 844)] {
            self.client.set_window_size(width, height).await.unwrap();
            tokio::time::sleep(Duration::from_millis(200)).await;
            let png = self.client.screenshot().await.unwrap();
            std::fs::write(format!("{dir}/{name}-{suffix}.png"), png).unwrap();
        }
        self.client.set_window_size(1280, 900).await.unwrap();
    }

    /// Ends the session and the driver.
    pub async fn close(mut self) {
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// `text` as an XPath string literal.
fn xpath_literal(text: &str) -> String {
    if !text.contains('\'') {
        return format!("'{text}'");
    }
    let parts: Vec<String> = text.split('\'').map(|p| format!("'{p}'")).collect();
    format!("concat({})", parts.join(", \"'\", "))
}
