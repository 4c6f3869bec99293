//! Bytes as lower-case hex text, where JSON shows bytes that are not text
//! (dead letters, store views, a forwarded range's keys).

/// `bytes` as lower-case hex, two digits a byte.
pub fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The bytes of hex `text` (either case); `None` when it is not hex.
pub fn from_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_round_trip_through_hex() {
        for bytes in [vec![], vec![0u8, 255, 16, 1], b"customer-17".to_vec()] {
            assert_eq!(from_hex(&to_hex(&bytes)), Some(bytes));
        }
        assert_eq!(to_hex(&[0xab, 0x01]), "ab01");
        assert_eq!(from_hex("AB01"), Some(vec![0xab, 0x01]));
        for bad in ["abc", "zz", "éé", "+f+f"] {
            assert_eq!(from_hex(bad), None, "{bad}");
        }
    }
}
