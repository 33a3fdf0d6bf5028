//! Reusable validation checks; each records a message naming the key instead of failing fast.

use std::str::FromStr;
use std::time::Duration;

use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};

use crate::error::ConfigErrors;

/// Records an error unless `value` parses as a multiaddress.
pub(crate) fn multiaddr(errs: &mut ConfigErrors, key: &str, value: &str) -> Option<Multiaddr> {
    match Multiaddr::from_str(value) {
        Ok(m) => Some(m),
        Err(e) => {
            errs.push(key, format_args!("invalid multiaddress '{value}': {e}"));
            None
        }
    }
}

/// Records an error unless `value` is an address an HTTP client can reach an IPFS API at: a
/// multiaddress, or `/unix/<absolute path>` (as in Go, the unix component takes the rest of the
/// address, slashes included, which a generic multiaddress parser would split up).
pub(crate) fn node_multiaddr(errs: &mut ConfigErrors, key: &str, value: &str) {
    if let Some(path) = value.trim().strip_prefix("/unix") {
        if !path.starts_with('/') || path.len() < 2 {
            errs.push(key, format_args!("invalid multiaddress '{value}': a unix socket needs an absolute path"));
        }
        return;
    }
    multiaddr(errs, key, value);
}

/// Checks every entry of a list of multiaddresses.
pub(crate) fn multiaddrs(errs: &mut ConfigErrors, key: &str, values: &[String]) {
    for value in values {
        multiaddr(errs, key, value);
    }
}

/// Checks multiaddresses that must end in `/p2p/<peer id>` (peers to dial).
pub(crate) fn peer_multiaddrs(errs: &mut ConfigErrors, key: &str, values: &[String]) {
    for value in values {
        if let Some(m) = multiaddr(errs, key, value)
            && peer_id_of(&m).is_none()
        {
            errs.push(key, format_args!("multiaddress '{value}' does not include a /p2p/<peer id> part"));
        }
    }
}

/// The peer id carried by the last `/p2p/` component of a multiaddress.
pub(crate) fn peer_id_of(m: &Multiaddr) -> Option<PeerId> {
    m.iter().fold(None, |found, p| match p {
        Protocol::P2p(id) => Some(id),
        _ => found,
    })
}

/// Records an error unless `value` is a valid peer id.
pub(crate) fn peer_id(errs: &mut ConfigErrors, key: &str, value: &str) {
    if let Err(e) = PeerId::from_str(value) {
        errs.push(key, format_args!("invalid peer id '{value}': {e}"));
    }
}

/// Records an error when a duration that drives a timer or timeout is zero.
pub(crate) fn positive(errs: &mut ConfigErrors, key: &str, d: Duration) {
    if d.is_zero() {
        errs.push(key, "must be greater than 0s");
    }
}

/// Records an error when a string that must carry a value is empty.
pub(crate) fn non_empty(errs: &mut ConfigErrors, key: &str, value: &str) {
    if value.trim().is_empty() {
        errs.push(key, "must not be empty");
    }
}
