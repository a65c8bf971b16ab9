//! Ethernet, IPv4, ARP and ICMP helpers for the peer, the checksum offloads and the tests.

/// Ethernet header length.
pub const ETH_HLEN: usize = 14;
/// Minimum frame length without FCS (64 bytes on the wire).
pub const ETH_ZLEN: usize = 60;
/// FCS length.
pub const FCS_LEN: usize = 4;
/// EtherType IPv4.
pub const ETHERTYPE_IPV4: u16 = 0x0800;
/// EtherType ARP.
pub const ETHERTYPE_ARP: u16 = 0x0806;
/// EtherType IPv6.
pub const ETHERTYPE_IPV6: u16 = 0x86DD;
/// EtherType of MAC control frames (IEEE 802.3 Annex 31A).
pub const ETHERTYPE_MAC_CONTROL: u16 = 0x8808;
/// The reserved multicast address of PAUSE frames.
pub const PAUSE_ADDR: [u8; 6] = [0x01, 0x80, 0xC2, 0x00, 0x00, 0x01];
/// EtherType used by the peer's generated stream (IEEE 802 local experimental).
pub const ETHERTYPE_STREAM: u16 = 0x88B5;
/// The broadcast address.
pub const BROADCAST: [u8; 6] = [0xFF; 6];

const fn crc_table() -> [u32; 256] {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
}

static CRC_TABLE: [u32; 256] = crc_table();

/// The Ethernet FCS (CRC-32, IEEE 802.3) of `data`; appended to a frame little-endian.
pub fn crc32(data: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in data {
        c = CRC_TABLE[((c ^ u32::from(b)) & 0xFF) as usize] ^ (c >> 8);
    }
    !c
}

/// Adds `data` to a running one's complement sum of big-endian 16-bit words, returning
/// a partial sum to pass to [`csum_fold`] (or to further calls). Odd data is padded with a
/// zero byte, so only the last piece of a checksummed range may have odd length.
pub fn csum_add(sum: u32, data: &[u8]) -> u32 {
    // One's complement addition is associative over any word size: sum 32-bit words into
    // a 64-bit accumulator and fold at the end.
    let mut acc = u64::from(sum);
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_be_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        acc += (w >> 32) + (w & 0xFFFF_FFFF);
    }
    let mut rest = chunks.remainder().chunks_exact(2);
    for c in &mut rest {
        acc += u64::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [b] = rest.remainder() {
        acc += u64::from(*b) << 8;
    }
    while acc > 0xFFFF_FFFF {
        acc = (acc & 0xFFFF_FFFF) + (acc >> 32);
    }
    acc as u32
}

/// Folds a 32-bit sum to 16 bits.
pub fn csum_fold(sum: u32) -> u16 {
    let mut s = u64::from(sum);
    while s > 0xFFFF {
        s = (s & 0xFFFF) + (s >> 16);
    }
    s as u16
}

/// The Internet checksum (complemented folded sum) of `data`.
pub fn inet_csum(data: &[u8]) -> u16 {
    !csum_fold(csum_add(0, data))
}

/// Destination MAC of a frame (zeros if too short).
pub fn dst_mac(f: &[u8]) -> [u8; 6] {
    let mut m = [0u8; 6];
    if f.len() >= 6 {
        m.copy_from_slice(&f[..6]);
    }
    m
}

/// EtherType at offset 12 (0 if too short).
pub fn ethertype(f: &[u8]) -> u16 {
    if f.len() >= 14 {
        u16::from_be_bytes([f[12], f[13]])
    } else {
        0
    }
}

/// Whether a MAC address is multicast (includes broadcast).
pub fn is_multicast(m: &[u8; 6]) -> bool {
    m[0] & 1 != 0
}

/// Builds an Ethernet header.
pub fn eth_header(dst: [u8; 6], src: [u8; 6], ethertype: u16) -> Vec<u8> {
    let mut f = Vec::with_capacity(64);
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f
}

/// Builds an ARP request or reply (op 1 or 2), padded to 60 bytes.
pub fn arp(
    op: u16,
    src_mac: [u8; 6],
    src_ip: [u8; 4],
    dst_mac: [u8; 6],
    dst_ip: [u8; 4],
) -> Vec<u8> {
    let eth_dst = if op == 1 { BROADCAST } else { dst_mac };
    let mut f = eth_header(eth_dst, src_mac, ETHERTYPE_ARP);
    f.extend_from_slice(&[0, 1, 8, 0, 6, 4]);
    f.extend_from_slice(&op.to_be_bytes());
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&src_ip);
    f.extend_from_slice(if op == 1 { &[0u8; 6] } else { &dst_mac });
    f.extend_from_slice(&dst_ip);
    f.resize(ETH_ZLEN, 0);
    f
}

/// Builds an IPv4 header (no options) with a valid checksum.
pub fn ipv4_header(src: [u8; 4], dst: [u8; 4], proto: u8, payload_len: usize, id: u16) -> Vec<u8> {
    let total = (20 + payload_len) as u16;
    let mut h = vec![0x45, 0];
    h.extend_from_slice(&total.to_be_bytes());
    h.extend_from_slice(&id.to_be_bytes());
    h.extend_from_slice(&[0x40, 0, 64, proto, 0, 0]);
    h.extend_from_slice(&src);
    h.extend_from_slice(&dst);
    let c = inet_csum(&h);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    h
}

/// Builds an ICMP echo (type 8 request / 0 reply) frame.
#[allow(clippy::too_many_arguments)]
pub fn icmp_echo(
    kind: u8,
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src_ip: [u8; 4],
    dst_ip: [u8; 4],
    ident: u16,
    seq: u16,
    payload: &[u8],
) -> Vec<u8> {
    let mut icmp = vec![kind, 0, 0, 0];
    icmp.extend_from_slice(&ident.to_be_bytes());
    icmp.extend_from_slice(&seq.to_be_bytes());
    icmp.extend_from_slice(payload);
    let c = inet_csum(&icmp);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    let mut f = eth_header(dst_mac, src_mac, ETHERTYPE_IPV4);
    f.extend_from_slice(&ipv4_header(src_ip, dst_ip, 1, icmp.len(), seq));
    f.extend_from_slice(&icmp);
    if f.len() < ETH_ZLEN {
        f.resize(ETH_ZLEN, 0);
    }
    f
}

/// The byte at position `i` of stream frame `seq`'s payload.
pub fn stream_byte(seq: u64, i: usize) -> u8 {
    (seq.wrapping_mul(31).wrapping_add(i as u64 * 7)) as u8
}

/// Builds frame `seq` of a generated stream: Ethernet header with [`ETHERTYPE_STREAM`],
/// the 8-byte big-endian sequence number, then [`stream_byte`]s up to `len` bytes
/// (without FCS; `len` is clamped to at least 22).
pub fn stream_frame(dst: [u8; 6], src: [u8; 6], seq: u64, len: usize) -> Vec<u8> {
    let len = len.max(ETH_HLEN + 8);
    let mut f = eth_header(dst, src, ETHERTYPE_STREAM);
    f.extend_from_slice(&seq.to_be_bytes());
    let start = f.len();
    let mut b = stream_byte(seq, start);
    f.resize(len, 0);
    for x in &mut f[start..] {
        *x = b;
        b = b.wrapping_add(7);
    }
    f
}

/// Checks a received stream frame; returns its sequence number if every byte is right.
pub fn check_stream_frame(f: &[u8], dst: [u8; 6], src: [u8; 6]) -> Option<u64> {
    if f.len() < ETH_HLEN + 8
        || f[..6] != dst
        || f[6..12] != src
        || ethertype(f) != ETHERTYPE_STREAM
    {
        return None;
    }
    let seq = u64::from_be_bytes(f[14..22].try_into().ok()?);
    f.iter()
        .enumerate()
        .skip(22)
        .all(|(i, &b)| b == stream_byte(seq, i))
        .then_some(seq)
}

/// Whether `frame` (without FCS) is a magic packet for `mac` (SDM 6.4.3.1.4): somewhere
/// after the two addresses, at least six 0xFF bytes followed by sixteen copies of `mac`.
pub fn is_magic_packet(frame: &[u8], mac: [u8; 6]) -> bool {
    let Some(body) = frame.get(12..) else {
        return false;
    };
    let pattern: Vec<u8> = [[0xFF; 6]]
        .into_iter()
        .chain(std::iter::repeat_n(mac, 16))
        .flatten()
        .collect();
    body.windows(pattern.len()).any(|w| w == pattern.as_slice())
}

/// A magic packet waking `target`, sent from `src` to `dst` (ethertype 0x0842, the
/// wake-on-LAN ethertype).
pub fn magic_packet(dst: [u8; 6], src: [u8; 6], target: [u8; 6]) -> Vec<u8> {
    let mut f = eth_header(dst, src, 0x0842);
    f.extend_from_slice(&[0xFF; 6]);
    for _ in 0..16 {
        f.extend_from_slice(&target);
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csum_matches_reference() {
        let data: Vec<u8> = (0..1001u32).map(|i| (i * 37 + 11) as u8).collect();
        for len in [0, 1, 2, 7, 8, 9, 63, 1000, 1001] {
            let d = &data[..len];
            let mut r = 0u32;
            for c in d.chunks(2) {
                r += u32::from(c[0]) << 8 | u32::from(*c.get(1).unwrap_or(&0));
            }
            assert_eq!(csum_fold(csum_add(0, d)), csum_fold(r), "len {len}");
        }
    }

    #[test]
    fn crc_and_checksums() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        let h = ipv4_header([10, 0, 2, 15], [10, 0, 2, 2], 1, 8, 1);
        assert_eq!(inet_csum(&h), 0);
        let f = stream_frame([1; 6], [2; 6], 77, 100);
        assert_eq!(f.len(), 100);
        assert_eq!(check_stream_frame(&f, [1; 6], [2; 6]), Some(77));
    }

    #[test]
    fn magic_packets() {
        // SDM 6.4.3.1.4: six or more 0xFF bytes, then sixteen copies of the address.
        let me = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
        let f = magic_packet(BROADCAST, [2; 6], me);
        assert!(is_magic_packet(&f, me));
        assert!(!is_magic_packet(&f, [0x52, 0x54, 0x00, 0x12, 0x34, 0x57]));
        let mut seven = eth_header(BROADCAST, [2; 6], 0x0800);
        seven.extend_from_slice(&[0xAA, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]);
        for _ in 0..16 {
            seven.extend_from_slice(&me);
        }
        assert!(is_magic_packet(&seven, me));
        let mut fifteen = magic_packet(BROADCAST, [2; 6], me);
        fifteen.truncate(fifteen.len() - 6);
        assert!(!is_magic_packet(&fifteen, me), "only 15 copies");
    }
}
