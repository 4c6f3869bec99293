//! Byte layouts shared by the DSL's own stores (retries, waits, windowed
//! joins): big-endian numbers, `length (4) | bytes`, and header lists —
//! `count (4) | (key length (4) | key | 0 or 1 | value length (4) | value)*`,
//! a 0 being a null value with no length after it.

use weir_core::Headers;

/// Appends `length (4) | b`.
pub(crate) fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&u32::try_from(b.len()).unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(b);
}

/// Appends a header list.
pub(crate) fn put_headers(out: &mut Vec<u8>, headers: &Headers) {
    out.extend_from_slice(&(headers.len() as u32).to_be_bytes());
    for h in headers.iter() {
        put_bytes(out, h.key.as_bytes());
        match &h.value {
            Some(v) => {
                out.push(1);
                put_bytes(out, v);
            }
            None => out.push(0),
        }
    }
}

/// Reads what the functions above wrote; `None` when the bytes end early
/// or do not parse.
pub(crate) struct Reader<'a>(pub(crate) &'a [u8]);

impl<'a> Reader<'a> {
    pub(crate) fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = (self.0.get(..n)?, self.0.get(n..)?);
        self.0 = rest;
        Some(head)
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }

    pub(crate) fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }

    pub(crate) fn u32(&mut self) -> Option<u32> {
        Some(u32::from_be_bytes(self.array()?))
    }

    pub(crate) fn i64(&mut self) -> Option<i64> {
        Some(i64::from_be_bytes(self.array()?))
    }

    pub(crate) fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = self.u32()? as usize;
        self.take(n)
    }

    pub(crate) fn string(&mut self) -> Option<String> {
        String::from_utf8(self.bytes()?.to_vec()).ok()
    }

    /// A header list.
    pub(crate) fn headers(&mut self) -> Option<Headers> {
        let n = self.u32()?;
        let mut h = Headers::new();
        for _ in 0..n {
            let k = self.string()?;
            let v = match self.u8()? {
                0 => None,
                1 => Some(self.bytes()?.to_vec()),
                _ => return None,
            };
            h.push(k, v);
        }
        Some(h)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use weir_core::Headers;

    use super::{put_headers, Reader};

    proptest! {
        #[test]
        fn header_lists_round_trip_and_a_cut_one_is_refused(
            pairs in proptest::collection::vec((".{0,6}", proptest::option::of(any::<Vec<u8>>())), 0..4),
            cut in any::<prop::sample::Index>(),
        ) {
            let mut h = Headers::new();
            for (k, v) in pairs {
                h.push(k, v);
            }
            let mut out = Vec::new();
            put_headers(&mut out, &h);
            let mut r = Reader(&out);
            prop_assert_eq!(r.headers(), Some(h));
            prop_assert!(r.0.is_empty());
            let n = cut.index(out.len());
            prop_assert_eq!(Reader(&out[..n]).headers(), None);
        }
    }
}
