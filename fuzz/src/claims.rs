//! `policy::claims`: the proxy-wasm pairs encoding of jwt_authn metadata. Decoding never
//! panics; what decodes re-encodes to the same bytes; a list encoded here decodes to its
//! non-empty UTF-8 elements.

use policy::claims;

/// The pairs encoding as Envoy writes it.
pub fn encode(pairs: &[(&[u8], &[u8])]) -> Vec<u8> {
    let len = |n: usize| u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes();
    let mut out = len(pairs.len()).to_vec();
    for (k, v) in pairs {
        out.extend(len(k.len()));
        out.extend(len(v.len()));
    }
    for (k, v) in pairs {
        out.extend_from_slice(k);
        out.push(0);
        out.extend_from_slice(v);
        out.push(0);
    }
    out
}

pub fn check(data: &[u8]) {
    if let Some(pairs) = claims::decode_pairs(data) {
        assert_eq!(encode(&pairs), data, "decoded {pairs:?} does not re-encode");
    }
    let list = claims::string_list(data);
    assert!(list.iter().all(|s| !s.is_empty()), "empty role in {list:?}");
    assert_eq!(claims::roles(Some(data)), list);

    // The bytes as a list of role names (one per line), the way Envoy hands over a list claim.
    let items: Vec<(&[u8], &[u8])> = data.split(|&b| b == b'\n').map(|i| (i, &b""[..])).collect();
    let expected: Vec<String> = items
        .iter()
        .filter_map(|(i, _)| std::str::from_utf8(i).ok())
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    assert_eq!(claims::string_list(&encode(&items)), expected);
}
