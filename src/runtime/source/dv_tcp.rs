//! `dv-tcp://HOST:PORT`: a DV (iniVation) network stream of AEDAT 4 packets, reconnected
//! with backoff when the server goes away.

use std::time::Duration;

use stdl_io::{EventReader, Format};

use super::{Pump, RunSource, SourceOut};

/// A DV server's address.
pub(crate) struct DvTcp(pub String);

impl RunSource for DvTcp {
    fn run(&self, out: &mut SourceOut, pump: &Pump) {
        let addr = &self.0;
        // Reconnect with backoff when the server goes away.
        let mut backoff = Duration::from_millis(200);
        loop {
            match connect(addr, pump.connect_timeout, pump.read_timeout) {
                Ok(s) => {
                    eprintln!("connected to {addr}");
                    backoff = Duration::from_millis(200);
                    // A failure here is the connection's, not the stream's: reconnect.
                    match EventReader::from_reader(s, Some(Format::Aedat4), &pump.read_options())
                        .map_err(|e| e.to_string())
                        .and_then(|r| pump.send_reader(out, r))
                    {
                        Ok(()) => eprintln!("dv-tcp {addr}: stream ended; reconnecting"),
                        Err(m) => eprintln!("dv-tcp {addr}: {m}; reconnecting"),
                    }
                }
                Err(e) => eprintln!("dv-tcp {addr}: {e}; retrying in {:.1} s", backoff.as_secs_f64()),
            }
            if !out.alive() {
                return;
            }
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }
}

/// Connects to a DV server within `timeout` (each of its addresses in turn); reads on the
/// socket then time out after `read_timeout` without a byte (a stalled server is reconnected).
fn connect(addr: &str, timeout: Duration, read_timeout: Duration) -> std::io::Result<std::net::TcpStream> {
    use std::net::ToSocketAddrs;
    let mut last = None;
    for a in addr.to_socket_addrs()? {
        match std::net::TcpStream::connect_timeout(&a, timeout) {
            Ok(s) => {
                s.set_read_timeout(Some(read_timeout))?;
                s.set_nodelay(true)?;
                return Ok(s);
            }
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "no address")))
}
