//! The secrets of anonymous carts: a random token handed out once, of which only the SHA-256
//! is kept (`command.cart_tokens`).

use base64::Engine as _;
use rand::RngCore;
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use subtle::ConstantTimeEq;
use uuid::Uuid;

/// The SHA-256 (hex) of a cart token: all that is stored.
pub(crate) fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Issues a new token for `cart_id`, replacing any earlier one (a retry whose first answer
/// was lost gets a new token, replacing the unseen one).
pub(crate) async fn issue(pool: &PgPool, cart_id: Uuid) -> Result<String, sqlx::Error> {
    let mut raw = [0u8; 32];
    rand::rng().fill_bytes(&mut raw);
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
    sqlx::query(
        "INSERT INTO command.cart_tokens (cart_id, token_hash) VALUES ($1, $2) \
         ON CONFLICT (cart_id) DO UPDATE SET token_hash = EXCLUDED.token_hash",
    )
    .bind(cart_id)
    .bind(hash(&token))
    .execute(pool)
    .await?;
    Ok(token)
}

/// Whether `token` is `cart_id`'s (compared in constant time).
pub(crate) async fn matches(
    pool: &PgPool,
    cart_id: Uuid,
    token: &str,
) -> Result<bool, sqlx::Error> {
    let stored: Option<String> =
        sqlx::query_scalar("SELECT token_hash FROM command.cart_tokens WHERE cart_id = $1")
            .bind(cart_id)
            .fetch_optional(pool)
            .await?;
    Ok(stored.is_some_and(|h| bool::from(h.as_bytes().ct_eq(hash(token).as_bytes()))))
}
