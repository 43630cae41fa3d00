//! A minimal pcap-ng writer (draft-ietf-opsawg-pcapng): one section header, an interface
//! description per ingress interface as it first appears (Ethernet, nanosecond timestamps,
//! its name), and an enhanced packet block per traced frame with the decision as its
//! comment (`opt_comment`), which Wireshark shows beside the packet
//! (`tshark -T fields -e frame.comment`). Little-endian throughout, as the byte-order magic
//! says.

use std::{collections::HashMap, io::Write};

const SHB: u32 = 0x0A0D_0D0A;
const IDB: u32 = 1;
const EPB: u32 = 6;
const BYTE_ORDER_MAGIC: u32 = 0x1A2B_3C4D;
const LINKTYPE_ETHERNET: u16 = 1;
const OPT_END: u16 = 0;
const OPT_COMMENT: u16 = 1;
const SHB_USERAPPL: u16 = 4;
const IF_NAME: u16 = 2;
const IF_TSRESOL: u16 = 9;
/// `if_tsresol`: 10^-9 s.
const NANOSECONDS: u8 = 9;

pub struct PcapNg<W: Write> {
    out: W,
    /// Ingress ifindex → interface id (order of the description blocks written).
    ifaces: HashMap<u32, u32>,
    snaplen: u32,
}

/// `value` padded with zeros to a multiple of 4 bytes.
fn padded(value: &[u8]) -> Vec<u8> {
    let mut v = value.to_vec();
    v.resize(value.len().next_multiple_of(4), 0);
    v
}

fn option(out: &mut Vec<u8>, code: u16, value: &[u8]) {
    out.extend(code.to_le_bytes());
    // Options longer than 65,535 bytes cannot be written: cut (comments never get there).
    let value = &value[..value.len().min(usize::from(u16::MAX) - 3)];
    out.extend((value.len() as u16).to_le_bytes());
    out.extend(padded(value));
}

fn end_of_options(out: &mut Vec<u8>) {
    out.extend(OPT_END.to_le_bytes());
    out.extend(0u16.to_le_bytes());
}

/// A whole block: type, total length, `body`, total length again.
fn block(kind: u32, body: &[u8]) -> Vec<u8> {
    let total = (12 + body.len()) as u32;
    let mut b = Vec::with_capacity(total as usize);
    b.extend(kind.to_le_bytes());
    b.extend(total.to_le_bytes());
    b.extend(body);
    b.extend(total.to_le_bytes());
    b
}

impl<W: Write> PcapNg<W> {
    /// Starts the file: the section header block, naming `application`. Frames are captured
    /// up to `snaplen` bytes.
    pub fn new(mut out: W, application: &str, snaplen: u32) -> std::io::Result<Self> {
        let mut body = Vec::new();
        body.extend(BYTE_ORDER_MAGIC.to_le_bytes());
        body.extend(1u16.to_le_bytes());
        body.extend(0u16.to_le_bytes());
        // Section length: not given.
        body.extend(u64::MAX.to_le_bytes());
        option(&mut body, SHB_USERAPPL, application.as_bytes());
        end_of_options(&mut body);
        out.write_all(&block(SHB, &body))?;
        Ok(Self { out, ifaces: HashMap::new(), snaplen })
    }

    /// The interface id of `ifindex`, describing it (as `name`) first if it is new.
    fn iface(&mut self, ifindex: u32, name: &str) -> std::io::Result<u32> {
        if let Some(id) = self.ifaces.get(&ifindex) {
            return Ok(*id);
        }
        let mut body = Vec::new();
        body.extend(LINKTYPE_ETHERNET.to_le_bytes());
        body.extend(0u16.to_le_bytes());
        body.extend(self.snaplen.to_le_bytes());
        option(&mut body, IF_NAME, name.as_bytes());
        option(&mut body, IF_TSRESOL, &[NANOSECONDS]);
        end_of_options(&mut body);
        self.out.write_all(&block(IDB, &body))?;
        let id = self.ifaces.len() as u32;
        self.ifaces.insert(ifindex, id);
        Ok(id)
    }

    /// One frame: its captured bytes `data` of `original_len`, taken at `wall_ns` (ns since
    /// the epoch) on interface `ifindex` (`if_name`), with `comment`.
    pub fn packet(
        &mut self,
        ifindex: u32,
        if_name: &str,
        wall_ns: u64,
        data: &[u8],
        original_len: u32,
        comment: &str,
    ) -> std::io::Result<()> {
        let id = self.iface(ifindex, if_name)?;
        let mut body = Vec::with_capacity(32 + data.len() + comment.len());
        body.extend(id.to_le_bytes());
        body.extend(((wall_ns >> 32) as u32).to_le_bytes());
        body.extend((wall_ns as u32).to_le_bytes());
        body.extend((data.len() as u32).to_le_bytes());
        body.extend(original_len.max(data.len() as u32).to_le_bytes());
        body.extend(padded(data));
        option(&mut body, OPT_COMMENT, comment.as_bytes());
        end_of_options(&mut body);
        self.out.write_all(&block(EPB, &body))
    }

    pub fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u32_at(b: &[u8], at: usize) -> u32 {
        u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
    }

    fn u16_at(b: &[u8], at: usize) -> u16 {
        u16::from_le_bytes(b[at..at + 2].try_into().unwrap())
    }

    /// The file's blocks as (type, body), checking each one's framing on the way.
    fn blocks(file: &[u8]) -> Vec<(u32, Vec<u8>)> {
        let mut out = Vec::new();
        let mut at = 0;
        while at < file.len() {
            let (kind, total) = (u32_at(file, at), u32_at(file, at + 4) as usize);
            assert_eq!(total % 4, 0, "block at {at} not padded to 32 bits");
            assert_eq!(u32_at(file, at + total - 4) as usize, total, "trailing length of block at {at}");
            out.push((kind, file[at + 8..at + total - 4].to_vec()));
            at += total;
        }
        assert_eq!(at, file.len());
        out
    }

    /// Options from `at` in `body`: (code, value) up to the end-of-options.
    fn options(body: &[u8], mut at: usize) -> Vec<(u16, Vec<u8>)> {
        let mut out = Vec::new();
        loop {
            let (code, len) = (u16_at(body, at), usize::from(u16_at(body, at + 2)));
            if code == OPT_END {
                assert_eq!(at + 4, body.len(), "end-of-options is last");
                return out;
            }
            out.push((code, body[at + 4..at + 4 + len].to_vec()));
            at += 4 + len.next_multiple_of(4);
        }
    }

    #[test]
    fn a_file_is_a_section_then_interfaces_as_they_appear_then_packets() {
        let mut w = PcapNg::new(Vec::new(), "lb-daemon trace", 128).unwrap();
        let frame: Vec<u8> = (0..61).collect();
        w.packet(7, "l0", 0x1_0000_0002, &frame, 1514, "l0 tx fwd_dr").unwrap();
        w.packet(9, "l1", 5, &frame[..14], 14, "l1 pass no_service").unwrap();
        w.packet(7, "l0", 6, &frame[..3], 3, "").unwrap();
        let file = w.out;
        let b = blocks(&file);
        let kinds: Vec<u32> = b.iter().map(|(k, _)| *k).collect();
        assert_eq!(kinds, [SHB, IDB, EPB, IDB, EPB, EPB]);

        let shb = &b[0].1;
        assert_eq!((u32_at(shb, 0), u16_at(shb, 4), u16_at(shb, 6)), (BYTE_ORDER_MAGIC, 1, 0));
        assert_eq!(options(shb, 16), [(SHB_USERAPPL, b"lb-daemon trace".to_vec())]);

        let idb = &b[1].1;
        assert_eq!((u16_at(idb, 0), u32_at(idb, 4)), (LINKTYPE_ETHERNET, 128));
        assert_eq!(options(idb, 8), [(IF_NAME, b"l0".to_vec()), (IF_TSRESOL, vec![9])]);
        assert_eq!(options(&b[3].1, 8)[0], (IF_NAME, b"l1".to_vec()));

        let epb = &b[2].1;
        assert_eq!(u32_at(epb, 0), 0, "the first interface described");
        assert_eq!((u32_at(epb, 4), u32_at(epb, 8)), (1, 2), "timestamp high and low words");
        assert_eq!((u32_at(epb, 12), u32_at(epb, 16)), (61, 1514));
        assert_eq!(&epb[20..81], &frame[..]);
        assert_eq!(&epb[81..84], &[0, 0, 0], "data padded to 32 bits");
        assert_eq!(options(epb, 84), [(OPT_COMMENT, b"l0 tx fwd_dr".to_vec())]);

        assert_eq!(u32_at(&b[4].1, 0), 1, "the second interface");
        let last = &b[5].1;
        assert_eq!((u32_at(last, 0), u32_at(last, 12), u32_at(last, 16)), (0, 3, 3));
        assert_eq!(options(last, 24), [(OPT_COMMENT, Vec::new())]);
    }

    #[test]
    fn the_original_length_is_never_below_the_captured_one() {
        let mut w = PcapNg::new(Vec::new(), "t", 128).unwrap();
        w.packet(1, "x", 0, &[1, 2, 3, 4], 0, "c").unwrap();
        let b = blocks(&w.out);
        assert_eq!((u32_at(&b[2].1, 12), u32_at(&b[2].1, 16)), (4, 4));
    }
}
