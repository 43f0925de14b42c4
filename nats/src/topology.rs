//! Connecting and creating the JetStream topology (idempotent).

use async_nats::jetstream::{self, stream};

use crate::config::NatsConfig;
use crate::error::NatsError;

/// Connects to NATS (reconnecting forever in the background) and opens JetStream.
pub async fn connect(
    config: &NatsConfig,
    client_name: &str,
) -> Result<(async_nats::Client, jetstream::Context), NatsError> {
    let client = async_nats::ConnectOptions::new()
        .name(client_name)
        .retry_on_initial_connect()
        .connection_timeout(std::time::Duration::from_secs(5))
        .event_callback(|event| async move {
            tracing::info!(%event, "nats connection event");
        })
        .connect(server_urls(&config.url))
        .await
        .map_err(|e| NatsError::Connect(Box::new(e)))?;
    let js = jetstream::new(client.clone());
    Ok((client, js))
}

/// The servers of a `nats://a:4222,nats://b:4222` list (async-nats takes one URL per string).
pub(crate) fn server_urls(url: &str) -> Vec<&str> {
    url.split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .collect()
}

/// Creates (or brings up to date) the events stream and the dead-letter stream.
pub async fn ensure_topology(
    js: &jetstream::Context,
    config: &NatsConfig,
) -> Result<(), NatsError> {
    let events = stream::Config {
        name: config.stream.clone(),
        description: Some("Mercato domain events, relayed from the PostgreSQL log".into()),
        subjects: vec![config.events_wildcard()],
        storage: stream::StorageType::File,
        num_replicas: config.replicas,
        duplicate_window: config.duplicate_window,
        allow_direct: true,
        ..Default::default()
    };
    let dlq = stream::Config {
        name: config.dlq_stream(),
        description: Some("Mercato events that a worker gave up on, with the error".into()),
        subjects: vec![config.dlq_wildcard()],
        storage: stream::StorageType::File,
        num_replicas: config.replicas,
        duplicate_window: config.duplicate_window,
        ..Default::default()
    };
    for cfg in [events, dlq] {
        let name = cfg.name.clone();
        js.create_or_update_stream(cfg)
            .await
            .map_err(|e| NatsError::js("stream create", e))?;
        tracing::debug!(stream = %name, "stream ready");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::server_urls;

    #[test]
    fn a_cluster_url_is_split_into_its_servers() {
        assert_eq!(
            server_urls("nats://a:4222, nats://b:4223,,nats://c:4224"),
            vec!["nats://a:4222", "nats://b:4223", "nats://c:4224"]
        );
        assert_eq!(
            server_urls("nats://127.0.0.1:4222"),
            vec!["nats://127.0.0.1:4222"]
        );
    }
}
