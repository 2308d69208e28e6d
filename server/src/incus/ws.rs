//! Websockets to Incus (events, exec streams) over the same transport as the REST client.
use std::pin::Pin;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use super::client::{Endpoint, Incus};
use super::error::{IncusError, Result};

pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}
pub type Ws = WebSocketStream<Pin<Box<dyn Io>>>;

impl Incus {
    /// Opens a websocket at an API path (e.g. `/1.0/events?type=lifecycle`).
    pub async fn websocket(&self, path: &str) -> Result<Ws> {
        let wserr = |e: &dyn std::fmt::Display| IncusError::Websocket(e.to_string());
        let (stream, url): (Pin<Box<dyn Io>>, String) = match self.endpoint() {
            Endpoint::Unix(socket) => {
                let s = tokio::net::UnixStream::connect(socket)
                    .await
                    .map_err(|_| IncusError::NotRunning { socket: socket.clone() })?;
                (Box::pin(s), format!("ws://incus{path}"))
            }
            Endpoint::Https { url, tls } => {
                let parsed = url::Url::parse(url).map_err(|e| wserr(&e))?;
                let host = parsed.host_str().unwrap_or("localhost").to_string();
                let port = parsed.port_or_known_default().unwrap_or(8443);
                let tcp = tokio::net::TcpStream::connect((host.as_str(), port)).await.map_err(|e| wserr(&e))?;
                let connector = tokio_rustls::TlsConnector::from(Arc::new(tls.client_config()?));
                let name = rustls::pki_types::ServerName::try_from(host.clone()).map_err(|e| wserr(&e))?;
                let s = connector.connect(name, tcp).await.map_err(|e| wserr(&e))?;
                (Box::pin(s), format!("wss://{host}:{port}{path}"))
            }
        };
        let req = url.into_client_request().map_err(|e| wserr(&e))?;
        let (ws, _) = tokio_tungstenite::client_async(req, stream).await.map_err(|e| wserr(&e))?;
        Ok(ws)
    }
}
