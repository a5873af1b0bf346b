//! Frames sent by hand: what the door does with a client that skips TLS off loopback, a
//! message past the size limit, and random or truncated frames (it answers or closes, and keeps
//! serving everyone else).

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{connect, host_port, simple};
use crate::TestApp;

fn startup(user: &str, database: &str) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&196_608_i32.to_be_bytes());
    for (k, v) in [("user", user), ("database", database)] {
        body.extend_from_slice(k.as_bytes());
        body.push(0);
        body.extend_from_slice(v.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut msg = (i32::try_from(body.len() + 4).unwrap())
        .to_be_bytes()
        .to_vec();
    msg.extend(body);
    msg
}

fn message(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut msg = vec![tag];
    msg.extend_from_slice(&(i32::try_from(body.len() + 4).unwrap()).to_be_bytes());
    msg.extend_from_slice(body);
    msg
}

/// Reads until the server closes (or `limit` bytes); returns what came.
async fn read_all(s: &mut TcpStream, limit: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0_u8; 4096];
    while out.len() < limit {
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    out
}

/// The SQLSTATE (`C` field) of the first ErrorResponse in `bytes`.
fn error_state(bytes: &[u8]) -> Option<String> {
    let at = bytes.iter().position(|b| *b == b'E')?;
    let body = &bytes[at + 5..];
    let mut fields = body.split(|b| *b == 0);
    fields.find_map(|f| {
        f.strip_prefix(b"C")
            .map(|c| String::from_utf8_lossy(c).into_owned())
    })
}

/// Logs in with a cleartext password by hand; returns the stream ready for queries.
async fn login(app: &TestApp) -> TcpStream {
    let (host, port) = host_port(app.pg.as_deref().unwrap());
    let mut s = TcpStream::connect((host.as_str(), port)).await.unwrap();
    s.write_all(&startup("raw", "sluice")).await.unwrap();
    let mut head = [0_u8; 9];
    s.read_exact(&mut head).await.unwrap();
    assert_eq!(head[0], b'R', "asks for a password");
    let mut password = app.key.as_bytes().to_vec();
    password.push(0);
    s.write_all(&message(b'p', &password)).await.unwrap();
    // Until ReadyForQuery ('Z', length 5, status).
    let mut seen = Vec::new();
    let mut buf = [0_u8; 1024];
    while !seen.windows(6).any(|w| w == [b'Z', 0, 0, 0, 5, b'I']) {
        let n = s.read(&mut buf).await.unwrap();
        assert!(n > 0, "closed during login");
        seen.extend_from_slice(&buf[..n]);
    }
    s
}

#[actix_web::test]
async fn a_message_past_the_request_limit_is_refused_before_it_is_read() {
    let app = TestApp::spawn_with(|c| c.limits.max_request_bytes = 64 * 1024).await;
    let mut s = login(&app).await;
    // A Query announcing 1 GiB: refused on its length alone.
    let mut huge = vec![b'Q'];
    huge.extend_from_slice(&(1_i32 << 30).to_be_bytes());
    huge.extend_from_slice(b"SELECT 1");
    s.write_all(&huge).await.unwrap();
    let answer = read_all(&mut s, 1 << 16).await;
    assert_eq!(error_state(&answer).as_deref(), Some("54000"));
    // A query under the limit still runs on a new connection.
    let c = connect(&app, "sluice").await;
    assert_eq!(simple(&c, "SELECT 1").await.len(), 1);
}

#[actix_web::test]
async fn malformed_frames_never_take_the_server_down() {
    let app = super::app().await;
    let (host, port) = host_port(app.pg.as_deref().unwrap());
    // A fixed seed: the same frames every run (a failure is replayable).
    let mut seed: u64 = 0x5eed_1234_abcd_0001;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let tags = b"QPBDESHCXdcfp";
    for round in 0..300_u32 {
        let mut frames = Vec::new();
        let logged_in = round % 2 == 0;
        let mut s = if logged_in {
            login(&app).await
        } else {
            TcpStream::connect((host.as_str(), port)).await.unwrap()
        };
        if !logged_in && round % 4 == 1 {
            frames.extend(startup("fuzz", "sluice"));
        }
        for _ in 0..(next() % 4 + 1) {
            let len = usize::try_from(next() % 64).unwrap();
            let mut body: Vec<u8> = (0..len)
                .map(|_| u8::try_from(next() % 256).unwrap())
                .collect();
            match next() % 5 {
                // A well-framed message of a real type with a random body (bad UTF-8, counts
                // past the end, missing terminators).
                0 | 1 => frames.extend(message(tags[usize::try_from(next() % 13).unwrap()], &body)),
                // A length that lies (short, negative, huge).
                2 => {
                    frames.push(tags[usize::try_from(next() % 13).unwrap()]);
                    let lie = [3_i32, -1, i32::MAX, 0, 7][usize::try_from(next() % 5).unwrap()];
                    frames.extend_from_slice(&lie.to_be_bytes());
                    frames.append(&mut body);
                }
                // A truncated frame.
                3 => {
                    let m = message(b'P', &body);
                    frames.extend_from_slice(&m[..m.len() / 2]);
                }
                _ => frames.append(&mut body),
            }
        }
        let _ = s.write_all(&frames).await;
        let _ = s.shutdown().await;
        let _ = read_all(&mut s, 1 << 16).await;
    }
    // Still serving, and a Parse whose parameter count runs past its end is an error, not a
    // crash.
    let mut s = login(&app).await;
    let mut parse = b"s1\0SELECT 1\0".to_vec();
    parse.extend_from_slice(&1000_i16.to_be_bytes());
    s.write_all(&message(b'P', &parse)).await.unwrap();
    s.write_all(&message(b'S', &[])).await.unwrap();
    let answer = read_all(&mut s, 1 << 16).await;
    assert_eq!(error_state(&answer).as_deref(), Some("08P01"), "{answer:?}");
    let c = connect(&app, "sluice").await;
    assert_eq!(
        simple(&c, "SELECT count(*) FROM nation").await,
        vec![vec![Some("25".to_owned())]]
    );
}

/// A local address that is not loopback (the machine's own), if it has one.
fn non_loopback() -> Option<std::net::IpAddr> {
    let out = std::process::Command::new("hostname")
        .arg("-I")
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|a| a.parse::<std::net::IpAddr>().ok())
        .find(|a| a.is_ipv4() && !a.is_loopback())
}

#[actix_web::test]
async fn plaintext_off_loopback_is_refused_before_the_password() {
    let Some(ip) = non_loopback() else {
        crate::skip_or_fail("the machine has no non-loopback address to connect from");
        return;
    };
    let app = TestApp::spawn_with(|c| {
        c.pg = Some(sluice_schemas::PgConfig::on(std::net::SocketAddr::new(
            ip, 0,
        )));
    })
    .await;
    let (_, port) = host_port(app.pg.as_deref().unwrap());
    let mut s = TcpStream::connect((ip, port)).await.unwrap();
    s.write_all(&startup("someone", "sluice")).await.unwrap();
    let answer = read_all(&mut s, 1 << 16).await;
    assert_eq!(
        answer.first(),
        Some(&b'E'),
        "an error, never an AuthenticationCleartextPassword: {answer:?}"
    );
    assert_eq!(error_state(&answer).as_deref(), Some("28000"));
    // An SSLRequest is answered 'N' (this listener offers no TLS), and then the same refusal.
    let mut s = TcpStream::connect((ip, port)).await.unwrap();
    let mut ssl = 8_i32.to_be_bytes().to_vec();
    ssl.extend_from_slice(&80_877_103_i32.to_be_bytes());
    s.write_all(&ssl).await.unwrap();
    let mut n = [0_u8; 1];
    s.read_exact(&mut n).await.unwrap();
    assert_eq!(&n, b"N");
    s.write_all(&startup("someone", "sluice")).await.unwrap();
    let answer = read_all(&mut s, 1 << 16).await;
    assert_eq!(error_state(&answer).as_deref(), Some("28000"));
}
