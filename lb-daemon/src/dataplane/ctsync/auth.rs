//! The authenticated mode of connection sync between lb nodes (`lb_sync_auth_key`): the
//! kernel's protocol carries no authentication, so anyone on the sync link could plant
//! flows. With a key, each datagram is the IPVS message followed by a trailer: `LBA1`, a
//! 64-bit counter, and the first 16 bytes of HMAC-SHA256 over everything before the tag. A
//! receiver with the key accepts a datagram only if the tag matches and its counter is above
//! the last one it accepted from that sender (a replayed datagram is refused). The counter
//! starts at the sender's wall-clock time in nanoseconds, so a restarted sender goes on above
//! its old counters. The kernel's IPVS sync daemon drops such datagrams (their length is not
//! the message's), so this mode is between lb nodes only. Pure, but for the clock.

use std::{collections::HashMap, net::IpAddr};

use ring::hmac;

/// `LBA1`: lb authenticated sync, version 1.
const MAGIC: [u8; 4] = *b"LBA1";
const TAG_LEN: usize = 16;
/// Bytes the trailer adds to a datagram.
pub const TRAILER_LEN: usize = MAGIC.len() + 8 + TAG_LEN;

/// The HMAC key, derived from the configured secret.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SyncKey([u8; 32]);

impl std::fmt::Debug for SyncKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SyncKey(..)")
    }
}

impl SyncKey {
    /// The key for `secret` (any length: hashed with a label of its own).
    pub fn derive(secret: &str) -> Self {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        ctx.update(b"lb-daemon connection sync v1\0");
        ctx.update(secret.as_bytes());
        let mut k = [0u8; 32];
        k.copy_from_slice(ctx.finish().as_ref());
        Self(k)
    }

    fn tag(&self, data: &[u8]) -> [u8; TAG_LEN] {
        let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &self.0), data);
        let mut t = [0u8; TAG_LEN];
        t.copy_from_slice(&tag.as_ref()[..TAG_LEN]);
        t
    }
}

/// `message` with its trailer for `counter`.
pub fn seal(key: &SyncKey, message: &[u8], counter: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + TRAILER_LEN);
    out.extend_from_slice(message);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&counter.to_be_bytes());
    let tag = key.tag(&out);
    out.extend_from_slice(&tag);
    out
}

/// Why a datagram was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// No trailer (a kernel's or an unauthenticated lb node's datagram).
    NoTrailer,
    /// The tag does not match: another key, or the datagram was changed.
    BadTag,
    /// Its counter is not above the last accepted from that sender.
    Replayed,
}

/// The message inside an authenticated datagram, and its counter.
pub fn open<'a>(key: &SyncKey, gram: &'a [u8]) -> Result<(&'a [u8], u64), Refused> {
    if gram.len() < TRAILER_LEN {
        return Err(Refused::NoTrailer);
    }
    let (signed, tag) = gram.split_at(gram.len() - TAG_LEN);
    let (message, trailer) = signed.split_at(signed.len() - MAGIC.len() - 8);
    if trailer[..MAGIC.len()] != MAGIC {
        return Err(Refused::NoTrailer);
    }
    // Constant time: every byte is compared whatever the first difference.
    let want = key.tag(signed);
    if want.iter().zip(tag).fold(0u8, |d, (a, b)| d | (a ^ b)) != 0 {
        return Err(Refused::BadTag);
    }
    let mut c = [0u8; 8];
    c.copy_from_slice(&trailer[MAGIC.len()..]);
    Ok((message, u64::from_be_bytes(c)))
}

/// The last counter accepted per sender.
#[derive(Debug, Default)]
pub struct Replay {
    last: HashMap<IpAddr, u64>,
}

impl Replay {
    /// Whether `counter` from `sender` is new; if so it becomes the one to beat.
    pub fn accept(&mut self, sender: IpAddr, counter: u64) -> bool {
        let last = self.last.entry(sender).or_insert(0);
        if counter <= *last {
            return false;
        }
        *last = counter;
        true
    }
}

/// A sender's first counter: the wall clock in nanoseconds (above what it sent before a
/// restart, unless the clock went back).
pub fn first_counter() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_message_opens_with_its_key_only() {
        let k = SyncKey::derive("a shared secret for the sync link");
        let gram = seal(&k, b"ipvs message", 42);
        assert_eq!(gram.len(), 12 + TRAILER_LEN);
        assert_eq!(open(&k, &gram), Ok((&b"ipvs message"[..], 42)));
        let other = SyncKey::derive("another secret for the sync link");
        assert_eq!(open(&other, &gram), Err(Refused::BadTag));
        for i in 0..gram.len() {
            let mut bad = gram.clone();
            bad[i] ^= 0x40;
            assert!(open(&k, &bad).is_err(), "byte {i} changed, still accepted");
        }
        assert_eq!(open(&k, b"ipvs message"), Err(Refused::NoTrailer), "a kernel's datagram");
        assert_eq!(open(&k, &[]), Err(Refused::NoTrailer));
    }

    #[test]
    fn a_counter_is_accepted_once_per_sender_and_only_upwards() {
        let mut r = Replay::default();
        let (a, b): (IpAddr, IpAddr) = ("192.0.2.11".parse().unwrap(), "192.0.2.12".parse().unwrap());
        assert!(r.accept(a, 10));
        assert!(!r.accept(a, 10), "the same datagram again");
        assert!(!r.accept(a, 9), "an older one");
        assert!(r.accept(b, 5), "another sender counts on its own");
        assert!(r.accept(a, 11));
    }

    #[test]
    fn the_key_is_not_printed() {
        assert_eq!(format!("{:?}", SyncKey::derive("secret secret secret")), "SyncKey(..)");
    }
}
