//! Token claims as Envoy hands them to the filter. `get_property` on jwt_authn's dynamic
//! metadata returns strings as raw UTF-8, numbers as f64 little-endian, and lists and maps in
//! proxy-wasm "pairs" encoding, not as a protobuf `Struct`: `u32 n`, then `n × (u32 key_len,
//! u32 value_len)`, then `key\0value\0…`, all little-endian. A list's elements are the keys,
//! with empty values. Decoding never panics, whatever the bytes.

/// Splits proxy-wasm pairs bytes; `None` unless `bytes` is exactly one well-formed encoding.
pub fn decode_pairs(bytes: &[u8]) -> Option<Vec<(&[u8], &[u8])>> {
    let (count, rest) = read_u32(bytes)?;
    // Each pair needs at least 8 bytes of sizes and 2 NULs: refuse counts the input cannot hold
    // before allocating anything for them.
    if count.checked_mul(10)? > rest.len() {
        return None;
    }
    let sizes = rest.get(..count * 8)?;
    let mut data = rest.get(count * 8..)?;
    let mut pairs = Vec::with_capacity(count);
    for size in sizes.chunks_exact(8) {
        let (key_len, value_len) = read_u32(size)?;
        let (value_len, _) = read_u32(value_len)?;
        let key;
        let value;
        (key, data) = take_terminated(data, key_len)?;
        (value, data) = take_terminated(data, value_len)?;
        pairs.push((key, value));
    }
    data.is_empty().then_some(pairs)
}

/// A claim that should hold strings: a list (pairs with empty values) gives its elements, a
/// plain string gives itself. Elements that are not UTF-8 are skipped.
pub fn string_list(bytes: &[u8]) -> Vec<String> {
    if let Some(pairs) = decode_pairs(bytes)
        && pairs.iter().all(|(_, v)| v.is_empty())
    {
        return pairs
            .into_iter()
            .filter_map(|(k, _)| std::str::from_utf8(k).ok())
            .filter(|k| !k.is_empty())
            .map(str::to_owned)
            .collect();
    }
    match std::str::from_utf8(bytes) {
        Ok(s) if !s.is_empty() && !s.contains('\0') => vec![s.to_owned()],
        _ => Vec::new(),
    }
}

/// The caller's roles from the `roles` claim as read by `get_property`: none when it is missing.
pub fn roles(property: Option<&[u8]>) -> Vec<String> {
    property.map(string_list).unwrap_or_default()
}

fn read_u32(bytes: &[u8]) -> Option<(usize, &[u8])> {
    let (head, rest) = bytes.split_first_chunk::<4>()?;
    let n = usize::try_from(u32::from_le_bytes(*head)).ok()?;
    Some((n, rest))
}

/// `len` bytes followed by a NUL, and what comes after.
fn take_terminated(data: &[u8], len: usize) -> Option<(&[u8], &[u8])> {
    let item = data.get(..len)?;
    match data.get(len..)?.split_first()? {
        (0, rest) => Some((item, rest)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(pairs: &[(&str, &str)]) -> Vec<u8> {
        let mut out = (pairs.len() as u32).to_le_bytes().to_vec();
        for (k, v) in pairs {
            out.extend((k.len() as u32).to_le_bytes());
            out.extend((v.len() as u32).to_le_bytes());
        }
        for (k, v) in pairs {
            out.extend(k.as_bytes());
            out.push(0);
            out.extend(v.as_bytes());
            out.push(0);
        }
        out
    }

    #[test]
    fn envoy_list_encoding() {
        // Captured from Envoy 1.40 (tech brief B.4): roles = ["dev", "ops"].
        let bytes = b"\x02\x00\x00\x00\x03\x00\x00\x00\x00\x00\x00\x00\x03\x00\x00\x00\x00\x00\x00\x00dev\0\0ops\0\0";
        assert_eq!(encode(&[("dev", ""), ("ops", "")]), bytes.to_vec());
        assert_eq!(string_list(bytes), ["dev", "ops"]);
        assert_eq!(roles(Some(bytes)), ["dev", "ops"]);
    }

    #[test]
    fn shapes() {
        assert_eq!(roles(None), Vec::<String>::new());
        assert_eq!(string_list(&encode(&[])), Vec::<String>::new());
        assert_eq!(string_list(b"admin"), ["admin"]);
        assert_eq!(string_list(b""), Vec::<String>::new());
        // A map is not a list of strings; its bytes are not one string either.
        assert_eq!(string_list(&encode(&[("a", "b")])), Vec::<String>::new());
        assert_eq!(
            decode_pairs(&encode(&[("k", "v"), ("", "")])),
            Some(vec![(&b"k"[..], &b"v"[..]), (&b""[..], &b""[..])])
        );
        // A number claim (f64 LE) is neither.
        assert_eq!(string_list(&1.0f64.to_le_bytes()), Vec::<String>::new());
    }

    #[test]
    fn malformed_never_panics() {
        let good = encode(&[("dev", ""), ("ops", "")]);
        for cut in 0..good.len() {
            assert_eq!(decode_pairs(&good[..cut]), None, "cut at {cut}");
        }
        let mut trailing = good.clone();
        trailing.push(b'x');
        assert_eq!(decode_pairs(&trailing), None);
        let mut no_nul = good.clone();
        let last = no_nul.len() - 1;
        no_nul[last] = b'x';
        assert_eq!(decode_pairs(&no_nul), None);
        assert_eq!(decode_pairs(&[0xff, 0xff, 0xff, 0xff]), None);
        let mut huge = encode(&[("a", "")]);
        huge[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(decode_pairs(&huge), None);
        // Every byte string of length < 12 over a small alphabet: no panic.
        for len in 0..12usize {
            for seed in 0..64u32 {
                let bytes: Vec<u8> = (0..len)
                    .map(|i| [0u8, 1, 2, 3, b'a', 0xff][((seed as usize) + i * 7) % 6])
                    .collect();
                let _ = string_list(&bytes);
            }
        }
    }
}
