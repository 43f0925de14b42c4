//! What handlers, the order process and the notification worker run on.

use std::sync::Arc;

use argon2::password_hash::{PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use axum::extract::FromRef;
use mercato_event_store::SnapshotPolicy;
use mercato_nats::NatsConfig;
use mercato_web::auth::Sessions;
use mercato_web::JwtKeys;
use sqlx::PgPool;

use crate::config::CommandApiConfig;
use crate::stores::Stores;

/// What the command side runs on (shared with the order process and the notification
/// worker).
#[derive(Clone)]
pub struct Deps {
    /// PostgreSQL (events and the `command` schema).
    pub pool: PgPool,
    /// The NATS connection (readiness; workers consume through it).
    pub nats_client: async_nats::Client,
    /// JetStream on that connection.
    pub js: async_nats::jetstream::Context,
    /// Stream and subject names.
    pub nats: NatsConfig,
    /// Snapshot intervals per aggregate type.
    pub snapshots: SnapshotPolicy,
}

pub(crate) struct Shared {
    pub config: CommandApiConfig,
    pub stores: Stores,
    pub argon2: Argon2<'static>,
    /// A hash of no one's password, verified when a sign-in names no account, so an unknown
    /// email costs the same time as a wrong password.
    pub dummy_hash: String,
}

/// Handler state: the shared parts and the JWT keys.
#[derive(Clone)]
pub struct AppState {
    shared: Arc<Shared>,
    keys: JwtKeys,
}

impl FromRef<AppState> for JwtKeys {
    fn from_ref(state: &AppState) -> JwtKeys {
        state.keys.clone()
    }
}

impl AppState {
    pub(crate) fn new(config: CommandApiConfig, pool: PgPool, snapshots: &SnapshotPolicy) -> Self {
        let keys = JwtKeys::new(&config.jwt_secret, config.token_ttl)
            .with_sessions(Sessions::new(pool.clone()));
        let params = Params::new(config.argon2_memory_kib.max(8), 2, 1, None)
            .unwrap_or_else(|_| Params::default());
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>())
            .unwrap_or_else(|_| unreachable!("16 bytes encode"));
        let secret: [u8; 32] = rand::random();
        let dummy_hash = argon2
            .hash_password(&secret, &salt)
            .map(|h| h.to_string())
            .unwrap_or_default();
        Self {
            keys,
            shared: Arc::new(Shared {
                stores: Stores::new(pool, config.payment_gateway.build(&config), snapshots),
                argon2,
                dummy_hash,
                config,
            }),
        }
    }

    pub(crate) fn dummy_hash(&self) -> &str {
        &self.shared.dummy_hash
    }

    pub(crate) fn config(&self) -> &CommandApiConfig {
        &self.shared.config
    }

    pub(crate) fn stores(&self) -> &Stores {
        &self.shared.stores
    }

    pub(crate) fn keys(&self) -> &JwtKeys {
        &self.keys
    }

    pub(crate) fn argon2(&self) -> &Argon2<'static> {
        &self.shared.argon2
    }
}
