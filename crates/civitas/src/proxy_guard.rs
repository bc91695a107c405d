//! The stand-alone proxy's read check: the proxy enforces, its node decides. For each
//! (client credentials, view) the proxy asks `POST {node}/api/v1/security/read-decisions`
//! with its own `node.peer_token`, and keeps the answer for `security.cache_ttl_ms` —
//! the same time a node keeps its own decisions, so a revoked token stops working at the
//! proxy no later than at the node plus that time. A node that cannot be asked means no
//! read (503): the proxy fails closed. A node with security off answers so, and then the
//! proxy lets every read through, like that node's own data plane.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, HeaderValue, header};
use civitas_dataplane::{GuardRefusal, ReadGuard};
use civitas_model::Urn;
use serde_json::Value;

/// Most decisions kept; past that the map is cleared (they are cheap to ask again).
const MAX_DECISIONS: usize = 10_000;

/// (the client's `Authorization` value, the view).
type Key = (Option<String>, Urn);
/// A decision and when it was made.
type Cached = (Instant, Result<(), GuardRefusal>);

/// Asks the node whether a client may read a view, with a short-lived cache.
pub struct RemoteReadGuard {
    http: reqwest::Client,
    url: String,
    ttl: Duration,
    decisions: Mutex<HashMap<Key, Cached>>,
}

impl RemoteReadGuard {
    /// A guard asking the node at `base` (with `http`, which carries the proxy's token).
    pub fn new(http: reqwest::Client, base: &str, ttl: Duration) -> RemoteReadGuard {
        RemoteReadGuard {
            http,
            url: format!("{}/api/v1/security/read-decisions", base.trim_end_matches('/')),
            ttl,
            decisions: Mutex::new(HashMap::new()),
        }
    }

    async fn ask(&self, authorization: Option<&str>, unit: &Urn, view: &Urn) -> Result<(), GuardRefusal> {
        let unavailable = |detail: String| GuardRefusal::Other { unavailable: true, detail };
        let body = serde_json::json!({"unit": unit.as_str(), "view": view.as_str(), "authorization": authorization});
        let response = self
            .http
            .post(&self.url)
            .json(&body)
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .map_err(|e| unavailable(format!("the node that decides reads cannot be asked: {e}")))?;
        let status = response.status();
        if status == reqwest::StatusCode::CONFLICT {
            // Security is off at the node: it lets every read through, so does its proxy.
            return Ok(());
        }
        if !status.is_success() {
            let detail = response.text().await.unwrap_or_default();
            return Err(unavailable(format!(
                "the node refused to decide the read ({status}; is node.peer_token an admin token?): {}",
                detail.chars().take(300).collect::<String>()
            )));
        }
        let answer: Value =
            response.json().await.map_err(|e| unavailable(format!("the node's read decision does not parse: {e}")))?;
        if answer["allowed"] == Value::Bool(true) {
            return Ok(());
        }
        let detail = answer["detail"].as_str().unwrap_or("refused by the node").to_string();
        Err(match answer["status"].as_u64() {
            Some(401) => GuardRefusal::Unauthenticated {
                detail,
                challenge: answer["challenge"].as_str().and_then(|c| HeaderValue::from_str(c).ok()),
            },
            Some(403) => GuardRefusal::Forbidden { detail },
            Some(400) => GuardRefusal::Other { unavailable: false, detail },
            _ => GuardRefusal::Other { unavailable: true, detail },
        })
    }
}

impl ReadGuard for RemoteReadGuard {
    fn check<'a>(
        &'a self,
        headers: &'a HeaderMap,
        unit: &'a Urn,
        view: &'a Urn,
    ) -> futures::future::BoxFuture<'a, Result<(), GuardRefusal>> {
        Box::pin(async move {
            let authorization = match headers.get(header::AUTHORIZATION).map(|v| v.to_str()) {
                None => None,
                Some(Ok(v)) => Some(v.to_string()),
                Some(Err(_)) => {
                    return Err(GuardRefusal::Other {
                        unavailable: false,
                        detail: "the Authorization header is not visible ASCII".into(),
                    });
                }
            };
            let key = (authorization, view.clone());
            if let Some((at, decision)) = self.decisions.lock().unwrap_or_else(|e| e.into_inner()).get(&key)
                && at.elapsed() < self.ttl
            {
                return decision.clone();
            }
            let decision = self.ask(key.0.as_deref(), unit, view).await;
            // An unreachable node is not remembered: the next read asks again.
            if !matches!(decision, Err(GuardRefusal::Other { unavailable: true, .. })) {
                let mut decisions = self.decisions.lock().unwrap_or_else(|e| e.into_inner());
                if decisions.len() >= MAX_DECISIONS {
                    decisions.clear();
                }
                decisions.insert(key, (Instant::now(), decision.clone()));
            }
            decision
        })
    }
}
