//! `AnalyzerManager::run` on the real clock: it consumes the observation channel and
//! fires held triggers through its periodic re-evaluation.

mod support;

use std::time::{Duration, SystemTime};

use civitas_placement::{EVALUATION_INTERVAL, SddEventKind, TriggerState};
use support::*;
use tokio::sync::{mpsc, watch};
use tokio::time::timeout;

const DEADLINE: Duration = Duration::from_secs(10);

#[tokio::test]
async fn run_consumes_observations_and_fires_a_held_trigger_without_new_requests() {
    let (m, _bus, mut candidates) = manager();
    let hold = Duration::from_millis(300);
    assert!(hold > EVALUATION_INTERVAL);
    m.activate(&request(&["response_time.p50 > 1ms for 300ms min 1"], "0.8..1.0"), SystemTime::now()).unwrap();
    let (tx, rx) = mpsc::channel(16);
    let (_stop, shutdown) = watch::channel(false);
    let task = tokio::spawn(m.clone().run(rx, shutdown));

    let sent_at = SystemTime::now();
    tx.send(obs("v", None, sent_at, 50, 10)).await.unwrap();
    // No request will follow: only the periodic pass can end the hold.
    drop(tx);
    let candidate = timeout(DEADLINE, candidates.recv()).await.expect("no candidate before the deadline").unwrap();
    assert_eq!(candidate.view, urn("urn:city:mobility:v"));
    assert_eq!(candidate.value, 50.0);
    let waited = Duration::from_millis(
        candidate
            .fired_at_unix_ms
            .saturating_sub(sent_at.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_millis() as u64),
    );
    assert!(waited >= hold, "fired after {waited:?}, before its hold time");
    // The loop saw the observation: the view is analysed and its trigger fired.
    let status = m.status(SystemTime::now());
    assert_eq!(status.views.len(), 1);
    assert_eq!(status.views[0].samples, 1);
    assert_eq!(status.views[0].triggers[0].state, TriggerState::Fired);
    assert_eq!(m.events(None).last().unwrap().kind, SddEventKind::Fired);
    task.abort();
}

#[tokio::test]
async fn run_stops_on_shutdown() {
    let (m, _bus, _candidates) = manager();
    let (tx, rx) = mpsc::channel(16);
    let (stop, shutdown) = watch::channel(false);
    let task = tokio::spawn(m.clone().run(rx, shutdown));
    tx.send(obs("v", None, SystemTime::now(), 5, 0)).await.unwrap();
    // Wait (with a deadline) until the loop has taken the observation.
    timeout(DEADLINE, async {
        while m.tracked_views() == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("observation not consumed");
    stop.send(true).unwrap();
    timeout(DEADLINE, task).await.expect("run did not stop").unwrap();
    // Sender still open, loop gone.
    assert!(tx.send(obs("v", None, SystemTime::now(), 5, 0)).await.is_err());
}

#[tokio::test]
async fn run_stops_when_the_shutdown_sender_is_dropped() {
    let (m, _bus, _candidates) = manager();
    let (_tx, rx) = mpsc::channel(16);
    let (stop, shutdown) = watch::channel(false);
    let task = tokio::spawn(m.run(rx, shutdown));
    drop(stop);
    timeout(DEADLINE, task).await.expect("run did not stop").unwrap();
}
