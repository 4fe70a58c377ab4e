//! A small SMTP server for the tests, on a free loopback port: it speaks
//! enough of the protocol for a real client (EHLO, MAIL, RCPT, DATA, RSET,
//! NOOP, QUIT) and keeps every message it accepts.

use std::sync::{Arc, Mutex};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// One accepted message.
#[derive(Debug, Clone, Default)]
pub struct Mail {
    pub from: String,
    pub to: Vec<String>,
    /// Headers and body as sent, dot-stuffing undone.
    pub data: String,
}

pub struct SmtpServer {
    pub port: u16,
    pub received: Arc<Mutex<Vec<Mail>>>,
}

impl SmtpServer {
    /// `smtp://127.0.0.1:<port>`, for `KEYSMITH_SMTP_URL`.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    pub fn mails(&self) -> Vec<Mail> {
        self.received.lock().map(|m| m.clone()).unwrap_or_default()
    }

    pub async fn start() -> SmtpServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind an SMTP port");
        let port = listener.local_addr().expect("address").port();
        let received: Arc<Mutex<Vec<Mail>>> = Arc::default();
        let store = received.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                tokio::spawn(session(socket, store.clone()));
            }
        });
        SmtpServer { port, received }
    }
}

async fn session(socket: tokio::net::TcpStream, store: Arc<Mutex<Vec<Mail>>>) -> std::io::Result<()> {
    let (read, mut write) = socket.into_split();
    let mut lines = BufReader::new(read).lines();
    write.write_all(b"220 keysmith-test ESMTP\r\n").await?;
    let mut mail = Mail::default();
    while let Some(line) = lines.next_line().await? {
        let upper = line.to_ascii_uppercase();
        let reply: &[u8] = if upper.starts_with("EHLO") {
            b"250-keysmith-test\r\n250 8BITMIME\r\n"
        } else if upper.starts_with("HELO") || upper.starts_with("NOOP") {
            b"250 OK\r\n"
        } else if upper.starts_with("RSET") {
            mail = Mail::default();
            b"250 OK\r\n"
        } else if upper.starts_with("MAIL FROM:") {
            mail.from = line[10..].trim().trim_matches(['<', '>']).to_string();
            b"250 OK\r\n"
        } else if upper.starts_with("RCPT TO:") {
            mail.to.push(line[8..].trim().trim_matches(['<', '>']).to_string());
            b"250 OK\r\n"
        } else if upper == "DATA" {
            write.write_all(b"354 end with <CRLF>.<CRLF>\r\n").await?;
            let mut data = String::new();
            while let Some(line) = lines.next_line().await? {
                if line == "." {
                    break;
                }
                data.push_str(line.strip_prefix('.').filter(|_| line.starts_with("..")).unwrap_or(&line));
                data.push('\n');
            }
            mail.data = data;
            if let Ok(mut all) = store.lock() {
                all.push(std::mem::take(&mut mail));
            }
            b"250 accepted\r\n"
        } else if upper.starts_with("QUIT") {
            write.write_all(b"221 bye\r\n").await?;
            return Ok(());
        } else {
            b"502 not implemented\r\n"
        };
        write.write_all(reply).await?;
    }
    Ok(())
}
