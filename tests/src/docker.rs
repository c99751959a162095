//! Whether a Docker engine is reachable, asked the way the Docker client asks: `GET /_ping` on
//! the socket in `DOCKER_HOST` (`unix://…` or `tcp://…`), else `/var/run/docker.sock`.

use std::io::{Read, Write};
use std::sync::OnceLock;
use std::time::Duration;

/// Whether a Docker engine answers `/_ping`. Asked once per process. A `docker` client without
/// an engine behind it (this project's CI machines) answers `false`.
pub(crate) fn docker_reachable() -> bool {
    static REACHABLE: OnceLock<bool> = OnceLock::new();
    *REACHABLE
        .get_or_init(|| ping(&std::env::var("DOCKER_HOST").unwrap_or_default()).unwrap_or(false))
}

/// Pings the engine at `host` (a `DOCKER_HOST` value; empty for the default socket).
fn ping(host: &str) -> std::io::Result<bool> {
    let timeout = Duration::from_secs(2);
    let request = b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n";
    let mut answer = Vec::new();
    if let Some(addr) = host.strip_prefix("tcp://") {
        use std::net::ToSocketAddrs;
        let Some(addr) = addr.to_socket_addrs()?.next() else {
            return Ok(false);
        };
        let mut stream = std::net::TcpStream::connect_timeout(&addr, timeout)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.write_all(request)?;
        stream.read_to_end(&mut answer)?;
    } else {
        let path = host
            .strip_prefix("unix://")
            .unwrap_or("/var/run/docker.sock");
        let mut stream = std::os::unix::net::UnixStream::connect(path)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.write_all(request)?;
        stream.read_to_end(&mut answer)?;
    }
    let answer = String::from_utf8_lossy(&answer);
    Ok(answer.starts_with("HTTP/1.") && answer.contains(" 200 ") && answer.ends_with("OK"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pings a one-shot server on a Unix socket that answers `answer`.
    fn ping_server(name: &str, answer: &'static [u8]) -> bool {
        let dir = std::env::temp_dir().join(format!("cflogs-docker-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("docker.sock");
        let _ = std::fs::remove_file(&path);
        let listener = std::os::unix::net::UnixListener::bind(&path).expect("bind");
        let server = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().expect("accept");
            let mut buf = [0u8; 256];
            let n = conn.read(&mut buf).expect("read");
            assert!(buf[..n].starts_with(b"GET /_ping "), "asked for /_ping");
            conn.write_all(answer).expect("write");
        });
        let reachable = ping(&format!("unix://{}", path.display())).expect("ping");
        server.join().expect("server");
        let _ = std::fs::remove_dir_all(&dir);
        reachable
    }

    #[test]
    fn an_engine_answering_ok_is_reachable() {
        assert!(ping_server(
            "ok",
            b"HTTP/1.0 200 OK\r\nApi-Version: 1.47\r\n\r\nOK"
        ));
    }

    #[test]
    fn a_socket_that_is_not_docker_is_not_reachable() {
        assert!(!ping_server("404", b"HTTP/1.0 404 Not Found\r\n\r\nnope"));
    }

    #[test]
    fn no_socket_is_an_error_not_a_pass() {
        assert!(ping("unix:///nonexistent/cflogs/docker.sock").is_err());
    }
}
