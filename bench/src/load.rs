//! A closed-loop load generator: `clients` tasks each run one request after the other for a
//! fixed time; every request's latency goes into one histogram.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::report::{histogram, percentiles, record};

/// What a load run measured.
pub struct Load {
    pub requests: u64,
    pub elapsed: Duration,
    pub latency: Histogram<u64>,
}

impl Load {
    pub fn per_second(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }

    /// `requests/s | p50 | p99` cells of a Markdown row.
    pub fn cells(&self) -> String {
        let (p50, p99, _) = percentiles(&self.latency);
        format!("{:.0} | {p50:.2} | {p99:.2}", self.per_second())
    }
}

/// Runs `request(client, n)` from `clients` tasks for `warmup` (not counted), then for
/// `duration`. A failed request fails the run: a benchmark of errors measures nothing.
pub async fn closed_loop<F, Fut>(
    clients: usize,
    warmup: Duration,
    duration: Duration,
    request: F,
) -> anyhow::Result<Load>
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let request = Arc::new(request);
    let start = Instant::now();
    let measure_from = start + warmup;
    let end = measure_from + duration;
    let mut tasks = Vec::with_capacity(clients);
    for client in 0..clients {
        let request = request.clone();
        tasks.push(tokio::spawn(async move {
            let mut latency = histogram();
            let mut requests = 0u64;
            let mut n = 0u64;
            loop {
                let began = Instant::now();
                if began >= end {
                    break;
                }
                request(client, n).await?;
                n += 1;
                if began >= measure_from {
                    record(&mut latency, began.elapsed());
                    requests += 1;
                }
            }
            anyhow::Ok((requests, latency))
        }));
    }
    let mut load = Load {
        requests: 0,
        elapsed: duration,
        latency: histogram(),
    };
    for task in tasks {
        let (requests, latency) = task.await??;
        load.requests += requests;
        load.latency.add(&latency)?;
    }
    Ok(load)
}
