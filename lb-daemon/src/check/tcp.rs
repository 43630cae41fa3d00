//! TCP_CHECK, and the connect every other network checker starts with.

use std::net::SocketAddr;

use tokio::net::{TcpSocket, TcpStream};

use super::error::ProbeError;

/// Where a probe's socket starts from: `bindto` / `bind_port`; `bind_if`, the interface
/// (SO_BINDTODEVICE) it must leave by; and `fwmark`, the mark (SO_MARK) policy routing and
/// nftables see on the probe's packets. As keepalived's layer4.c sets them (mark 0: none).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Origin {
    pub bind: Option<SocketAddr>,
    pub mark: Option<u32>,
    pub device: Option<IfName>,
}

/// An interface name as SO_BINDTODEVICE takes it: at most 15 bytes (IFNAMSIZ with its NUL).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IfName {
    bytes: [u8; 16],
    len: u8,
}

impl IfName {
    /// None for a name the kernel could not hold (empty, or longer than 15 bytes).
    pub fn new(name: &str) -> Option<Self> {
        let len = name.len();
        if len == 0 || len > 15 {
            return None;
        }
        let mut bytes = [0; 16];
        bytes[..len].copy_from_slice(name.as_bytes());
        Some(Self { bytes, len: len as u8 })
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

impl std::fmt::Display for IfName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&String::from_utf8_lossy(self.as_bytes()))
    }
}

impl Origin {
    /// Marks `socket`'s packets and binds it to its interface, as far as either is set
    /// (before `bind`, as keepalived's socket_bind_connect does).
    pub fn apply(&self, socket: socket2::SockRef<'_>) -> Result<(), ProbeError> {
        if let Some(m) = self.mark.filter(|m| *m != 0) {
            socket.set_mark(m).map_err(|e| ProbeError::Connect(format!("setting fwmark {m}: {e}")))?;
        }
        if let Some(dev) = self.device {
            socket
                .bind_device(Some(dev.as_bytes()))
                .map_err(|e| ProbeError::Connect(format!("Checker can't bind to device {dev}: {e}")))?;
        }
        Ok(())
    }
}

/// Connects to `addr` from `from`.
pub async fn connect(addr: SocketAddr, from: Origin) -> Result<TcpStream, ProbeError> {
    let socket = if addr.is_ipv4() { TcpSocket::new_v4() } else { TcpSocket::new_v6() }
        .map_err(|e| ProbeError::Connect(e.to_string()))?;
    from.apply((&socket).into())?;
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
        check(addr, Origin { bind: Some("127.0.0.2:0".parse().unwrap()), mark: Some(7), device: None }).await.unwrap();
        // Bound to the loopback, the probe still reaches it; to a device that does not exist,
        // it fails as keepalived's does.
        check(addr, Origin { device: IfName::new("lo"), ..Origin::default() }).await.unwrap();
        let e = check(addr, Origin { device: IfName::new("lbnosuch0"), ..Origin::default() }).await.unwrap_err();
        assert!(e.to_string().contains("Checker can't bind to device lbnosuch0"), "{e}");
        drop(l);
        let e = check(addr, Origin::default()).await.unwrap_err();
        assert!(e.to_string().contains("refused"), "{e}");
    }
}
