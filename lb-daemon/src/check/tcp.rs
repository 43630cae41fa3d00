//! TCP_CHECK, and the connect every other network checker starts with.

use std::net::SocketAddr;

use tokio::net::{TcpSocket, TcpStream};

use super::error::ProbeError;

/// Connects to `addr`, from `bind` when given (`bindto` / `bind_port`).
pub async fn connect(addr: SocketAddr, bind: Option<SocketAddr>) -> Result<TcpStream, ProbeError> {
    let socket = if addr.is_ipv4() { TcpSocket::new_v4() } else { TcpSocket::new_v6() }
        .map_err(|e| ProbeError::Connect(e.to_string()))?;
    if let Some(b) = bind {
        socket.set_reuseaddr(true).map_err(|e| ProbeError::Connect(e.to_string()))?;
        socket.bind(b).map_err(|e| ProbeError::Connect(format!("binding to {b}: {e}")))?;
    }
    socket.connect(addr).await.map_err(|e| ProbeError::Connect(e.to_string()))
}

/// A TCP_CHECK passes when the three-way handshake completes.
pub async fn check(addr: SocketAddr, bind: Option<SocketAddr>) -> Result<(), ProbeError> {
    let stream = connect(addr, bind).await?;
    drop(stream);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn open_and_closed_ports() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        check(addr, None).await.unwrap();
        check(addr, Some("127.0.0.2:0".parse().unwrap())).await.unwrap();
        drop(l);
        let e = check(addr, None).await.unwrap_err();
        assert!(e.to_string().contains("refused"), "{e}");
    }
}
