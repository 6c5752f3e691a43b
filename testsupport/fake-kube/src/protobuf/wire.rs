//! The Protobuf wire format, read by hand (no generated code): a message is
//! a sequence of (tag, value) pairs; the tag is a varint `field << 3 |
//! wire type`; the value is a varint (type 0), 8 little-endian bytes (type
//! 1), a varint length and that many bytes (type 2: strings, bytes, nested
//! messages, packed repeated numbers, map entries) or 4 little-endian bytes
//! (type 5). Types 3 and 4 (groups) are deprecated and unused by
//! Kubernetes. Zigzag (sint32/sint64) is not used by Kubernetes either.

use super::DecodeError;

/// One field's value as it appears on the wire.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum WireValue<'a> {
    Varint(u64),
    Fixed64(u64),
    Bytes(&'a [u8]),
    Fixed32(u32),
}

impl WireValue<'_> {
    /// The wire type number, for error messages.
    pub fn wire_type(&self) -> u8 {
        match self {
            WireValue::Varint(_) => 0,
            WireValue::Fixed64(_) => 1,
            WireValue::Bytes(_) => 2,
            WireValue::Fixed32(_) => 5,
        }
    }
}

/// Reads the fields of one message, in wire order.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf, pos: 0 }
    }

    pub fn at_end(&self) -> bool {
        self.pos >= self.buf.len()
    }

    /// A base-128 varint, least significant group first; at most 10 bytes.
    pub fn varint(&mut self) -> Result<u64, DecodeError> {
        let mut value: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = *self.buf.get(self.pos).ok_or(DecodeError::UnexpectedEof)?;
            self.pos += 1;
            value |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(DecodeError::IntegerOverflow)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.pos.checked_add(n).ok_or(DecodeError::UnexpectedEof)?;
        let bytes = self.buf.get(self.pos..end).ok_or(DecodeError::UnexpectedEof)?;
        self.pos = end;
        Ok(bytes)
    }

    /// 8 little-endian bytes (wire type 1: fixed64, sfixed64, double).
    pub fn fixed64(&mut self) -> Result<u64, DecodeError> {
        let b = self.take(8)?;
        Ok(u64::from_le_bytes([
            b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7],
        ]))
    }

    /// 4 little-endian bytes (wire type 5: fixed32, sfixed32, float).
    pub fn fixed32(&mut self) -> Result<u32, DecodeError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// The next field number and value, or `None` at the end.
    pub fn field(&mut self) -> Result<Option<(u32, WireValue<'a>)>, DecodeError> {
        if self.at_end() {
            return Ok(None);
        }
        let tag = self.varint()?;
        let wire = (tag & 7) as u8;
        let number = tag >> 3;
        if number == 0 || number > u64::from(u32::MAX >> 3) {
            return Err(DecodeError::IllegalTag { field: number, wire });
        }
        let value = match wire {
            0 => WireValue::Varint(self.varint()?),
            1 => WireValue::Fixed64(self.fixed64()?),
            2 => {
                let len = self.varint()?;
                let len = usize::try_from(len).map_err(|_| DecodeError::InvalidLength)?;
                WireValue::Bytes(self.take(len)?)
            }
            5 => WireValue::Fixed32(self.fixed32()?),
            other => return Err(DecodeError::IllegalWireType(other)),
        };
        Ok(Some((number as u32, value)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(bytes: &[u8]) -> Result<Vec<(u32, WireValue<'_>)>, DecodeError> {
        let mut r = Reader::new(bytes);
        let mut out = vec![];
        while let Some(f) = r.field()? {
            out.push(f);
        }
        Ok(out)
    }

    #[test]
    fn varints_are_little_endian_base_128() {
        // The protobuf encoding guide's example: 150 is 0x96 0x01.
        assert_eq!(Reader::new(&[0x96, 0x01]).varint().unwrap(), 150);
        assert_eq!(Reader::new(&[0x00]).varint().unwrap(), 0);
        assert_eq!(Reader::new(&[0x7f]).varint().unwrap(), 127);
        assert_eq!(Reader::new(&[0x80, 0x01]).varint().unwrap(), 128);
        // -1 as an int32/int64 is ten bytes: nine 0xff and a 0x01.
        let minus_one = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
        assert_eq!(Reader::new(&minus_one).varint().unwrap() as i64, -1);
    }

    #[test]
    fn a_varint_too_long_or_cut_short_is_an_error() {
        assert_eq!(
            Reader::new(&[0xff; 11]).varint(),
            Err(DecodeError::IntegerOverflow)
        );
        assert_eq!(Reader::new(&[0x96]).varint(), Err(DecodeError::UnexpectedEof));
    }

    #[test]
    fn each_wire_type_is_read() {
        // field 1 varint 150; field 2 string "testing" (the guide's
        // examples); field 3 fixed64 1; field 4 fixed32 2.
        let bytes = [
            0x08, 0x96, 0x01, //
            0x12, 0x07, b't', b'e', b's', b't', b'i', b'n', b'g', //
            0x19, 1, 0, 0, 0, 0, 0, 0, 0, //
            0x25, 2, 0, 0, 0,
        ];
        assert_eq!(
            fields(&bytes).unwrap(),
            vec![
                (1, WireValue::Varint(150)),
                (2, WireValue::Bytes(b"testing")),
                (3, WireValue::Fixed64(1)),
                (4, WireValue::Fixed32(2)),
            ]
        );
    }

    #[test]
    fn large_field_numbers_take_a_multi_byte_tag() {
        // field 17 (ObjectMeta.managedFields), wire type 2: (17 << 3) | 2 =
        // 138 = 0x8a 0x01.
        assert_eq!(
            fields(&[0x8a, 0x01, 0x00]).unwrap(),
            vec![(17, WireValue::Bytes(b""))]
        );
    }

    #[test]
    fn truncated_and_malformed_input_is_refused() {
        // A length beyond the end.
        assert_eq!(fields(&[0x12, 0x05, b'a']), Err(DecodeError::UnexpectedEof));
        // A fixed32 cut short.
        assert_eq!(fields(&[0x25, 1, 2]), Err(DecodeError::UnexpectedEof));
        // Field number 0 is illegal.
        assert_eq!(
            fields(&[0x00, 0x01]),
            Err(DecodeError::IllegalTag { field: 0, wire: 0 })
        );
        // Wire types 3, 4 (groups), 6 and 7 are not read.
        assert_eq!(fields(&[0x0b]), Err(DecodeError::IllegalWireType(3)));
        assert_eq!(fields(&[0x0e]), Err(DecodeError::IllegalWireType(6)));
    }
}
