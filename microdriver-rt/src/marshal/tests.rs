use super::frame::{decode_frame, encode_frame, FrameHeader};
use super::*;
use crate::tracker::{ObjectTracker, TrackerError, TypeTag};

/// A graph node, marshaled by hand (the derive is tested in its own crate).
#[derive(Debug, Default)]
struct Node {
    value: u32,
    next: TrackedPtr<Node>,
    other: TrackedPtr<Node>,
}

impl Marshal for Node {
    const MIN_WIRE_SIZE: usize = 6;

    fn encode(&self, enc: &mut Encoder<'_>) -> Result<(), MarshalError> {
        self.value.encode(enc)?;
        self.next.encode(enc)?;
        self.other.encode(enc)
    }

    fn decode(dec: &mut Decoder<'_>) -> Result<Self, MarshalError> {
        Ok(Node {
            value: u32::decode(dec)?,
            next: TrackedPtr::decode(dec)?,
            other: TrackedPtr::decode(dec)?,
        })
    }
}

fn roundtrip<T: Marshal + PartialEq + std::fmt::Debug>(value: T) {
    let bytes = to_bytes(&value).expect("encode");
    let back: T = from_bytes(&bytes).expect("decode");
    assert_eq!(back, value);
}

#[test]
fn std_types_roundtrip() {
    roundtrip(0u8);
    roundtrip(u64::MAX);
    roundtrip(-5i32);
    roundtrip(i128::MIN);
    roundtrip(usize::MAX);
    roundtrip(isize::MIN);
    roundtrip(1.5f64);
    roundtrip(true);
    roundtrip('é');
    roundtrip(());
    roundtrip([1u16, 2, 3]);
    roundtrip((1u8, String::from("x"), vec![Some(2u32), None]));
    roundtrip(Box::new(7u64));
    roundtrip(vec![1u32; 1000].into_boxed_slice());
    roundtrip(String::from("hello, wire"));
    roundtrip(Box::<str>::from("boxed"));
    roundtrip(std::time::Duration::new(5, 999_999_999));
    roundtrip(vec![vec![String::new()], vec![]]);
    roundtrip([[1u8; 3]; 2]);
    roundtrip(std::collections::BTreeMap::from([(
        1u32,
        vec![String::from("a")],
    )]));
    roundtrip(std::collections::HashMap::from([(String::from("k"), 2u64)]));
    roundtrip(std::collections::VecDeque::from(vec![1u16, 2, 3]));
    roundtrip(Result::<u32, String>::Ok(3));
    roundtrip(Result::<u32, String>::Err("no".into()));
}

#[test]
fn integers_are_little_endian_and_lengths_leb128() {
    assert_eq!(to_bytes(&0x0102_0304u32).expect("u32"), [4, 3, 2, 1]);
    assert_eq!(to_bytes(&vec![7u8; 300]).expect("vec")[..2], [0xac, 0x02]);
    assert_eq!(to_bytes(&Some(1u8)).expect("opt"), [1, 1]);
}

#[test]
fn hostile_lengths_are_errors_not_allocations() {
    // A Vec<u64> claiming 2^60 elements.
    let mut bytes = Vec::new();
    let mut enc = Encoder::new(&mut bytes);
    enc.put_varint(1 << 60);
    let err = from_bytes::<Vec<u64>>(&bytes).expect_err("huge length");
    assert!(matches!(err, MarshalError::LengthTooLarge { len, .. } if len == 1 << 60));
    // A Vec<()> (zero-sized) claiming 2^60 elements must not spin for 2^60 iterations.
    assert!(matches!(
        from_bytes::<Vec<()>>(&bytes),
        Err(MarshalError::LengthTooLarge { .. })
    ));
    // An over-long varint.
    assert!(matches!(
        from_bytes::<Vec<u8>>(&[0xff; 11]),
        Err(MarshalError::BadVarint { .. })
    ));
    // A string that is not UTF-8.
    assert!(matches!(
        from_bytes::<String>(&[2, 0xff, 0xfe]),
        Err(MarshalError::BadText { .. })
    ));
    assert!(matches!(
        from_bytes::<bool>(&[2]),
        Err(MarshalError::BadTag { what: "bool", .. })
    ));
    assert!(matches!(
        from_bytes::<u32>(&[1, 2]),
        Err(MarshalError::Truncated { .. })
    ));
    assert!(matches!(
        from_bytes::<u8>(&[1, 2]),
        Err(MarshalError::TrailingBytes { extra: 1 })
    ));
}

#[test]
fn deep_nesting_is_bounded() {
    // 10_000 nested Some(Box(...)) would overflow the stack if decoding recursed freely.
    type Chain = Option<Box<Link>>;
    #[derive(Debug, PartialEq)]
    struct Link(Chain);
    impl Marshal for Link {
        const MIN_WIRE_SIZE: usize = 1;
        fn encode(&self, enc: &mut Encoder<'_>) -> Result<(), MarshalError> {
            self.0.encode(enc)
        }
        fn decode(dec: &mut Decoder<'_>) -> Result<Self, MarshalError> {
            Ok(Link(Chain::decode(dec)?))
        }
    }
    let bytes = vec![1u8; 10_000];
    assert_eq!(
        from_bytes::<Link>(&bytes).expect_err("too deep"),
        MarshalError::TooDeep { max: MAX_DEPTH }
    );
    let mut ok = vec![1u8; 100];
    ok.push(0);
    assert!(from_bytes::<Link>(&ok).is_ok());
}

#[test]
fn frames_check_magic_version_and_length() {
    let frame = encode_frame(&vec![1u32, 2], 42, None).expect("frame");
    let (header, value): (FrameHeader, Vec<u32>) = decode_frame(&frame, None).expect("decode");
    assert_eq!(header.entry, 42);
    assert_eq!(value, vec![1, 2]);
    let mut bad = frame.clone();
    bad[0] ^= 1;
    assert!(matches!(
        decode_frame::<Vec<u32>>(&bad, None),
        Err(MarshalError::BadHeader { .. })
    ));
    let mut bad = frame.clone();
    bad[2] = frame::FORMAT_VERSION + 1;
    assert!(matches!(
        decode_frame::<Vec<u32>>(&bad, None),
        Err(MarshalError::BadHeader { .. })
    ));
    assert!(matches!(
        decode_frame::<Vec<u32>>(&frame[..frame.len() - 1], None),
        Err(MarshalError::BadHeader { .. })
    ));
    assert!(matches!(
        decode_frame::<Vec<u32>>(&frame[..5], None),
        Err(MarshalError::BadHeader { .. })
    ));
}

/// Frees a whole graph reachable from `root` (each node once).
unsafe fn free_graph(root: TrackedPtr<Node>, tracker: Option<&ObjectTracker>) {
    let mut seen = std::collections::HashSet::new();
    let mut nodes = Vec::new();
    let mut stack = vec![root];
    while let Some(p) = stack.pop() {
        if p.is_null() || !seen.insert(p.as_ptr() as usize) {
            continue;
        }
        // SAFETY: every node of the test graph is live until freed below, once.
        let node = unsafe { p.get() }.expect("non-null");
        stack.push(node.next);
        stack.push(node.other);
        nodes.push(p);
    }
    for p in nodes {
        // SAFETY: each node is freed exactly once and not used afterwards.
        unsafe { p.free(tracker) };
    }
}

#[test]
fn shared_objects_stay_shared_and_cycles_end() {
    // a -> b, a.other -> b (shared), b -> a (cycle)
    let a = TrackedPtr::new(Node {
        value: 1,
        ..Node::default()
    });
    let b = TrackedPtr::new(Node {
        value: 2,
        next: a,
        ..Node::default()
    });
    // SAFETY: freshly allocated, no other references.
    unsafe {
        let node = a.get_mut().expect("a");
        node.next = b;
        node.other = b;
    }
    let bytes = to_bytes(&a).expect("encode a cyclic graph");
    let copy: TrackedPtr<Node> = from_bytes(&bytes).expect("decode");
    // SAFETY: the decoded graph is live and only read here.
    unsafe {
        let ca = copy.get().expect("a copy");
        let cb = ca.next.get().expect("b copy");
        assert_eq!((ca.value, cb.value), (1, 2));
        assert_eq!(
            ca.next, ca.other,
            "two pointers to one object arrive as one"
        );
        assert_eq!(
            cb.next, copy,
            "the cycle closes on the copy, not the original"
        );
        assert_ne!(copy, a);
        free_graph(copy, None);
        free_graph(a, None);
    }
}

#[test]
fn tracked_objects_pair_across_frames_and_update_in_place() {
    let kernel = ObjectTracker::new();
    let user = ObjectTracker::new();
    let k_obj = TrackedPtr::new(Node {
        value: 10,
        ..Node::default()
    });
    // k -> u: new to the user half, so it allocates a copy and pairs it.
    let frame = encode_frame(&k_obj, 1, Some(&kernel)).expect("encode");
    let (_, u_obj): (_, TrackedPtr<Node>) = decode_frame(&frame, Some(&user)).expect("decode");
    assert_eq!(user.stats().paired, 1);
    // u changes its copy and sends it back: the kernel half learns the pairing and updates
    // its own object in place.
    // SAFETY: u_obj is live and only this test touches it.
    unsafe { u_obj.get_mut().expect("u copy").value = 11 };
    let reply = encode_frame(&u_obj, 1, Some(&user)).expect("reply");
    let (_, back): (_, TrackedPtr<Node>) =
        decode_frame(&reply, Some(&kernel)).expect("reply decode");
    assert_eq!(back, k_obj, "the reply names the kernel's own object");
    // SAFETY: k_obj is live.
    assert_eq!(unsafe { k_obj.get() }.expect("k").value, 11);
    assert_eq!(kernel.stats().paired, 1);
    // Second crossing k -> u updates the same user copy instead of allocating.
    // SAFETY: k_obj is live.
    unsafe { k_obj.get_mut().expect("k").value = 12 };
    let frame = encode_frame(&k_obj, 1, Some(&kernel)).expect("encode 2");
    let (_, again): (_, TrackedPtr<Node>) = decode_frame(&frame, Some(&user)).expect("decode 2");
    assert_eq!(again, u_obj);
    // SAFETY: u_obj is live.
    assert_eq!(unsafe { u_obj.get() }.expect("u").value, 12);
    // Free on the kernel side is mirrored to the user side.
    // SAFETY: k_obj is not used again.
    unsafe { k_obj.free(Some(&kernel)) };
    let notices = kernel.drain_frees(8);
    let unpaired = user.apply_peer_frees(&notices);
    assert_eq!(unpaired.len(), 1);
    assert_eq!(
        unpaired[0].as_ref().expect("mirrored").local,
        u_obj.as_ptr() as usize
    );
    // SAFETY: the user half frees its copy once, as the notice asked.
    unsafe { u_obj.free(None) };
    assert_eq!(user.stats().objects, 0);
}

#[test]
fn forged_pointers_are_rejected_and_change_nothing() {
    let kernel = ObjectTracker::new();
    let user = ObjectTracker::new();
    let k_obj = TrackedPtr::new(Node {
        value: 10,
        ..Node::default()
    });
    let frame = encode_frame(&k_obj, 1, Some(&kernel)).expect("encode");
    let (_, u_obj): (_, TrackedPtr<Node>) = decode_frame(&frame, Some(&user)).expect("decode");
    let reply = encode_frame(&u_obj, 1, Some(&user)).expect("reply");
    decode_frame::<TrackedPtr<Node>>(&reply, Some(&kernel)).expect("pairs");

    // A reply claiming that its object is a kernel object that does not exist.
    let forge = |claimed: u64, sender: u64, type_id: u64| {
        let mut payload = Vec::new();
        let mut enc = Encoder::new(&mut payload);
        enc.put_u8(2);
        enc.put_u64(sender);
        enc.put_u64(type_id);
        enc.put_u64(claimed);
        Node {
            value: 99,
            ..Node::default()
        }
        .encode(&mut enc)
        .expect("node");
        let mut frame = encode_frame(&(), 1, None).expect("header");
        frame.extend_from_slice(&payload);
        let len = (frame.len() - frame::HEADER_LEN) as u32;
        frame[4..8].copy_from_slice(&len.to_le_bytes());
        frame
    };
    let node_type = TypeTag::of::<Node>().id();
    let u_addr = u_obj.as_ptr() as u64;
    let k_addr = k_obj.as_ptr() as u64;
    let cases = [
        (
            "never registered",
            forge(0x7777_0000_0000, 0x1234_0000, node_type),
        ),
        ("near null", forge(0, 8, node_type)),
        ("interior of paired object", forge(0, u_addr + 4, node_type)),
        ("wrong type", forge(0, u_addr, TypeTag::of::<u64>().id())),
        (
            "claims another pairing",
            forge(k_addr + 64, u_addr, node_type),
        ),
    ];
    for (what, frame) in cases {
        let result = decode_frame::<TrackedPtr<Node>>(&frame, Some(&kernel));
        assert!(result.is_err(), "{what} was accepted");
    }
    // The kernel's object is untouched by every rejected frame.
    // SAFETY: k_obj is live.
    assert_eq!(unsafe { k_obj.get() }.expect("k").value, 10);
    let rejected = decode_frame::<TrackedPtr<Node>>(
        &forge(0x7777_0000_0000, 0x1234_0000, node_type),
        Some(&kernel),
    );
    assert!(matches!(
        rejected,
        Err(MarshalError::Tracker(TrackerError::Unregistered { .. }))
    ));
    // SAFETY: both copies are freed once.
    unsafe {
        k_obj.free(Some(&kernel));
        u_obj.free(Some(&user));
    }
}

#[test]
fn failed_frames_roll_back_new_objects() {
    let user = ObjectTracker::new();
    let kernel = ObjectTracker::new();
    let k_obj = TrackedPtr::new(Node {
        value: 3,
        ..Node::default()
    });
    let mut frame = encode_frame(&(k_obj, 5u8), 1, Some(&kernel)).expect("encode");
    // Cut the trailing u8: the object decodes, then the frame fails.
    frame.pop();
    let len = (frame.len() - frame::HEADER_LEN) as u32;
    frame[4..8].copy_from_slice(&len.to_le_bytes());
    assert!(decode_frame::<(TrackedPtr<Node>, u8)>(&frame, Some(&user)).is_err());
    assert_eq!(
        user.stats().objects,
        0,
        "no pairing survives a failed frame"
    );
    // SAFETY: freed once.
    unsafe { k_obj.free(Some(&kernel)) };
}

#[test]
fn back_references_are_checked() {
    // Back-reference to an object the frame never carried.
    assert!(matches!(
        from_bytes::<TrackedPtr<Node>>(&[1, 0]),
        Err(MarshalError::BadBackReference { index: 0, count: 0 })
    ));
    assert!(matches!(
        from_bytes::<TrackedPtr<Node>>(&[9]),
        Err(MarshalError::BadTag { .. })
    ));
}

mod nested_skip {
    use crate::marshal::{from_bytes, to_bytes, Decoder, Marshal};

    #[derive(Debug, Default, PartialEq, crate::Marshal)]
    struct Queue {
        tail: u32,
        #[marshal(skip)]
        slots: Vec<u64>,
    }

    #[derive(Debug, Default, PartialEq, crate::Marshal)]
    struct Device {
        id: u32,
        admin: Queue,
        io: Vec<Queue>,
        spare: Option<Box<Queue>>,
    }

    /// Decoding into an existing value keeps what never crosses at any depth: a skipped
    /// field inside a field, inside a `Vec` element, inside an `Option<Box<_>>`.
    #[test]
    fn decode_into_keeps_nested_skipped_fields() {
        let queue = |tail, n| Queue {
            tail,
            slots: vec![5; n],
        };
        let mut kernel = Device {
            id: 1,
            admin: queue(0, 16),
            io: vec![queue(0, 32), queue(0, 32)],
            spare: Some(Box::new(queue(0, 8))),
        };
        let mut user: Device = from_bytes(&to_bytes(&kernel).expect("encode")).expect("decode");
        assert!(user.admin.slots.is_empty() && user.io[0].slots.is_empty());
        user.id = 2;
        user.admin.tail = 3;
        user.io[1].tail = 4;
        user.io.push(queue(9, 0));
        user.spare.as_mut().expect("spare").tail = 6;
        let back = to_bytes(&user).expect("encode");
        kernel
            .decode_into(&mut Decoder::new(&back))
            .expect("decode_into");
        assert_eq!((kernel.id, kernel.admin.tail), (2, 3));
        assert_eq!(kernel.admin.slots.len(), 16, "admin queue's slots kept");
        assert_eq!(
            kernel
                .io
                .iter()
                .map(|q| (q.tail, q.slots.len()))
                .collect::<Vec<_>>(),
            vec![(0, 32), (4, 32), (9, 0)],
            "I/O queues' slots kept, the new one at its default"
        );
        let spare = kernel.spare.as_ref().expect("spare");
        assert_eq!((spare.tail, spare.slots.len()), (6, 8));
    }
}
