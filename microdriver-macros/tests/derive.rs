//! Round-trips through `#[derive(Marshal)]`: every struct and enum shape, generics, and
//! the `skip`, `opaque` and `len` attributes.

use std::fmt::Debug;

use microdriver_rt::marshal::{
    alloc_array, free_array, from_bytes, to_bytes, Decoder, MarshalError,
};
use microdriver_rt::Marshal;

fn round_trip<T: Marshal + PartialEq + Debug>(value: &T) -> T {
    let bytes = to_bytes(value).expect("encode");
    assert!(
        bytes.len() >= T::MIN_WIRE_SIZE,
        "{} bytes is below MIN_WIRE_SIZE {}",
        bytes.len(),
        T::MIN_WIRE_SIZE
    );
    let back: T = from_bytes(&bytes).expect("decode");
    assert_eq!(&back, value);
    back
}

// ---- structs --------------------------------------------------------------------------

#[derive(Marshal, Debug, PartialEq, Clone)]
struct Named {
    id: u32,
    name: String,
    flags: Vec<u8>,
    extra: Option<u64>,
}

#[derive(Marshal, Debug, PartialEq, Clone)]
struct Tuple(u16, String, bool);

#[derive(Marshal, Debug, PartialEq, Clone)]
struct Unit;

#[derive(Marshal, Debug, PartialEq, Clone)]
struct Empty {}

#[derive(Marshal, Debug, PartialEq, Clone)]
struct Nested {
    inner: Named,
    pair: Tuple,
    unit: Unit,
}

/// Field names that collide with the names a careless expansion would use.
#[derive(Marshal, Debug, PartialEq, Clone)]
struct Collisions {
    enc: u8,
    dec: u8,
    value: u8,
    r#type: u8,
    __value: u8,
}

#[test]
fn named_struct_round_trips() {
    round_trip(&Named {
        id: 7,
        name: "eth0".into(),
        flags: vec![1, 2, 3],
        extra: Some(99),
    });
    round_trip(&Named {
        id: 0,
        name: String::new(),
        flags: vec![],
        extra: None,
    });
}

#[test]
fn tuple_unit_and_nested_structs_round_trip() {
    round_trip(&Tuple(3, "x".into(), true));
    round_trip(&Unit);
    round_trip(&Empty {});
    assert!(to_bytes(&Unit).unwrap().is_empty());
    round_trip(&Nested {
        inner: Named {
            id: 1,
            name: "a".into(),
            flags: vec![9],
            extra: None,
        },
        pair: Tuple(1, "b".into(), false),
        unit: Unit,
    });
    round_trip(&Collisions {
        enc: 1,
        dec: 2,
        value: 3,
        r#type: 4,
        __value: 5,
    });
}

#[test]
fn fields_cross_in_declaration_order() {
    #[derive(Marshal, Debug, PartialEq)]
    struct Two {
        a: u8,
        b: u32,
    }
    assert_eq!(to_bytes(&Two { a: 1, b: 2 }).unwrap(), [1, 2, 0, 0, 0]);
    assert_eq!(<Two as Marshal>::MIN_WIRE_SIZE, 5);
    assert_eq!(<Unit as Marshal>::MIN_WIRE_SIZE, 0);
}

#[test]
fn truncated_input_is_an_error() {
    let bytes = to_bytes(&Tuple(3, "hello".into(), true)).unwrap();
    for cut in 0..bytes.len() {
        assert!(from_bytes::<Tuple>(&bytes[..cut]).is_err(), "cut at {cut}");
    }
}

// ---- enums ----------------------------------------------------------------------------

#[derive(Marshal, Debug, PartialEq, Clone)]
enum Shape {
    Empty,
    Point(i32, i32),
    Rect { w: u32, h: u32 },
    Named(Named),
    Unit(),
    Braces {},
}

#[derive(Marshal, Debug, PartialEq, Clone)]
enum List {
    Nil,
    Cons(u32, Box<List>),
}

#[derive(Marshal, Debug, PartialEq)]
enum Never {}

#[test]
fn enums_round_trip_every_variant_shape() {
    for v in [
        Shape::Empty,
        Shape::Point(-1, 2),
        Shape::Rect { w: 3, h: 4 },
        Shape::Named(Named {
            id: 5,
            name: "n".into(),
            flags: vec![],
            extra: Some(1),
        }),
        Shape::Unit(),
        Shape::Braces {},
    ] {
        round_trip(&v);
    }
    // The variant index goes first, as a varint.
    assert_eq!(to_bytes(&Shape::Empty).unwrap(), [0]);
    assert_eq!(to_bytes(&Shape::Rect { w: 1, h: 2 }).unwrap()[0], 2);
    assert_eq!(<Shape as Marshal>::MIN_WIRE_SIZE, 1);
}

#[test]
fn recursive_enum_round_trips() {
    let list = List::Cons(1, Box::new(List::Cons(2, Box::new(List::Nil))));
    round_trip(&list);
    assert_eq!(<List as Marshal>::MIN_WIRE_SIZE, 1);
}

#[test]
fn unknown_variant_is_bad_tag() {
    let err = from_bytes::<Shape>(&[6]).unwrap_err();
    assert_eq!(
        err,
        MarshalError::BadTag {
            what: "Shape",
            tag: 6,
            offset: 0
        }
    );
    // The offset is where the tag started, inside an enclosing value.
    let err = from_bytes::<(u8, Shape)>(&[0, 0x80, 0x01]).unwrap_err();
    assert_eq!(
        err,
        MarshalError::BadTag {
            what: "Shape",
            tag: 128,
            offset: 1
        }
    );
}

#[test]
fn empty_enum_never_decodes() {
    assert!(matches!(
        from_bytes::<Never>(&[0]),
        Err(MarshalError::BadTag { what: "Never", .. })
    ));
    assert!(from_bytes::<Never>(&[]).is_err());
}

// ---- generics -------------------------------------------------------------------------

#[derive(Marshal, Debug, PartialEq, Clone)]
struct Pair<A, B> {
    a: A,
    b: Vec<B>,
}

#[derive(Marshal, Debug, PartialEq, Clone)]
struct Fixed<T, const N: usize>([T; N]);

#[derive(Marshal, Debug, PartialEq, Clone)]
enum Either<L, R> {
    Left(L),
    Right { r: R },
}

#[derive(Marshal, Debug, PartialEq, Clone)]
struct WithWhere<T>
where
    T: Clone,
{
    t: T,
}

/// `bound` replaces the derived `T: Marshal`.
#[derive(Marshal, Debug, PartialEq, Clone)]
#[marshal(bound = "T: Marshal + Clone")]
struct Bounded<T> {
    t: Option<T>,
}

#[derive(Marshal, Debug, PartialEq, Clone)]
struct Lifetime<'a> {
    #[marshal(skip)]
    name: &'a str,
    n: u32,
}

#[test]
fn generics_round_trip() {
    round_trip(&Pair {
        a: 1u8,
        b: vec!["x".to_string()],
    });
    round_trip(&Pair::<Tuple, Unit> {
        a: Tuple(1, "t".into(), true),
        b: vec![Unit, Unit],
    });
    round_trip(&Fixed([1u16, 2, 3]));
    round_trip(&Either::<u8, String>::Left(1));
    round_trip(&Either::<u8, String>::Right { r: "r".into() });
    round_trip(&WithWhere { t: 5u64 });
    round_trip(&Bounded { t: Some(3u8) });
    let bytes = to_bytes(&Lifetime { name: "kept", n: 4 }).unwrap();
    let back: Lifetime<'_> = from_bytes(&bytes).unwrap();
    assert_eq!(back, Lifetime { name: "", n: 4 });
}

// ---- skip -----------------------------------------------------------------------------

#[derive(Debug, PartialEq, Clone)]
struct Cache(Vec<u32>);

impl Default for Cache {
    fn default() -> Self {
        Cache(vec![0xdead])
    }
}

#[derive(Marshal, Debug, PartialEq, Clone)]
struct Device {
    id: u32,
    #[marshal(skip)]
    cache: Cache,
    name: String,
}

#[derive(Marshal, Debug, PartialEq, Clone)]
enum Event {
    Tick,
    Data {
        seq: u32,
        #[marshal(skip)]
        scratch: Cache,
    },
    Pair(#[marshal(skip)] Cache, u8),
}

fn decode_into<T: Marshal>(target: &mut T, bytes: &[u8]) -> Result<(), MarshalError> {
    let mut dec = Decoder::new(bytes);
    target.decode_into(&mut dec)?;
    dec.finish()
}

#[test]
fn skip_never_crosses_and_decodes_as_default() {
    let dev = Device {
        id: 1,
        cache: Cache(vec![1, 2, 3]),
        name: "nic".into(),
    };
    let bytes = to_bytes(&dev).unwrap();
    assert_eq!(bytes, to_bytes(&(1u32, "nic".to_string())).unwrap());
    let back: Device = from_bytes(&bytes).unwrap();
    assert_eq!(back.cache, Cache::default());
    assert_eq!((back.id, back.name.as_str()), (1, "nic"));
    assert_eq!(
        <Device as Marshal>::MIN_WIRE_SIZE,
        4 + String::MIN_WIRE_SIZE
    );
}

#[test]
fn decode_into_keeps_the_receivers_skipped_fields() {
    let mut target = Device {
        id: 9,
        cache: Cache(vec![7, 7]),
        name: "old".into(),
    };
    let bytes = to_bytes(&Device {
        id: 2,
        cache: Cache(vec![]),
        name: "new".into(),
    })
    .unwrap();
    decode_into(&mut target, &bytes).unwrap();
    assert_eq!(
        target,
        Device {
            id: 2,
            cache: Cache(vec![7, 7]),
            name: "new".into()
        }
    );
}

#[test]
fn skip_in_enum_variants() {
    let ev = Event::Data {
        seq: 3,
        scratch: Cache(vec![5]),
    };
    let back: Event = from_bytes(&to_bytes(&ev).unwrap()).unwrap();
    assert_eq!(
        back,
        Event::Data {
            seq: 3,
            scratch: Cache::default()
        }
    );
    let back: Event = from_bytes(&to_bytes(&Event::Pair(Cache(vec![]), 4)).unwrap()).unwrap();
    assert_eq!(back, Event::Pair(Cache::default(), 4));
    round_trip(&Event::Tick);

    // Same variant: the receiver keeps its skipped field.
    let mut target = Event::Data {
        seq: 0,
        scratch: Cache(vec![42]),
    };
    decode_into(&mut target, &to_bytes(&ev).unwrap()).unwrap();
    assert_eq!(
        target,
        Event::Data {
            seq: 3,
            scratch: Cache(vec![42])
        }
    );
    // Another variant: nothing to keep, the default it is.
    let mut target = Event::Pair(Cache(vec![1]), 1);
    decode_into(&mut target, &to_bytes(&ev).unwrap()).unwrap();
    assert_eq!(
        target,
        Event::Data {
            seq: 3,
            scratch: Cache::default()
        }
    );
}

// ---- opaque ---------------------------------------------------------------------------

#[derive(Marshal, Debug, PartialEq)]
struct Dma {
    #[marshal(opaque)]
    regs: *mut u32,
    #[marshal(opaque)]
    user: *const u8,
    #[marshal(opaque)]
    handle: Option<std::ptr::NonNull<u64>>,
    size: u32,
}

#[derive(Marshal, Debug, PartialEq)]
enum Irq {
    None,
    Line(#[marshal(opaque)] *mut u8),
}

#[test]
fn opaque_pointers_pass_through_undereferenced() {
    // Addresses nobody may dereference: if the derive read through them, this would crash.
    let v = Dma {
        regs: std::ptr::without_provenance_mut(0xdead_0000),
        user: std::ptr::without_provenance(0x1234),
        handle: std::ptr::NonNull::new(std::ptr::without_provenance_mut(0xbeef_0000)),
        size: 16,
    };
    let bytes = to_bytes(&v).unwrap();
    assert_eq!(bytes.len(), 8 * 3 + 4);
    let back: Dma = from_bytes(&bytes).unwrap();
    assert_eq!(back.regs as usize, 0xdead_0000);
    assert_eq!(back.user as usize, 0x1234);
    assert_eq!(back.handle.map(|p| p.as_ptr() as usize), Some(0xbeef_0000));
    assert_eq!(back.size, 16);
    assert_eq!(<Dma as Marshal>::MIN_WIRE_SIZE, 8 * 3 + 4);

    let irq = Irq::Line(std::ptr::without_provenance_mut(0x40));
    let back: Irq = from_bytes(&to_bytes(&irq).unwrap()).unwrap();
    assert_eq!(back, irq);
    round_trip(&Irq::None);
}

// ---- len on Vec / Box<[T]> ------------------------------------------------------------

#[derive(Marshal, Debug, PartialEq, Clone)]
struct Ring {
    count: u16,
    #[marshal(len = self.count)]
    descs: Vec<u64>,
}

#[derive(Marshal, Debug, PartialEq, Clone)]
struct Pairs {
    pairs: u32,
    #[marshal(len = self.pairs * 2)]
    halves: Box<[u8]>,
}

#[derive(Marshal, Debug, PartialEq, Clone)]
struct Method {
    order: u8,
    #[marshal(len = self.ring_len())]
    slots: Vec<u16>,
}

impl Method {
    fn ring_len(&self) -> usize {
        1 << self.order
    }
}

#[derive(Marshal, Debug, PartialEq, Clone)]
struct Bare {
    n: u32,
    #[marshal(len = n)]
    items: Vec<String>,
    #[marshal(len = n + 1)]
    more: Vec<u8>,
}

#[derive(Marshal, Debug, PartialEq, Clone)]
struct Literal {
    #[marshal(len = 3)]
    three: Vec<u8>,
}

#[derive(Marshal, Debug, PartialEq, Clone)]
struct TupleLen(u8, #[marshal(len = self.0)] Vec<u8>);

#[derive(Marshal, Debug, PartialEq, Clone)]
struct GenericLen<T> {
    n: usize,
    #[marshal(len = self.n)]
    items: Vec<T>,
}

#[test]
fn len_on_vec_with_sibling_arithmetic_method_bare_and_literal() {
    round_trip(&Ring {
        count: 2,
        descs: vec![10, 20],
    });
    round_trip(&Pairs {
        pairs: 2,
        halves: vec![1, 2, 3, 4].into_boxed_slice(),
    });
    round_trip(&Method {
        order: 2,
        slots: vec![1, 2, 3, 4],
    });
    round_trip(&Bare {
        n: 1,
        items: vec!["a".into()],
        more: vec![1, 2],
    });
    round_trip(&Literal {
        three: vec![1, 2, 3],
    });
    round_trip(&TupleLen(1, vec![5]));
    round_trip(&GenericLen {
        n: 2,
        items: vec![Unit, Unit],
    });
}

#[test]
fn len_sends_only_the_prefix() {
    // A vector with spare elements past `count` sends exactly `count` of them.
    let ring = Ring {
        count: 1,
        descs: vec![10, 20, 30],
    };
    let back: Ring = from_bytes(&to_bytes(&ring).unwrap()).unwrap();
    assert_eq!(
        back,
        Ring {
            count: 1,
            descs: vec![10]
        }
    );
}

#[test]
fn len_shorter_vec_is_length_mismatch_on_encode() {
    let err = to_bytes(&Ring {
        count: 3,
        descs: vec![1],
    })
    .unwrap_err();
    assert_eq!(
        err,
        MarshalError::LengthMismatch {
            ty: "Ring",
            field: "descs",
            expected: 3,
            found: 1
        }
    );
}

#[test]
fn len_mismatch_on_decode_names_the_field() {
    // A hostile peer sends count = 5 with two descriptors.
    let bytes = to_bytes(&(5u16, vec![1u64, 2])).unwrap();
    let err = from_bytes::<Ring>(&bytes).unwrap_err();
    assert_eq!(
        err,
        MarshalError::LengthMismatch {
            ty: "Ring",
            field: "descs",
            expected: 5,
            found: 2
        }
    );
    let bytes = to_bytes(&(2u8, vec![1u8])).unwrap();
    assert_eq!(
        from_bytes::<TupleLen>(&bytes).unwrap_err(),
        MarshalError::LengthMismatch {
            ty: "TupleLen",
            field: "1",
            expected: 2,
            found: 1
        }
    );
}

// ---- len on raw pointers --------------------------------------------------------------

#[derive(Marshal, Debug)]
struct RawRing {
    count: u32,
    #[marshal(len = self.count)]
    slots: *mut u32,
}

impl RawRing {
    fn new(items: Vec<u32>) -> Self {
        let count = items.len() as u32;
        RawRing {
            count,
            slots: alloc_array(items),
        }
    }

    fn items(&self) -> &[u32] {
        if self.slots.is_null() {
            return &[];
        }
        // SAFETY: `slots` holds `count` elements from `alloc_array` while `self` lives.
        unsafe { std::slice::from_raw_parts(self.slots, self.count as usize) }
    }
}

impl Drop for RawRing {
    fn drop(&mut self) {
        // SAFETY: `slots` is null or came from `alloc_array`/decoding with `count` elements.
        unsafe { free_array(self.slots, self.count as usize) }
    }
}

#[derive(Marshal, Debug)]
struct RawVariants {
    n: u8,
    #[marshal(len = n)]
    consts: *const u16,
    #[marshal(len = self.n * 2)]
    nonnull: Option<core::ptr::NonNull<u8>>,
}

#[test]
fn len_on_raw_pointer_round_trips() {
    let ring = RawRing::new(vec![1, 2, 3]);
    let back: RawRing = from_bytes(&to_bytes(&ring).unwrap()).unwrap();
    assert_eq!(back.count, 3);
    assert_eq!(back.items(), &[1, 2, 3]);
    assert_ne!(back.slots, ring.slots);

    let empty = RawRing::new(vec![]);
    assert!(empty.slots.is_null());
    let back: RawRing = from_bytes(&to_bytes(&empty).unwrap()).unwrap();
    assert_eq!(back.count, 0);
    assert!(back.slots.is_null());
    assert_eq!(<RawRing as Marshal>::MIN_WIRE_SIZE, 4 + 1);
}

#[test]
fn len_on_const_and_option_nonnull_pointers() {
    let consts = alloc_array(vec![7u16, 8]);
    let bytes = alloc_array(vec![1u8, 2, 3, 4]);
    let v = RawVariants {
        n: 2,
        consts,
        nonnull: core::ptr::NonNull::new(bytes),
    };
    let back: RawVariants = from_bytes(&to_bytes(&v).unwrap()).unwrap();
    // SAFETY: the decoded arrays hold `n` and `2n` elements from `alloc_array`.
    unsafe {
        assert_eq!(std::slice::from_raw_parts(back.consts, 2), &[7, 8]);
        let nn = back.nonnull.unwrap().as_ptr();
        assert_eq!(std::slice::from_raw_parts(nn, 4), &[1, 2, 3, 4]);
        free_array(back.consts.cast_mut(), 2);
        free_array(nn, 4);
        free_array(consts, 2);
        free_array(bytes, 4);
    }
}

#[test]
fn raw_pointer_len_mismatch_is_rejected_on_decode() {
    // count says 4, the array holds 2: the decoded array is freed, the error names the field.
    let honest = RawRing::new(vec![1, 2]);
    let mut bytes = to_bytes(&honest).unwrap();
    bytes[0] = 4;
    let err = from_bytes::<RawRing>(&bytes).unwrap_err();
    assert_eq!(
        err,
        MarshalError::LengthMismatch {
            ty: "RawRing",
            field: "slots",
            expected: 4,
            found: 2
        }
    );
}

#[test]
fn null_pointer_with_nonzero_len_fails_to_encode() {
    let bad = RawRing {
        count: 2,
        slots: std::ptr::null_mut(),
    };
    let err = to_bytes(&bad).unwrap_err();
    assert!(matches!(
        err,
        MarshalError::LengthMismatch { field: "slots", .. }
    ));
    std::mem::forget(bad);
}

// ---- decode_into atomicity ------------------------------------------------------------

#[test]
fn decode_into_failing_half_way_changes_nothing() {
    let original = Device {
        id: 1,
        cache: Cache(vec![1]),
        name: "keep".into(),
    };
    let mut target = original.clone();
    let good = to_bytes(&Device {
        id: 2,
        cache: Cache(vec![]),
        name: "replaced".into(),
    })
    .unwrap();
    // The id decodes, then the name is cut short.
    assert!(decode_into(&mut target, &good[..good.len() - 2]).is_err());
    assert_eq!(target, original);

    // A len mismatch, detected after every field decoded, also changes nothing.
    let mut ring = Ring {
        count: 1,
        descs: vec![1],
    };
    let bytes = to_bytes(&(3u16, vec![1u64, 2])).unwrap();
    assert!(decode_into(&mut ring, &bytes).is_err());
    assert_eq!(
        ring,
        Ring {
            count: 1,
            descs: vec![1]
        }
    );

    // And for an enum with a skipped field.
    let mut ev = Event::Data {
        seq: 1,
        scratch: Cache(vec![3]),
    };
    let bytes = to_bytes(&Event::Data {
        seq: 9,
        scratch: Cache(vec![]),
    })
    .unwrap();
    assert!(decode_into(&mut ev, &bytes[..bytes.len() - 1]).is_err());
    assert_eq!(
        ev,
        Event::Data {
            seq: 1,
            scratch: Cache(vec![3])
        }
    );
}

// ---- memcpy layout --------------------------------------------------------------------

#[derive(Marshal, Debug, PartialEq, Clone, Copy)]
#[repr(C)]
struct Rec {
    a: u64,
    b: u32,
    c: u32,
}

#[derive(Marshal, Debug, PartialEq, Clone, Copy)]
#[repr(C)]
struct Padded {
    a: u64,
    b: u32,
}

#[derive(Marshal, Debug, PartialEq, Clone, Copy)]
#[repr(C)]
struct HasBool {
    a: u32,
    b: bool,
    c: [u8; 3],
}

#[derive(Marshal, Debug, PartialEq, Clone, Copy)]
#[repr(C)]
struct TupleRec(u32, u32);

#[derive(Marshal, Debug, PartialEq, Clone, Copy)]
#[repr(C)]
struct OfRecs {
    recs: [Rec; 2],
    tail: TupleRec,
}

#[derive(Marshal, Debug, PartialEq, Clone)]
#[repr(C)]
struct SkipsAField {
    a: u32,
    #[marshal(skip)]
    b: u32,
}

#[test]
fn memcpy_layout_only_for_dense_plain_structs() {
    if cfg!(target_endian = "little") {
        assert!(<Rec as Marshal>::LAYOUT.is_memcpy());
        assert!(<TupleRec as Marshal>::LAYOUT.is_memcpy());
        assert!(<OfRecs as Marshal>::LAYOUT.is_memcpy());
    }
    assert!(!<Padded as Marshal>::LAYOUT.is_memcpy());
    assert!(!<HasBool as Marshal>::LAYOUT.is_memcpy());
    assert!(!<SkipsAField as Marshal>::LAYOUT.is_memcpy());
    assert!(!<Named as Marshal>::LAYOUT.is_memcpy());
    assert!(!<Shape as Marshal>::LAYOUT.is_memcpy());

    let recs = vec![
        Rec { a: 1, b: 2, c: 3 },
        Rec {
            a: u64::MAX,
            b: 0,
            c: 7,
        },
    ];
    round_trip(&recs);
    round_trip(&OfRecs {
        recs: [recs[0], recs[1]],
        tail: TupleRec(4, 5),
    });
    round_trip(&Padded { a: 1, b: 2 });
    round_trip(&HasBool {
        a: 1,
        b: true,
        c: [1, 2, 3],
    });
    // The memcpy fast path and the field-by-field encoding agree byte for byte.
    assert_eq!(
        to_bytes(&Rec { a: 1, b: 2, c: 3 }).unwrap(),
        to_bytes(&(1u64, 2u32, 3u32)).unwrap()
    );
}

// ---- generic skip/opaque fields get where-predicates ----------------------------------

#[derive(Debug, PartialEq, Clone)]
struct PrivCache<T>(Vec<T>);

impl<T> Default for PrivCache<T> {
    fn default() -> Self {
        PrivCache(Vec::new())
    }
}

/// A public type whose skipped field has a private generic type: the derived
/// `PrivCache<T>: Default` predicate must not trip `private_bounds`.
#[derive(Marshal, Debug, PartialEq, Clone)]
pub struct GenericSkip<T, P> {
    n: T,
    #[marshal(skip)]
    cache: PrivCache<T>,
    #[marshal(opaque)]
    handle: *mut P,
}

#[test]
fn generic_skip_and_opaque_fields() {
    let v = GenericSkip::<u16, u8> {
        n: 3,
        cache: PrivCache(vec![1]),
        handle: std::ptr::without_provenance_mut(0x80),
    };
    let back: GenericSkip<u16, u8> = from_bytes(&to_bytes(&v).unwrap()).unwrap();
    assert_eq!(back.n, 3);
    assert_eq!(back.cache, PrivCache(vec![]));
    assert_eq!(back.handle as usize, 0x80);
}

#[derive(Marshal, Debug, PartialEq, Clone, Copy)]
#[repr(C)]
struct GenericRec<T> {
    a: T,
    b: T,
}

#[test]
fn generic_structs_get_the_memcpy_layout_per_instantiation() {
    if cfg!(target_endian = "little") {
        assert!(<GenericRec<u32> as Marshal>::LAYOUT.is_memcpy());
    }
    assert!(!<GenericRec<bool> as Marshal>::LAYOUT.is_memcpy());
    round_trip(&GenericRec { a: 1u32, b: 2 });
    round_trip(&GenericRec { a: true, b: false });
}

/// Public type, private skipped/opaque field types: the derived predicates
/// (`Cache: Default`, `Token: Opaque`) must not trip `private_bounds`.
#[derive(Marshal, Debug, PartialEq)]
pub struct PubDevice {
    id: u32,
    #[marshal(skip)]
    cache: Cache,
    #[marshal(opaque)]
    token: Token,
}

#[derive(Debug, PartialEq)]
struct Token(u64);

impl microdriver_rt::marshal::Opaque for Token {
    fn to_identity(&self) -> u64 {
        self.0
    }
    fn from_identity(id: u64) -> Result<Self, MarshalError> {
        Ok(Token(id))
    }
}

#[test]
fn user_opaque_impl_crosses_as_identity() {
    let v = PubDevice {
        id: 1,
        cache: Cache(vec![]),
        token: Token(0x77),
    };
    let back: PubDevice = from_bytes(&to_bytes(&v).unwrap()).unwrap();
    assert_eq!(back.token, Token(0x77));
    assert_eq!(back.cache, Cache::default());
}

// ---- #[repr(packed)] ------------------------------------------------------------------

/// A hardware descriptor: packed, so its fields are read by copy, never borrowed.
#[derive(Marshal, Debug, Clone, Copy)]
#[repr(C, packed)]
struct TxDesc {
    addr: u64,
    len: u16,
    cmd: u8,
}

#[derive(Marshal, Debug, Clone, Copy, Default)]
#[repr(C, packed(2))]
struct PackedMixed {
    id: u8,
    #[marshal(skip)]
    scratch: u32,
    #[marshal(opaque)]
    regs: u64,
    tail: u16,
}

#[derive(Marshal, Debug)]
#[repr(C, packed)]
struct PackedRing {
    count: u8,
    #[marshal(len = self.count)]
    slots: *mut u16,
}

#[test]
fn packed_structs_round_trip() {
    let d = TxDesc {
        addr: 0x1122_3344_5566_7788,
        len: 1514,
        cmd: 0x0b,
    };
    let bytes = to_bytes(&d).unwrap();
    assert_eq!(
        bytes,
        to_bytes(&(0x1122_3344_5566_7788u64, 1514u16, 0x0bu8)).unwrap()
    );
    let back: TxDesc = from_bytes(&bytes).unwrap();
    let (addr, len, cmd) = (back.addr, back.len, back.cmd);
    assert_eq!((addr, len, cmd), (0x1122_3344_5566_7788, 1514, 0x0b));
    if cfg!(target_endian = "little") {
        assert!(<TxDesc as Marshal>::LAYOUT.is_memcpy());
    }
    let ring = vec![d; 3];
    let back: Vec<TxDesc> = from_bytes(&to_bytes(&ring).unwrap()).unwrap();
    assert_eq!(back.len(), 3);
    assert_eq!({ back[2].len }, 1514);

    let mut target = PackedMixed {
        id: 0,
        scratch: 99,
        regs: 0,
        tail: 0,
    };
    let bytes = to_bytes(&PackedMixed {
        id: 1,
        scratch: 5,
        regs: 0xfee0_0000,
        tail: 7,
    })
    .unwrap();
    decode_into(&mut target, &bytes).unwrap();
    let (id, scratch, regs, tail) = (target.id, target.scratch, target.regs, target.tail);
    assert_eq!((id, scratch, regs, tail), (1, 99, 0xfee0_0000, 7));

    let slots = alloc_array(vec![1u16, 2]);
    let ring = PackedRing { count: 2, slots };
    let back: PackedRing = from_bytes(&to_bytes(&ring).unwrap()).unwrap();
    // SAFETY: both arrays hold 2 elements from `alloc_array` and are freed once.
    unsafe {
        assert_eq!(std::slice::from_raw_parts(back.slots, 2), &[1, 2]);
        free_array(back.slots, 2);
        free_array(slots, 2);
    }
}

// ---- hygiene: types defined by macro_rules! ------------------------------------------

macro_rules! ring_type {
    ($name:ident, $len:expr) => {
        #[derive(Marshal, Debug, PartialEq)]
        struct $name {
            count: u8,
            #[marshal(len = $len)]
            items: Vec<u8>,
        }
    };
}
// The `len` expression arrives as a macro argument, with the caller's hygiene.
ring_type!(MacroSelf, self.count);
ring_type!(MacroBare, count);

macro_rules! ring_type_inline {
    ($name:ident) => {
        #[derive(Marshal, Debug, PartialEq)]
        struct $name {
            count: u8,
            #[marshal(len = self.count * 2)]
            items: Vec<u8>,
        }
    };
}
ring_type_inline!(MacroInline);

#[test]
fn len_expressions_from_macro_rules_resolve_self() {
    round_trip(&MacroSelf {
        count: 1,
        items: vec![1],
    });
    round_trip(&MacroBare {
        count: 2,
        items: vec![1, 2],
    });
    round_trip(&MacroInline {
        count: 1,
        items: vec![1, 2],
    });
}

// ---- hostile input --------------------------------------------------------------------

/// Decodes every truncation and every single-bit corruption of `bytes` as `T`: errors are
/// fine, panics (and leaks of decoded raw arrays, under Miri/ASan) are not.
fn corrupt_all<T: Marshal>(bytes: &[u8]) {
    for cut in 0..bytes.len() {
        let _ = from_bytes::<T>(&bytes[..cut]);
    }
    for i in 0..bytes.len() {
        for bit in 0..8 {
            let mut b = bytes.to_vec();
            b[i] ^= 1 << bit;
            let _ = from_bytes::<T>(&b);
        }
    }
}

#[test]
fn hostile_bytes_never_panic() {
    corrupt_all::<Named>(
        &to_bytes(&Named {
            id: 1,
            name: "abc".into(),
            flags: vec![1, 2],
            extra: Some(3),
        })
        .unwrap(),
    );
    corrupt_all::<Shape>(&to_bytes(&Shape::Rect { w: 1, h: 2 }).unwrap());
    corrupt_all::<List>(&to_bytes(&List::Cons(1, Box::new(List::Nil))).unwrap());
    corrupt_all::<Ring>(
        &to_bytes(&Ring {
            count: 2,
            descs: vec![1, 2],
        })
        .unwrap(),
    );
    corrupt_all::<RawRing>(&to_bytes(&RawRing::new(vec![1, 2, 3])).unwrap());
    corrupt_all::<Device>(
        &to_bytes(&Device {
            id: 1,
            cache: Cache(vec![]),
            name: "n".into(),
        })
        .unwrap(),
    );
}
