//! `Marshal` for the std types: integers, floats, `bool`, `char`, arrays, tuples, `Option`,
//! `Result`, `Vec`, `VecDeque`, `BTreeMap`, `HashMap`, `Box`, boxed slices, `String`, `PhantomData` and
//! `Duration`.

use std::marker::PhantomData;
use std::time::Duration;

use super::layout::{decode_elements, encode_elements};
use super::{Decoder, Encoder, Marshal, MarshalError, WireLayout};

macro_rules! marshal_le {
    ($($t:ty => $put:ident, $take:ident, $wire:ty;)*) => {$(
        impl Marshal for $t {
            const MIN_WIRE_SIZE: usize = std::mem::size_of::<$wire>();
            const LAYOUT: WireLayout = if cfg!(target_endian = "little")
                && std::mem::size_of::<$t>() == std::mem::size_of::<$wire>()
            {
                // SAFETY: a fixed-width integer or float has no padding, every bit pattern is a
                // valid value, and it is encoded as its little-endian bytes, which on a
                // little-endian host with matching width are its memory image.
                unsafe { WireLayout::memcpy() }
            } else {
                WireLayout::ENCODED
            };

            #[inline]
            fn encode(&self, enc: &mut Encoder<'_>) -> Result<(), MarshalError> {
                enc.$put(*self as $wire);
                Ok(())
            }

            #[inline]
            fn decode(dec: &mut Decoder<'_>) -> Result<Self, MarshalError> {
                let offset = dec.position();
                let wire = dec.$take()?;
                <$t>::try_from(wire).map_err(|_| MarshalError::BadTag {
                    what: stringify!($t),
                    tag: wire as u64,
                    offset,
                })
            }
        }
    )*};
}

marshal_le! {
    u8 => put_u8, take_u8, u8;
    u16 => put_u16, take_u16, u16;
    u32 => put_u32, take_u32, u32;
    u64 => put_u64, take_u64, u64;
    u128 => put_u128, take_u128, u128;
    usize => put_u64, take_u64, u64;
}

macro_rules! marshal_signed {
    ($($t:ty => $u:ty;)*) => {$(
        impl Marshal for $t {
            const MIN_WIRE_SIZE: usize = std::mem::size_of::<$t>();
            const LAYOUT: WireLayout = if cfg!(target_endian = "little") {
                // SAFETY: as for the unsigned integers: no padding, any bits valid, encoded as
                // its little-endian two's-complement bytes.
                unsafe { WireLayout::memcpy() }
            } else {
                WireLayout::ENCODED
            };

            #[inline]
            fn encode(&self, enc: &mut Encoder<'_>) -> Result<(), MarshalError> {
                (*self as $u).encode(enc)
            }

            #[inline]
            fn decode(dec: &mut Decoder<'_>) -> Result<Self, MarshalError> {
                Ok(<$u>::decode(dec)? as $t)
            }
        }
    )*};
}

marshal_signed! {
    i8 => u8;
    i16 => u16;
    i32 => u32;
    i64 => u64;
    i128 => u128;
}

impl Marshal for isize {
    const MIN_WIRE_SIZE: usize = 8;

    fn encode(&self, enc: &mut Encoder<'_>) -> Result<(), MarshalError> {
        enc.put_u64(*self as i64 as u64);
        Ok(())
    }

    fn decode(dec: &mut Decoder<'_>) -> Result<Self, MarshalError> {
        let offset = dec.position();
        let wire = dec.take_u64()? as i64;
        isize::try_from(wire).map_err(|_| MarshalError::BadTag {
            what: "isize",
            tag: wire as u64,
            offset,
        })
    }
}

macro_rules! marshal_float {
    ($($t:ty => $bits:ty;)*) => {$(
        impl Marshal for $t {
            const MIN_WIRE_SIZE: usize = std::mem::size_of::<$t>();
            const LAYOUT: WireLayout = if cfg!(target_endian = "little") {
                // SAFETY: IEEE floats have no padding, every bit pattern is a valid value (NaNs
                // included), and they cross as their little-endian bits.
                unsafe { WireLayout::memcpy() }
            } else {
                WireLayout::ENCODED
            };

            fn encode(&self, enc: &mut Encoder<'_>) -> Result<(), MarshalError> {
                self.to_bits().encode(enc)
            }

            fn decode(dec: &mut Decoder<'_>) -> Result<Self, MarshalError> {
                Ok(<$t>::from_bits(<$bits>::decode(dec)?))
            }
        }
    )*};
}

marshal_float! {
    f32 => u32;
    f64 => u64;
}

impl Marshal for bool {
    const MIN_WIRE_SIZE: usize = 1;

    fn encode(&self, enc: &mut Encoder<'_>) -> Result<(), MarshalError> {
        enc.put_u8(u8::from(*self));
        Ok(())
    }

    fn decode(dec: &mut Decoder<'_>) -> Result<Self, MarshalError> {
        let offset = dec.position();
        match dec.take_u8()? {
            0 => Ok(false),
            1 => Ok(true),
            tag => Err(MarshalError::BadTag {
                what: "bool",
                tag: u64::from(tag),
                offset,
            }),
        }
    }
}

impl Marshal for char {
    const MIN_WIRE_SIZE: usize = 4;

    fn encode(&self, enc: &mut Encoder<'_>) -> Result<(), MarshalError> {
        enc.put_u32(u32::from(*self));
        Ok(())
    }

    fn decode(dec: &mut Decoder<'_>) -> Result<Self, MarshalError> {
        let offset = dec.position();
        char::from_u32(dec.take_u32()?).ok_or(MarshalError::BadText {
            offset,
            reason: "not a Unicode scalar value",
        })
    }
}

impl Marshal for () {
    const MIN_WIRE_SIZE: usize = 0;

    fn encode(&self, _enc: &mut Encoder<'_>) -> Result<(), MarshalError> {
        Ok(())
    }

    fn decode(_dec: &mut Decoder<'_>) -> Result<Self, MarshalError> {
        Ok(())
    }
}

impl<T: ?Sized> Marshal for PhantomData<T> {
    const MIN_WIRE_SIZE: usize = 0;

    fn encode(&self, _enc: &mut Encoder<'_>) -> Result<(), MarshalError> {
        Ok(())
    }

    fn decode(_dec: &mut Decoder<'_>) -> Result<Self, MarshalError> {
        Ok(PhantomData)
    }
}

impl Marshal for Duration {
    const MIN_WIRE_SIZE: usize = 12;

    fn encode(&self, enc: &mut Encoder<'_>) -> Result<(), MarshalError> {
        enc.put_u64(self.as_secs());
        enc.put_u32(self.subsec_nanos());
        Ok(())
    }

    fn decode(dec: &mut Decoder<'_>) -> Result<Self, MarshalError> {
        let secs = dec.take_u64()?;
        let offset = dec.position();
        let nanos = dec.take_u32()?;
        if nanos >= 1_000_000_000 {
            return Err(MarshalError::BadTag {
                what: "Duration nanoseconds",
                tag: u64::from(nanos),
                offset,
            });
        }
        Ok(Duration::new(secs, nanos))
    }
}

impl<T: Marshal, const N: usize> Marshal for [T; N] {
    const MIN_WIRE_SIZE: usize = T::MIN_WIRE_SIZE.saturating_mul(N);
    const LAYOUT: WireLayout = if T::LAYOUT.is_memcpy() {
        // SAFETY: an array has no padding between or around its elements, so it is its
        // elements' memory images back to back, which is exactly how it is encoded.
        unsafe { WireLayout::memcpy() }
    } else {
        WireLayout::ENCODED
    };

    fn encode(&self, enc: &mut Encoder<'_>) -> Result<(), MarshalError> {
        encode_elements(&self[..], enc)
    }

    fn decode(dec: &mut Decoder<'_>) -> Result<Self, MarshalError> {
        let needed = T::MIN_WIRE_SIZE.saturating_mul(N);
        if needed > dec.remaining() {
            return Err(MarshalError::Truncated {
                offset: dec.position(),
                needed,
                remaining: dec.remaining(),
            });
        }
        dec.enter()?;
        let items = decode_elements::<T>(dec, N)?;
        dec.leave();
        let found = items.len() as u64;
        items
            .try_into()
            .map_err(|_| MarshalError::ArrayLength { expected: N, found })
    }

    fn check_update(&self, new: &Self) -> Result<(), MarshalError> {
        check_elements(self.iter(), new.iter())
    }

    fn keep_local(&mut self, old: &mut Self) {
        keep_elements(self.iter_mut(), old.iter_mut());
    }
}

impl<T: Marshal> Marshal for Option<T> {
    const MIN_WIRE_SIZE: usize = 1;

    fn encode(&self, enc: &mut Encoder<'_>) -> Result<(), MarshalError> {
        match self {
            None => {
                enc.put_u8(0);
                Ok(())
            }
            Some(value) => {
                enc.put_u8(1);
                value.encode(enc)
            }
        }
    }

    fn decode(dec: &mut Decoder<'_>) -> Result<Self, MarshalError> {
        let offset = dec.position();
        match dec.take_u8()? {
            0 => Ok(None),
            1 => Ok(Some(T::decode(dec)?)),
            tag => Err(MarshalError::BadTag {
                what: "Option",
                tag: u64::from(tag),
                offset,
            }),
        }
    }

    fn check_update(&self, new: &Self) -> Result<(), MarshalError> {
        check_elements(self.iter(), new.iter())
    }

    fn keep_local(&mut self, old: &mut Self) {
        keep_elements(self.iter_mut(), old.iter_mut());
    }
}

impl<T: Marshal> Marshal for Vec<T> {
    const MIN_WIRE_SIZE: usize = 1;

    fn encode(&self, enc: &mut Encoder<'_>) -> Result<(), MarshalError> {
        enc.put_len(self.len());
        encode_elements(self, enc)
    }

    fn decode(dec: &mut Decoder<'_>) -> Result<Self, MarshalError> {
        dec.enter()?;
        let len = dec.take_len_of::<T>()?;
        let items = decode_elements(dec, len)?;
        dec.leave();
        Ok(items)
    }

    fn check_update(&self, new: &Self) -> Result<(), MarshalError> {
        check_elements(self.iter(), new.iter())
    }

    fn keep_local(&mut self, old: &mut Self) {
        keep_elements(self.iter_mut(), old.iter_mut());
    }
}

impl<T: Marshal> Marshal for Box<[T]> {
    const MIN_WIRE_SIZE: usize = 1;

    fn encode(&self, enc: &mut Encoder<'_>) -> Result<(), MarshalError> {
        enc.put_len(self.len());
        encode_elements(self, enc)
    }

    fn decode(dec: &mut Decoder<'_>) -> Result<Self, MarshalError> {
        Vec::<T>::decode(dec).map(Vec::into_boxed_slice)
    }

    fn check_update(&self, new: &Self) -> Result<(), MarshalError> {
        check_elements(self.iter(), new.iter())
    }

    fn keep_local(&mut self, old: &mut Self) {
        keep_elements(self.iter_mut(), old.iter_mut());
    }
}

impl<T: Marshal> Marshal for Box<T> {
    const MIN_WIRE_SIZE: usize = T::MIN_WIRE_SIZE;

    fn encode(&self, enc: &mut Encoder<'_>) -> Result<(), MarshalError> {
        (**self).encode(enc)
    }

    fn decode(dec: &mut Decoder<'_>) -> Result<Self, MarshalError> {
        dec.enter()?;
        let value = T::decode(dec)?;
        dec.leave();
        Ok(Box::new(value))
    }

    fn check_update(&self, new: &Self) -> Result<(), MarshalError> {
        (**self).check_update(new)
    }

    fn keep_local(&mut self, old: &mut Self) {
        (**self).keep_local(old);
    }
}

impl Marshal for String {
    const MIN_WIRE_SIZE: usize = 1;

    fn encode(&self, enc: &mut Encoder<'_>) -> Result<(), MarshalError> {
        enc.put_len(self.len());
        enc.put_bytes(self.as_bytes());
        Ok(())
    }

    fn decode(dec: &mut Decoder<'_>) -> Result<Self, MarshalError> {
        let len = dec.take_len(1)?;
        let offset = dec.position();
        let bytes = dec.take_bytes(len)?;
        let text = std::str::from_utf8(bytes).map_err(|_| MarshalError::BadText {
            offset,
            reason: "not UTF-8",
        })?;
        Ok(text.to_owned())
    }
}

impl Marshal for Box<str> {
    const MIN_WIRE_SIZE: usize = 1;

    fn encode(&self, enc: &mut Encoder<'_>) -> Result<(), MarshalError> {
        enc.put_len(self.len());
        enc.put_bytes(self.as_bytes());
        Ok(())
    }

    fn decode(dec: &mut Decoder<'_>) -> Result<Self, MarshalError> {
        String::decode(dec).map(String::into_boxed_str)
    }
}

macro_rules! marshal_tuple {
    ($($name:ident $index:tt)+) => {
        impl<$($name: Marshal),+> Marshal for ($($name,)+) {
            const MIN_WIRE_SIZE: usize = super::__private::sum_min(&[$($name::MIN_WIRE_SIZE),+]);

            #[allow(non_snake_case)]
            fn encode(&self, enc: &mut Encoder<'_>) -> Result<(), MarshalError> {
                let ($($name,)+) = self;
                $($name.encode(enc)?;)+
                Ok(())
            }

            fn decode(dec: &mut Decoder<'_>) -> Result<Self, MarshalError> {
                Ok(($($name::decode(dec)?,)+))
            }

            fn check_update(&self, new: &Self) -> Result<(), MarshalError> {
                $(self.$index.check_update(&new.$index)?;)+
                Ok(())
            }

            fn keep_local(&mut self, old: &mut Self) {
                $(self.$index.keep_local(&mut old.$index);)+
            }
        }
    };
}

marshal_tuple!(A 0);
marshal_tuple!(A 0 B 1);
marshal_tuple!(A 0 B 1 C 2);
marshal_tuple!(A 0 B 1 C 2 D 3);
marshal_tuple!(A 0 B 1 C 2 D 3 E 4);
marshal_tuple!(A 0 B 1 C 2 D 3 E 4 F 5);
marshal_tuple!(A 0 B 1 C 2 D 3 E 4 F 5 G 6);
marshal_tuple!(A 0 B 1 C 2 D 3 E 4 F 5 G 6 H 7);

macro_rules! marshal_map {
    ($map:ident, $($bound:path),+) => {
        impl<K: Marshal + $($bound +)+, V: Marshal> Marshal for std::collections::$map<K, V> {
            const MIN_WIRE_SIZE: usize = 1;

            fn encode(&self, enc: &mut Encoder<'_>) -> Result<(), MarshalError> {
                enc.put_len(self.len());
                for (key, value) in self {
                    key.encode(enc)?;
                    value.encode(enc)?;
                }
                Ok(())
            }

            fn decode(dec: &mut Decoder<'_>) -> Result<Self, MarshalError> {
                dec.enter()?;
                let len = dec.take_len(K::MIN_WIRE_SIZE.saturating_add(V::MIN_WIRE_SIZE))?;
                let mut map = Self::default();
                for _ in 0..len {
                    let key = K::decode(dec)?;
                    let value = V::decode(dec)?;
                    map.insert(key, value);
                }
                dec.leave();
                Ok(map)
            }

            fn check_update(&self, new: &Self) -> Result<(), MarshalError> {
                for (key, value) in new {
                    if let Some(old) = self.get(key) {
                        old.check_update(value)?;
                    }
                }
                Ok(())
            }

            fn keep_local(&mut self, old: &mut Self) {
                for (key, value) in self.iter_mut() {
                    if let Some(old) = old.get_mut(key) {
                        value.keep_local(old);
                    }
                }
            }
        }
    };
}

marshal_map!(BTreeMap, Ord);
marshal_map!(HashMap, Eq, std::hash::Hash);

impl<T: Marshal> Marshal for std::collections::VecDeque<T> {
    const MIN_WIRE_SIZE: usize = 1;

    fn encode(&self, enc: &mut Encoder<'_>) -> Result<(), MarshalError> {
        enc.put_len(self.len());
        let (front, back) = self.as_slices();
        encode_elements(front, enc)?;
        encode_elements(back, enc)
    }

    fn decode(dec: &mut Decoder<'_>) -> Result<Self, MarshalError> {
        Vec::<T>::decode(dec).map(Into::into)
    }

    fn check_update(&self, new: &Self) -> Result<(), MarshalError> {
        check_elements(self.iter(), new.iter())
    }

    fn keep_local(&mut self, old: &mut Self) {
        keep_elements(self.iter_mut(), old.iter_mut());
    }
}

impl<T: Marshal, E: Marshal> Marshal for Result<T, E> {
    const MIN_WIRE_SIZE: usize = 1;

    fn encode(&self, enc: &mut Encoder<'_>) -> Result<(), MarshalError> {
        match self {
            Ok(value) => {
                enc.put_u8(0);
                value.encode(enc)
            }
            Err(error) => {
                enc.put_u8(1);
                error.encode(enc)
            }
        }
    }

    fn decode(dec: &mut Decoder<'_>) -> Result<Self, MarshalError> {
        let offset = dec.position();
        match dec.take_u8()? {
            0 => Ok(Ok(T::decode(dec)?)),
            1 => Ok(Err(E::decode(dec)?)),
            tag => Err(MarshalError::BadTag {
                what: "Result",
                tag: u64::from(tag),
                offset,
            }),
        }
    }

    fn check_update(&self, new: &Self) -> Result<(), MarshalError> {
        match (self, new) {
            (Ok(old), Ok(new)) => old.check_update(new),
            (Err(old), Err(new)) => old.check_update(new),
            _ => Ok(()),
        }
    }

    fn keep_local(&mut self, old: &mut Self) {
        match (self, old) {
            (Ok(new), Ok(old)) => new.keep_local(old),
            (Err(new), Err(old)) => new.keep_local(old),
            _ => {}
        }
    }
}

/// [`Marshal::check_update`] over the elements two sequences share by position (elements
/// only one of them has are new or dropped: nothing to compare them with).
fn check_elements<'a, T: Marshal + 'a>(
    old: impl Iterator<Item = &'a T>,
    new: impl Iterator<Item = &'a T>,
) -> Result<(), MarshalError> {
    old.zip(new)
        .try_for_each(|(old, new)| old.check_update(new))
}

/// [`Marshal::keep_local`] over the elements two sequences share by position.
fn keep_elements<'a, T: Marshal + 'a>(
    new: impl Iterator<Item = &'a mut T>,
    old: impl Iterator<Item = &'a mut T>,
) {
    new.zip(old).for_each(|(new, old)| new.keep_local(old));
}
