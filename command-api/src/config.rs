//! The command side's settings (plain values; the `mercato` binary fills them from its own
//! settings and environment).

use std::net::SocketAddr;
use std::time::Duration;

use std::sync::Arc;

use mercato_aggregates::payment::PaymentGateway;
use secrecy::SecretString;

use crate::gateway::TestCardGateway;

/// The default ceiling of a price or refund: 1,000,000,000 minor units (10 million in a
/// currency with cents). A checkout multiplies it by at most 999 units of each of 50 lines,
/// so a day of orders stays far inside a 64-bit total.
pub const DEFAULT_MAX_AMOUNT: i64 = 1_000_000_000;

/// The payment gateways Mercato can talk to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PaymentGatewayKind {
    /// The test card processor with documented tokens (`tok_visa`, `tok_decline`, ...); no
    /// money moves.
    #[default]
    Test,
}

impl PaymentGatewayKind {
    /// Every accepted name, for help texts and errors.
    pub const NAMES: &'static [&'static str] = &["test"];

    /// The gateway of this kind.
    pub fn build(self, config: &CommandApiConfig) -> Arc<dyn PaymentGateway> {
        match self {
            PaymentGatewayKind::Test => Arc::new(TestCardGateway::new(config.payment_timeout)),
        }
    }
}

impl std::str::FromStr for PaymentGatewayKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "test" => Ok(PaymentGatewayKind::Test),
            other => Err(format!(
                "unknown payment gateway {other:?}; one of: {}",
                Self::NAMES.join(", ")
            )),
        }
    }
}

/// Everything the command API, the order process and the notification worker need to know.
#[derive(Debug, Clone)]
pub struct CommandApiConfig {
    /// Where the HTTP API listens (`MERCATO_COMMAND_API_ADDR`, default `127.0.0.1:8080`).
    pub addr: SocketAddr,
    /// HS256 secret for access tokens (`MERCATO_JWT_SECRET`).
    pub jwt_secret: SecretString,
    /// Lifetime of issued access tokens.
    pub token_ttl: Duration,
    /// The back office login (`MERCATO_ADMIN_EMAIL`); no admin login without it.
    pub admin_email: Option<String>,
    /// The back office password (`MERCATO_ADMIN_PASSWORD`).
    pub admin_password: Option<SecretString>,
    /// Largest accepted request body in bytes.
    pub body_limit: usize,
    /// Browser origins allowed to call the API cross-origin (`MERCATO_CORS_ORIGINS`); none by
    /// default.
    pub cors_origins: Vec<axum::http::HeaderValue>,
    /// Which payment gateway authorizes, captures, voids and refunds
    /// (`MERCATO_PAYMENT_GATEWAY`).
    pub payment_gateway: PaymentGatewayKind,
    /// How long the test card gateway waits for the "processor" before declining with `timeout`.
    pub payment_timeout: Duration,
    /// How long stock stays reserved waiting for payment (the payment deadline).
    pub reservation_ttl: Duration,
    /// Days after a line's delivery within which the customer may return it.
    pub return_window_days: u32,
    /// The largest price or refund in minor units (`MERCATO_MAX_AMOUNT`).
    pub max_amount: i64,
    /// How often the order process looks for passed deadlines and undispatched commands.
    pub deadline_poll: Duration,
    /// How old a recorded checkout whose order is still missing must be before the order process's
    /// sweeper places the order itself (its request presumably died between the two steps).
    pub checkout_grace: Duration,
    /// How long idempotency keys are kept (at least 24 h in production).
    pub idempotency_ttl: Duration,
    /// How long a request holds its idempotency key before a retry may take it over
    /// (the previous attempt is presumed dead).
    pub idempotency_lock: Duration,
    /// `smtp://user:pass@host:port` (or `smtps://`); without it notifications are only recorded.
    pub smtp_url: Option<SecretString>,
    /// Sender address of notification emails.
    pub mail_from: String,
    /// Name prefix of the durable consumers (`<prefix>-checkout`, `<prefix>-notifications`).
    pub consumer_prefix: String,
    /// Argon2id cost: memory in KiB (OWASP minimum 19 MiB; tests lower it).
    pub argon2_memory_kib: u32,
    /// Sign-in and registration throttles.
    pub throttle: crate::throttle::ThrottleConfig,
}

impl CommandApiConfig {
    /// Local defaults around the given JWT secret.
    pub fn new(jwt_secret: SecretString) -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            jwt_secret,
            token_ttl: Duration::from_secs(3600),
            admin_email: None,
            admin_password: None,
            body_limit: mercato_web::layers::DEFAULT_BODY_LIMIT,
            cors_origins: Vec::new(),
            payment_gateway: PaymentGatewayKind::Test,
            payment_timeout: Duration::from_secs(10),
            reservation_ttl: Duration::from_secs(15 * 60),
            return_window_days: 30,
            max_amount: DEFAULT_MAX_AMOUNT,
            deadline_poll: Duration::from_secs(1),
            checkout_grace: Duration::from_secs(10),
            idempotency_ttl: Duration::from_secs(24 * 3600),
            idempotency_lock: Duration::from_secs(60),
            smtp_url: None,
            mail_from: "Mercato <orders@mercato.invalid>".to_owned(),
            consumer_prefix: "mercato".to_owned(),
            argon2_memory_kib: 19 * 1024,
            throttle: crate::throttle::ThrottleConfig::default(),
        }
    }

    /// Fast settings for tests: port 0, an admin `admin@mercato.test` / `admin-password`,
    /// a short payment timeout and cheap password hashing.
    pub fn for_tests() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            admin_email: Some("admin@mercato.test".to_owned()),
            admin_password: Some(SecretString::from("admin-password")),
            payment_timeout: Duration::from_millis(200),
            deadline_poll: Duration::from_millis(200),
            checkout_grace: Duration::from_secs(1),
            idempotency_lock: Duration::from_secs(5),
            argon2_memory_kib: 1024,
            // Test suites sign in and register from one address all the time; the throttle
            // tests set their own limits.
            throttle: crate::throttle::ThrottleConfig {
                login_per_account: 10_000,
                login_per_address: 10_000,
                registrations_per_address: 10_000,
                ..crate::throttle::ThrottleConfig::default()
            },
            ..Self::new(SecretString::from("test-secret-test-secret-test-secret"))
        }
    }
}
