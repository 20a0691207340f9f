//! What is known of the client's connection.

use std::net::SocketAddr;

/// Per-connection facts a handler may need.
#[derive(Clone, Copy, Debug)]
pub struct ConnInfo {
    pub peer: SocketAddr,
    pub https: bool,
    /// `peer`'s IP address as text (access log, `X-Forwarded-For`), formatted once per connection.
    pub peer_ip: IpText,
}

impl ConnInfo {
    pub fn new(peer: SocketAddr, https: bool) -> Self {
        Self {
            peer,
            https,
            peer_ip: IpText::new(peer.ip()),
        }
    }
}

/// An IP address as text, held inline so that [`ConnInfo`] stays `Copy`.
#[derive(Clone, Copy)]
pub struct IpText {
    len: u8,
    /// Long enough for any address `IpAddr` prints (IPv6: at most 39 characters).
    buf: [u8; 45],
}

impl IpText {
    pub fn new(ip: std::net::IpAddr) -> Self {
        use std::io::Write;
        let mut buf = [0u8; 45];
        let mut rest = &mut buf[..];
        let _ = write!(rest, "{ip}");
        let len = 45 - rest.len();
        Self {
            len: len as u8,
            buf,
        }
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.buf[..usize::from(self.len)]).unwrap_or_default()
    }
}

impl std::fmt::Display for IpText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Debug for IpText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    #[test]
    fn peer_addresses_print_as_ip_addr_does() {
        for ip in [
            "10.1.2.3",
            "255.255.255.255",
            "::1",
            "::ffff:192.0.2.1",
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
            "2001:db8::8a2e:370:7334",
        ] {
            let ip: std::net::IpAddr = ip.parse().unwrap();
            let conn = ConnInfo::new(SocketAddr::new(ip, 443), true);
            assert_eq!(conn.peer_ip.as_str(), ip.to_string());
            assert_eq!(conn.peer_ip.to_string(), ip.to_string());
        }
    }
}
