//! `smtp_alert` mail: one message per state change to `notification_email`, through
//! `smtp_server`, sent in the background (lettre) so a dead relay delays nothing.

use std::time::Duration;

use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor, message::Mailbox};
use tracing::{info, warn};

use crate::config::GlobalDefs;

/// The relay and addressing from `global_defs`.
#[derive(Clone, Debug)]
pub struct Mailer {
    server: String,
    port: u16,
    from: Mailbox,
    to: Vec<Mailbox>,
    timeout: Duration,
    /// `router_id` (else the host name): the subject's prefix, as keepalived writes it.
    pub router_id: String,
}

pub fn hostname() -> String {
    nix::unistd::gethostname().map(|h| h.to_string_lossy().into_owned()).unwrap_or_else(|_| "localhost".into())
}

impl Mailer {
    /// None when mail is not configured (no `smtp_server` or no `notification_email`);
    /// addresses that do not parse are logged and skipped.
    pub fn new(g: &GlobalDefs) -> Option<Self> {
        let (server, port) = g.smtp_server.clone()?;
        let to: Vec<Mailbox> = g
            .notification_email
            .iter()
            .filter_map(|a| a.parse().map_err(|e| warn!("notification_email {a}: {e}; skipped")).ok())
            .collect();
        if to.is_empty() {
            return None;
        }
        let from_text = g.notification_email_from.clone().unwrap_or_else(|| format!("keepalived@{}", hostname()));
        let from = match from_text.parse() {
            Ok(f) => f,
            Err(e) => {
                warn!("notification_email_from {from_text}: {e}; no mail will be sent");
                return None;
            }
        };
        Some(Self {
            server,
            port,
            from,
            to,
            timeout: Duration::from_secs(u64::from(g.smtp_connect_timeout.max(1))),
            router_id: g.router_id.clone().unwrap_or_else(hostname),
        })
    }

    /// Sends `[router_id] subject` in the background; the outcome is logged.
    pub fn send(&self, subject: &str, body: String) {
        let subject = format!("[{}] {subject}", self.router_id);
        let mut b = Message::builder().from(self.from.clone()).subject(subject.clone());
        for to in &self.to {
            b = b.to(to.clone());
        }
        let msg = match b.body(body) {
            Ok(m) => m,
            Err(e) => {
                warn!("smtp alert `{subject}` not built: {e}");
                return;
            }
        };
        let transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&self.server)
            .port(self.port)
            .timeout(Some(self.timeout))
            .build();
        let server = format!("{}:{}", self.server, self.port);
        tokio::spawn(async move {
            match transport.send(msg).await {
                Ok(_) => info!(%server, "smtp alert sent: {subject}"),
                Err(e) => warn!(%server, "smtp alert `{subject}` failed: {e}"),
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::{
        io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
        net::TcpListener,
    };

    /// A minimal SMTP sink: speaks enough of RFC 5321 for one message and returns the
    /// DATA it received.
    async fn sink(l: TcpListener) -> String {
        let (s, _) = l.accept().await.unwrap();
        let (r, mut w) = s.into_split();
        let mut lines = BufReader::new(r).lines();
        w.write_all(b"220 sink ESMTP\r\n").await.unwrap();
        let mut data = String::new();
        let mut in_data = false;
        while let Ok(Some(line)) = lines.next_line().await {
            if in_data {
                if line == "." {
                    in_data = false;
                    w.write_all(b"250 queued\r\n").await.unwrap();
                } else {
                    data.push_str(&line);
                    data.push('\n');
                }
                continue;
            }
            let verb = line.split_whitespace().next().unwrap_or("").to_ascii_uppercase();
            let reply: &[u8] = match verb.as_str() {
                "EHLO" | "HELO" => b"250 sink\r\n",
                "DATA" => {
                    in_data = true;
                    b"354 go ahead\r\n"
                }
                "QUIT" => {
                    w.write_all(b"221 bye\r\n").await.unwrap();
                    break;
                }
                _ => b"250 ok\r\n",
            };
            w.write_all(reply).await.unwrap();
        }
        data
    }

    #[tokio::test]
    async fn a_message_reaches_the_relay() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let received = tokio::spawn(sink(l));
        let g = GlobalDefs {
            smtp_server: Some(("127.0.0.1".into(), port)),
            notification_email: vec!["ops@example.com".into()],
            notification_email_from: Some("lb@example.com".into()),
            router_id: Some("lb-a".into()),
            ..Default::default()
        };
        Mailer::new(&g).unwrap().send("Realserver 192.0.2.1:80 - DOWN", "=> CHECK failed <=".into());
        let data = tokio::time::timeout(Duration::from_secs(10), received).await.unwrap().unwrap();
        assert!(data.contains("Subject: [lb-a] Realserver 192.0.2.1:80 - DOWN"), "{data}");
        assert!(data.contains("=> CHECK failed <="), "{data}");
        assert!(data.contains("To: ops@example.com"), "{data}");
    }

    #[test]
    fn unconfigured_mail_is_none() {
        assert!(Mailer::new(&GlobalDefs::default()).is_none());
        let g = GlobalDefs { smtp_server: Some(("192.0.2.1".into(), 25)), ..Default::default() };
        assert!(Mailer::new(&g).is_none(), "no recipients");
    }
}
