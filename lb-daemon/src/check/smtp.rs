//! SMTP_CHECK, as keepalived 2.2.7's check_smtp.c: connect, read the greeting (its status
//! must be 220), send `HELO name`, read the answer (250), send `QUIT` and read any line.
//!
//! keepalived reads a response until a newline and looks at its first line only: the
//! status is three digits followed by a space or the end of the line (so `220-` of a
//! multi-line greeting, or a bare `220\r`, fail, as they do in keepalived). A line longer
//! than keepalived's 512-byte buffer is cut there. Each server of the check (its own
//! connection and each `host` block) must pass, in order.

use std::{net::SocketAddr, time::Duration};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::{error::ProbeError, tcp};

/// keepalived's SMTP_BUFF_MAX.
const LINE_MAX: usize = 512;

/// One server to ask.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Host {
    pub addr: SocketAddr,
    pub from: tcp::Origin,
    pub timeout: Duration,
}

/// A response line's status: three digits then a space or nothing (`smtp_get_status`).
pub fn status(line: &[u8]) -> Option<u16> {
    let digits = line.get(..3)?;
    if !digits.iter().all(u8::is_ascii_digit) || !matches!(line.get(3), None | Some(b' ')) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// Reads until a newline; returns the first line without it (a `\r` stays, as in keepalived).
async fn line<S: AsyncRead + Unpin>(s: &mut S) -> Result<Vec<u8>, String> {
    let mut buf = Vec::with_capacity(LINE_MAX);
    let mut chunk = [0u8; LINE_MAX];
    loop {
        let room = LINE_MAX - 1 - buf.len();
        let n = s.read(&mut chunk[..room]).await.map_err(|e| format!("read failure: {e}"))?;
        if n == 0 {
            return Err("read failure: connection closed".into());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(nl) = buf.iter().position(|b| *b == b'\n') {
            buf.truncate(nl);
            return Ok(buf);
        }
        if buf.len() >= LINE_MAX - 1 {
            buf.clear(); // keepalived wraps its full buffer the same way
        }
    }
}

/// The dialogue over a connected stream.
pub async fn dialogue<S: AsyncRead + AsyncWrite + Unpin>(s: &mut S, helo: &str) -> Result<(), String> {
    let greeting = line(s).await?;
    if status(&greeting) != Some(220) {
        return Err(format!("bad greeting banner: {}", String::from_utf8_lossy(&greeting).trim_end()));
    }
    s.write_all(format!("HELO {helo}\r\n").as_bytes()).await.map_err(|e| format!("write failure: {e}"))?;
    let answer = line(s).await?;
    if status(&answer) != Some(250) {
        return Err(format!("bad HELO response: {}", String::from_utf8_lossy(&answer).trim_end()));
    }
    s.write_all(b"QUIT\r\n").await.map_err(|e| format!("write failure: {e}"))?;
    line(s).await.map(drop)
}

/// One SMTP_CHECK round: every host in turn, each within its own timeout.
pub async fn check(hosts: &[Host], helo: &str) -> Result<(), ProbeError> {
    for h in hosts {
        let run = async {
            let mut s = tcp::connect(h.addr, h.from).await?;
            dialogue(&mut s, helo).await.map_err(|e| ProbeError::Smtp(format!("{}: {e}", h.addr)))
        };
        match tokio::time::timeout(h.timeout, run).await {
            Ok(r) => r?,
            Err(_) => return Err(ProbeError::Smtp(format!("{}: timed out after {:?}", h.addr, h.timeout))),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_codes() {
        assert_eq!(status(b"220 mx.example ESMTP\r"), Some(220));
        assert_eq!(status(b"250"), Some(250));
        assert_eq!(status(b"220-first line of several\r"), None);
        assert_eq!(status(b"220\r"), None);
        assert_eq!(status(b"22 x"), None);
        assert_eq!(status(b"2200 x"), None);
    }

    /// The dialogue against a scripted server (tokio's duplex pipe): what it sends, and
    /// what the checker wrote.
    async fn run(server_says: &'static [&'static [u8]]) -> (Result<(), String>, String) {
        let (mut client, mut server) = tokio::io::duplex(4096);
        let srv = tokio::spawn(async move {
            let mut heard = Vec::new();
            for (i, say) in server_says.iter().enumerate() {
                if i > 0 {
                    // Wait for the client's next command before answering it.
                    let mut b = [0u8; 256];
                    match server.read(&mut b).await {
                        Ok(n) if n > 0 => heard.extend_from_slice(&b[..n]),
                        _ => break,
                    }
                }
                server.write_all(say).await.unwrap();
            }
            let mut b = [0u8; 256];
            if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_millis(100), server.read(&mut b)).await {
                heard.extend_from_slice(&b[..n]);
            }
            String::from_utf8(heard).unwrap()
        });
        let r = dialogue(&mut client, "chk.example").await;
        drop(client);
        (r, srv.await.unwrap())
    }

    #[tokio::test]
    async fn dialogues() {
        let (r, heard) = run(&[b"220 mx ESMTP\r\n", b"250 mx\r\n", b"221 bye\r\n"]).await;
        assert_eq!(r, Ok(()));
        assert_eq!(heard, "HELO chk.example\r\nQUIT\r\n");
        // A line arriving in pieces is one line; what follows its newline is dropped.
        let (mut a, mut b) = tokio::io::duplex(64);
        b.write_all(b"22").await.unwrap();
        let w = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            b.write_all(b"0 mx\r\n250 x\r\n").await.unwrap();
            b
        });
        assert_eq!(line(&mut a).await.unwrap(), b"220 mx\r");
        drop(w.await.unwrap());
        let (r, _) = run(&[b"554 go away\r\n"]).await;
        assert_eq!(r, Err("bad greeting banner: 554 go away".into()));
        let (r, _) = run(&[b"220-multi\r\n220 line\r\n"]).await;
        assert!(r.unwrap_err().starts_with("bad greeting banner: 220-multi"));
        let (r, _) = run(&[b"220 mx\r\n", b"501 no\r\n"]).await;
        assert_eq!(r, Err("bad HELO response: 501 no".into()));
        // Any line after QUIT will do; the connection closing instead fails.
        let (r, _) = run(&[b"220 mx\r\n", b"250 mx\r\n", b"500 whatever\r\n"]).await;
        assert_eq!(r, Ok(()));
        let (r, _) = run(&[b"220 mx\r\n", b"250 mx\r\n"]).await;
        assert!(r.is_err());
    }
}
