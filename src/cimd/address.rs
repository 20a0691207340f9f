//! Which addresses a metadata document (or key set) may be fetched from: the
//! public internet only. The URL is attacker-chosen, so every resolved address
//! is checked (`fetch::PublicResolver`), and IPv6 forms that carry an IPv4
//! address (mapped, NAT64, 6to4) are judged by the address they carry.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Whether an address is on the public internet.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => match embedded_v4(v6) {
            Some(v4) => is_public_v4(v4),
            None => is_public_v6(v6),
        },
    }
}

fn is_public_v4(v4: Ipv4Addr) -> bool {
    let o = v4.octets();
    !(v4.is_private()
        || v4.is_loopback()
        || v4.is_link_local()
        || v4.is_unspecified()
        || v4.is_broadcast()
        || v4.is_multicast()
        || v4.is_documentation()
        || o[0] == 0
        || (o[0] == 100 && (64..128).contains(&o[1])) // shared address space (CGNAT)
        || (o[0] == 192 && o[1] == 0 && o[2] == 0)
        || (o[0] == 198 && (18..20).contains(&o[1]))
        || o[0] >= 240)
}

/// The IPv4 address an IPv6 address stands for, where the network delivers it
/// to that IPv4 address: IPv4-mapped (`::ffff:a.b.c.d`), the NAT64 well-known
/// prefix (`64:ff9b::a.b.c.d`, RFC 6052: the last 32 bits) and 6to4
/// (`2002:AABB:CCDD::/48`, RFC 3056: bits 16..48).
fn embedded_v4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = v6.segments();
    let v4 = |hi: u16, lo: u16| Some(Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo)));
    if let Some(mapped) = v6.to_ipv4_mapped() {
        return Some(mapped);
    }
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return v4(s[6], s[7]);
    }
    if s[0] == 0x2002 {
        return v4(s[1], s[2]);
    }
    None
}

fn is_public_v6(v6: Ipv6Addr) -> bool {
    let s = v6.segments();
    !(v6.is_loopback()
        || v6.is_unspecified()
        || v6.is_multicast()
        || s[..6] == [0; 6] // IPv4-compatible (deprecated), ::/96
        || (s[0] == 0x64 && s[1] == 0xff9b && s[2] == 1) // local-use NAT64 (RFC 8215): the operator picks where the IPv4 address sits
        || (s[0] == 0x100 && s[1..4] == [0, 0, 0]) // discard-only, 100::/64
        || (s[0] == 0x2001 && s[1] == 0) // Teredo: carries an obfuscated IPv4 address
        || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
        || (s[0] & 0xfe00) == 0xfc00 // unique local
        || (s[0] & 0xffc0) == 0xfe80 // link-local
        || (s[0] & 0xffc0) == 0xfec0) // site-local (deprecated, still routed on some networks)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn public(ip: &str) -> bool {
        is_public(ip.parse().unwrap())
    }

    #[test]
    fn private_and_special_addresses_are_not_public() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "255.255.255.255",
        ] {
            assert!(!public(ip), "{ip}");
        }
        for ip in ["93.184.216.34", "1.1.1.1", "2606:4700:4700::1111"] {
            assert!(public(ip), "{ip}");
        }
    }

    #[test]
    fn nat64_and_6to4_addresses_are_judged_by_the_ipv4_address_they_carry() {
        for ip in [
            "64:ff9b::a00:5",         // NAT64 → 10.0.0.5
            "64:ff9b::7f00:1",        // NAT64 → 127.0.0.1
            "64:ff9b::a9fe:a9fe",     // NAT64 → 169.254.169.254
            "2002:a00:5::1",          // 6to4 → 10.0.0.5
            "2002:c0a8:101::",        // 6to4 → 192.168.1.1
            "2002:7f00:1:1234::5678", // 6to4 → 127.0.0.1
        ] {
            assert!(!public(ip), "{ip}");
        }
        for ip in ["64:ff9b::5db8:d822", "2002:5db8:d822::1"] {
            assert!(public(ip), "{ip}: carries 93.184.216.34");
        }
    }

    #[test]
    fn site_local_local_nat64_teredo_and_ipv4_compatible_ranges_are_not_public() {
        for ip in [
            "fec0::1",
            "feff::1",
            "64:ff9b:1::a00:5",
            "64:ff9b:1:ffff::1",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            "::a00:5",
            "100::1",
            "2001:db8::1",
        ] {
            assert!(!public(ip), "{ip}");
        }
        assert!(public("2001:4860:4860::8888"), "2001:: outside Teredo");
    }
}
