//! The `/1.0/events` stream, reconnected after the daemon restarts.
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use super::client::Incus;
use super::types::Event;

/// What the event follower hands out.
#[derive(Debug, Clone)]
pub enum EventMsg {
    /// The stream is (again) connected: consumers should re-read state, as events may have been missed.
    Connected,
    Event(Event),
    /// The stream dropped, or the first connection failed; reconnects are under way (repeated
    /// failures are not reported again).
    Disconnected(String),
}

impl Incus {
    /// Follows events of the given types (e.g. "lifecycle") until the receiver is dropped,
    /// reconnecting with back-off (100 ms .. 2 s) when the daemon goes away.
    pub fn follow_events(&self, types: &str) -> mpsc::Receiver<EventMsg> {
        let (tx, rx) = mpsc::channel(256);
        let incus = self.clone();
        let path = format!("/1.0/events?type={}", urlencoding::encode(types));
        tokio::spawn(async move {
            let mut backoff = Duration::from_millis(100);
            let mut reported_down = false;
            loop {
                match incus.websocket(&path).await {
                    Ok(mut ws) => {
                        backoff = Duration::from_millis(100);
                        if tx.send(EventMsg::Connected).await.is_err() {
                            return;
                        }
                        let reason = loop {
                            tokio::select! {
                                _ = tx.closed() => return,
                                m = ws.next() => match m {
                                    Some(Ok(Message::Text(t))) => {
                                        if let Ok(ev) = serde_json::from_str::<Event>(&t)
                                            && tx.send(EventMsg::Event(ev)).await.is_err() { return; }
                                    }
                                    Some(Ok(Message::Binary(b))) => {
                                        if let Ok(ev) = serde_json::from_slice::<Event>(&b)
                                            && tx.send(EventMsg::Event(ev)).await.is_err() { return; }
                                    }
                                    Some(Ok(Message::Close(_))) | None => break "closed by the daemon".to_string(),
                                    Some(Err(e)) => break e.to_string(),
                                    _ => {}
                                }
                            }
                        };
                        reported_down = true;
                        if tx.send(EventMsg::Disconnected(reason)).await.is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        tracing::debug!("events: {e}");
                        if !reported_down {
                            reported_down = true;
                            if tx.send(EventMsg::Disconnected(e.to_string())).await.is_err() {
                                return;
                            }
                        }
                        if tx.is_closed() {
                            return;
                        }
                    }
                }
                tokio::select! {
                    _ = tx.closed() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        });
        rx
    }
}
