//! The bounded, lossy channel that carries one [`Observation`] per proxied request to
//! the analyzers.
//!
//! Decision when the channel is full: drop the observation and count it. The request
//! path never waits for analysis.

use civitas_model::Observation;
use prometheus_client::metrics::counter::Counter;
use tokio::sync::mpsc;

/// A bounded channel of observations; `capacity` is at least 1.
pub fn observation_channel(capacity: usize) -> (ObservationSender, mpsc::Receiver<Observation>) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    (ObservationSender { tx, dropped: Counter::default() }, rx)
}

/// The sending side the data plane records into. Never blocks: when the channel is full
/// (or the receiver is gone) the observation is dropped and counted.
#[derive(Clone, Debug)]
pub struct ObservationSender {
    tx: mpsc::Sender<Observation>,
    dropped: Counter,
}

impl ObservationSender {
    /// Observations dropped so far because the channel was full or closed.
    pub fn dropped(&self) -> u64 {
        self.dropped.get()
    }

    /// Sends without waiting; counts a drop when that is not possible.
    pub(crate) fn record(&self, observation: Observation) {
        if self.tx.try_send(observation).is_err() {
            self.dropped.inc();
        }
    }

    pub(crate) fn dropped_counter(&self) -> Counter {
        self.dropped.clone()
    }
}
