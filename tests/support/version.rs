//! Versions that prove themselves whole: a reader can tell one committed
//! version from a prefix, a suffix or a mix of two.

use super::random::Rng;

/// Header: magic, id, total length, FNV-1a of the body.
const MAGIC: &[u8; 8] = b"TCFSVER1";
pub const HEADER: usize = 32;

fn fnv(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in data {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The content of version `id`, `len` bytes long (at least `HEADER`): a
/// header naming the id, the length and the body's checksum, then a body
/// that only this id produces. Any prefix, suffix or mix of two versions
/// fails `check_version`.
pub fn version_content(id: u64, len: usize) -> Vec<u8> {
    let len = len.max(HEADER);
    let mut rng = Rng::new(id.wrapping_mul(0x2545_f491_4f6c_dd1d) ^ len as u64);
    let mut body = Vec::with_capacity(len - HEADER);
    while body.len() < len - HEADER {
        body.extend_from_slice(&rng.next().to_le_bytes());
    }
    body.truncate(len - HEADER);
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&id.to_le_bytes());
    out.extend_from_slice(&(len as u64).to_le_bytes());
    out.extend_from_slice(&fnv(&body).to_le_bytes());
    out.extend_from_slice(&body);
    out
}

/// The id of the version `data` is, if it is exactly one whole version.
pub fn check_version(data: &[u8]) -> Result<u64, String> {
    let show = |why: &str| {
        let head: Vec<u8> = data.iter().take(HEADER).copied().collect();
        format!("{why} (length {}, header {:02x?})", data.len(), head)
    };
    if data.len() < HEADER || &data[..8] != MAGIC {
        return Err(show("no version header"));
    }
    let id = u64::from_le_bytes(data[8..16].try_into().unwrap());
    let len = u64::from_le_bytes(data[16..24].try_into().unwrap()) as usize;
    if len != data.len() {
        let tail = if data.len() > len {
            let zeros = data[len..].iter().filter(|&&b| b == 0).count();
            let whole = data[..len] == version_content(id, len)[..];
            format!(
                "; the first {len} bytes are {} version {id}, the {} bytes after them hold {zeros} zero bytes",
                if whole { "exactly" } else { "NOT" },
                data.len() - len
            )
        } else {
            String::new()
        };
        return Err(show(&format!(
            "torn: version {id} is {len} bytes, read {}{tail}",
            data.len()
        )));
    }
    if data != version_content(id, len).as_slice() {
        return Err(show(&format!("torn: bytes differ from version {id}")));
    }
    Ok(id)
}
