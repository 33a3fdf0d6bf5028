//! Listen addresses come as multiaddrs in the configuration; the servers need socket addresses.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};

use crate::error::MultiaddrError;

/// Converts `/ip4/<a>/tcp/<port>`, `/ip6/<a>/tcp/<port>` and `/dns|dns4|dns6/<name>/tcp/<port>`
/// into a socket address, as the original does with `manet.ToNetAddr` for its listeners.
///
/// `localhost` resolves to the loopback address without a lookup; any other DNS name is looked
/// up with the system resolver, which blocks, so call this while loading the configuration
/// rather than on a request path. `dns4`/`dns6` keep only addresses of their family.
pub fn multiaddr_to_socketaddr(ma: &str) -> Result<SocketAddr, MultiaddrError> {
    let parts: Vec<&str> = ma.trim().split('/').collect();
    // A multiaddr starts with '/', so the first part is empty.
    let [first, proto, host, tcp, port] = parts.as_slice() else {
        return Err(MultiaddrError::Unsupported(ma.to_string()));
    };
    if !first.is_empty() || *tcp != "tcp" {
        return Err(MultiaddrError::Unsupported(ma.to_string()));
    }
    let port: u16 = port.parse().map_err(|_| MultiaddrError::InvalidPort {
        multiaddr: ma.to_string(),
        port: port.to_string(),
    })?;
    let invalid_host = || MultiaddrError::InvalidHost {
        multiaddr: ma.to_string(),
        host: host.to_string(),
    };
    let ip: IpAddr = match *proto {
        "ip4" => IpAddr::V4(host.parse::<Ipv4Addr>().map_err(|_| invalid_host())?),
        "ip6" => IpAddr::V6(host.parse::<Ipv6Addr>().map_err(|_| invalid_host())?),
        "dns" | "dns4" | "dns6" => resolve(ma, proto, host)?,
        _ => return Err(MultiaddrError::Unsupported(ma.to_string())),
    };
    Ok(SocketAddr::new(ip, port))
}

/// Resolves a DNS component, keeping only the family the protocol asks for.
fn resolve(ma: &str, proto: &str, host: &str) -> Result<IpAddr, MultiaddrError> {
    if host.is_empty() {
        return Err(MultiaddrError::InvalidHost {
            multiaddr: ma.to_string(),
            host: host.to_string(),
        });
    }
    let wants = |ip: &IpAddr| match proto {
        "dns4" => ip.is_ipv4(),
        "dns6" => ip.is_ipv6(),
        _ => true,
    };
    if host.eq_ignore_ascii_case("localhost") {
        let v4 = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let v6 = IpAddr::V6(Ipv6Addr::LOCALHOST);
        return Ok(if wants(&v4) { v4 } else { v6 });
    }
    let err = |reason: String| MultiaddrError::Resolve {
        multiaddr: ma.to_string(),
        host: host.to_string(),
        reason,
    };
    let addrs = (host, 0u16)
        .to_socket_addrs()
        .map_err(|e| err(e.to_string()))?;
    addrs
        .map(|a| a.ip())
        .find(|ip| wants(ip))
        .ok_or_else(|| err(format!("no {proto} address found")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ip_forms() {
        assert_eq!(
            multiaddr_to_socketaddr("/ip4/127.0.0.1/tcp/9094").unwrap(),
            "127.0.0.1:9094".parse().unwrap()
        );
        assert_eq!(
            multiaddr_to_socketaddr("/ip6/::1/tcp/8888").unwrap(),
            "[::1]:8888".parse().unwrap()
        );
        assert_eq!(
            multiaddr_to_socketaddr("/ip4/0.0.0.0/tcp/0").unwrap(),
            "0.0.0.0:0".parse().unwrap()
        );
    }

    #[test]
    fn resolves_localhost() {
        assert_eq!(
            multiaddr_to_socketaddr("/dns4/localhost/tcp/9094").unwrap(),
            "127.0.0.1:9094".parse().unwrap()
        );
        assert_eq!(
            multiaddr_to_socketaddr("/dns6/localhost/tcp/1").unwrap(),
            "[::1]:1".parse().unwrap()
        );
        assert_eq!(
            multiaddr_to_socketaddr("/dns/localhost/tcp/2").unwrap(),
            "127.0.0.1:2".parse().unwrap()
        );
    }

    #[test]
    fn rejects_other_forms() {
        for bad in [
            "",
            "ip4/127.0.0.1/tcp/1",
            "/ip4/127.0.0.1/udp/1",
            "/ip4/127.0.0.1/tcp/1/p2p/x",
            "/unix/tmp/sock",
            "/ip4/1.2.3/tcp/1",
            "/ip6/127.0.0.1/tcp/1",
            "/ip4/127.0.0.1/tcp/70000",
            "/ip4/127.0.0.1/tcp/x",
        ] {
            assert!(multiaddr_to_socketaddr(bad).is_err(), "{bad}");
        }
        let e = multiaddr_to_socketaddr("/ip4/127.0.0.1/tcp/x")
            .unwrap_err()
            .to_string();
        assert!(e.contains("'x'"), "{e}");
    }
}
