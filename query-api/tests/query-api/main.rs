//! Tests of the query API: router tests against a real database (read models filled
//! directly), and end-to-end tests with the command API, relay, order process, projection workers and
//! search consumer running in-process.

mod e2e;
mod events;
mod http;
mod lifecycle;
mod promotions;
mod recommendations;
mod search;
mod stack;

/// A signed-in customer's token: a login row (session generation 1) and a token of it, as
/// the command API would issue (the query API checks every customer token's session).
pub async fn customer_token(pool: &sqlx::PgPool, keys: &mercato_web::JwtKeys) -> String {
    mercato_command_api::migrate(pool).await.unwrap();
    let id = uuid::Uuid::new_v4();
    sqlx::query(
        "INSERT INTO command.customer_credentials (customer_id, email, password_hash) VALUES ($1, $2, 'x')",
    )
    .bind(id)
    .bind(format!("{id}@example.com"))
    .execute(pool)
    .await
    .unwrap();
    keys.issue(&id.to_string(), mercato_web::Role::Customer, Some(1))
        .unwrap()
        .access_token
}
