//! TCP_CHECK, and the connect every other network checker starts with.

use std::net::SocketAddr;

use tokio::net::{TcpSocket, TcpStream};

use super::error::ProbeError;

/// Where a probe's socket starts from: `bindto` / `bind_port`, and `fwmark`, the mark
/// (SO_MARK) policy routing and nftables see on the probe's packets, as keepalived's
/// layer4.c sets it (0: none).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Origin {
    pub bind: Option<SocketAddr>,
    pub mark: Option<u32>,
}

impl Origin {
    /// Marks `socket`'s packets, when a mark is set.
    pub fn mark(&self, socket: socket2::SockRef<'_>) -> Result<(), ProbeError> {
        match self.mark.filter(|m| *m != 0) {
            Some(m) => socket.set_mark(m).map_err(|e| ProbeError::Connect(format!("setting fwmark {m}: {e}"))),
            None => Ok(()),
        }
    }
}

/// Connects to `addr` from `from`.
pub async fn connect(addr: SocketAddr, from: Origin) -> Result<TcpStream, ProbeError> {
    let socket = if addr.is_ipv4() { TcpSocket::new_v4() } else { TcpSocket::new_v6() }
        .map_err(|e| ProbeError::Connect(e.to_string()))?;
    from.mark((&socket).into())?;
    if let Some(b) = from.bind {
        socket.set_reuseaddr(true).map_err(|e| ProbeError::Connect(e.to_string()))?;
        socket.bind(b).map_err(|e| ProbeError::Connect(format!("binding to {b}: {e}")))?;
    }
    socket.connect(addr).await.map_err(|e| ProbeError::Connect(e.to_string()))
}

/// A TCP_CHECK passes when the three-way handshake completes.
pub async fn check(addr: SocketAddr, from: Origin) -> Result<(), ProbeError> {
    let stream = connect(addr, from).await?;
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
        check(addr, Origin::default()).await.unwrap();
        check(addr, Origin { bind: Some("127.0.0.2:0".parse().unwrap()), mark: Some(7) }).await.unwrap();
        drop(l);
        let e = check(addr, Origin::default()).await.unwrap_err();
        assert!(e.to_string().contains("refused"), "{e}");
    }
}
